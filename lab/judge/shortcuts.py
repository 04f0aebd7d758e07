"""Answer length and style are not evidence: equal-length pairs, paraphrase pairs, and the veto.

From a file of :mod:`lab.judge.faithful_data` (labelled answers whose records carry ``kind`` and
``base``) two kinds of pairs are made, labels by construction:

``equal_length``  a faithful answer and the same answer with ONE planted error, when their lengths
                  differ by at most ``max(tolerance_words, tolerance_share x its words)`` words (pairs
                  further apart are counted, not used): length cannot tell them apart;
``paraphrase``    a faithful answer and its faithful paraphrase (both label 0): wording cannot be
                  evidence either.

A judge judges every answer of the pairs once; :func:`shortcut_report` gives

``separation``        over equal-length pairs, the mean of ``verdict(error) - verdict(faithful)``
                      (-1..1) with a bootstrap CI: how much more often the judge flags the planted
                      error than its twin of the same length; any rule that reads only the answer's
                      length (or a judge that calls everything hallucinated) scores 0;
``length_rho``        Spearman's rank correlation of the judge's score (P(hallucinated) where it gives
                      one, else the verdict) with the answer's length in words, within each label,
                      pooled (each label weighted by its items), CI from resampling items within label;
``paraphrase_flags``  over paraphrase pairs, the mean of ``verdict(paraphrase) - verdict(original)``
                      with a CI: how much more often the judge flags a faithful answer once reworded.

and the veto (:class:`VetoRule`; each threshold stated, and kept in the report):

* ``length``: ``|length_rho| >= max_length_rho`` (0.3) and its CI excludes 0: the verdict tracks length;
* ``paraphrase``: ``paraphrase_flags >= max_paraphrase_flags`` (0.10) and its CI's lower end is above 0:
  the judge flags faithful paraphrases;
* ``separation``: the CI's lower end of ``separation`` is at most ``min_separation`` (0): with the
  length held equal, nothing shows that the judge sees the planted error.

A pair with a judgment that has no verdict is left out of the pair figures (counted as
``failed_pairs``). :func:`guard_entry` turns a report into the judge study's guard entry
(``admissible``), beside today's length-balanced guard (:func:`lab.studies.judge.diagnostic_guard`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lab.errors import DataError
from lab.judge.base import JudgeInput
from lab.judge.perturb import words


@dataclass(frozen=True)
class Pair:
    """Two answers to the same question over the same passages: ``a`` faithful, ``b`` its twin."""

    kind: str                 # "equal_length" or "paraphrase"
    a: JudgeInput
    b: JudgeInput
    label_b: int              # 1 for a planted error, 0 for a paraphrase
    detail: str               # the planted error's kind, or "paraphrase"
    ids: tuple[str, str]


@dataclass(frozen=True)
class ShortcutSet:
    """The pairs of a file, and how many planted-error answers were too far from their twin's length."""

    equal_length: list[Pair]
    paraphrase: list[Pair]
    unequal: int
    tolerance_words: int
    tolerance_share: float


@dataclass(frozen=True)
class VetoRule:
    """The veto's thresholds (see the module docstring); None switches a rule off."""

    max_length_rho: float | None = 0.3
    max_paraphrase_flags: float | None = 0.10
    min_separation: float | None = 0.0
    n_resamples: int = 2000
    seed: int = 0


def _input(rec: dict[str, Any]) -> JudgeInput:
    ctx = rec.get("contexts")
    context = "\n\n".join(ctx) if isinstance(ctx, list) else rec.get("context")
    return JudgeInput(question=rec["question"], answer=rec["answer"], context=context)


def pairs_from_records(records: Sequence[dict[str, Any]], *, tolerance_words: int = 3,
                       tolerance_share: float = 0.05) -> ShortcutSet:
    """The pairs of :mod:`lab.judge.faithful_data` records (see the module docstring).

    Raises
    ------
    DataError
        A record without ``id``/``kind`` or whose ``base`` names no record (the message names it)."""
    by_id: dict[str, dict[str, Any]] = {}
    for n, r in enumerate(records, 1):
        if "id" not in r or "kind" not in r:
            raise DataError(f"record {n}: needs 'id' and 'kind' (a file of `lab judge make-data`)")
        by_id[str(r["id"])] = r
    equal, para, unequal = [], [], 0
    for rid, r in by_id.items():
        base = r.get("base")
        if base is None:
            continue
        if str(base) not in by_id:
            raise DataError(f"record {rid!r}: its base {base!r} is not in the file")
        a = by_id[str(base)]
        if r["kind"] == "paraphrase":
            para.append(Pair("paraphrase", _input(a), _input(r), 0, "paraphrase", (str(base), rid)))
            continue
        if r.get("label") not in ("hallucinated", 1):
            continue
        wa, wb = words(a["answer"]), words(r["answer"])
        if abs(wa - wb) > max(tolerance_words, tolerance_share * wa):
            unequal += 1
            continue
        equal.append(Pair("equal_length", _input(a), _input(r), 1, str(r["kind"]), (str(base), rid)))
    return ShortcutSet(equal, para, unequal, tolerance_words, tolerance_share)


