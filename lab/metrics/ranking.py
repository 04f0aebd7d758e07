"""Do two question sets rank the same configurations the same way? Kendall's tau, pairwise order
agreement, and both on the pairs one set separates beyond chance.

Inputs are per-query score matrices, one row per question and one column per configuration (the
same columns, in the same order, for both sets; the rows differ: the sets share no questions). A
configuration's score on a set is its mean over that set's questions.

- :func:`kendall_tau`: Kendall's tau-b between the two vectors of configuration means
  (:func:`scipy.stats.kendalltau`; ties in either ranking handled by tau-b).
- :func:`tau_bootstrap`: its percentile bootstrap CI, resampling each set's questions
  *independently* (the sets are independent samples) and recomputing both vectors of means and
  tau per resample. The percentile interval of a rank statistic is not centred: noise in the
  resampled means blurs an order more often than it sharpens it, so resampled taus sit below a
  high point estimate and the point lies near the top of its interval. The bias-corrected (BC)
  percentile interval (Efron 1987, without acceleration) shifts the quantiles by the share of
  resamples below the point; both are reported.
- :func:`pairwise_agreement`: the share of configuration pairs ordered the same way by both sets
  (a pair tied in one set agrees only with a tie in the other).
- :func:`significant_pairs`: the pairs whose order the first set establishes beyond chance: a
  paired sign-flip randomisation test over its questions per pair
  (:func:`lab.metrics.stats.sign_flip_p_value`), p-values adjusted over all pairs (Holm by
  default: family-wise error at ``alpha`` under any dependence between the pairs' tests).
- :func:`ranking_agreement`: all of the above in one mapping.

numpy only at import; scipy is imported where used (as :mod:`lab.metrics.stats` does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lab.metrics.stats import sign_flip_p_value

#: p-value adjustments over the configuration pairs :func:`significant_pairs` accepts.
CORRECTIONS = ("holm", "bonferroni", "bh", "none")

#: Resampled matrix elements held at once in :func:`tau_bootstrap` (~16 MB of float64).
_BATCH_ELEMENTS = 2_000_000


def _matrix(scores: Any, name: str) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a (questions x configurations) matrix, got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name}: no questions")
    if arr.shape[1] < 2:
        raise ValueError(f"{name}: ranking needs at least 2 configurations, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: {int((~np.isfinite(arr)).sum())} score(s) are NaN or infinite")
    return arr


def _pair_of(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _matrix(a, "a"), _matrix(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"a scores {x.shape[1]} configurations, b scores {y.shape[1]}: they must be the same")
    return x, y


def kendall_tau(a_means: Any, b_means: Any) -> float | None:
    """Kendall's tau-b between two vectors of configuration scores; None where undefined (a vector
    with every value equal has no order)."""
    from scipy.stats import kendalltau

    a, b = np.asarray(a_means, dtype=np.float64), np.asarray(b_means, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"kendall_tau: expected two vectors of the same length >= 2, got {a.shape} and {b.shape}")
    if np.ptp(a) == 0.0 or np.ptp(b) == 0.0:
        return None
    return float(kendalltau(a, b).statistic)


def _pair_index(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i, j)``, ``i < j``, of every configuration pair, in row order."""
    i, j = np.triu_indices(n, k=1)
    return i, j


