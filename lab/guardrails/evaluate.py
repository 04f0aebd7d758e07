"""Measure a guardrail check on a labelled file: ``lab guardrails eval FILE --check NAME``.

Formats, detected from the file:

- JSON lines ``{"text": ..., "label": 0|1}`` (1 = the check should fire: an attack, toxic text...);
  ``label`` may also be ``true``/``false``.
- Presidio's span JSON: a list of ``{"full_text": ..., "spans": [{"entity_type", "start_position",
  "end_position"}, ...]}`` (presidio-research's generated sets).
- CSV with a text column and a label column: the toxicity sets (Davidson et al.: ``tweet`` and
  ``class``, where 0 hate speech and 1 offensive count as positive and 2 neither as negative;
  Jigsaw: ``comment_text`` and ``toxic``), or any CSV with ``text`` and ``label``.

A malformed record (missing field, a label that is not 0/1/true/false, a span outside its text) is
a :class:`DataError` naming the file and line (or record index), unless ``skip_bad`` is set, in which
case it is counted in ``skipped`` with its first reasons.

Binary files give ``n``, ``precision``, ``recall``, ``f1``, ``fpr``, ``accuracy``, ``threshold``
(and the confusion counts). A metric that is undefined for the file is ``null``, never a crash
or a NaN: a file of one class only (all attacks, or all benign prompts) gives ``recall``, or
``fpr``, and null for precision, F1 and accuracy; precision (and F1) are null when nothing fired. Span files give span-level ``precision``, ``recall`` and ``f2``
overall and per entity type: a predicted span matches a gold span of the same (mapped) type when
their character overlap is at least half of their union (IoU >= 0.5), one to one; and, under
``token_level``, the same token by token (IO scheme), the way presidio-research scores and its
published figures are given.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import DataError
from lab.io import iter_jsonl

#: presidio-research's dataset entity types -> the types Presidio's recognisers emit. Types with no
#: counterpart (TITLE, PREFIX) are left out of scoring, as presidio-research's evaluation does.
PRESIDIO_DATASET_MAP = {"ADDRESS": "LOCATION", "GPE": "LOCATION", "DOMAIN_NAME": "URL", "NORP": "NRP",
                        "TITLE": None, "PREFIX": None}
#: The PII check's own types -> those of presidio-research's sets, for its predictions: those sets
#: label a whole postal address (street, town, code) ADDRESS, scored as LOCATION, where the check
#: reports STREET_ADDRESS (:mod:`lab.guardrails.pii_types`).
PRESIDIO_PREDICTION_MAP = {"STREET_ADDRESS": "LOCATION", "US_ZIP_CODE": "LOCATION", "UK_POSTCODE": "LOCATION"}


@dataclass
class Labelled:
    """A labelled file read: binary records or span records, and what was skipped."""

    kind: str                                   # "binary" or "spans"
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    spans: list[list[tuple[int, int, str]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    templates: list[str | None] = field(default_factory=list)   # spans: the record's template, if given

    def subset(self, keep: Sequence[int]) -> Labelled:
        """The records at ``keep`` (in that order)."""
        def pick(xs: list[Any]) -> list[Any]:
            return [xs[i] for i in keep] if xs else []

        return Labelled(self.kind, pick(self.texts), pick(self.labels), pick(self.spans), list(self.skipped),
                        pick(self.templates))


def _label(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, float) and value in (0.0, 1.0):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false") and value == value.strip():
        return 1 if value.lower() in ("1", "true") else 0
    return None


def read_labelled(path: str | Path, *, skip_bad: bool = False) -> Labelled:
    """Read any supported labelled file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text ({exc})") from None
    out: Labelled
    if p.suffix.lower() == ".csv":
        out = _read_csv(p, text)
    elif text.lstrip().startswith("["):
        out = _read_spans(p, text)
    else:
        out = _read_jsonl(p)
    if out.skipped and not skip_bad:
        raise DataError(f"{p}: {len(out.skipped)} malformed record(s); first: {out.skipped[0]}. Fix them, "
                        f"or pass --skip-bad to leave them out (they are counted in 'skipped').")
    n = len(out.texts)
    if n == 0:
        raise DataError(f"{p}: no usable records")
    return out


