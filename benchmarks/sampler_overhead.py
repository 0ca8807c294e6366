"""What the background power sampler costs the workload it measures, and the rate it keeps.

Usage::

    .venv/bin/python benchmarks/sampler_overhead.py [--reps 150] [--run-s 0.1]
    .venv/bin/python benchmarks/sampler_overhead.py --one process:1000   # one run, for
        # whole-process timers (/usr/bin/time -v): the workload with that sampler

A CPU-bound workload (pure Python, which holds the GIL, and numpy matrix products
on one BLAS thread, which release it) does a fixed amount of work while an
:class:`~wattbench.power.hwmon.HwmonReader` samples a sysfs-like file, under
each condition: no sampler (twice: ``none`` and ``none (A/A)``, whose
difference is the noise floor), the sampler thread (``sampler=thread``, the old
path) and the sampler process (``sampler=process``, asking for real-time
priority, and ``process, no RT`` without it) at 10, 100 and 1000 Hz. Every
repetition runs each condition once, in a shuffled order (paired, interleaved
A/B), and each figure is the median over repetitions of the ratio to that
repetition's ``none`` run, with a bootstrap 95 % interval:

* ``workload CPU``: the CPU time of the workload's own thread
  (``time.thread_time``) for the same work: what the sampler costs the
  workload through caches, interrupts and wakeups. Other processes on the
  machine barely move it, unlike wall time.
* ``sampler CPU``: the CPU time the sampler spends (the thread's, or the sampler
  process's plus the drain thread's) per second of the run, i.e. the share of one
  core it takes: what it takes from the workload if both must share one core (a
  thread sampler always does: it needs the GIL). ``CPU per sample`` is the same
  time divided by the samples taken.
* ``loss (CPU)``: the sum of the two, the throughput loss on a machine without a
  spare core; with a spare core the process sampler costs only the first.
* ``loss (wall)``: from wall time, which other tenants of the machine disturb.

The achieved rate (median over runs) and the largest gap between samples (over
all runs) come from the readings; ``over gap limit`` counts the runs whose
largest gap exceeded the default limit of 5 sample intervals, which would have
made a real reading invalid (the benchmark's readers allow 10 s).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# One BLAS thread: the numpy workload is then as CPU-bound and repeatable as the
# pure-Python one, instead of racing its own worker threads for the cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from wattbench.core.power import ReaderOptions  # noqa: E402
from wattbench.power.hwmon import HwmonReader  # noqa: E402

RATES_HZ = (10, 100, 1000)


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


WORKLOADS: dict[str, Callable[[int], object]] = {
    "pure Python": pure_python,
    "numpy 160×160 matmul": numpy_matmul,
}


def calibrate(fn: Callable[[int], object], run_s: float) -> int:
    n = 1000
    while True:
        c = time.thread_time()
        fn(n)
        dt = time.thread_time() - c
        if dt > 0.1:
            return max(1, int(n * run_s / dt))
        n *= 4


def fake_hwmon(root: Path) -> None:
    d = root / "sys" / "class" / "hwmon" / "hwmon0"
    d.mkdir(parents=True)
    (d / "name").write_text("ina226\n")
    (d / "power1_input").write_text("5000000\n")


@dataclass(frozen=True)
class Condition:
    label: str
    sampler: str | None  # None: no reader
    rate_hz: float = 0.0
    realtime: bool = True


def conditions() -> list[Condition]:
    out = [Condition("none", None), Condition("none (A/A)", None)]
    for rate in RATES_HZ:
        out.append(Condition(f"thread {rate} Hz", "thread", rate))
        out.append(Condition(f"process {rate} Hz", "process", rate))
    out.append(Condition("process, no RT 1000 Hz", "process", 1000, realtime=False))
    return out


def make_reader(root: Path, c: Condition) -> HwmonReader | None:
    if c.sampler is None:
        return None
    return HwmonReader(
        ReaderOptions(
            sysfs_root=root,
            sample_interval_s=1.0 / c.rate_hz,
            params={
                "hwmon.sampler": c.sampler,
                "hwmon.sampler_realtime": "1" if c.realtime else "0",
                "hwmon.max_gap_s": "10",
            },
        )
    )


@dataclass(frozen=True)
class Run:
    wall_s: float
    work_cpu_s: float  # the workload's own thread
    sampler_cpu_s: float  # every other thread of this process, plus the sampler process
    rate_hz: float | None = None
    max_gap_s: float | None = None
    priority: str | None = None
    samples: int = 0


def timed(fn: Callable[[int], object], n: int, reader: HwmonReader | None) -> Run:
    if reader is not None:
        reader.start()
    t, c, p = time.perf_counter(), time.thread_time(), time.process_time()
    fn(n)
    wall_s, work_s = time.perf_counter() - t, time.thread_time() - c
    others_s = time.process_time() - p - work_s
    if reader is None:
        return Run(wall_s, work_s, max(others_s, 0.0))
    reading = reader.stop()
    child_s = reading.details.get("sampler_cpu_s") or 0.0
    return Run(
        wall_s,
        work_s,
        max(others_s, 0.0) + child_s,
        reading.sample_rate_hz,
        reading.details["sampler_max_gap_s"],
        reading.details.get("sampler_priority"),
        reading.samples,
    )


def median_ci(values: list[float], rng: random.Random, n_boot: int = 2000) -> tuple[float, ...]:
    """Median and its bootstrap 95 % interval."""
    med = statistics.median(values)
    boots = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(n_boot))
    return med, boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]


def pct(ci: tuple[float, ...]) -> str:
    med, lo, hi = (x * 100 for x in ci)
    return f"{med:+.2f} % [{lo:+.2f}, {hi:+.2f}]"


def overhead_table(reps: int, run_s: float) -> list[str]:
    lines = [
        "| workload | sampler | achieved rate | max gap | over gap limit | CPU per sample "
        "| workload CPU | sampler CPU | loss (CPU) | loss (wall) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rng = random.Random(1)
    conds = conditions()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fake_hwmon(root)
        readers = {c.label: make_reader(root, c) for c in conds}
        try:
            for label, fn in WORKLOADS.items():
                n = calibrate(fn, run_s)
                runs: dict[str, list[Run]] = {c.label: [] for c in conds}
                for c in conds:  # warm-up: start every sampler process once
                    timed(fn, n // 20, readers[c.label])
                for _ in range(reps):
                    order = conds[:]
                    rng.shuffle(order)
                    for c in order:
                        runs[c.label].append(timed(fn, n, readers[c.label]))
                base = runs["none"]
                for c in conds[1:]:
                    pairs = list(zip(base, runs[c.label], strict=True))
                    work = median_ci([b.work_cpu_s / a.work_cpu_s - 1 for a, b in pairs], rng)
                    # The sampler's CPU per second of the run: the share of one core it takes.
                    samp = median_ci([b.sampler_cpu_s / b.wall_s for _, b in pairs], rng)
                    loss = median_ci(
                        [
                            b.work_cpu_s / a.work_cpu_s - 1 + b.sampler_cpu_s / b.wall_s
                            for a, b in pairs
                        ],
                        rng,
                    )
                    wall = median_ci([1 - a.wall_s / b.wall_s for a, b in pairs], rng)
                    rs = runs[c.label]
                    if c.sampler is None:
                        rate, gap, over, per = "—", "—", "—", "—"
                    else:
                        per_us = [r.sampler_cpu_s / r.samples * 1e6 for r in rs if r.samples]
                        per = f"{statistics.median(per_us):.0f} µs" if per_us else "—"
                        rate = f"{statistics.median(r.rate_hz or 0.0 for r in rs):.0f} Hz"
                        gap = f"{max(r.max_gap_s or 0.0 for r in rs) * 1e3:.1f} ms"
                        # the default limit: 5 sample intervals (the file has no update period)
                        limit_s = HwmonReader.MAX_GAP_INTERVALS / c.rate_hz
                        over = f"{sum((r.max_gap_s or 0.0) > limit_s for r in rs)}/{len(rs)}"
                        prio = {r.priority for r in rs if r.priority}
                        if prio and prio != {"fifo"} and c.realtime:
                            rate += f" ({', '.join(sorted(prio))})"
                    lines.append(
                        f"| {label} | {c.label} | {rate} | {gap} | {over} | {per} | {pct(work)} "
                        f"| {pct(samp)} | {pct(loss)} | {pct(wall)} |"
                    )
        finally:
            for reader in readers.values():
                if reader is not None:
                    reader.close()
    return lines


def one(spec: str, run_s: float) -> int:
    """One run of the pure-Python workload with ``sampler:rate`` (or ``none``)."""
    sampler, _, rate = spec.partition(":")
    c = Condition(spec, None if sampler == "none" else sampler, float(rate or 0))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fake_hwmon(root)
        reader = make_reader(root, c)
        try:
            run = timed(pure_python, int(run_s * 5e6), reader)
        finally:
            if reader is not None:
                reader.close()
    print(f"{spec}: wall {run.wall_s:.3f} s, rate {run.rate_hz}, max gap {run.max_gap_s}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=150, help="repetitions per condition")
    parser.add_argument("--run-s", type=float, default=0.1, help="CPU seconds per workload run")
    parser.add_argument("--one", metavar="SAMPLER:HZ", help="one run, e.g. process:1000 or none")
    args = parser.parse_args()
    if args.one:
        return one(args.one, args.run_s)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load_before = os.getloadavg()
    t0 = time.monotonic()
    table = overhead_table(args.reps, args.run_s)
    load_after = os.getloadavg()
    print(
        f"Machine: {cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, "
        f"numpy {np.__version__}; switch interval {sys.getswitchinterval() * 1000:g} ms; "
        f"uid {os.getuid()}.",
    )
    print(
        f"Load average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
        f"after {'/'.join(f'{x:.2f}' for x in load_after)}; "
        f"{args.reps} repetitions of ~{args.run_s:g} CPU s per condition "
        f"({time.monotonic() - t0:.0f} s in all)."
    )
    print()
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
