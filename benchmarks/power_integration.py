"""Energy integration accuracy and sampler overhead, printed as markdown.

Usage::

    .venv/bin/python benchmarks/power_integration.py [--reps 30] [--run-s 0.2]

Part 1 integrates synthetic power traces with known integrals (constant,
step, ramp, sine, and two 1 Hz pulse trains, one phase-locked to the sampler)
sampled at 10/100/1000 Hz with ±10 % timing jitter, over a window whose edges
fall between samples, with three integrators:

* ``wattbench``: :func:`wattbench.power.accounting.integrate_power`
  (trapezoid, edges interpolated, unchanged samples kept);
* ``zeus-style``: a sampler that records a sample only when the value changed,
  then the trapezoid over the samples inside the window (fewer than two: 0 J),
  as zeus' PowerMonitor does;
* ``codecarbon-style``: power read every 15 s (and at the end) times the time
  since the previous read, as codecarbon's default ``measure_power_secs=15``.

Part 2 measures how much throughput a CPU-bound workload (pure Python, and
numpy matrix products) loses while a :class:`HwmonReader` samples a sysfs-like
file in a background thread at 10/100/1000 Hz, against the workload alone.
Each repetition runs every condition back to back in a shuffled order, and
the figures are medians of per-repetition ratios, so drift in the machine's
load cancels: the throughput loss (wall time), the extra process CPU time
(workload + sampler; barely affected by neighbours), and the model
``achieved rate x cost of one sample``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

# One BLAS thread: the numpy workload is then as CPU-bound and repeatable as the
# pure-Python one, instead of racing its own worker threads for the two cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from wattbench.core.power import ReaderOptions  # noqa: E402
from wattbench.power.accounting import integrate_power  # noqa: E402
from wattbench.power.hwmon import HwmonReader  # noqa: E402

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


# --- sampler overhead ---------------------------------------------------------


def pure_python(n: int) -> int:
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def numpy_matmul(n: int) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((160, 160))
    b = rng.standard_normal((160, 160))
    total = 0.0
    for _ in range(n):
        a = np.tanh(a @ b * 0.01)
        total += float(a[0, 0])
    return total


def calibrate(fn: Callable[[int], object], run_s: float) -> int:
    n = 1000
    while True:
        t = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t
        if dt > 0.2:
            return max(1, int(n * run_s / dt))
        n *= 4


def fake_hwmon(root: Path) -> None:
    d = root / "sys" / "class" / "hwmon" / "hwmon0"
    d.mkdir(parents=True)
    (d / "name").write_text("ina226\n")
    (d / "power1_input").write_text("5000000\n")


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float  # the whole process: workload plus sampler thread
    rate_hz: float | None = None
    max_gap_s: float | None = None


def timed(fn: Callable[[int], object], n: int, rate_hz: float | None, root: Path) -> Run:
    """``fn(n)`` timed, with a sampler running at ``rate_hz`` (None: alone)."""
    reader = None
    if rate_hz is not None:
        reader = HwmonReader(
            ReaderOptions(
                sysfs_root=root, sample_interval_s=1.0 / rate_hz, params={"hwmon.max_gap_s": "10"}
            )
        )
        reader.start()
    t, c = time.perf_counter(), time.process_time()
    fn(n)
    wall_s, cpu_s = time.perf_counter() - t, time.process_time() - c
    if reader is None:
        return Run(wall_s, cpu_s)
    reading = reader.stop()
    reader.close()
    return Run(wall_s, cpu_s, reading.sample_rate_hz, reading.details["max_gap_s"])


def overhead_table(reps: int, run_s: float, sample_cost_us: float) -> list[str]:
    lines = [
        "| workload | sampler | median s | throughput loss | extra CPU time "
        "| model: rate x cost | achieved rate | max gap |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fake_hwmon(root)
        for label, fn in (("pure Python", pure_python), ("numpy 160×160 matmul", numpy_matmul)):
            n = calibrate(fn, run_s)
            conditions: list[float | None] = [None, *RATES_HZ]
            runs: dict[float | None, list[Run]] = {c: [] for c in conditions}
            fn(n // 4)  # warm-up
            for _ in range(reps):
                order = conditions[:]
                rng.shuffle(order)  # each repetition runs every condition back to back
                for c in order:
                    runs[c].append(timed(fn, n, c, root))
            alone = runs[None]
            walls = [r.wall_s for r in alone]
            spread = (max(walls) - min(walls)) / statistics.median(walls) * 100
            lines.append(
                f"| {label} | none | {statistics.median(walls):.3f} | "
                f"(runs alone spread {spread:.0f} %) | — | — | — | — |"
            )
            for c in RATES_HZ:
                # Ratios within a repetition cancel slow drift in the machine's load.
                pairs = list(zip(alone, runs[c], strict=True))
                wall = statistics.median(a.wall_s / b.wall_s for a, b in pairs)
                cpu = statistics.median(b.cpu_s / a.cpu_s for a, b in pairs)
                rate = statistics.median(r.rate_hz or 0.0 for r in runs[c])
                gap = max(r.max_gap_s or 0.0 for r in runs[c])
                lines.append(
                    f"| {label} | {c} Hz | {statistics.median(r.wall_s for r in runs[c]):.3f} | "
                    f"{(1 - wall) * 100:+.1f} % | {(cpu - 1) * 100:+.1f} % | "
                    f"{rate * sample_cost_us * 1e-4:.2f} % | {rate:.0f} Hz | {gap * 1000:.1f} ms |"
                )
    return lines


def per_sample_cost_us(n: int = 5000) -> float:
    """Median wall time of one ``sample_now()`` (read + stamp + append), in µs."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fake_hwmon(root)
        reader = HwmonReader(ReaderOptions(sysfs_root=root, sample_interval_s=3600.0))
        costs = []
        for _ in range(n):
            t = time.perf_counter()
            reader.sample_now()
            costs.append(time.perf_counter() - t)
    return statistics.median(costs) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30, help="repetitions per condition")
    parser.add_argument("--run-s", type=float, default=0.2, help="seconds per workload run")
    args = parser.parse_args()
    cost_us = per_sample_cost_us()

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
        f"numpy {np.__version__}; switch interval {sys.getswitchinterval() * 1000:g} ms.",
        "",
        "### Integration error, long window",
        "",
        *accuracy_table(LONG_WINDOW),
        "",
        "### Integration error, short window",
        "",
        *accuracy_table(SHORT_WINDOW),
        "",
        f"### Sampler overhead ({args.reps} runs of ~{args.run_s:g} s per condition)",
        "",
        f"One sample (hwmon file read + time stamps + append) costs {cost_us:.1f} µs "
        "of one core (median of 5000).",
        "",
        *overhead_table(args.reps, args.run_s, cost_us),
    ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
