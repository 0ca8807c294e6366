"""Energy accounting shared by every reader: one place, one set of rules.

* Time is monotonic seconds (``time.monotonic``), never wall-clock time.
* Polled power is integrated with the trapezoidal rule. The window edges are
  interpolated linearly from the samples on either side, so a window that does
  not start or end on a sample is neither cut short nor padded.
* Unchanged samples are kept (a constant-power window integrates to P x t,
  not 0 J); a missing reading (None/NaN) is a gap, never a zero.
* Gaps longer than ``max_gap_s`` make the integral invalid, with the reason.
* Cumulative counters are differenced; a decrease is a wrap of
  ``max_range`` (several wraps are caught because the caller polls faster
  than the wrap period).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Integral:
    """Result of integrating power samples over a window."""

    energy_j: float
    duration_s: float
    samples_in_window: int
    sample_rate_hz: float
    mean_power_w: float
    peak_power_w: float
    max_gap_s: float
    missing: int
    trace: list[tuple[float, float]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.reasons


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _interp(t: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    (t0, p0), (t1, p1) = a, b
    if t1 == t0:
        return p1
    return p0 + (p1 - p0) * (t - t0) / (t1 - t0)


def integrate_power(
    samples: Sequence[tuple[float, float | None]],
    t_start: float,
    t_end: float,
    *,
    max_gap_s: float,
    max_trace_points: int = 2000,
) -> Integral:
    """Trapezoidal energy of ``(t_s, power_w)`` samples over ``[t_start, t_end]``.

    Samples may extend beyond the window (they should: one on each side lets
    the edges be interpolated rather than held). Missing values are dropped
    and counted; the gap they leave is checked against ``max_gap_s``.
    """
    if t_end <= t_start:
        raise ValueError("window must have a positive duration")
    ordered = sorted(samples, key=lambda s: s[0])
    missing = sum(1 for t, p in ordered if t_start <= t <= t_end and not _finite(p))
    good = [(t, float(p)) for t, p in ordered if _finite(p)]  # type: ignore[arg-type]
    reasons: list[str] = []
    if missing:
        reasons_missing = f"{missing} missing/NaN samples in the window"
    else:
        reasons_missing = ""
    before = [s for s in good if s[0] <= t_start]
    inside = [s for s in good if t_start < s[0] < t_end]
    after = [s for s in good if s[0] >= t_end]
    points: list[tuple[float, float]] = []
    if before and (inside or after):
        nxt = (inside or after)[0]
        points.append((t_start, _interp(t_start, before[-1], nxt)))
    elif before:
        points.append((t_start, before[-1][1]))
    elif inside:
        # No sample at or before the start: hold the first value back to the edge
        # but only across a short distance (checked as a gap below).
        points.append((t_start, inside[0][1]))
    points.extend(inside)
    if after and (inside or before):
        prev = (inside or before)[-1]
        points.append((t_end, _interp(t_end, prev, after[0])))
    elif points:
        points.append((t_end, points[-1][1]))
    duration = t_end - t_start
    if len(points) < 2 or not (before or inside or after):
        return Integral(
            energy_j=float("nan"),
            duration_s=duration,
            samples_in_window=len(inside),
            sample_rate_hz=0.0,
            mean_power_w=float("nan"),
            peak_power_w=float("nan"),
            max_gap_s=duration,
            missing=missing,
            reasons=["no valid power samples cover the window"],
        )
    # Gaps between consecutive real samples (edges included).
    real = ([before[-1]] if before else []) + inside + ([after[0]] if after else [])
    edges = [t_start] + [t for t, _ in inside] + [t_end]
    gap_src = [t for t, _ in real] if len(real) >= 2 else edges
    max_gap = max((b - a for a, b in zip(gap_src, gap_src[1:])), default=duration)
    if not before:
        max_gap = max(max_gap, (inside[0][0] if inside else t_end) - t_start)
    if not after:
        max_gap = max(max_gap, t_end - (inside[-1][0] if inside else t_start))
    if max_gap > max_gap_s:
        reasons.append(
            f"gap of {max_gap:.3f} s between power samples exceeds {max_gap_s:.3f} s"
        )
    if reasons_missing and max_gap > max_gap_s:
        reasons.append(reasons_missing)
    energy = 0.0
    for (t0, p0), (t1, p1) in zip(points, points[1:]):
        energy += (p0 + p1) / 2 * (t1 - t0)
    trace = [(t - t_start, p) for t, p in points]
    if len(trace) > max_trace_points:
        step = len(trace) / max_trace_points
        trace = [trace[int(i * step)] for i in range(max_trace_points)]
    n_inside = len(inside)
    return Integral(
        energy_j=energy,
        duration_s=duration,
        samples_in_window=n_inside,
        sample_rate_hz=n_inside / duration,
        mean_power_w=energy / duration,
        peak_power_w=max(p for _, p in points),
        max_gap_s=max_gap,
        missing=missing,
        trace=trace,
        reasons=reasons,
    )


def counter_energy(
    readings: Sequence[tuple[float, float | None]], max_range: float | None
) -> tuple[float, int, list[str]]:
    """Energy from a cumulative counter read in time order.

    Returns (energy in the counter's unit, wraps detected, reasons). A decrease
    means the counter wrapped once between two reads; the caller must read at
    least twice per wrap period for this to be exact.
    """
    values = [(t, v) for t, v in readings if _finite(v)]
    reasons: list[str] = []
    if len(values) < 2:
        return float("nan"), 0, ["fewer than two counter reads in the window"]
    total = 0.0
    wraps = 0
    for (_, a), (_, b) in zip(values, values[1:]):
        assert a is not None and b is not None
        d = b - a
        if d < 0:
            if max_range is None or max_range <= 0:
                reasons.append("counter decreased and its range is unknown")
                continue
            d += max_range
            wraps += 1
        total += d
    return total, wraps, reasons