def _signs(means: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Sign of ``mean_i - mean_j`` per pair (last axis), 0 for a tie."""
    return np.sign(means[..., i] - means[..., j])


def pairwise_agreement(a_means: Any, b_means: Any, mask: Any = None) -> float | None:
    """Share of configuration pairs (``i < j``; only where ``mask`` is True when given, a boolean
    vector in that pair order) that both vectors order the same way; None when no pair is left."""
    a, b = np.asarray(a_means, dtype=np.float64), np.asarray(b_means, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"pairwise_agreement: expected two vectors of one length, got {a.shape} and {b.shape}")
    i, j = _pair_index(len(a))
    same = _signs(a, i, j) == _signs(b, i, j)
    if mask is not None:
        same = same[np.asarray(mask, dtype=bool)]
    return float(same.mean()) if same.size else None


def adjust_p_values(p_values: Any, method: str = "holm") -> np.ndarray:
    """p-values adjusted for testing them all: ``holm`` (step-down Bonferroni, family-wise error),
    ``bonferroni``, ``bh`` (Benjamini-Hochberg, false discovery rate) or ``none``; capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r} is not one of {', '.join(CORRECTIONS)}")
    m = len(p)
    if method == "none" or m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:  # bh: step-up, monotone from the largest p down
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def significant_pairs(scores: Any, *, alpha: float = 0.05, correction: str = "holm",
                      n_resamples: int = 10_000, seed: int = 0) -> dict[str, np.ndarray]:
    """Which configuration pairs ``scores`` (questions x configurations) orders beyond chance.

    Per pair ``i < j`` a two-sided paired sign-flip test of ``mean(scores[:, i] - scores[:, j]) == 0``
    over the questions (exact when ``2**n <= n_resamples``; else ``n_resamples`` random flips from a
    generator seeded by ``(seed, i, j)``, so a pair's p-value does not depend on the other pairs);
    a pair with no difference on any question gets p = 1. Note the floor of a random-flip p-value,
    ``1 / (n_resamples + 1)``: with Holm over P pairs nothing is significant unless it is below
    ``alpha / P``, so ``n_resamples`` must exceed ``P / alpha``.

    Returns
    -------
    dict
        ``i``, ``j`` (pair indices), ``p_value``, ``p_adjusted`` and ``significant``
        (``p_adjusted <= alpha``), one entry per pair in ``np.triu_indices`` order.
    """
    x = _matrix(scores, "scores")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    i, j = _pair_index(x.shape[1])
    p = np.ones(len(i))
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist(), strict=True)):
        diff = x[:, a] - x[:, b]
        if np.any(diff != 0.0):
            p[k] = sign_flip_p_value(diff, n_resamples, np.random.default_rng([seed, a, b]))
    adjusted = adjust_p_values(p, correction)
    return {"i": i, "j": j, "p_value": p, "p_adjusted": adjusted, "significant": adjusted <= alpha}