def read_shortcut_set(path: str | Path, **tolerance: Any) -> ShortcutSet:
    """:func:`pairs_from_records` of a file, after the labelled-answers reader has checked it.

    Raises
    ------
    DataError
        The reader's errors (file, line, key), or no pair in the file."""
    from lab.data.halueval import read_judged
    from lab.io import read_jsonl

    read_judged(path, fmt="answers")
    got = pairs_from_records(read_jsonl(Path(path)), **tolerance)
    if not got.equal_length and not got.paraphrase:
        raise DataError(f"{path}: no equal-length or paraphrase pair (records need 'kind' and 'base', as "
                        f"`lab judge make-data` writes them)")
    return got


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (1-based)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    return (starts + (counts + 1) / 2.0)[inverse]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation; None where either side is constant or has under 3 values."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _pooled_rho(groups: Sequence[tuple[np.ndarray, np.ndarray]]) -> float | None:
    rhos = [(spearman(s, n), len(s)) for s, n in groups]
    rhos = [(r, w) for r, w in rhos if r is not None]
    return sum(r * w for r, w in rhos) / sum(w for _, w in rhos) if rhos else None


def length_correlation(scores: Sequence[float], lengths: Sequence[int], labels: Sequence[int], *,
                       n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Within-label Spearman of score and length, pooled, with a percentile bootstrap CI."""
    s, n, y = (np.asarray(v, dtype=float) for v in (scores, lengths, labels))
    groups = [(s[y == lab], n[y == lab]) for lab in (0, 1) if (y == lab).any()]
    rho = _pooled_rho(groups)
    if rho is None:
        return {"rho": None, "ci": None, "n": len(s)}
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        picks = [rng.integers(0, len(g), len(g)) for g, _ in groups]
        r = _pooled_rho([(g[p], m[p]) for (g, m), p in zip(groups, picks, strict=True)])
        if r is not None:
            draws.append(r)
    ci = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else None
    return {"rho": rho, "ci": ci, "n": len(s)}


def _mean_ci(diffs: Sequence[int], n_resamples: int, seed: int) -> dict[str, Any]:
    from lab.metrics.stats import bootstrap_ci

    if not diffs:
        return {"mean": None, "ci": None, "n": 0}
    if len(set(diffs)) == 1:
        return {"mean": float(diffs[0]), "ci": [float(diffs[0])] * 2, "n": len(diffs)}
    mean, lo, hi = bootstrap_ci(diffs, n_resamples=n_resamples, seed=seed)
    return {"mean": mean, "ci": [lo, hi], "n": len(diffs)}


def shortcut_report(judge: Any, shortcuts: ShortcutSet, rule: VetoRule = VetoRule()) -> dict[str, Any]:
    """``judge`` on every answer of the pairs: the three figures, the veto and its reasons."""
    pairs = [*shortcuts.equal_length, *shortcuts.paraphrase]
    inputs: dict[str, JudgeInput] = {}
    label: dict[str, int] = {}
    for p in pairs:
        inputs.setdefault(p.ids[0], p.a)
        inputs.setdefault(p.ids[1], p.b)
        label.setdefault(p.ids[0], 0)
        label.setdefault(p.ids[1], p.label_b)
    keys = list(inputs)
    reworded = {p.ids[1] for p in shortcuts.paraphrase}
    got = dict(zip(keys, judge.judge([inputs[k] for k in keys]), strict=True))

    def diffs(kind_pairs: list[Pair]) -> tuple[list[int], int]:
        out, failed = [], 0
        for p in kind_pairs:
            va, vb = got[p.ids[0]].verdict, got[p.ids[1]].verdict
            if va is None or vb is None:
                failed += 1
            else:
                out.append(int(vb) - int(va))
        return out, failed

    sep, sep_failed = diffs(shortcuts.equal_length)
    para, para_failed = diffs(shortcuts.paraphrase)
    scored = [k for k in keys if got[k].verdict is not None]
    score = [got[k].score if got[k].score is not None else float(got[k].verdict) for k in scored]
    length = length_correlation(score, [words(inputs[k].answer) for k in scored], [label[k] for k in scored],
                                n_resamples=rule.n_resamples, seed=rule.seed)
    report: dict[str, Any] = {
        "judge": getattr(judge, "name", type(judge).__name__),
        "n_answers": len(keys), "n_equal_length_pairs": len(shortcuts.equal_length),
        "n_paraphrase_pairs": len(shortcuts.paraphrase), "unequal_length_left_out": shortcuts.unequal,
        "failed_pairs": sep_failed + para_failed,
        "separation": _mean_ci(sep, rule.n_resamples, rule.seed),
        "separation_by_kind": _by_kind(shortcuts.equal_length, got),
        "length_rho": length, "paraphrase_flags": _mean_ci(para, rule.n_resamples, rule.seed),
        "flag_rate": {"faithful": _rate(got, [k for k in keys if label[k] == 0 and k not in reworded]),
                      "paraphrase": _rate(got, sorted(reworded)),
                      "planted_error": _rate(got, [k for k in keys if label[k] == 1])},
        "rule": asdict(rule),
    }
    report["veto_reasons"] = veto_reasons(report, rule)
    report["vetoed"] = bool(report["veto_reasons"])
    return report


def _rate(got: dict[str, Any], keys: Sequence[str]) -> float | None:
    v = [got[k].verdict for k in keys if got[k].verdict is not None]
    return sum(v) / len(v) if v else None


def _by_kind(pairs: Sequence[Pair], got: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, list[int]] = {}
    for p in pairs:
        va, vb = got[p.ids[0]].verdict, got[p.ids[1]].verdict
        if va is not None and vb is not None:
            out.setdefault(p.detail, []).append(int(vb) - int(va))
    return {k: {"n": len(v), "separation": sum(v) / len(v)} for k, v in sorted(out.items())}


def veto_reasons(report: dict[str, Any], rule: VetoRule) -> list[str]:
    """Why a report's judge is vetoed (empty: admitted), each reason with its figure and threshold."""
    why = []
    rho, ci = report["length_rho"]["rho"], report["length_rho"]["ci"]
    if rule.max_length_rho is not None and rho is not None and ci is not None \
            and abs(rho) >= rule.max_length_rho and (ci[0] > 0 or ci[1] < 0):
        why.append(f"length: verdict tracks answer length within label (Spearman {rho:+.3f}, CI "
                   f"[{ci[0]:+.3f}, {ci[1]:+.3f}]; |rho| >= {rule.max_length_rho:g} and CI excludes 0)")
    pf = report["paraphrase_flags"]
    if rule.max_paraphrase_flags is not None and pf["mean"] is not None \
            and pf["mean"] >= rule.max_paraphrase_flags and pf["ci"][0] > 0:
        why.append(f"paraphrase: flags faithful paraphrases more than their originals (net {pf['mean']:+.3f}, CI "
                   f"[{pf['ci'][0]:+.3f}, {pf['ci'][1]:+.3f}]; >= {rule.max_paraphrase_flags:g} and CI above 0)")
    sep = report["separation"]
    if rule.min_separation is not None:
        if sep["mean"] is None:
            why.append("separation: no equal-length pair with both verdicts")
        elif sep["ci"][0] <= rule.min_separation:
            why.append(f"separation: on equal-length pairs the planted error is not told apart (net "
                       f"{sep['mean']:+.3f}, CI [{sep['ci'][0]:+.3f}, {sep['ci'][1]:+.3f}]; lower end <= "
                       f"{rule.min_separation:g})")
    return why


def guard_entry(report: dict[str, Any]) -> dict[str, Any]:
    """The judge study's guard entry of a report: ``admissible`` and the figures it rests on."""
    return {"admissible": not report["vetoed"], "why": report["veto_reasons"],
            "separation": report["separation"]["mean"], "length_rho": report["length_rho"]["rho"],
            "paraphrase_flags": report["paraphrase_flags"]["mean"],
            "n_pairs": report["n_equal_length_pairs"] + report["n_paraphrase_pairs"]}
