"""lab.metrics.proportions: the Wilson interval of a proportion."""

from __future__ import annotations

import pytest

from lab.metrics.proportions import wilson_ci


@pytest.mark.parametrize(("k", "n", "low", "high"), [(0, 300, 0.0, 0.012642), (20, 40, 0.351995, 0.648005),
                                                     (40, 40, 0.912378, 1.0)])
def test_wilson_ci_known_values(k, n, low, high):
    lo, hi = wilson_ci(k, n)
    assert (lo, hi) == pytest.approx((low, high), abs=1e-6)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


@pytest.mark.parametrize(("k", "n", "conf", "words"), [(1, 0, 0.95, "n must be a positive count"),
                                                        (5, 4, 0.95, r"successes must be a count in \[0, 4\]"),
                                                        (1, 4, 1.0, "confidence must be in")])
def test_wilson_ci_bad_input(k, n, conf, words):
    with pytest.raises(ValueError, match=words):
        wilson_ci(k, n, conf)