def tau_bootstrap(a: Any, b: Any, *, n_resamples: int = 1000, confidence: float = 0.95,
                  seed: int = 0) -> dict[str, Any]:
    """Percentile bootstrap CI of Kendall's tau (and of pairwise agreement) between the
    configuration means of ``a`` and ``b`` (questions x configurations each).

    Each resample draws ``a``'s questions and ``b``'s questions with replacement, independently,
    and recomputes both vectors of means, tau and the pairwise agreement. Resamples where tau is
    undefined (one set's resampled means all equal) are left out of its CI and counted.

    Returns
    -------
    dict
        ``tau_ci`` ``[low, high]`` (percentile; None if tau is undefined in every resample),
        ``tau_ci_bc`` (bias-corrected percentile; None also where the point tau is undefined),
        ``tau_median`` (of the resamples), ``pairwise_agreement_ci``, ``n_resamples``,
        ``n_undefined``, ``confidence``, ``seed``. The same numbers for the same inputs and ``seed``.
    """
    from scipy.stats import kendalltau

    x, y = _pair_of(a, b)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    (na, c), nb = x.shape, y.shape[0]
    i, j = _pair_index(c)
    taus, agree = np.full(n_resamples, np.nan), np.empty(n_resamples)
    batch = max(1, _BATCH_ELEMENTS // max(na, nb, c))
    for start in range(0, n_resamples, batch):
        m = min(batch, n_resamples - start)
        # a multinomial draw of counts is a resample with replacement; the means are one product
        ma = rng.multinomial(na, np.full(na, 1.0 / na), size=m) @ x / na
        mb = rng.multinomial(nb, np.full(nb, 1.0 / nb), size=m) @ y / nb
        agree[start:start + m] = (_signs(ma, i, j) == _signs(mb, i, j)).mean(axis=1)
        for r in range(m):
            if np.ptp(ma[r]) > 0.0 and np.ptp(mb[r]) > 0.0:
                taus[start + r] = kendalltau(ma[r], mb[r]).statistic
    lo, hi = (1.0 - confidence) / 2.0, 1.0 - (1.0 - confidence) / 2.0
    ok = taus[np.isfinite(taus)]
    point = kendall_tau(x.mean(axis=0), y.mean(axis=0))
    return {"tau_ci": [float(np.quantile(ok, lo)), float(np.quantile(ok, hi))] if ok.size else None,
            "tau_ci_bc": _bc_interval(ok, point, lo, hi),
            "tau_median": float(np.median(ok)) if ok.size else None,
            "pairwise_agreement_ci": [float(np.quantile(agree, lo)), float(np.quantile(agree, hi))],
            "n_resamples": n_resamples, "n_undefined": int(n_resamples - ok.size),
            "confidence": confidence, "seed": seed}


def _bc_interval(draws: np.ndarray, point: float | None, lo: float, hi: float) -> list[float] | None:
    """Bias-corrected percentile interval: the ``lo``/``hi`` quantiles moved by ``z0``, the normal
    quantile of the share of ``draws`` below ``point`` (ties count half)."""
    from scipy.stats import norm

    if point is None or draws.size == 0:
        return None
    tie = np.isclose(draws, point, rtol=0.0, atol=1e-12)
    share = float(np.mean((draws < point) & ~tie) + 0.5 * np.mean(tie))
    share = min(max(share, 0.5 / draws.size), 1.0 - 0.5 / draws.size)  # finite z0 at the extremes
    z0 = norm.ppf(share)
    q = norm.cdf(2.0 * z0 + norm.ppf([lo, hi]))
    return [float(np.quantile(draws, q[0])), float(np.quantile(draws, q[1]))]


def ranking_agreement(human: Any, synthetic: Any, *, n_resamples: int = 1000, confidence: float = 0.95,
                      alpha: float = 0.05, correction: str = "holm", n_permutations: int = 10_000,
                      seed: int = 0) -> dict[str, Any]:
    """How far ``synthetic`` (questions x configurations) ranks the configurations as ``human`` does.

    Returns
    -------
    dict
        ``kendall_tau`` (None where undefined), ``tau_ci``, ``tau_ci_bc``, ``tau_median`` and
        ``pairwise_agreement_ci`` (:func:`tau_bootstrap`), ``pairwise_agreement``, ``pairwise_agreement_significant`` (the
        same share over the pairs the human questions order beyond chance, :func:`significant_pairs`;
        None when there are none), ``n_configs``, ``n_pairs``, ``n_significant_pairs``,
        ``n_pairs_tied_human``, ``n_pairs_tied_synthetic``, ``human_means``, ``synthetic_means``,
        ``pairs`` (per pair: indices, p-values, significance, both signs) and the settings.
    """
    h, s = _pair_of(human, synthetic)
    hm, sm = h.mean(axis=0), s.mean(axis=0)
    sig = significant_pairs(h, alpha=alpha, correction=correction, n_resamples=n_permutations, seed=seed)
    boot = tau_bootstrap(h, s, n_resamples=n_resamples, confidence=confidence, seed=seed)
    i, j = sig["i"], sig["j"]
    hs, ss = _signs(hm, i, j), _signs(sm, i, j)
    pairs = [{"i": int(a), "j": int(b), "human_sign": int(x), "synthetic_sign": int(y), "p_value": float(p),
              "p_adjusted": float(q), "significant": bool(z)}
             for a, b, x, y, p, q, z in zip(i, j, hs, ss, sig["p_value"], sig["p_adjusted"], sig["significant"],
                                            strict=True)]
    return {
        "kendall_tau": kendall_tau(hm, sm),
        "tau_ci": boot["tau_ci"], "tau_ci_bc": boot["tau_ci_bc"], "tau_median": boot["tau_median"],
        "pairwise_agreement": pairwise_agreement(hm, sm),
        "pairwise_agreement_ci": boot["pairwise_agreement_ci"],
        "pairwise_agreement_significant": pairwise_agreement(hm, sm, sig["significant"]),
        "n_configs": int(h.shape[1]), "n_pairs": len(i), "n_significant_pairs": int(sig["significant"].sum()),
        "n_pairs_tied_human": int((hs == 0).sum()), "n_pairs_tied_synthetic": int((ss == 0).sum()),
        "human_means": hm.tolist(), "synthetic_means": sm.tolist(), "pairs": pairs,
        "bootstrap": {k: boot[k] for k in ("n_resamples", "n_undefined", "confidence", "seed")},
        "significance": {"test": "paired sign-flip randomisation over human questions, two-sided",
                         "alpha": alpha, "correction": correction, "n_permutations": n_permutations},
    }
