"""Energy accounting shared by every reader: one place, one set of rules.

* Readers stamp samples with a monotonic clock (``time.monotonic``); the
  functions here only need timestamps in seconds that never go backwards
  within a call (the trace reader passes Unix time, aligned once).
* Polled power is integrated with the trapezoidal rule. The window edges are
  interpolated linearly from the samples on either side, so a window that does
  not start or end on a sample is neither cut short nor padded: a linear
  power ramp integrates exactly wherever the window falls.
* Unchanged samples are kept: a constant-power window integrates to P x t,
  never 0 J (dropping repeated values, as zeus does, leaves fewer than two
  samples and 0 J).
* A missing reading (None/NaN) is a gap, never a zero. The samples either
  side are joined across it; gaps longer than ``max_gap_s`` make the
  integral invalid, with the reason.
* A sensor that repeats a bit-identical value for longer than
  ``stuck_after_s`` (off by default) makes the integral invalid.
* Cumulative counters are differenced; a decrease is one wrap of
  ``max_range`` (the caller reads at least twice per wrap period).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

Sample = tuple[float, float | None]
"""``(t_s, value)``; ``value`` is None (or NaN) when the read failed."""


@dataclass(frozen=True)
class Integral:
    """Result of integrating power samples over a window ``[t_start, t_end]``.

    ``energy_j`` is NaN only when no sample covers the window at all
    (:attr:`has_energy` is then False); otherwise it is the trapezoidal
    integral, possibly from held edge values, and :attr:`reasons` says why it
    should not be trusted.
    """

    energy_j: float
    duration_s: float
    #: finite samples with ``t_start <= t <= t_end``
    samples_in_window: int
    #: achieved rate of the samples used (the last one at/before the start to the
    #: first one at/after the end), not the requested one
    sample_rate_hz: float
    mean_power_w: float
    peak_power_w: float
    #: longest stretch without a finite sample that the window depends on
    max_gap_s: float
    #: None/NaN samples with ``t_start <= t <= t_end``
    missing: int
    trace: list[tuple[float, float]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    #: longest run of bit-identical consecutive readings, in seconds
    stuck_s: float = 0.0
    #: bound on the trapezoid's error if power is monotonic between samples:
    #: sum of ``|p1 - p0| * dt / 2`` (see :func:`trapezoid_error_bound_j`)
    integration_error_j: float = 0.0

    @property
    def valid(self) -> bool:
        """True when no rule was broken."""
        return not self.reasons

    @property
    def has_energy(self) -> bool:
        """False when no sample covered the window, so there is no figure at all."""
        return math.isfinite(self.energy_j)


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _interp(t_s: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    (t0, p0), (t1, p1) = a, b
    if t1 == t0:
        return p1
    return p0 + (p1 - p0) * (t_s - t0) / (t1 - t0)


def trapezoid_j(points: Sequence[tuple[float, float]]) -> float:
    """Trapezoidal integral of time-ordered ``(t_s, power_w)`` points."""
    return sum((p0 + p1) / 2 * (t1 - t0) for (t0, p0), (t1, p1) in pairwise(points))


def trapezoid_error_bound_j(points: Sequence[tuple[float, float]]) -> float:
    """``sum(|p1 - p0| * (t1 - t0) / 2)`` over consecutive points.

    If power moves monotonically between two samples (one step or ramp per
    interval), the true energy of that interval lies between the left and
    right Riemann sums, and the trapezoid is their midpoint, so it is off by
    at most half their difference. It equals ``|trapezoid - left Riemann|``
    per interval, summed without cancellation. For a noisy sensor it is
    conservative (noise counts as movement).
    """
    return sum(abs(p1 - p0) * (t1 - t0) / 2 for (t0, p0), (t1, p1) in pairwise(points))


def longest_constant_run_s(samples: Sequence[tuple[float, float]]) -> tuple[float, float | None]:
    """Longest time a time-ordered signal repeated a bit-identical value.

    Returns ``(seconds, value)``; ``(0.0, None)`` for fewer than two samples.
    The run is measured from the first to the last sample holding the value.
    """
    best_s, best_v = 0.0, None
    run_t0 = 0.0
    for i, (t, v) in enumerate(samples):
        if i == 0 or v != samples[i - 1][1]:
            run_t0 = t
        elif t - run_t0 > best_s:
            best_s, best_v = t - run_t0, v
    return best_s, best_v


def counter_staleness_s(reads: Sequence[tuple[float, float]]) -> float:
    """How stale an edge read of a counter with an unpublished update period may be.

    The counter's update period is at least the longest time it was seen holding
    one value, and at most that plus one read interval (a longer period would have
    shown a longer hold). The bound is that sum, with the median interval between
    the time-ordered ``(t_s, value)`` reads: it stays near the true period whether
    the reads are faster or slower than the updates. 0 for fewer than two reads.
    """
    if len(reads) < 2:
        return 0.0
    hold_s, _ = longest_constant_run_s(reads)
    steps = sorted(b[0] - a[0] for a, b in pairwise(reads))
    return hold_s + steps[len(steps) // 2]


def downsample(trace: Sequence[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    """At most ``max_points`` evenly spaced points, keeping the first and last."""
    n = len(trace)
    if n <= max_points:
        return list(trace)
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    return [trace[round(i * (n - 1) / (max_points - 1))] for i in range(max_points)]


def integrate_power(
    samples: Sequence[Sample],
    t_start: float,
    t_end: float,
    *,
    max_gap_s: float,
    max_trace_points: int = 2000,
    stuck_after_s: float | None = None,
) -> Integral:
    """Trapezoidal energy of ``(t_s, power_w)`` samples over ``[t_start, t_end]``.

    Samples may come in any order and may extend beyond the window; they
    should: one on each side lets an edge be interpolated between the samples
    around it. Without a sample on one side the nearest value is held to the
    edge and the distance counts as a gap. None/NaN values are dropped and
    counted (``missing``); the samples either side are joined linearly.

    The integral is invalid (``reasons`` non-empty) when the longest gap
    between the finite samples the window uses exceeds ``max_gap_s``, when
    one value repeats bit-identically for longer than ``stuck_after_s`` (if
    given), or when the energy comes out negative. With no finite sample
    near the window at all, ``energy_j`` is NaN.

    Raises ValueError for a window without a positive, finite duration or a
    non-positive ``max_gap_s``.
    """
    if not (math.isfinite(t_start) and math.isfinite(t_end)) or t_end <= t_start:
        raise ValueError(f"window [{t_start}, {t_end}] must have a positive, finite duration")
    if not max_gap_s > 0:
        raise ValueError("max_gap_s must be positive")
    duration_s = t_end - t_start
    ordered = sorted(samples, key=lambda s: s[0])
    missing = sum(1 for t, p in ordered if t_start <= t <= t_end and not _finite(p))
    good = [(t, float(p)) for t, p in ordered if p is not None and math.isfinite(p)]
    times = [t for t, _ in good]
    lo = bisect_right(times, t_start)  # good[:lo] are at or before the start
    hi = bisect_left(times, t_end)  # good[hi:] are at or after the end
    before = good[lo - 1] if lo > 0 else None
    after = good[hi] if hi < len(good) else None
    inside = good[lo:hi]
    used = (
        ([before] if before is not None else []) + inside + ([after] if after is not None else [])
    )
    in_window = sum(1 for t in times if t_start <= t <= t_end)

    if not used:
        why = (
            f"all {missing} power readings in the window failed (None/NaN)"
            if missing
            else "no power samples cover the window"
        )
        nan = float("nan")
        return Integral(
            energy_j=nan,
            duration_s=duration_s,
            samples_in_window=0,
            sample_rate_hz=0.0,
            mean_power_w=nan,
            peak_power_w=nan,
            max_gap_s=duration_s,
            missing=missing,
            reasons=[why],
        )

    # Edge values: interpolate between the samples around the edge; with a
    # sample on one side only, hold it (the distance is counted as a gap).
    p_start = (
        _interp(t_start, used[0], used[1]) if before is not None and len(used) > 1 else used[0][1]
    )
    p_end = (
        _interp(t_end, used[-2], used[-1]) if after is not None and len(used) > 1 else used[-1][1]
    )
    points = [(t_start, p_start), *inside, (t_end, p_end)]

    gaps = [b[0] - a[0] for a, b in pairwise(used)]
    if before is None:
        gaps.append(used[0][0] - t_start)
    if after is None:
        gaps.append(t_end - used[-1][0])
    max_gap = max(gaps, default=0.0)

    reasons: list[str] = []
    if max_gap > max_gap_s:
        lost = f"; {missing} readings failed (None/NaN)" if missing else ""
        reasons.append(
            f"longest gap between power samples is {max_gap:.3g} s, over the {max_gap_s:.3g} s "
            f"limit{lost}: sample faster or check that the sensor stays readable"
        )
    stuck_s, stuck_w = longest_constant_run_s(used)
    if stuck_after_s is not None and stuck_s > stuck_after_s:
        reasons.append(
            f"power sensor stuck at {stuck_w!r} W for {stuck_s:.3g} s "
            f"(limit {stuck_after_s:.3g} s): check that the sensor updates, "
            "or raise stuck_after_s if it is this slow"
        )
    energy_j = trapezoid_j(points)
    if energy_j < 0:
        reasons.append(f"negative energy ({energy_j:.4g} J): the sensor reported negative power")

    span_s = used[-1][0] - used[0][0]
    return Integral(
        energy_j=energy_j,
        duration_s=duration_s,
        samples_in_window=in_window,
        sample_rate_hz=(len(used) - 1) / span_s if span_s > 0 else 0.0,
        mean_power_w=energy_j / duration_s,
        peak_power_w=max(p for _, p in points),
        max_gap_s=max_gap,
        missing=missing,
        trace=downsample([(t - t_start, p) for t, p in points], max_trace_points),
        reasons=reasons,
        stuck_s=stuck_s,
        integration_error_j=trapezoid_error_bound_j(points),
    )


def counter_energy(
    readings: Sequence[Sample],
    max_range: float | None,
    *,
    max_interval_s: float | None = None,
) -> tuple[float, int, list[str]]:
    """Energy from a cumulative counter, read at the window edges and in between.

    Returns ``(energy, wraps, reasons)``, the energy in the counter's unit
    (e.g. µJ). Readings are sorted by time; failed reads (None/NaN) in the
    middle are skipped, which is harmless for a counter as long as the reads
    that remain are less than one wrap period apart. A decrease is one wrap
    of ``max_range`` (the counter's modulus, e.g. powercap's
    ``max_energy_range_uj``); with no known range it is a reason, not a
    guess. Reasons are also given when the first or last read failed (the
    energy would not cover the whole window) and, if ``max_interval_s`` is
    given, when two reads are further apart than that (a wrap may be missed).
    Energy is NaN when fewer than two reads succeeded.
    """
    ordered = sorted(readings, key=lambda s: s[0])
    reasons: list[str] = []
    if ordered and not _finite(ordered[0][1]):
        reasons.append("energy counter could not be read at the window start")
    if ordered and not _finite(ordered[-1][1]):
        reasons.append("energy counter could not be read at the window end")
    values = [(t, float(v)) for t, v in ordered if v is not None and math.isfinite(v)]
    if len(values) < 2:
        return float("nan"), 0, [*reasons, "fewer than two energy counter reads succeeded"]

    total = 0.0
    wraps = 0
    backwards = 0
    longest_s = 0.0
    for (t0, a), (t1, b) in pairwise(values):
        longest_s = max(longest_s, t1 - t0)
        d = b - a
        if d < 0:
            if max_range is None or max_range <= 0 or -d > max_range:
                backwards += 1  # a reset or a misread, not a wrap we can account for
                continue
            d += max_range
            wraps += 1
        total += d
    if backwards:
        known = f"its range is {max_range:g}" if max_range else "its range is unknown"
        reasons.append(
            f"energy counter decreased {backwards} time(s) and {known} "
            "(a reset?); the energy of those intervals is missing"
        )
    if max_interval_s is not None and longest_s > max_interval_s:
        reasons.append(
            f"energy counter reads {longest_s:.3g} s apart (limit {max_interval_s:.3g} s): "
            "a wrap may have been missed; read it more often"
        )
    return total, wraps, reasons


def uncertainty_j(
    duration_s: float,
    mean_power_w: float,
    *,
    rel_accuracy: float = 0.0,
    abs_accuracy_w: float = 0.0,
    resolution_w: float = 0.0,
    integration_error_j: float = 0.0,
) -> float:
    """Half-width of the energy uncertainty interval, in joules.

    ``U = (rel_accuracy x |P_mean| + abs_accuracy_w + resolution_w / 2) x T + E_int``

    * ``rel_accuracy`` (a fraction, 0.01 for ±1 % of reading) and
      ``abs_accuracy_w`` (± watts, an offset) are the sensor's accuracy; they
      are calibration errors that do not average out over a window, so they
      scale with the duration ``T`` rather than with the square root of the
      number of samples.
    * ``resolution_w`` is the sensor's step; each reading is off by up to half.
    * ``E_int`` is the integration error, e.g. :attr:`Integral.integration_error_j`
      (the trapezoid's bound when power is monotonic between samples), or for
      a counter read at the edges, the energy of one counter update per edge.

    The terms are added linearly, so this is a conservative bound, not a
    standard deviation; it adds linearly across windows too (as the protocol
    does).
    """
    if duration_s < 0 or rel_accuracy < 0 or abs_accuracy_w < 0 or resolution_w < 0:
        raise ValueError("duration and accuracy terms must be non-negative")
    sensor_w = rel_accuracy * abs(mean_power_w) + abs_accuracy_w + resolution_w / 2
    return sensor_w * duration_s + abs(integration_error_j)
