"""The window model of a guardrail check: a classifier for the windows of LONG texts (issue 32).

Why a second model. A check's classifier learnt short prompts: the deepset injections, the
in-the-wild jailbreaks, the Davidson tweets. A long text (a retrieved passage, a pasted document, a
long chat history) is scored window by window (:func:`lab.guardrails.classifier.word_windows`), and
a window of ordinary prose is not a text of the kind that classifier saw: scientific prose scored up
to 0.94 for injection, and a planted instruction diluted by the prose around it scored a median of
0.83, so no cut of that classifier both passed benign documents and caught the plants. The window
model is trained on exactly what a window of a long text holds:

* benign: ``prose`` windows (``window_words`` consecutive words of paragraphs of benign training
  documents, :func:`read_prose`), and prose windows with a BENIGN training text planted inside (a
  question or a request quoted in a document is not an attack);
* positive: prose windows with a POSITIVE training text planted inside at a random word (a text
  longer than a window gives a random stretch of one window instead).

The inserted texts are the check's own training texts (the labelled file's training part, and its
generated intent data), never its held-out split; cross-validation keeps each inserted text, and each
stretch of neighbouring prose paragraphs, in one fold.

A length-aware cut. A text of ``n`` windows gives a benign text ``n`` chances to fire, so one cut
for every length would block most long documents. The cut for ``n`` windows is the lowest one at
which the out-of-fold share of benign prose windows scoring at least it is at most
``max_text_fpr / n`` (a union bound: the expected share of benign ``n``-window texts that fire is then
at most ``max_text_fpr``). The out-of-fold prose windows bound how far that reaches: past
``n_prose * max_text_fpr`` windows the cut stays just above the highest prose window's score, and a
longer benign text may fire more often than ``max_text_fpr`` (``meta.json`` records that length as
``length_cut.estimable_windows``). :func:`length_cut` computes it from ``meta.json``.

The model is a :class:`lab.guardrails.classifier.TextClassifier` saved in ``<check folder>/windows``
(:data:`WINDOWS_DIR`); a check loads it when present (:mod:`lab.guardrails.injection`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.errors import DataError, LabError

#: The window model's folder inside its check's classifier folder.
WINDOWS_DIR = "windows"
#: A line of a text prose file shorter than this is a heading, an author line or a caption.
MIN_PARAGRAPH_WORDS = 20
#: Prose paragraphs that count as neighbours (one cross-validation group per such run of a file).
_GROUP_PARAGRAPHS = 20


def read_prose(path: str | Path, min_words: int = MIN_PARAGRAPH_WORDS) -> list[str]:
    """The paragraphs of a benign prose file: a JSON Lines file's ``knowledge`` or ``text`` fields
    (:func:`lab.guardrails.intent_data.read_passages`), a text or Markdown file's lines (a folder:
    every ``.txt`` and ``.md`` file in it, in name order), spacing collapsed, each of at least
    ``min_words`` words."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".txt", ".md"))
        if not files:
            raise DataError(f"{p}: a prose folder needs .txt or .md files; found none")
        return [t for f in files for t in read_prose(f, min_words)]
    if not p.is_file():
        raise DataError(f"{p}: prose file not found (a .jsonl, .txt or .md file, or a folder of them)")
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        from lab.guardrails.intent_data import read_passages

        texts = read_passages(p)
    else:
        try:
            texts = p.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{p}: not valid UTF-8 (byte {exc.start})") from None
    out = [" ".join(t.split()) for t in texts if len(t.split()) >= min_words]
    if not out:
        raise DataError(f"{p}: no paragraph of at least {min_words} words")
    return out


def _prose_words(rng: random.Random, docs: Sequence[Sequence[str]], need: int) -> tuple[list[str], str]:
    """``need`` consecutive words of one prose source's neighbouring paragraphs, and their group."""
    d = rng.randrange(len(docs))
    paras = docs[d]
    start = rng.randrange(len(paras))
    words: list[str] = []
    k = start
    while len(words) < need:
        words += paras[k % len(paras)].split()
        k += 1
    s = rng.randrange(0, len(words) - need + 1)
    return words[s:s + need], f"prose/{d}/{start // _GROUP_PARAGRAPHS}"


