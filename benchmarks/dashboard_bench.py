"""Dashboard benchmark: first render of the leaderboard over a big database.

Usage::

    .venv/bin/python benchmarks/dashboard_bench.py [--runs 100000] [--dbs sqlite,postgresql]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Fills a fresh database with ``--runs`` synthetic runs (SQLAlchemy core executemany, 200
devices, 5 % invalid, 30 % estimated) in two layouts: **spread** (10 suite versions x 2
scenarios, like benchmarks/store_bench.py: the default group holds ~7 % of the runs) and
**one group** (every run in one suite version and scenario: the worst case, the database
groups all of them). Then, in a fresh Python process each time (cold caches, as after
``wattbench dashboard`` starts), it times the leaderboard page through Streamlit's AppTest
(script run to the last element, the table included) and, in the same process, a second
render (warm ``st.cache_data``). Median of 3 cold processes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import fresh_database

from wattbench.results_db.schema import Device, Environment, ModelArtifactRow, Run, SuiteRow
from wattbench.results_db.store import Store

BATCH = 10_000
HW = ["Synthetic accelerator A", "Synthetic accelerator B", "Synthetic accelerator C", None, None]
RUNTIMES = [("onnxruntime", "1.20.1"), ("openvino", "2024.5.0"), ("litert", "1.0.1")]


def fill(url: str, n: int, one_group: bool, seed: int = 1) -> float:
    rng = random.Random(seed)
    store = Store.open(url)
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    suites = (
        [("mobilenet_v2", "1.0")]
        if one_group
        else [(f"suite{i}", v) for i in range(5) for v in ("1.0", "1.1")]
    )
    scenarios = ["single-stream"] if one_group else ["single-stream", "offline"]
    with store.engine.begin() as conn:
        conn.execute(
            insert(Device),
            [
                {
                    "name": f"dev-{i:03d}",
                    "cpu_model": f"cpu-{i % 7}",
                    "accelerator": HW[i % len(HW)],
                    "purchase_price": 100.0 + i,
                    "created_at": now,
                }
                for i in range(200)
            ],
        )
        conn.execute(
            insert(Environment),
            [{"fingerprint_sha256": f"{i:064x}", "data": {}} for i in range(50)],
        )
        conn.execute(insert(SuiteRow), [{"name": s, "version": v} for s, v in suites])
        conn.execute(
            insert(ModelArtifactRow),
            [
                {
                    "sha256": f"{i:064x}",
                    "name": f"model-{i % 3}",
                    "format": "onnx",
                    "precision": p,
                    "weights": "random(seed=0)",
                }
                for i, p in enumerate(["fp32", "fp16", "int8"])
            ],
        )
    t0 = time.perf_counter()
    done = 0
    while done < n:
        rows = []
        for _ in range(min(BATCH, n - done)):
            ipj = rng.lognormvariate(4.0, 1.0)
            lat = rng.uniform(1, 50)
            adapter, version = RUNTIMES[rng.randrange(3)]
            prec = rng.randrange(3)
            rows.append(
                {
                    "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "device_id": rng.randint(1, 200),
                    "environment_id": rng.randint(1, 50),
                    "suite_id": rng.randint(1, len(suites)),
                    "model_artifact_id": prec + 1,
                    "scenario": scenarios[rng.randrange(len(scenarios))],
                    "adapter": adapter,
                    "runtime_version": version,
                    "execution_provider": "CPUExecutionProvider",
                    "device_target": "cpu",
                    "precision": ["fp32", "fp16", "int8"][prec],
                    "batch": 1,
                    "threads": rng.choice([1, 2, 4]),
                    "config": {},
                    "adapter_description": {},
                    "inputs": "synthetic",
                    "labels": ["bench", f"git:{rng.getrandbits(28):07x}"],
                    "valid": rng.random() >= 0.05,
                    "invalid_reasons": [],
                    "warnings": [],
                    "quality": {"passed": True, "kind": "sanity"},
                    "started_at": now - timedelta(minutes=done),
                    "finished_at": now - timedelta(minutes=done) + timedelta(seconds=30),
                    "created_at": now,
                    "load_ms": 12.0,
                    "first_inference_ms": 3.0,
                    "preprocess_ms_mean": 0.1,
                    "inferences": 3000,
                    "throughput_ips": 1000 / lat,
                    "latency_mean_ms": lat,
                    "latency_p50_ms": lat,
                    "latency_p90_ms": lat * 1.1,
                    "latency_p95_ms": lat * 1.2,
                    "latency_p99_ms": lat * 1.5,
                    "latency_p999_ms": lat * 2,
                    "latency_cv": 0.05,
                    "inferences_per_joule": ipj,
                    "joules_per_inference": 1 / ipj,
                    "energy_method": "estimated" if rng.random() < 0.3 else "counter",
                    "energy_scope": "chip",
                    "energy_uncertainty_j": 1.0,
                    "upload_state": "received",
                    "upload_attempts": 0,
                }
            )
            done += 1
        with store.engine.begin() as conn:
            conn.execute(insert(Run), rows)
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.commit()
    store.close()
    return time.perf_counter() - t0


_PROBE = r"""
import json, os, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest

def script():
    from wattbench.dashboard.app import render_page
    render_page("leaderboard")

at = AppTest.from_function(script, default_timeout=120)
t1 = time.perf_counter()
at.run()
t2 = time.perf_counter()
assert not at.exception and not at.error, (at.exception, at.error)
rows = len(at.dataframe[0].value)
sb = at.sidebar.selectbox[0]
caption = at.caption[0].value + " | " + sb.options[sb.index]
at.run()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "cold_s": t2 - t1, "warm_s": t3 - t2, "rows": rows,
                  "caption": caption}))
"""


def probe(url: str) -> dict[str, object]:
    env = {**os.environ, "WATTBENCH_DASHBOARD_DB": url}
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "probe.py"  # AppTest.from_function needs the source in a file
        script.write_text(_PROBE)
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"probe failed: {out.stderr[-3000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--dbs", default="sqlite,postgresql")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} logical CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    print(
        "| database | layout | runs | runs in the shown group | rows shown | first render "
        "(cold, median) | re-render (cached) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind in args.dbs.split(","):
        for one_group in (False, True):
            with fresh_database(kind, args.pg_url) as url:
                fill_s = fill(url, args.runs, one_group)
                results = [probe(url) for _ in range(args.reps)]
                cold = statistics.median(float(r["cold_s"]) for r in results)  # type: ignore[arg-type]
                warm = statistics.median(float(r["warm_s"]) for r in results)  # type: ignore[arg-type]
                caption, group = str(results[0]["caption"]).split(" | ")
                in_group = group.rsplit("(", 1)[-1].split(" ")[0]
                layout = "one group" if one_group else "spread (10 suites x 2 scenarios)"
                print(
                    f"| {kind} | {layout} | {args.runs:,} | {int(in_group):,} valid | "
                    f"{results[0]['rows']} ({caption.split(' · ')[0]}) | "
                    f"{cold:.2f} s | {warm:.2f} s |",
                    flush=True,
                )
                print(
                    f"  (bulk insert {fill_s:.0f} s; import streamlit "
                    f"{statistics.median(float(r['import_s']) for r in results):.2f} s)",  # type: ignore[arg-type]
                    file=sys.stderr,
                )


if __name__ == "__main__":
    main()
