"""lab.metrics.stats: bootstrap CIs and paired comparisons (determinism, coverage of the mean, exactness),
and the Wilson interval of a proportion against scipy's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, permutation_test

from lab.metrics.stats import bootstrap_ci, paired_comparison, sign_flip_p_value, wilson_ci


def scores(n: int, seed: int = 0) -> np.ndarray:
    """Per-query metric values shaped like real ones: many 0s and 1s, some in between."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0.5, 0.4, n), 0.0, 1.0)


def test_bootstrap_deterministic_for_a_seed():
    v = scores(200)
    assert bootstrap_ci(v, seed=3) == bootstrap_ci(v, seed=3)
    assert bootstrap_ci(v, seed=3) != bootstrap_ci(v, seed=4)
    assert bootstrap_ci(list(v)) == bootstrap_ci(pd.Series(v))


@pytest.mark.parametrize("seed", range(5))
def test_ci_contains_mean(seed):
    v = scores(100, seed)
    mean, low, high = bootstrap_ci(v, seed=seed)
    assert mean == pytest.approx(v.mean())
    assert low < mean < high


def test_ci_shrinks_with_more_queries():
    widths = []
    for n in (50, 500, 5000):
        _, low, high = bootstrap_ci(scores(n), n_resamples=2000)
        widths.append(high - low)
    assert widths[0] > 2.5 * widths[1] > 2.5**2 * widths[2]  # ~ 1/sqrt(n): factor sqrt(10) each


def test_ci_close_to_normal_approximation_and_confidence_widens():
    v = scores(5000)
    mean, low, high = bootstrap_ci(v, n_resamples=4000)
    half = 1.959964 * v.std(ddof=1) / np.sqrt(len(v))
    assert low == pytest.approx(mean - half, abs=0.1 * half)
    assert high == pytest.approx(mean + half, abs=0.1 * half)
    _, low99, high99 = bootstrap_ci(v, n_resamples=4000, confidence=0.99)
    assert low99 < low and high99 > high


def test_bootstrap_constant_values_and_bad_inputs():
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 0.0], confidence=95)
    with pytest.raises(ValueError, match="1-D"):
        bootstrap_ci(np.zeros((3, 2)))


def test_paired_identical_inputs():
    a = scores(300)
    r = paired_comparison(a, a.copy())
    assert r["mean_diff"] == 0.0 and (r["ci_low"], r["ci_high"]) == (0.0, 0.0)
    assert r["p_value"] == 1.0
    assert (r["wins"], r["ties"], r["losses"]) == (0, 300, 0)


def test_paired_clearly_different():
    rng = np.random.default_rng(1)
    b = scores(300)
    a = b + 0.05 + rng.normal(0, 0.05, 300)  # a better on most queries
    r = paired_comparison(a, b, n_resamples=2000, seed=7)
    assert r["p_value"] < 0.01
    assert r["p_value"] == pytest.approx(1 / 2001)  # no flip reaches it: the +1 floor
    assert 0 < r["ci_low"] < r["mean_diff"] < r["ci_high"]
    assert r["mean_diff"] == pytest.approx(r["mean_a"] - r["mean_b"])
    assert r["wins"] + r["ties"] + r["losses"] == r["n"] == 300
    assert r["wins"] > 200  # P(diff > 0) = Phi(1) = 0.84
    assert paired_comparison(a, b, n_resamples=2000, seed=7) == r
    # the CI is the bootstrap CI of the differences with the same seed
    assert bootstrap_ci(a - b, n_resamples=2000, seed=7)[1:] == (r["ci_low"], r["ci_high"])
    swapped = paired_comparison(b, a, n_resamples=2000, seed=7)
    assert swapped["p_value"] == r["p_value"] and swapped["losses"] == r["wins"]


def test_paired_no_real_difference_gives_large_p():
    rng = np.random.default_rng(2)
    b = scores(400)
    a = b + rng.normal(0, 0.1, 400)  # noise only
    assert paired_comparison(a, b)["p_value"] > 0.05


@pytest.mark.parametrize("seed", range(4))
def test_exact_sign_flip_equals_scipy(seed):
    # n = 10: 2**10 = 1024 <= n_resamples, so both enumerate every sign flip
    rng = np.random.default_rng(seed)
    a, b = rng.random(10), rng.random(10)
    b[:3] = a[:3]  # some ties
    ours = paired_comparison(a, b, n_resamples=5000)["p_value"]
    ref = permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                           permutation_type="samples", n_resamples=5000).pvalue
    assert ours == pytest.approx(ref, abs=1e-12)


def test_random_sign_flips_approach_exact():
    rng = np.random.default_rng(5)
    diff = rng.normal(0.15, 0.5, 16)
    exact = sign_flip_p_value(diff, 2**16, np.random.default_rng(0))
    approx = sign_flip_p_value(diff, 20_000, np.random.default_rng(0))
    assert 0.01 < exact < 0.5
    assert approx == pytest.approx(exact, abs=0.02)


def test_paired_series_aligned_by_index():
    ids = [f"q{i}" for i in range(50)]
    a = pd.Series(scores(50, 1), index=ids)
    b = pd.Series(scores(50, 2), index=ids)
    shuffled = b.sample(frac=1.0, random_state=0)
    assert paired_comparison(a, shuffled) == paired_comparison(a, b)
    with pytest.raises(ValueError, match="same queries"):
        paired_comparison(a, b.iloc[1:])
    with pytest.raises(ValueError, match="a has 3 queries, b has 2"):
        paired_comparison([1.0, 0.0, 1.0], [1.0, 0.0])


@pytest.mark.parametrize(("k", "n"), [(0, 1), (0, 300), (1, 300), (7, 40), (20, 40), (39, 40), (40, 40), (3, 1162)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_ci_equals_scipys(k, n, confidence):
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson_ci(k, n, confidence)
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_ci_rejects_what_is_not_a_count():
    with pytest.raises(ValueError, match="n must be a positive count"):
        wilson_ci(0, 0)
    with pytest.raises(ValueError, match=r"successes must be a count in \[0, 3\]"):
        wilson_ci(4, 3)
    with pytest.raises(ValueError, match="confidence"):
        wilson_ci(1, 3, confidence=1.0)
