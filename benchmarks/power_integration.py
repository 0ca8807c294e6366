"""Energy integration accuracy against exact integrals, printed as markdown.

Usage::

    .venv/bin/python benchmarks/power_integration.py

It integrates synthetic power traces with known integrals (constant, step,
ramp, sine, and two 1 Hz pulse trains, one phase-locked to the sampler)
sampled at 10/100/1000 Hz with ±10 % timing jitter, over a window whose edges
fall between samples, with three integrators:

* ``wattbench``: :func:`wattbench.power.accounting.integrate_power`
  (trapezoid, edges interpolated, unchanged samples kept);
* ``zeus-style``: a sampler that records a sample only when the value changed,
  then the trapezoid over the samples inside the window (fewer than two: 0 J),
  as zeus' PowerMonitor does;
* ``codecarbon-style``: power read every 15 s (and at the end) times the time
  since the previous read, as codecarbon's default ``measure_power_secs=15``.

What the background sampler costs the workload, and the rate it keeps, is
measured by ``benchmarks/sampler_overhead.py``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from wattbench.power.accounting import integrate_power

RATES_HZ = (10, 100, 1000)
CODECARBON_INTERVAL_S = 15.0
TRACE_END_S = 70.0
LONG_WINDOW = (3.217, 63.551)
SHORT_WINDOW = (30.1, 32.445)  # contains the step at 31.4159 s


@dataclass(frozen=True)
class Trace:
    name: str
    power_w: Callable[[float], float]
    energy_j: Callable[[float, float], float]  # exact integral over [a, b]


def pulse(
    duty: float, phase_s: float = 0.0
) -> tuple[Callable[[float], float], Callable[[float, float], float]]:
    """45 W for ``duty`` of every second from ``phase_s`` on, else 15 W: power and exact energy."""

    def power_w(t: float) -> float:
        u = t - phase_s
        return 45.0 if u - math.floor(u) < duty else 15.0

    def cumulative_j(t: float) -> float:
        u = t - phase_s
        whole, frac = math.floor(u), u - math.floor(u)
        per_s = 45.0 * duty + 15.0 * (1 - duty)
        return whole * per_s + 45.0 * min(frac, duty) + 15.0 * max(frac - duty, 0.0)

    return power_w, lambda a, b: cumulative_j(b) - cumulative_j(a)


TRACES = (
    Trace("constant 25 W", lambda t: 25.0, lambda a, b: 25.0 * (b - a)),
    Trace(
        "step 10→40 W",
        lambda t: 10.0 if t < 31.4159 else 40.0,
        lambda a, b: (
            10.0 * (min(b, 31.4159) - min(a, 31.4159)) + 40.0 * (max(b, 31.4159) - max(a, 31.4159))
        ),
    ),
    Trace(
        "ramp 5→57 W",
        lambda t: 5.0 + 0.75 * t,
        lambda a, b: 5.0 * (b - a) + 0.375 * (b * b - a * a),
    ),
    Trace(
        "sine 30±20 W, 1 Hz",
        lambda t: 30.0 + 20.0 * math.sin(2 * math.pi * t),
        lambda a, b: (
            30.0 * (b - a)
            - 20.0 / (2 * math.pi) * (math.cos(2 * math.pi * b) - math.cos(2 * math.pi * a))
        ),
    ),
    Trace("pulse 15/45 W, 1 Hz 30 %", *pulse(0.30)),
    # Bursts phase-locked to a 10 Hz sampler, rising 20 % and falling 70 % into a
    # sample interval: the two edges' errors add up every period instead of cancelling.
    Trace("locked pulse 1 Hz 35 %", *pulse(0.35, phase_s=0.02)),
)


def sample_trace(trace: Trace, rate_hz: float, seed: int) -> list[tuple[float, float]]:
    """Instantaneous readings at ``rate_hz`` with ±10 % timing jitter."""
    rng = random.Random(seed)
    n = int(TRACE_END_S * rate_hz)
    times = [(k + rng.uniform(-0.1, 0.1)) / rate_hz for k in range(n + 1)]
    return [(t, trace.power_w(t)) for t in times if t >= 0]


def wattbench_j(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    return integrate_power(samples, t0, t1, max_gap_s=1.0).energy_j


def zeus_style_j(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    kept: list[tuple[float, float]] = []
    for t, p in samples:  # the poller only records a value that changed
        if not kept or p != kept[-1][1]:
            kept.append((t, p))
    inside = [(t, p) for t, p in kept if t0 <= t <= t1]
    if len(inside) < 2:
        return 0.0
    return sum((p0 + p1) / 2 * (b - a) for (a, p0), (b, p1) in pairwise(inside))


def codecarbon_style_j(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    times = [t for t, _ in samples]

    def latest_w(t: float) -> float:  # what the sensor shows at t
        i = max(0, np.searchsorted(times, t, side="right") - 1)
        return samples[int(i)][1]

    energy, last = 0.0, t0
    t = t0 + CODECARBON_INTERVAL_S
    while t < t1:
        energy += latest_w(t) * (t - last)
        last, t = t, t + CODECARBON_INTERVAL_S
    return energy + latest_w(t1) * (t1 - last)


def pct(value: float, true: float) -> str:
    return f"{(value - true) / true * 100:+.3f} %"


def accuracy_table(window: tuple[float, float]) -> list[str]:
    t0, t1 = window
    lines = [
        f"Window {t0:g}–{t1:g} s ({t1 - t0:.3f} s). Error = (integrated − exact) / exact.",
        "",
        "| trace | rate | exact J | wattbench | bound ± | zeus-style | codecarbon-style |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    worst = 0.0
    for trace in TRACES:
        true = trace.energy_j(t0, t1)
        for rate in RATES_HZ:
            samples = sample_trace(trace, rate, seed=rate)
            integ = integrate_power(samples, t0, t1, max_gap_s=1.0)
            worst = max(worst, abs(integ.energy_j - true) / true)
            lines.append(
                f"| {trace.name} | {rate} Hz | {true:.2f} | {pct(integ.energy_j, true)} | "
                f"{integ.integration_error_j / true * 100:.3f} % | "
                f"{pct(zeus_style_j(samples, t0, t1), true)} | "
                f"{pct(codecarbon_style_j(samples, t0, t1), true)} |"
            )
    lines += ["", f"Worst wattbench error in this window: {worst * 100:.3f} %."]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = [
        f"Machine: {cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, "
        f"numpy {np.__version__}.",
        "",
        "### Integration error, long window",
        "",
        *accuracy_table(LONG_WINDOW),
        "",
        "### Integration error, short window",
        "",
        *accuracy_table(SHORT_WINDOW),
    ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