def _read_jsonl(p: Path) -> Labelled:
    out = Labelled("binary")
    for row in iter_jsonl(p, strict=False):
        i, rec = row.line, row.record
        if row.error is not None:
            out.skipped.append(f"line {i}: {row.error}")
            continue
        if not isinstance(rec.get("text"), str):
            out.skipped.append(f"line {i}: needs a string field 'text'")
            continue
        lab = _label(rec.get("label"))
        if lab is None:
            out.skipped.append(f"line {i}: label {rec.get('label')!r} is not 0, 1, true or false")
            continue
        out.texts.append(rec["text"])
        out.labels.append(lab)
    return out


def _read_spans(p: Path, text: str) -> Labelled:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{p}: not valid JSON ({exc})") from None
    out = Labelled("spans")
    for i, rec in enumerate(data):
        where = f"record {i}"
        if not isinstance(rec, dict) or not isinstance(rec.get("full_text"), str) \
                or not isinstance(rec.get("spans"), list):
            out.skipped.append(f"{where}: needs 'full_text' (string) and 'spans' (list)")
            continue
        spans, bad = [], None
        for j, s in enumerate(rec["spans"]):
            try:
                a, b, t = int(s["start_position"]), int(s["end_position"]), str(s["entity_type"])
            except (KeyError, TypeError, ValueError):
                bad = f"{where}, span {j}: needs entity_type, start_position and end_position"
                break
            if not 0 <= a < b <= len(rec["full_text"]):
                bad = f"{where}, span {j}: [{a}, {b}) is outside the text of {len(rec['full_text'])} characters"
                break
            spans.append((a, b, t))
        if bad:
            out.skipped.append(bad)
            continue
        out.texts.append(rec["full_text"])
        out.spans.append(spans)
        out.templates.append(template_key(rec))
    return out


def template_key(rec: Mapping[str, Any]) -> str | None:
    """The template a generated record was filled from: its ``masked`` text with every placeholder
    (``{{first_name}}``, ``<PERSON>``...) reduced to one mark, lower-cased; None without ``masked``.
    presidio-research's sets are Faker fills of a few hundred templates, so a model trained on some
    records must be measured on records of other templates."""
    masked = rec.get("masked")
    if not isinstance(masked, str):
        return None
    return re.sub(r"\{\{[^}]*\}\}|<[A-Z_]+>", "\u2022", masked).strip().lower()


_CSV_COLUMNS = [("tweet", "class"), ("comment_text", "toxic"), ("prompt", "jailbreak"), ("text", "label")]


def _read_csv(p: Path, text: str) -> Labelled:
    import io

    reader = csv.DictReader(io.StringIO(text))
    cols = reader.fieldnames or []
    pick = next(((t, lab) for t, lab in _CSV_COLUMNS if t in cols and lab in cols), None)
    if pick is None:
        raise DataError(f"{p}: CSV columns {cols} hold no known text/label pair; expected one of "
                        f"{', '.join(f'{t}+{lab}' for t, lab in _CSV_COLUMNS)}")
    tcol, lcol = pick
    out = Labelled("binary")
    for i, row in enumerate(reader, 2):  # line 1 is the header
        value = (row.get(lcol) or "").strip()
        if tcol == "tweet":  # Davidson: 0 hate speech, 1 offensive -> positive; 2 neither -> negative
            lab = {"0": 1, "1": 1, "2": 0}.get(value)
        else:
            lab = _label(value)
        if lab is None or row.get(tcol) is None:
            out.skipped.append(f"line {i}: {lcol} {value!r} is not a valid label")
            continue
        out.texts.append(row[tcol])
        out.labels.append(lab)
    return out


# --------------------------------------------------------------------------- metrics


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def binary_metrics(labels: Sequence[int], fired: Sequence[bool]) -> dict[str, Any]:
    """Precision, recall, F1, false-positive rate and accuracy; ``None`` where undefined."""
    tp = sum(1 for y, f in zip(labels, fired, strict=True) if y and f)
    fp = sum(1 for y, f in zip(labels, fired, strict=True) if not y and f)
    fn = sum(1 for y, f in zip(labels, fired, strict=True) if y and not f)
    tn = len(labels) - tp - fp - fn
    pos, neg = tp + fn, tn + fp
    out: dict[str, Any] = {"n": len(labels), "positives": pos, "negatives": neg, "tp": tp, "fp": fp, "fn": fn,
                           "tn": tn, "precision": None, "recall": _div(tp, pos), "f1": None,
                           "fpr": _div(fp, neg), "accuracy": None}
    if pos and neg:  # precision, F1 and accuracy only mean something with both classes present
        precision = _div(tp, tp + fp)
        out["precision"] = precision
        out["accuracy"] = (tp + tn) / len(labels)
        if precision is not None:
            recall = out["recall"]
            out["f1"] = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return out


