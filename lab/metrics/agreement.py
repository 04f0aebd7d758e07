"""Agreement of binary judgments with human labels: accuracy, precision, recall, F1, Cohen's kappa,
the confusion matrix, and percentile bootstrap CIs over items.

The positive class (1) is the one a judge exists to catch (hallucinated, unfaithful, wrong).
Definitions follow scikit-learn (``accuracy_score``, ``precision_recall_fscore_support`` with
``zero_division=0``, ``cohen_kappa_score``) and the tests check equality with it; one difference on
purpose: where kappa is undefined (both raters constant and equal, so chance agreement is 1)
scikit-learn returns NaN with a warning, and this returns ``None`` so that it shows as ``null`` in
JSON instead of a silent NaN.

The bootstrap is written in numpy rather than :func:`scipy.stats.bootstrap` because every statistic
must come from the *same* resamples of items (one confusion matrix per resample, all five
statistics from it); scipy resamples once per statistic. Resampling is seeded and batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

STATISTICS = ("accuracy", "precision", "recall", "f1", "kappa")


def _binary(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected one 0/1 value per item (1-D), got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = arr[~np.isin(arr, (0, 1))][:5].tolist()
        raise ValueError(f"{name}: values must be 0 or 1, got {bad}")
    return arr.astype(np.int64)


def confusion(labels: Sequence[int], preds: Sequence[int]) -> list[list[int]]:
    """``[[tn, fp], [fn, tp]]`` (rows: human label 0/1; columns: judge 0/1), as scikit-learn's."""
    y, p = _pair(labels, preds)
    return [[int(((y == 0) & (p == 0)).sum()), int(((y == 0) & (p == 1)).sum())],
            [int(((y == 1) & (p == 0)).sum()), int(((y == 1) & (p == 1)).sum())]]


