"""The confidence interval of a proportion: a rate of events counted over items (a false-positive
rate, an attack success rate, a share caught).

Kept apart from :mod:`lab.metrics.stats` (bootstrap CIs over queries), which the pipeline's stages
import: a benchmark's new statistic does not make them stale.
"""

from __future__ import annotations


def wilson_ci(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``successes / n`` (no continuity correction): scipy's
    ``binomtest(successes, n).proportion_ci(confidence, method="wilson")``. Unlike the normal
    approximation it stays inside [0, 1] and is not degenerate at 0 or ``n`` events, where a
    false-positive rate usually sits (0 of 300 gives [0, 0.0126] at 95%).

    Raises
    ------
    ValueError
        ``n < 1``, ``successes`` outside [0, n], or ``confidence`` outside (0, 1).
    """
    from scipy.stats import binomtest

    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"wilson_ci: n must be a positive count, got {n!r}")
    if isinstance(successes, bool) or int(successes) != successes or not 0 <= successes <= n:
        raise ValueError(f"wilson_ci: successes must be a count in [0, {n}], got {successes!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"wilson_ci: confidence must be in (0, 1), got {confidence}")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)