def _fbeta(p: float | None, r: float | None, beta: float) -> float | None:
    if p is None or r is None:
        return None
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r) if (b2 * p + r) > 0 else 0.0


def _map_pred(pred: Sequence[Sequence[tuple[int, int, str]]], mapping: Mapping[str, str | None] | None
              ) -> list[list[tuple[int, int, str]]]:
    mapping = PRESIDIO_PREDICTION_MAP if mapping is None else mapping
    out = [[(a, b, mapping.get(t, t)) for a, b, t in spans] for spans in pred]
    return [[s for s in spans if s[2] is not None] for spans in out]


def span_metrics(gold: Sequence[Sequence[tuple[int, int, str]]], pred: Sequence[Sequence[tuple[int, int, str]]],
                 *, mapping: Mapping[str, str | None] | None = None, min_iou: float = 0.5,
                 pred_mapping: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Span-level precision, recall and F2, overall and per (mapped) entity type. ``mapping``
    maps the gold types (default :data:`PRESIDIO_DATASET_MAP`), ``pred_mapping`` the predicted
    ones (default :data:`PRESIDIO_PREDICTION_MAP`); ``{}`` keeps types as they are."""
    mapping = PRESIDIO_DATASET_MAP if mapping is None else mapping
    pred = _map_pred(pred, pred_mapping)
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g_spans, p_spans in zip(gold, pred, strict=True):
        g = [(a, b, mapping.get(t, t)) for a, b, t in g_spans]
        g = [s for s in g if s[2] is not None]
        n_gold.update(t for _, _, t in g)
        n_pred.update(t for _, _, t in p_spans)
        used: set[int] = set()
        for a, b, t in p_spans:
            best, best_iou = None, min_iou
            for k, (ga, gb, gt) in enumerate(g):
                if k in used or gt != t:
                    continue
                inter = max(0, min(b, gb) - max(a, ga))
                iou = inter / (max(b, gb) - min(a, ga))
                if iou >= best_iou:
                    best, best_iou = k, iou
            if best is not None:
                used.add(best)
                tp[t] += 1
    per_type = {}
    for t in sorted(set(n_gold) | set(n_pred)):
        p, r = _div(tp[t], n_pred[t]), _div(tp[t], n_gold[t])
        per_type[t] = {"gold": n_gold[t], "predicted": n_pred[t], "matched": tp[t], "precision": p, "recall": r,
                       "f2": _fbeta(p, r, 2.0)}
    P, R = _div(sum(tp.values()), sum(n_pred.values())), _div(sum(tp.values()), sum(n_gold.values()))
    return {"precision": P, "recall": R, "f2": _fbeta(P, R, 2.0), "gold_spans": sum(n_gold.values()),
            "predicted_spans": sum(n_pred.values()), "per_entity": per_type, "match": f"same type, IoU >= {min_iou}"}


_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def _token_types(text: str, spans: Sequence[tuple[int, int, str]]) -> list[str | None]:
    """The entity type covering each token of ``text`` (None: outside every span; the longest span
    wins where spans overlap)."""
    out: list[str | None] = []
    ordered = sorted(spans, key=lambda s: s[0] - s[1])   # longest first
    for m in _TOKEN.finditer(text):
        a, b = m.span()
        out.append(next((t for sa, sb, t in ordered if sa < b and a < sb), None))
    return out


def token_metrics(texts: Sequence[str], gold: Sequence[Sequence[tuple[int, int, str]]],
                  pred: Sequence[Sequence[tuple[int, int, str]]], *,
                  mapping: Mapping[str, str | None] | None = None,
                  pred_mapping: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Token-level precision, recall and F2 (IO scheme), overall and per entity type: the way
    presidio-research's evaluator scores (its published figures are token-level), so that the
    figures compare with those. Tokens are words and single punctuation marks; a token is correct
    when its predicted type equals its gold type. As with presidio-research's ``entities_to_keep``,
    predicted types that the file never labels (NRP, UK_NHS... in a set without them) are not
    scored: the set cannot say whether they are right. ``mapping`` and ``pred_mapping`` as in
    :func:`span_metrics`."""
    mapping = PRESIDIO_DATASET_MAP if mapping is None else mapping
    pred = _map_pred(pred, pred_mapping)
    g_all = [[(a, b, mapping.get(t, t)) for a, b, t in spans] for spans in gold]
    g_all = [[s for s in spans if s[2] is not None] for spans in g_all]
    kept = {t for spans in g_all for _, _, t in spans}
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for text, g, p in zip(texts, g_all, pred, strict=True):
        gt = _token_types(text, g)
        pt = _token_types(text, [s for s in p if s[2] in kept])
        for a, b in zip(gt, pt, strict=True):
            if a is not None:
                n_gold[a] += 1
            if b is not None:
                n_pred[b] += 1
            if a is not None and a == b:
                tp[a] += 1
    per_type = {}
    for t in sorted(set(n_gold) | set(n_pred)):
        p_, r_ = _div(tp[t], n_pred[t]), _div(tp[t], n_gold[t])
        per_type[t] = {"gold_tokens": n_gold[t], "predicted_tokens": n_pred[t], "matched": tp[t],
                       "precision": p_, "recall": r_, "f2": _fbeta(p_, r_, 2.0)}
    P, R = _div(sum(tp.values()), sum(n_pred.values())), _div(sum(tp.values()), sum(n_gold.values()))
    return {"precision": P, "recall": R, "f2": _fbeta(P, R, 2.0), "per_entity": per_type,
            "match": "token level, IO scheme, types the file labels (as presidio-research)"}


def evaluate(path: str | Path, check_name: str, *, skip_bad: bool = False,
             options: Mapping[str, Any] | None = None, threshold: float | None = None) -> dict[str, Any]:
    """Run check ``check_name`` over a labelled file; returns the JSON the CLI writes."""
    return evaluate_labelled(read_labelled(path, skip_bad=skip_bad), check_name, options=options,
                             threshold=threshold, source=str(path))


def evaluate_labelled(data: Labelled, check_name: str, *, options: Mapping[str, Any] | None = None,
                      threshold: float | None = None, source: str = "") -> dict[str, Any]:
    """:func:`evaluate` on records already read (a subset of a file, say)."""
    from lab.guardrails.base import check_all, make_check

    check = make_check(check_name, **dict(options or {}))
    t0 = time.perf_counter()
    result: dict[str, Any] = {"check": check_name, "file": source, "format": data.kind}
    if data.kind == "spans":
        if not hasattr(check, "find"):
            raise DataError(f"{source or 'the records'}: a span file needs a check that locates entities (pii); {check_name!r} does not")
        cut = threshold if threshold is not None else getattr(check, "threshold", 0.0)
        pred = [[(s.start, s.end, s.label) for s in check.find(t) if s.score >= cut] for t in data.texts]
        result.update({"n": len(data.texts), "threshold": cut, **span_metrics(data.spans, pred),
                       "token_level": token_metrics(data.texts, data.spans, pred),
                       "nlp_model": getattr(check, "nlp_model", None)})
    else:
        decisions = check_all(check, data.texts)
        # the check's own cut (a long text scored by a window model has its own: the decisions say so)
        cut = threshold if threshold is not None else getattr(check, "threshold",
                                                              decisions[0].threshold if decisions else None)
        fired = [d.score >= cut for d in decisions] if threshold is not None else [d.fired for d in decisions]
        result.update({**binary_metrics(data.labels, fired), "threshold": cut})
        if hasattr(check, "scores") and 0 < sum(data.labels) < len(data.labels):
            # threshold-free figures of a trained classifier (its probability, rules left out; each
            # text's margin over its own cut where a window model scores the long ones)
            from sklearn.metrics import average_precision_score, roc_auc_score

            probs = check.margins(data.texts) if getattr(check, "window_model", None) is not None \
                else check.scores(data.texts)
            result.update(average_precision=float(average_precision_score(data.labels, probs)),
                          roc_auc=float(roc_auc_score(data.labels, probs)))
    result["seconds"] = time.perf_counter() - t0
    result["skipped"] = len(data.skipped)
    if data.skipped:
        result["skipped_examples"] = data.skipped[:5]
    return result