def _pair(labels: Sequence[int], preds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    y, p = _binary(labels, "labels"), _binary(preds, "preds")
    if len(y) != len(p):
        raise ValueError(f"labels and preds differ in length: {len(y)} vs {len(p)}")
    if len(y) == 0:
        raise ValueError("agreement needs at least one item")
    return y, p


def _from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Every statistic from confusion counts (arrays of equal shape); undefined kappa is NaN here."""
    n = tp + fp + fn + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = (tp + tn) / n
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
        p_yes = ((tp + fn) / n) * ((tp + fp) / n)
        p_no = ((tn + fp) / n) * ((tn + fn) / n)
        pe = p_yes + p_no
        kappa = np.where(pe < 1.0, (acc - pe) / (1.0 - pe), np.nan)
    return {"accuracy": acc, "precision": precision, "recall": recall, "f1": f1, "kappa": kappa}


def agreement(labels: Sequence[int], preds: Sequence[int]) -> dict[str, Any]:
    """Point estimates: ``n``, the five :data:`STATISTICS` (kappa None where undefined), ``confusion``,
    and the positive rate of each rater."""
    y, p = _pair(labels, preds)
    (tn, fp), (fn, tp) = confusion(y, p)
    stats = _from_counts(*(np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn)))
    out: dict[str, Any] = {"n": len(y)}
    for k in STATISTICS:
        v = float(stats[k])
        out[k] = None if np.isnan(v) else v
    out["confusion"] = [[tn, fp], [fn, tp]]
    out["label_positive_rate"] = float(y.mean())
    out["judge_positive_rate"] = float(p.mean())
    return out


def agreement_cis(labels: Sequence[int], preds: Sequence[int], *, n_resamples: int = 2000,
                  confidence: float = 0.95, seed: int = 0) -> dict[str, list[float] | None]:
    """Percentile bootstrap CI of each statistic (``"<stat>_ci": [low, high]``), items resampled with
    replacement; resamples where a statistic is undefined (kappa) are left out of its CI, and a
    statistic undefined in every resample gets ``None``."""
    y, p = _pair(labels, preds)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    n = len(y)
    cell = y * 2 + p                                  # 0 tn, 1 fp, 2 fn, 3 tp
    batch = max(1, 2_000_000 // n)
    draws: dict[str, list[np.ndarray]] = {k: [] for k in STATISTICS}
    done = 0
    while done < n_resamples:
        b = min(batch, n_resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        counts = np.stack([(cell[idx] == c).sum(axis=1) for c in range(4)]).astype(np.float64)
        tn, fp, fn, tp = counts
        for k, v in _from_counts(tp, fp, fn, tn).items():
            draws[k].append(v)
        done += b
    alpha = (1.0 - confidence) / 2.0
    out: dict[str, list[float] | None] = {}
    for k in STATISTICS:
        v = np.concatenate(draws[k])
        v = v[np.isfinite(v)]
        out[f"{k}_ci"] = None if v.size == 0 else [float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))]
    return out


def agreement_report(labels: Sequence[int], preds: Sequence[int], *, n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """:func:`agreement` and :func:`agreement_cis` in one mapping."""
    return {**agreement(labels, preds),
            **agreement_cis(labels, preds, n_resamples=n_resamples, confidence=confidence, seed=seed),
            "confidence": confidence, "n_resamples": n_resamples}


def best_threshold(labels: Sequence[int], scores: Sequence[float], *, statistic: str = "kappa") -> float:
    """The score threshold (``score >= t`` is positive) that maximises ``statistic`` on these items;
    ties go to the threshold nearest 0.5. For choosing a judge's threshold on TRAINING items only."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    y = _binary(labels, "labels")
    s = np.asarray(scores, dtype=np.float64)
    if len(s) != len(y) or len(y) == 0:
        raise ValueError(f"labels and scores must be non-empty and of equal length ({len(y)} vs {len(s)})")
    uniq = np.unique(s)
    cands = np.concatenate([uniq, [np.inf]])
    pred = (s[None, :] >= cands[:, None]).astype(np.int64)
    cell = y[None, :] * 2 + pred
    counts = [(cell == c).sum(axis=1).astype(np.float64) for c in range(4)]
    tn, fp, fn, tp = counts
    value = np.nan_to_num(_from_counts(tp, fp, fn, tn)[statistic], nan=-np.inf)
    best = np.flatnonzero(value == value.max())
    finite = np.where(np.isfinite(cands), cands, 1e9)
    return float(cands[best[np.argmin(np.abs(finite[best] - 0.5))]])


def paired_difference(labels: Sequence[int], preds_a: Sequence[int], preds_b: Sequence[int], *,
                      statistic: str = "kappa", n_resamples: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> dict[str, Any]:
    """``statistic`` of judge a minus that of judge b on the same items, with a percentile bootstrap
    CI from resampling the items (both judges on each resample, so the comparison is paired)."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    y, a = _pair(labels, preds_a)
    _, b = _pair(labels, preds_b)
    point = agreement(y, a)[statistic], agreement(y, b)[statistic]
    rng = np.random.default_rng(seed)
    n = len(y)
    ca, cb = y * 2 + a, y * 2 + b
    diffs = []
    batch = max(1, 1_000_000 // n)
    done = 0
    while done < n_resamples:
        k = min(batch, n_resamples - done)
        idx = rng.integers(0, n, size=(k, n))
        sa = _from_counts(*[(ca[idx] == c).sum(axis=1).astype(np.float64) for c in (3, 1, 2, 0)])[statistic]
        sb = _from_counts(*[(cb[idx] == c).sum(axis=1).astype(np.float64) for c in (3, 1, 2, 0)])[statistic]
        diffs.append(sa - sb)
        done += k
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    alpha = (1.0 - confidence) / 2.0
    diff = None if None in point else float(point[0] - point[1])
    return {"statistic": statistic, "a": point[0], "b": point[1], "diff": diff,
            "diff_ci": None if d.size == 0 else [float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha))],
            "share_of_resamples_a_better": None if d.size == 0 else float((d > 0).mean()), "n": n}
