"""The report's statistics: rates with Wilson intervals, percentiles, and the three drift tests.

- **Retrieval score distribution**: the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``,
  two-sided, exact for small samples) on the top-1 retrieval score of each question. It makes no
  assumption about the scores' shape (cosine, BM25 or fused ranks) and its statistic D, the largest
  gap between the two empirical CDFs, reads as an effect size. Tied scores (a fused-rank retriever
  gives few distinct values) make it conservative, never anti-conservative.
- **Questions with no relevant source**: a question has none when its top score is below the
  relevance threshold; the online share is compared with the offline share by the one-sided Fisher
  exact test (``scipy.stats.fisher_exact``, H1: online questions more often have none), exact at
  the offline set's few dozen questions where a z-test is not.
- **Question-embedding shift**: the squared maximum mean discrepancy (MMD², unbiased estimate)
  between the offline and online question embeddings, Gaussian kernel with the median pairwise
  distance as bandwidth, and a permutation test (the pooled sample relabelled ``permutations``
  times, seeded). MMD with a permutation test was the most reliable shift detector on
  representations in Rabanser et al., "Failing Loudly" (NeurIPS 2019); it compares the whole
  distributions (a mean-cosine test sees only the centroids), needs no training (a classifier
  test needs folds the 30-odd offline questions cannot spare), and the kernel matrix is computed
  once, so a thousand permutations cost milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lab.metrics.proportions import wilson_ci


def rate(k: int, n: int, confidence: float = 0.95) -> dict[str, Any]:
    """``{"k", "n", "rate", "ci"}``: ``k`` events in ``n`` with the Wilson interval (None rate and CI when n is 0)."""
    if n == 0:
        return {"k": int(k), "n": 0, "rate": None, "ci": None}
    low, high = wilson_ci(int(k), int(n), confidence)
    return {"k": int(k), "n": int(n), "rate": k / n, "ci": [low, high]}


def percentiles(values: Sequence[float], qs: Sequence[float]) -> dict[str, float | None]:
    """``{"p50": ..., ...}`` of ``values`` (numpy's linear interpolation), None when empty."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return {f"p{q:g}": (float(np.percentile(arr, q)) if arr.size else None) for q in qs}


def ks_test(online: Sequence[float], offline: Sequence[float]) -> dict[str, float]:
    """Two-sample KS: ``statistic`` (D) and ``p_value``."""
    from scipy.stats import ks_2samp

    res = ks_2samp(np.asarray(online, float), np.asarray(offline, float), alternative="two-sided")
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue)}


def share_test(online_k: int, online_n: int, offline_k: int, offline_n: int) -> dict[str, float]:
    """One-sided Fisher exact test that the online share ``online_k / online_n`` exceeds the offline
    one: ``p_value`` and ``difference`` (online share minus offline share)."""
    from scipy.stats import fisher_exact

    table = [[online_k, online_n - online_k], [offline_k, offline_n - offline_k]]
    _, p = fisher_exact(table, alternative="greater")
    return {"p_value": float(p), "difference": online_k / online_n - offline_k / offline_n}


def _sq_distances(x: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", x, x)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)


def _mmd2(k: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Unbiased MMD² for each column of ``first`` (0/1 indicators of the first sample in the pooled
    kernel matrix ``k``; the rest is the second sample): block sums as ``a'Ka`` products, so a batch
    of permutations is one matrix product."""
    a = first.astype(float)
    b = 1.0 - a
    m, n = a.sum(0), b.sum(0)
    ka = k @ a
    diag = np.diag(k)
    saa = (a * ka).sum(0) - diag @ a
    sab = (b * ka).sum(0)
    sbb = k.sum() - (a * ka).sum(0) - 2.0 * sab - diag @ b
    return saa / (m * (m - 1)) + sbb / (n * (n - 1)) - 2.0 * sab / (m * n)


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = 1000, seed: int = 0) -> dict[str, float]:
    """MMD² between samples ``x`` and ``y`` (rows are vectors) with a Gaussian kernel whose bandwidth
    is the median pairwise distance of the pooled sample, and its permutation p-value
    ``(1 + #{permuted >= observed}) / (1 + permutations)``: ``statistic``, ``p_value``, ``bandwidth``.

    Raises
    ------
    ValueError
        Fewer than 2 rows in a sample, or samples of different widths.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"mmd_test: two samples of 2+ vectors of one width needed, got {x.shape} and {y.shape}")
    pooled = np.vstack([x, y])
    d2 = _sq_distances(pooled)
    off = d2[np.triu_indices(len(pooled), 1)]
    width2 = float(np.median(off[off > 0])) if np.any(off > 0) else 1.0
    k = np.exp(-d2 / width2)
    labels = np.arange(len(pooled)) < len(x)
    observed = float(_mmd2(k, labels[:, None])[0])
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, permutations, 100):   # 100 permutations per matrix product
        batch = np.stack([rng.permutation(labels) for _ in range(min(100, permutations - start))], axis=1)
        hits += int((_mmd2(k, batch) >= observed - 1e-12).sum())
    return {"statistic": observed, "p_value": (1 + hits) / (1 + permutations), "bandwidth": float(np.sqrt(width2))}
