"""Pareto front of energy per inference against latency (both lower is better)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def pareto_mask(x: Sequence[float | None], y: Sequence[float | None]) -> list[bool]:
    """True for the points no other point beats on both ``x`` and ``y`` (lower is better).

    A point is dominated when another is at least as good on both and strictly better on
    one; ties on both keep both points. Missing or non-finite values are never on the
    front. O(n log n): sort by x, sweep keeping the best y so far.
    """
    pts = [
        (float(a), float(b), i)
        for i, (a, b) in enumerate(zip(x, y, strict=True))
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    pts.sort()
    mask = [False] * len(x)
    best_y = math.inf
    k = 0
    while k < len(pts):
        # Points sharing this x: only those with the group's lowest y can be on the front.
        j = k
        while j < len(pts) and pts[j][0] == pts[k][0]:
            j += 1
        group_min = min(p[1] for p in pts[k:j])
        if group_min < best_y:
            for p in pts[k:j]:
                if p[1] == group_min:
                    mask[p[2]] = True
            best_y = group_min
        k = j
    return mask
