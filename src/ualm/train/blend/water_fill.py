"""Shares that follow a prior within per-share bounds and sum to 1: the blend's one solver."""

from __future__ import annotations

import math
from collections.abc import Sequence

SLACK = 1e-9
"""Relative tolerance of feasibility checks, so float rounding never reports a false conflict."""


def water_fill(prior: Sequence[float], lower: Sequence[float],
               upper: Sequence[float]) -> list[float]:
    """Shares q summing to 1 with q_s = clip(lambda x prior_s, lower_s, upper_s), lambda exact.

    The total is piecewise linear and non-decreasing in lambda, with breakpoints where a share
    meets a bound; the breakpoint interval holding the solution is found by bisection and solved
    in closed form, so the result is exact and deterministic (no iteration to converge).

    >>> [round(q, 3) for q in water_fill([0.7, 0.2, 0.1], [0, 0, 0], [0.5, 1, 1])]
    [0.5, 0.333, 0.167]
    """
    if any(p <= 0 for p in prior):
        raise ValueError("priors must be positive")
    if sum(lower) > 1 + SLACK or sum(upper) < 1 - SLACK:
        raise ValueError("bounds admit no shares summing to 1")
    if sum(lower) >= 1 - SLACK:
        return list(lower)
    points = sorted({b / p for p, lo, hi in zip(prior, lower, upper, strict=True)
                     for b in (lo, hi) if math.isfinite(b)})

    def total(lam: float) -> float:
        return sum(min(max(lam * p, lo), hi) for p, lo, hi in zip(prior, lower, upper,
                                                                    strict=True))

    first, last = 0, len(points)  # smallest index whose breakpoint reaches a total of 1
    while first < last:
        middle = (first + last) // 2
        if total(points[middle]) >= 1:
            last = middle
        else:
            first = middle + 1
    low = points[first - 1] if first > 0 else 0.0
    high = points[first] if first < len(points) else 2 * low + 1.0
    probe = (low + high) / 2  # strictly inside the interval: who is free is unambiguous there
    shares: list[float | None] = []
    for p, lo, hi in zip(prior, lower, upper, strict=True):
        shares.append(lo if probe * p <= lo else hi if probe * p >= hi else None)
    free = sum(p for p, q in zip(prior, shares, strict=True) if q is None)
    rest = 1.0 - sum(q for q in shares if q is not None)
    return [q if q is not None else rest * p / free for p, q in zip(prior, shares, strict=True)]
