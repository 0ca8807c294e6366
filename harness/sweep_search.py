"""How a settings sweep chooses its points: every grid point, or a coordinate search.

``exhaustive`` measures the whole grid (the product of the axes). ``coordinate`` (alias
``bisect``) is coordinate descent: starting from the middle of every ordered axis, it
searches one axis at a time with the others held at their current best, and repeats the
round until a whole round moves nothing. Along an *ordered* numeric axis (batch, threads,
cpu-max-freq, gpu-power-limit) the line search is a discrete golden-section search, about
``log(n) / log(1.618)`` + 2 points for ``n`` values; along an unordered one (precision,
power-mode) every value is measured. Points already measured are never measured again.

The objective is J/inference, feasible points first: a point that misses the latency bound
ranks after every feasible one, and among such points the one nearer the bound ranks first
(so the search walks towards feasibility); an invalid point (or one with no energy figure)
ranks last. The search assumes that this objective is **unimodal** along each ordered axis
(one valley, no second dip) and that the axes' best values do not depend on each other
much; docs/sweeps.md says when that fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wattbench.analysis.sweep import SweepPoint

SEARCHES = ("exhaustive", "coordinate")
#: other names accepted for a search
SEARCH_ALIASES = {"bisect": "coordinate", "golden": "coordinate", "grid": "exhaustive"}
#: sweep keys whose values have an order that J/inference can follow (numbers)
ORDERED_KEYS = frozenset({"batch", "threads", "cpu-max-freq", "gpu-power-limit"})
#: golden ratio's conjugate: where the inner points of a golden-section step fall
_INV_PHI = (math.sqrt(5) - 1) / 2

#: a point's rank: (0, J) feasible, (1, latency / bound) too slow, (2, 0) unusable
Objective = tuple[int, float]
MeasurePoint = Callable[[dict[str, Any]], SweepPoint]


def canonical_search(name: str) -> str:
    """``name`` or the search it is an alias of; the caller checks it is known."""
    return SEARCH_ALIASES.get(name, name)


def objective(point: SweepPoint, bound_ms: float | None, percentile: str = "p90") -> Objective:
    """How good a point is: lower is better, feasible before infeasible before invalid."""
    jpi = point.j_per_inference
    if not point.valid or jpi is None or not math.isfinite(jpi) or jpi <= 0:
        return (2, 0.0)
    if bound_ms is not None:
        lat = point.latency_ms.get(percentile)
        if lat is None:
            return (2, 0.0)
        if lat > bound_ms:
            return (1, lat / bound_ms)
    return (0, jpi)


def golden_section(n: int, f: Callable[[int], Objective]) -> int:
    """The index in ``0..n-1`` minimising ``f``, assuming ``f`` is unimodal (discrete
    golden-section search; ``f`` should be memoised, inner points are reused)."""
    if n <= 0:
        raise ValueError("golden_section needs at least one value")
    lo, hi = 0, n - 1
    while hi - lo > 2:
        span = hi - lo
        a = lo + round(span * (1 - _INV_PHI))
        b = lo + round(span * _INV_PHI)
        if a == b:
            b = a + 1
        fa, fb = f(a), f(b)
        if fa < fb:
            hi = b - 1  # the valley is left of b
        elif fa > fb:
            lo = a + 1  # ... right of a
        else:
            lo, hi = a, b  # a plateau: between them
    return min(range(lo, hi + 1), key=lambda i: (f(i), i))


def is_ordered(key: str, values: Sequence[Any]) -> bool:
    """An axis a line search may bisect: a known numeric key whose values are all numbers."""
    return key in ORDERED_KEYS and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    )


def grid_size(axes: Mapping[str, Sequence[Any]]) -> int:
    return math.prod(len(v) for v in axes.values())


def coordinate_search(
    axes: Mapping[str, Sequence[Any]],
    measure: MeasurePoint,
    *,
    bound_ms: float | None = None,
    percentile: str = "p90",
    max_rounds: int = 4,
    start: Mapping[str, Any] | None = None,
) -> list[SweepPoint]:
    """Coordinate descent over ``axes``; ``measure(settings)`` measures one point (settings
    in the axes' order). Returns the points measured, in the order they were."""
    keys = list(axes)
    values = {k: sorted(axes[k]) if is_ordered(k, axes[k]) else list(axes[k]) for k in keys}
    current = {
        k: (start[k] if start and k in start else v[len(v) // 2 if is_ordered(k, v) else 0])
        for k, v in values.items()
    }
    memo: dict[tuple[Any, ...], SweepPoint] = {}
    measured: list[SweepPoint] = []

    def point(settings: Mapping[str, Any]) -> SweepPoint:
        ident = tuple(settings[k] for k in keys)
        if ident not in memo:
            p = measure({k: settings[k] for k in keys})
            memo[ident] = p
            measured.append(p)
        return memo[ident]

    def f(settings: Mapping[str, Any]) -> Objective:
        return objective(point(settings), bound_ms, percentile)

    for _round in range(max_rounds):
        moved = False
        for k in keys:
            line = values[k]
            if len(line) < 2:
                continue

            def along(i: int, k: str = k, line: list[Any] = line) -> Objective:
                return f({**current, k: line[i]})

            if is_ordered(k, line):
                best = golden_section(len(line), along)
            else:
                best = min(range(len(line)), key=lambda i: (along(i), i))
            here = tuple(current[x] for x in keys)
            # keep the current value unless the line found a strictly better one
            if line[best] != current[k] and (
                here not in memo or along(best) < objective(memo[here], bound_ms, percentile)
            ):
                current[k] = line[best]
                moved = True
        if not moved:
            break
    return measured
