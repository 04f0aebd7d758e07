"""Calibration: how far a judge agrees with human labels, beside the baselines it must beat.

:func:`calibrate` judges every item of a labelled set and reports agreement on the items that got a
verdict (accuracy, precision, recall, F1, Cohen's kappa, the confusion matrix, bootstrap CIs), the
counts of parse and generation failures (never dropped silently: ``n`` is every item, ``n_scored``
those with a verdict, and ``accuracy_failures_as_wrong`` counts each failure as a disagreement),
the majority-class accuracy of the set's own labels, and the lexical-support baseline's accuracy
(its threshold fitted on TRAINING items; ``None`` where the set has no grounding text) with the
paired difference of the judge against it (``vs_lexical``: accuracy and kappa, the CI from resampling
the same items for both). A judge whose kappa is below ``bar`` is flagged (``below_bar``).

Where items carry labelled hallucinated spans (the ``answers`` format's ``spans``), ``span_level``
reports how well the judge's spans match them (:func:`span_agreement`); it is None otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lab.data.halueval import JudgedItem
from lab.judge.base import Judge, JudgeInput, Judgment, tally
from lab.judge.baselines import LexicalJudge
from lab.metrics.agreement import agreement_report, paired_difference
from lab.metrics.chunk import Range, merge, total


def as_input(item: JudgedItem) -> JudgeInput:
    return JudgeInput(question=item.question, answer=item.answer, context=item.context)


def agreement_of(judgments: Sequence[Judgment], labels: Sequence[int], *, n_resamples: int = 2000,
                 seed: int = 0) -> dict[str, Any]:
    """Agreement on the judged items plus the failure counts."""
    pairs = [(j.verdict, y) for j, y in zip(judgments, labels, strict=True) if j.verdict is not None]
    counts = tally(judgments)
    out: dict[str, Any] = {"n": len(labels), "n_scored": len(pairs), **{k: counts[k] for k in (
        "parse_failures", "generation_failures", "repaired", "cache_hits")}}
    if pairs:
        rep = agreement_report([y for _, y in pairs], [v for v, _ in pairs], n_resamples=n_resamples, seed=seed)
        rep.pop("n")
        out.update(rep)
        out["accuracy_failures_as_wrong"] = sum(v == y for v, y in pairs) / len(labels)
    else:
        out.update({k: None for k in ("accuracy", "precision", "recall", "f1", "kappa", "accuracy_ci", "f1_ci",
                                      "kappa_ci", "confusion", "accuracy_failures_as_wrong")})
    return out


def predicted_spans(judgment: Judgment, answer: str) -> list[Range]:
    """The answer's parts a judgment calls hallucinated: its claim spans; else, for a verdict of 1
    from a judge that gives no offsets, the whole answer; else none."""
    if judgment.claim_spans:
        return [(int(s["start"]), int(s["end"])) for s in judgment.claim_spans]
    return [(0, len(answer))] if judgment.verdict == 1 else []


def _overlap(a: list[Range], b: list[Range]) -> int:
    """Characters in both of two sorted, disjoint range lists."""
    i = j = n = 0
    while i < len(a) and j < len(b):
        n += max(0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return n


def span_agreement(items: Sequence[JudgedItem], judgments: Sequence[Judgment]) -> dict[str, Any] | None:
    """Span-level precision, recall and F1 of the predicted hallucinated spans against the labelled
    ones, by character overlap, micro-averaged over the items with labelled spans and a verdict.

    With P = the union of an item's predicted spans (:func:`predicted_spans`) and G = the union of its
    labelled spans, summed over items: ``precision = Σ|P ∩ G| / Σ|P|``, ``recall = Σ|P ∩ G| / Σ|G|``,
    ``f1 = 2 Σ|P ∩ G| / (Σ|P| + Σ|G|)`` (their harmonic mean); each is None where its denominator is 0.
    A faithful item (no labelled span) adds only to Σ|P|. Items without a verdict are left out and
    counted (``n`` labelled, ``n_scored`` used). None when no item has labelled spans.
    """
    labelled = [(i, j) for i, j in zip(items, judgments, strict=True) if i.spans is not None]
    if not labelled:
        return None
    scored = [(i, j) for i, j in labelled if j.verdict is not None]
    hit = pred = gold = 0
    for item, j in scored:
        p, g = merge(predicted_spans(j, item.answer)), merge(list(item.spans or ()))
        hit, pred, gold = hit + _overlap(p, g), pred + total(p), gold + total(g)
    return {"n": len(labelled), "n_scored": len(scored),
            "precision": hit / pred if pred else None, "recall": hit / gold if gold else None,
            "f1": 2 * hit / (pred + gold) if pred + gold else None,
            "overlap_chars": hit, "predicted_chars": pred, "labelled_chars": gold,
            "items_with_claim_spans": sum(bool(j.claim_spans) for _, j in scored)}


def majority_accuracy(labels: Sequence[int]) -> float:
    rate = sum(labels) / len(labels)
    return max(rate, 1.0 - rate)


def calibrate(judge: Judge, items: Sequence[JudgedItem], *, lexical: LexicalJudge | None = None,
              bar: float | None = None, n_resamples: int = 2000, seed: int = 0,
              judgments: Sequence[Judgment] | None = None) -> dict[str, Any]:
    """The calibration report of ``judge`` on ``items`` (see the module docstring).

    ``lexical`` is a fitted :class:`LexicalJudge`; ``judgments`` lets a caller pass verdicts it
    already has (they must be in item order)."""
    labels = [i.label for i in items]
    got = list(judgments) if judgments is not None else judge.judge([as_input(i) for i in items])
    report: dict[str, Any] = {"judge": judge.name, "rubric": judge.rubric_id, "judge_info": judge.describe(),
                              **agreement_of(got, labels, n_resamples=n_resamples, seed=seed)}
    report["majority_baseline_accuracy"] = majority_accuracy(labels)
    grounded = all(i.context for i in items)
    report["lexical_baseline_accuracy"] = None
    if lexical is not None and grounded:
        lex_got = lexical.judge([as_input(i) for i in items])
        lex = agreement_of(lex_got, labels, n_resamples=n_resamples, seed=seed)
        report["lexical_baseline_accuracy"] = lex["accuracy"]
        report["lexical_baseline"] = {k: lex[k] for k in ("accuracy", "accuracy_ci", "kappa", "kappa_ci", "f1")}
        report["lexical_baseline"]["threshold"] = lexical.threshold
        both = [(y, j.verdict, x.verdict) for y, j, x in zip(labels, got, lex_got, strict=True)
                if j.verdict is not None and x.verdict is not None]
        if len(both) >= 2 and judge.name != lexical.name:
            ys, ja, lx = (list(t) for t in zip(*both, strict=True))
            report["vs_lexical"] = {s: paired_difference(ys, ja, lx, statistic=s, n_resamples=n_resamples, seed=seed)
                                    for s in ("accuracy", "kappa")}
    report["span_level"] = span_agreement(items, got)
    report["agreement_bar"] = bar
    report["below_bar"] = None if bar is None or report["kappa"] is None else bool(report["kappa"] < bar)
    report["failures"] = [{"id": i.id, "line": i.line, "error": j.error, "raw": j.raw[:500]}
                          for i, j in zip(items, got, strict=True) if j.verdict is None][:50]
    return report
