"""Settings sweeps: the Pareto front, the energy-optimal feasible point and its gain.

Pure functions over the sweep's points (the harness measures them; a test can rebuild them
from stored runs). Lower is better on both axes: latency (the chosen percentile) and
joules per inference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from wattbench.analysis.pareto import pareto_mask

PERCENTILES = ("p50", "p90", "p95", "p99")


class SweepPoint(BaseModel):
    """One measured setting of a sweep."""

    key: str = Field(description="Stable id of the setting, e.g. 'batch=4,threads=2'.")
    settings: dict[str, Any] = Field(description="Sweep key -> value; {} for the baseline.")
    run_id: str | None = None
    baseline: bool = False
    j_per_inference: float | None
    inferences_per_joule: float | None
    latency_ms: dict[str, float] = Field(description="p50/p90/p95/p99 per-query latency, ms.")
    throughput_ips: float | None = None
    valid: bool = True
    feasible: bool | None = Field(
        default=None, description="Meets the latency bound (None: no bound given)."
    )
    throttled: bool = Field(
        default=False, description="At least one of its trials throttled (power/thermal.py)."
    )
    max_temp_c: float | None = Field(
        default=None, description="Hottest temperature sampled in its trials, deg C."
    )


class SweepAnswer(BaseModel):
    pareto: list[str] = Field(description="Keys of the points on the Pareto front.")
    optimal: str | None = Field(description="Key of the energy-optimal feasible point.")
    gain: float | None = Field(
        description="Baseline J/inference / optimal J/inference (1.25: 25% more inferences/J)."
    )
    saving: float | None = Field(description="1 - optimal J / baseline J (0.2: 20% less energy).")
    percentile: str
    latency_bound_ms: float | None


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v) and v > 0


def mark_feasible(
    points: Sequence[SweepPoint], bound_ms: float | None, percentile: str = "p90"
) -> list[SweepPoint]:
    """The points with ``feasible`` set against ``bound_ms`` on ``percentile`` latency."""
    if percentile not in PERCENTILES:
        raise ValueError(f"percentile must be one of {', '.join(PERCENTILES)}")
    out = []
    for p in points:
        lat = p.latency_ms.get(percentile)
        feasible = None if bound_ms is None else lat is not None and lat <= bound_ms
        out.append(p.model_copy(update={"feasible": feasible}))
    return out


def pareto_keys(points: Sequence[SweepPoint], percentile: str = "p90") -> list[str]:
    """Keys of the valid points no other beats on both latency and J/inference."""
    usable = [p for p in points if p.valid and _finite(p.j_per_inference)]
    mask = pareto_mask(
        [p.latency_ms.get(percentile) for p in usable], [p.j_per_inference for p in usable]
    )
    front = [p for p, on in zip(usable, mask, strict=True) if on]
    front.sort(key=lambda p: (p.latency_ms.get(percentile, math.inf), p.key))
    return [p.key for p in front]


def optimal_point(points: Sequence[SweepPoint]) -> SweepPoint | None:
    """The valid feasible point with the lowest J/inference (ties: the lower key order)."""
    candidates = [
        p for p in points if p.valid and p.feasible is not False and _finite(p.j_per_inference)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda p: (p.j_per_inference, p.key))


def answer(
    points: Sequence[SweepPoint], *, bound_ms: float | None = None, percentile: str = "p90"
) -> tuple[list[SweepPoint], SweepAnswer]:
    """Feasibility, Pareto front, optimum and its gain over the baseline point."""
    marked = mark_feasible(points, bound_ms, percentile)
    best = optimal_point(marked)
    base = next((p for p in marked if p.baseline), None)
    gain = saving = None
    if best is not None and base is not None and _finite(base.j_per_inference):
        assert best.j_per_inference is not None and base.j_per_inference is not None
        gain = base.j_per_inference / best.j_per_inference
        saving = 1.0 - best.j_per_inference / base.j_per_inference
    return marked, SweepAnswer(
        pareto=pareto_keys(marked, percentile),
        optimal=best.key if best else None,
        gain=gain,
        saving=saving,
        percentile=percentile,
        latency_bound_ms=bound_ms,
    )


def point_from_result(
    result: Any, *, key: str, settings: dict[str, Any], baseline: bool = False
) -> SweepPoint:
    """A point from a :class:`~wattbench.core.results.RunResult` (measured or stored)."""
    head = result.headline
    lat = result.latency
    trials = list(getattr(result, "trials", None) or [])
    temps = [t.max_temp_c for t in trials if getattr(t, "max_temp_c", None) is not None]
    return SweepPoint(
        key=key,
        settings=settings,
        run_id=result.run_id,
        baseline=baseline,
        j_per_inference=head.joules_per_inference if head else None,
        inferences_per_joule=head.inferences_per_joule if head else None,
        latency_ms={"p50": lat.p50_ms, "p90": lat.p90_ms, "p95": lat.p95_ms, "p99": lat.p99_ms},
        throughput_ips=result.throughput_ips,
        valid=bool(result.valid),
        throttled=any(getattr(t, "throttled", False) for t in trials),
        max_temp_c=max(temps) if temps else None,
    )
