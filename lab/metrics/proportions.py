"""Confidence intervals for a share of successes (caught attacks, followed instructions).

The Wilson score interval (Wilson, 1927) rather than the normal ("Wald") one: the shares a guardrail
benchmark reports sit near 0 or 1 and come from a few dozen items, where the Wald interval collapses
to a point (0 of 20 gives [0, 0]) or leaves [0, 1]; Wilson's stays inside [0, 1] and keeps close to
its nominal coverage at small n (Brown, Cai and DasGupta, 2001). Standard library only.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of ``successes`` out of ``n`` at ``confidence``: ``(low, high)``,
    or None when ``n`` is 0 (no items, no share).

    Raises
    ------
    ValueError
        A negative count, ``successes > n``, or ``confidence`` outside (0, 1).
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes} of {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"wilson_interval: confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact at the edges (0 of n has low 0, n of n high 1), where rounding would leave 1e-17
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
