"""Time to a confident number: `wattbench run --target-ci` against the fixed protocol.

For each case (``quiet``; ``noisy``: a busy-loop process pinned to one core for the whole
case) and each target (±2 %, ±1 %: the 95 % order-statistic CI of the median of inferences
per joule *and* of p90 latency, see docs/protocol.md):

1. **stream**: one fixed-protocol run of many short trials (``wattbench run --repeats N``).
   Its trials are replayed from many starting points (every ``--step``-th trial of its first
   half): per start, the trial at which ``--target-ci`` would stop (the protocol's own rule,
   :class:`wattbench.core.confidence.StoppingRule`, on the same trials) and, for the fixed
   protocol, the smallest ``--repeats`` that reaches the same interval width from at least
   90 % of the starts (a fixed count has to be chosen before measuring, so it must cover the
   slow starts too). Times are trials x the stream's mean trial period (trial + pause).
2. **live**: a real ``wattbench run --target-ci T --max-duration B`` per target: its
   measuring time, trials, achieved intervals and stop reason, as stored.

The machine's load average is recorded before and after every case: on a shared machine the
"quiet" case is only as quiet as the neighbours.

Usage::

    python benchmarks/time_to_confidence.py [--duration 0.5] [--stream-trials 150]
        [--targets 2 1] [--budget 60] [--cases quiet noisy] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wattbench.core.confidence import intervals, within
from wattbench.core.results import RunResult, TrialResult

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
#: A fixed --repeats must reach the width from this share of starting points: 90 % (chosen
#: to be safe before measuring) and, for a kinder comparison, 50 % (the typical start).
FIXED_COVERAGE = (0.9, 0.5)
MIN_REPEATS = 3  # the --repeats minimum of the --target-ci runs (as replayed)


def _base_args(duration: float, tmp: str) -> list[str]:
    # a database per run: it is only where `wattbench run` stores what it also prints
    db = f"sqlite:///{tempfile.mkdtemp(dir=tmp)}/ttc.db"
    return [
        "run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime", "--threads", "1",
        "--duration", str(duration), "--min-queries", "5", "--warmup", "1", "--idle-s", "1",
        "--cooldown", "0", "--e2e-queries", "0", "--no-git-labels", "--db", db, "--json",
    ]  # fmt: skip


def _run(args: list[str]) -> tuple[RunResult, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([WATTBENCH, *args], capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"wattbench run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return RunResult.model_validate_json(proc.stdout), wall


def _busy_loop() -> subprocess.Popen[bytes]:
    """A pure-Python busy loop pinned to core 0 (the injected load)."""
    code = "import os\nos.sched_setaffinity(0, {0})\nwhile True:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _stop_at(trials: list[TrialResult], target: float) -> int | None:
    """The trial count at which --target-ci stops on this sequence (None: never)."""
    for n in range(MIN_REPEATS, len(trials) + 1):
        ivs = intervals(trials[:n])
        if all(within(iv, target) for iv in ivs.values()):
            return n
    return None


def _width(trials: list[TrialResult]) -> float | None:
    """The wider of the two half-widths, %, of these trials' intervals."""
    hws = [iv.half_width for iv in intervals(trials).values()]
    return None if any(h is None for h in hws) else max(h for h in hws if h is not None) * 100