def _planted(rng: random.Random, docs: Sequence[Sequence[str]], insert: str, window_words: int) -> str:
    """One window of prose with ``insert`` inside at a random word; an insert of more words than a
    window gives a random window-long stretch of itself."""
    iw = insert.split()
    if len(iw) >= window_words:
        s = rng.randrange(0, len(iw) - window_words + 1)
        return " ".join(iw[s:s + window_words])
    room = window_words - len(iw)
    ctx, _ = _prose_words(rng, docs, room)
    at = rng.randrange(0, room + 1)
    return " ".join(ctx[:at] + iw + ctx[at:])


def _cycled(rng: random.Random, items: Sequence[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """``count`` of ``items`` (each at least once when ``count`` allows, then again in new orders)."""
    out: list[tuple[str, str]] = []
    while items and len(out) < count:
        out += rng.sample(list(items), len(items))
    return out[:count]


def window_training_set(texts: Sequence[str], labels: Sequence[int], groups: Sequence[str],
                        prose: Sequence[Sequence[str]], *, window_words: int, prose_windows: int,
                        inserts: int, seed: int = 0) -> tuple[list[str], list[int], list[str], list[str]]:
    """The window model's training windows: ``(windows, labels, groups, kinds)``.

    ``texts``/``labels``/``groups``: the check's training texts and their cross-validation groups;
    ``prose``: per benign prose source its paragraphs. ``prose_windows`` pure prose windows (kind
    ``prose``), then ``inserts`` benign (kind ``benign``) and ``inserts`` positive (kind
    ``positive``) windows, each with one training text planted (every text once before any twice)."""
    if window_words < 2:
        raise LabError(f"window model: window_words must be at least 2, got {window_words}")
    docs = [list(p) for p in prose if p]
    if not docs:
        raise LabError("window model: no prose paragraphs to build windows from (check the `prose` files)")
    rng = random.Random(seed)
    out_x: list[str] = []
    out_y: list[int] = []
    out_g: list[str] = []
    kinds: list[str] = []
    for _ in range(prose_windows):
        words, group = _prose_words(rng, docs, window_words)
        out_x.append(" ".join(words))
        out_y.append(0)
        out_g.append(group)
        kinds.append("prose")
    for label, kind in ((0, "benign"), (1, "positive")):
        pool = [(t, g) for t, y, g in zip(texts, labels, groups, strict=True) if int(y) == label and t.strip()]
        if label == 1 and not pool:
            raise LabError("window model: the training texts hold no positive to plant")
        for text, group in _cycled(rng, pool, inserts):
            out_x.append(_planted(rng, docs, text, window_words))
            out_y.append(label)
            out_g.append(f"text/{group}")
            kinds.append(kind)
    return out_x, out_y, out_g, kinds


def cut_table(prose_scores: Sequence[float], max_text_fpr: float) -> dict[str, Any]:
    """What :func:`length_cut` needs from the out-of-fold scores of the benign prose windows: the
    highest ``ceil(n_prose * max_text_fpr) + 1`` of them, their count and the target."""
    if not 0 < max_text_fpr < 1:
        raise LabError(f"window model: max_text_fpr must be in (0, 1), got {max_text_fpr}")
    top = sorted((float(s) for s in prose_scores), reverse=True)
    n = len(top)
    if not n:
        raise LabError("window model: no prose window scores to set the length-aware cut on")
    keep = math.ceil(n * max_text_fpr) + 1
    return {"max_text_fpr": float(max_text_fpr), "n_prose": n, "top_prose_scores": top[:keep],
            "estimable_windows": max(1, int(n * max_text_fpr))}


def length_cut(table: dict[str, Any], n_windows: int, max_text_fpr: float | None = None) -> float:
    """The cut for a text of ``n_windows`` windows (see the module docstring): the lowest score at
    which at most ``floor(n_prose * target / n_windows)`` out-of-fold prose windows reach it. The
    target is the table's ``max_text_fpr``, or a lower ``max_text_fpr`` (a policy's ``max_fpr``);
    a higher one is capped at the table's (its scores reach no further)."""
    top, n = table["top_prose_scores"], int(table["n_prose"])
    target = float(table["max_text_fpr"]) if max_text_fpr is None else min(float(max_text_fpr),
                                                                           float(table["max_text_fpr"]))
    allowed = int(n * target / max(1, n_windows) + 1e-9)
    k = min(allowed, len(top) - 1)
    return float(min(1.0, math.nextafter(top[k], math.inf)))


def train_window_model(texts: Sequence[str], labels: Sequence[int], groups: Sequence[str],
                       prose_files: Sequence[str | Path], out_dir: str | Path, *, name: str, window_words: int,
                       prose_windows: int = 8000, inserts: int = 2000, max_text_fpr: float = 0.02,
                       seed: int = 0, folds: int = 5, features: Sequence[str] = ("word", "char"),
                       embedding_model: str = "all-minilm-l6-v2") -> dict[str, Any]:
    """Train the window model of check ``name`` and save it in ``out_dir``; returns its meta.

    Out-of-fold scores (each inserted text and each prose group in one fold) give the length-aware
    cut table (:func:`cut_table`) and the out-of-fold recall of the positive windows at the cuts of
    texts of 1,000, 5,000 and 20,000 words (recorded as ``oof_recall_by_words``)."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    from lab.guardrails.classifier import TextClassifier, _pipeline, word_windows

    prose = [read_prose(f) for f in prose_files]
    x, y, g, kinds = window_training_set(texts, labels, groups, prose, window_words=window_words,
                                         prose_windows=prose_windows, inserts=inserts, seed=seed)
    ya, kind = np.asarray(y), np.asarray(kinds)
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof = cross_val_predict(_pipeline(seed, features, embedding_model), x, ya, cv=cv, groups=g,
                            method="predict_proba")[:, 1]
    table = cut_table(oof[kind == "prose"], max_text_fpr)
    stride = max(1, window_words // 2)
    recall = {}
    for words in (1000, 5000, 20000):
        n = len(word_windows(" ".join(["w"] * words), window_words))
        cut = length_cut(table, n)
        recall[str(words)] = {"windows": n, "cut": cut, "oof_recall": float((oof[ya == 1] >= cut).mean()),
                              "oof_benign_window_fpr": float((oof[ya == 0] >= cut).mean())}
    pipe = _pipeline(seed, features, embedding_model).fit(x, ya)
    meta = {"name": f"{name}/windows", "kind": "window_model", "window_words": window_words, "stride_words": stride,
            "n_train": len(y), "windows_by_kind": {k: int((kind == k).sum()) for k in ("prose", "benign", "positive")},
            "prose": [str(f) for f in prose_files], "prose_paragraphs": sum(len(p) for p in prose), "seed": seed,
            "folds": folds, "features": list(features),
            **({"embedding_model": embedding_model} if "embedding" in features else {}),
            "threshold_rule": (f"length-aware: per text of n windows, the lowest cut at which at most "
                               f"{max_text_fpr:g}/n of the out-of-fold benign prose windows score at least it"),
            "length_cut": table, "oof_recall_by_words": recall}
    clf = TextClassifier(pipe, length_cut(table, 2), meta)
    clf.save(out_dir)
    return clf.meta | {"threshold": clf.threshold}


def load_window_model(model_dir: str | Path) -> Any:
    """The window model saved beside the classifier in ``model_dir`` (None: there is none)."""
    from lab.guardrails.classifier import TextClassifier

    folder = Path(model_dir) / WINDOWS_DIR
    if not folder.is_dir():
        return None
    model = TextClassifier.load(folder)
    if "length_cut" not in model.meta or "window_words" not in model.meta:
        raise LabError(f"{folder}: not a window model (meta.json lacks length_cut/window_words); "
                       "retrain it with `dvc repro guardrails_eval`")
    return model
