"""Agreement of the built-in single-stream driver with MLPerf LoadGen's summary.

The same system under test (a suite's model on an adapter, fixed threads, batch 1) runs
single-stream windows alternately through the built-in driver
(``wattbench.harness.scenarios.SingleStreamDriver``, timed as in a run's measured window) and
through ``wattbench.harness.loadgen.LoadGenDriver`` (MLPerf LoadGen issues the queries and
writes ``mlperf_log_summary.txt``). Per pair of windows, the built-in p50/p90 (wattbench's
statistics: linear interpolation) are divided by the p50/p90 LoadGen's summary reports; the
report gives the median ratio over ``--pairs`` pairs (the order swaps every pair, so a machine
whose speed drifts biases neither side). Goal: within 2 %.

Each LoadGen window also yields a second, run-free comparison: the SUT's own
issue→complete timing of the very same queries, ranked as LoadGen ranks (``floor(n·p)``),
against LoadGen's figures — what the two clocks add, without run-to-run noise.

Usage::

    python benchmarks/scenario_agreement.py [--threads 1 2] [--pairs 8] [--window-s 4]
                                            [--min-queries 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from wattbench.core import plugins
from wattbench.core.adapter import AdapterOptions, Session
from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.stats import latency_stats
from wattbench.core.suite import SuiteOptions
from wattbench.harness.loadgen import LoadGenDriver
from wattbench.harness.scenarios import SingleStreamDriver, timed_loop


def _prepare(suite_name: str, adapter_name: str, threads: int) -> tuple[Session, list[Any], str]:
    suite = plugins.load(plugins.SUITES, suite_name)(SuiteOptions(seed=0))
    adapter = plugins.load(plugins.ADAPTERS, adapter_name)()
    cache = ModelCache(Path(tempfile.gettempdir()) / "wattbench-agreement-cache")
    fmt = next(f for f in adapter.formats if any(f in r.formats for r in suite.recipes()))
    artifact = suite.build_model(fmt, cache)
    session = adapter.load(artifact, AdapterOptions(device="cpu", threads=threads))
    specs = session.inputs()
    prepared = [
        session.prepare({k: v[None, ...] for k, v in suite.preprocess_feed(s, specs).items()})
        for s in suite.load_inputs().samples
    ]
    return session, prepared, artifact.name


def measure(
    suite: str, adapter: str, threads: int, pairs: int, window_s: float, min_queries: int
) -> dict[str, Any]:
    session, prepared, model = _prepare(suite, adapter, threads)
    cfg = RunConfig(suite=suite, adapter=adapter, threads=threads)
    builtin = SingleStreamDriver(cfg)
    loadgen = LoadGenDriver(cfg.model_copy(update={"driver": "loadgen"}))
    timed_loop(session, prepared, 2.0, 20)  # warm-up
    loadgen.calibrate(session, prepared)
    rows: list[dict[str, Any]] = []
    for k in range(pairs):
        order = ("builtin", "loadgen") if k % 2 == 0 else ("loadgen", "builtin")
        row: dict[str, Any] = {"pair": k, "order": list(order)}
        for who in order:
            if who == "builtin":
                win = builtin.window(session, prepared, window_s, min_queries)
                st = latency_stats(win.latencies_ns)
                row["builtin"] = {"p50_ms": st.p50_ms, "p90_ms": st.p90_ms, "n": st.count}
            else:
                win = loadgen.window(session, prepared, window_s, min_queries)
                lg = win.details["loadgen"]
                sut = win.details["sut_percentiles_ns"]
                row["loadgen"] = {
                    "p50_ms": lg["percentiles_ns"]["50.00"] / 1e6,
                    "p90_ms": lg["percentiles_ns"]["90.00"] / 1e6,
                    "n": win.queries,
                    "result": lg.get("result"),
                    "sut_p50_ms": sut["50.00"] / 1e6,
                    "sut_p90_ms": sut["90.00"] / 1e6,
                }
        b, g = row["builtin"], row["loadgen"]
        row["ratio_p50"] = b["p50_ms"] / g["p50_ms"]
        row["ratio_p90"] = b["p90_ms"] / g["p90_ms"]
        row["clock_ratio_p50"] = g["sut_p50_ms"] / g["p50_ms"]
        row["clock_ratio_p90"] = g["sut_p90_ms"] / g["p90_ms"]
        rows.append(row)
        print(
            f"  pair {k}: builtin p50/p90 {b['p50_ms']:.3f}/{b['p90_ms']:.3f} ms, "
            f"LoadGen {g['p50_ms']:.3f}/{g['p90_ms']:.3f} ms ({g['result']}), "
            f"ratio {row['ratio_p50']:.4f}/{row['ratio_p90']:.4f}",
            file=sys.stderr,
        )
    session.close()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    return {
        "suite": suite,
        "model": model,
        "adapter": adapter,
        "threads": threads,
        "pairs": pairs,
        "window_s": window_s,
        "median_ratio_p50": med("ratio_p50"),
        "median_ratio_p90": med("ratio_p90"),
        "range_ratio_p50": [min(r["ratio_p50"] for r in rows), max(r["ratio_p50"] for r in rows)],
        "range_ratio_p90": [min(r["ratio_p90"] for r in rows), max(r["ratio_p90"] for r in rows)],
        "median_clock_ratio_p50": med("clock_ratio_p50"),
        "median_clock_ratio_p90": med("clock_ratio_p90"),
        "median_builtin_p50_ms": statistics.median(r["builtin"]["p50_ms"] for r in rows),
        "loadgen_valid": sum(r["loadgen"]["result"] == "VALID" for r in rows),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--suite", default="mobilenet_v2")
    ap.add_argument("--adapter", default="onnxruntime")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--window-s", type=float, default=4.0)
    ap.add_argument("--min-queries", type=int, default=200)
    ap.add_argument("--json", type=Path, default=None, help="Write every figure here.")
    args = ap.parse_args(argv)
    results = []
    for threads in args.threads:
        print(f"{args.suite} on {args.adapter}, {threads} thread(s):", file=sys.stderr)
        results.append(
            measure(args.suite, args.adapter, threads, args.pairs, args.window_s, args.min_queries)
        )
    print(
        "| setup | built-in p50 | median p50 ratio (range) | median p90 ratio (range) "
        "| same-query clocks p50/p90 | LoadGen VALID |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['model']} / {r['adapter']} / {r['threads']} thr | "
            f"{r['median_builtin_p50_ms']:.2f} ms | "
            f"{r['median_ratio_p50']:.4f} ({r['range_ratio_p50'][0]:.3f}–"
            f"{r['range_ratio_p50'][1]:.3f}) | "
            f"{r['median_ratio_p90']:.4f} ({r['range_ratio_p90'][0]:.3f}–"
            f"{r['range_ratio_p90'][1]:.3f}) | "
            f"{r['median_clock_ratio_p50']:.4f} / {r['median_clock_ratio_p90']:.4f} | "
            f"{r['loadgen_valid']}/{r['pairs']} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": platform.uname()._asdict(), "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