def replay(trials: list[TrialResult], period_s: float, target: float, step: int) -> dict[str, Any]:
    """Adaptive stopping vs the fixed --repeats that reaches ``target`` from 90 % of starts."""
    starts = list(range(0, max(1, len(trials) // 2), step))
    stops = [_stop_at(trials[s:], target) for s in starts]
    reached = [n for n in stops if n is not None]
    fixed_n: dict[float, int | None] = dict.fromkeys(FIXED_COVERAGE)
    for n in range(MIN_REPEATS, len(trials) - starts[-1] + 1):
        ok = [
            (w := _width(trials[s : s + n])) is not None and w <= target
            for s in starts
            if s + n <= len(trials)
        ]
        for share in FIXED_COVERAGE:
            if fixed_n[share] is None and ok and sum(ok) / len(ok) >= share:
                fixed_n[share] = n
    adaptive_n = statistics.median(reached) if reached else None
    return {
        "target_pct": target,
        "starts": len(starts),
        "adaptive_reached": len(reached),
        "adaptive_trials_median": adaptive_n,
        "adaptive_trials_p90": (
            sorted(reached)[math.ceil(0.9 * len(reached)) - 1] if reached else None
        ),
        "adaptive_s_median": adaptive_n * period_s if adaptive_n is not None else None,
        **{
            f"fixed{share * 100:.0f}_repeats": n
            for share, n in fixed_n.items()  # the --repeats reaching the width from share
        },
        **{
            f"fixed{share * 100:.0f}_s": n * period_s if n is not None else None
            for share, n in fixed_n.items()
        },
    }


def case(name: str, ns: argparse.Namespace, tmp: str) -> dict[str, Any]:
    load_before = _load()
    noise = _busy_loop() if name == "noisy" else None
    try:
        time.sleep(1.0 if noise else 0.0)
        stream, stream_wall = _run(
            [*_base_args(ns.duration, tmp), "--repeats", str(ns.stream_trials), "--label", name]
        )
        conf = stream.confidence
        assert conf is not None
        period = conf.measured_s / len(stream.trials)
        out: dict[str, Any] = {
            "case": name,
            "stream": {
                "trials": len(stream.trials),
                "measured_s": round(conf.measured_s, 2),
                "period_s": round(period, 3),
                "wall_s": round(stream_wall, 1),
                "width_pct": _width(stream.trials),
                "inferences_per_joule": conf.inferences_per_joule.model_dump(),
                "latency_p90_ms": conf.latency_p90_ms.model_dump(),
                "energy_method": stream.energy[0].method.value,
                "per_trial": {  # for re-analysis without measuring again
                    "duration_s": [t.duration_s for t in stream.trials],
                    "inferences_per_joule": [
                        t.inferences / t.energy[0].gross_j for t in stream.trials
                    ],
                    "latency_p90_ms": [t.latency.p90_ms for t in stream.trials],
                },
            },
            "replay": [replay(stream.trials, period, t, ns.step) for t in ns.targets],
            "live": [],
        }
        for t in ns.targets:
            r, wall = _run(
                [
                    *_base_args(ns.duration, tmp),
                    "--repeats", str(MIN_REPEATS), "--target-ci", str(t),
                    "--max-duration", str(ns.budget), "--label", f"{name}-ci{t:g}",
                ]
            )  # fmt: skip
            c = r.confidence
            assert c is not None
            out["live"].append(
                {
                    "target_pct": t,
                    "stopped": c.stopped,
                    "trials": c.trials,
                    "measured_s": round(c.measured_s, 2),
                    "wall_s": round(wall, 1),
                    "ipj_half_width_pct": c.half_width_pct("inferences_per_joule"),
                    "p90_half_width_pct": c.half_width_pct("latency_p90_ms"),
                }
            )
    finally:
        if noise is not None:
            noise.kill()
            noise.wait()
    out["load_before"], out["load_after"] = load_before, _load()
    return out


def _fmt_s(x: float | None) -> str:
    return "not reached" if x is None else f"{x:.1f} s"


def report(res: dict[str, Any]) -> str:
    lines = [
        f"host: {res['host']['cpu']}, {res['host']['cpus']} CPUs; "
        f"trials of {res['duration_s']} s, stream of {res['stream_trials']} trials",
        "",
        "| case | load avg (1/5/15 min) before → after | target | fixed protocol: --repeats "
        "(time) for the width from 90 % / 50 % of starts | --target-ci replay: median trials "
        "(time), starts reached | --target-ci live: trials, measuring time, stop |",
        "|---|---|---|---|---|---|",
    ]
    for c in res["cases"]:
        for rp, lv in zip(c["replay"], c["live"], strict=True):
            fixed = " / ".join(
                f"{rp[f'fixed{k}_repeats']} ({_fmt_s(rp[f'fixed{k}_s'])})"
                if rp[f"fixed{k}_repeats"] is not None
                else "not reached"
                for k in (90, 50)
            )
            adapt = (
                f"{rp['adaptive_trials_median']:g} ({_fmt_s(rp['adaptive_s_median'])}), "
                f"{rp['adaptive_reached']}/{rp['starts']}"
                if rp["adaptive_trials_median"] is not None
                else f"not reached, 0/{rp['starts']}"
            )
            hw = (
                f"±{lv['ipj_half_width_pct']:.2g}% / ±{lv['p90_half_width_pct']:.2g}%"
                if lv["ipj_half_width_pct"] is not None and lv["p90_half_width_pct"] is not None
                else "n/a"
            )
            lines.append(
                f"| {c['case']} | {'/'.join(map(str, c['load_before']))} → "
                f"{'/'.join(map(str, c['load_after']))} | ±{rp['target_pct']:g}% | {fixed} | "
                f"{adapt} | {lv['trials']}, {lv['measured_s']:.1f} s, {lv['stopped']} "
                f"(inf/J {hw.split(' / ')[0]}, p90 {hw.split(' / ')[-1]}) |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=0.5, help="seconds per trial")
    ap.add_argument("--stream-trials", type=int, default=150)
    ap.add_argument("--targets", type=float, nargs="+", default=[2.0, 1.0])
    ap.add_argument("--budget", type=float, default=60.0, help="--max-duration of live runs")
    ap.add_argument("--step", type=int, default=5, help="replay every STEP-th start")
    ap.add_argument("--cases", nargs="+", default=["quiet", "noisy"])
    ap.add_argument("--json", type=Path, default=None)
    ns = ap.parse_args()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        res = {
            "host": {"cpu": cpu, "cpus": os.cpu_count()},
            "duration_s": ns.duration,
            "stream_trials": ns.stream_trials,
            "budget_s": ns.budget,
            "cases": [case(c, ns, tmp) for c in ns.cases],
        }
    if ns.json:
        ns.json.write_text(json.dumps(res, indent=2))
    sys.stdout.write(report(res) + "\n")


if __name__ == "__main__":
    main()
