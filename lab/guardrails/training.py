"""Train a guardrail classifier on a labelled file, keeping a held-out split it never sees.

``train_check("injection", "data/guardrails/prompt_injection/deepset_train.jsonl", out)`` reads the
file (any binary format of :mod:`lab.guardrails.evaluate`), holds out a deterministic 25% (by the
hash of each text, :func:`lab.guardrails.classifier.heldout_split`), trains on the rest with the
threshold chosen on that training part only, and writes ``out/`` (the model) and
``out/heldout.jsonl`` (the held-out records, for ``lab guardrails eval``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.errors import LabError

#: Checks backed by a trained classifier.
TRAINABLE = ("injection", "jailbreak", "toxicity")


def train_check(name: str, data_file: str | Path, out_dir: str | Path, *, heldout_fraction: float = 0.25,
                seed: int = 0, extra: list[tuple[str | Path, int | None]] = (),
                features: Sequence[str] = ("word", "char"), embedding_model: str = "all-minilm-l6-v2"
                ) -> dict[str, Any]:
    """Train the classifier of check ``name``; returns its metadata (with the split sizes).

    ``extra`` adds records of more files before the split: ``(file, only_label)`` keeps that file's
    records of one label (None: all), e.g. the benign prompts of the injection set as a jailbreak
    classifier's negatives (the in-the-wild jailbreak file holds jailbreaks only). ``features``: the
    classifier's feature blocks (:data:`lab.guardrails.classifier.FEATURES`)."""
    from lab.guardrails.classifier import heldout_split, train_text_classifier
    from lab.guardrails.evaluate import read_labelled
    from lab.io import write_text

    if name not in TRAINABLE:
        raise LabError(f"guardrails: {name!r} has no trained classifier; trainable: {', '.join(TRAINABLE)}")
    data = read_labelled(data_file)
    if data.kind != "binary":
        raise LabError(f"{data_file}: a classifier trains on text/label records, not span records")
    sources = [str(data_file)]
    for part, only in extra:
        more = read_labelled(part)
        if more.kind != "binary":
            raise LabError(f"{part}: a classifier trains on text/label records, not span records")
        kept = [(t, y) for t, y in zip(more.texts, more.labels, strict=True) if only is None or y == only]
        data.texts.extend(t for t, _ in kept)
        data.labels.extend(y for _, y in kept)
        sources.append(f"{part}" + (f" (label {only} only)" if only is not None else ""))
    train_idx, held_idx = heldout_split(len(data.texts), heldout_fraction, seed, keys=data.texts)
    clf = train_text_classifier([data.texts[i] for i in train_idx], [data.labels[i] for i in train_idx],
                                name=name, seed=seed, sources=sources, features=features,
                                embedding_model=embedding_model)
    clf.meta.update(heldout_fraction=heldout_fraction, n_heldout=len(held_idx))
    out = clf.save(out_dir)
    write_text(out / "heldout.jsonl", "".join(json.dumps({"text": data.texts[i], "label": data.labels[i]},
                                                         ensure_ascii=False) + "\n" for i in held_idx))
    return clf.meta | {"threshold": clf.threshold, "out_dir": str(out)}
