"""Results-store benchmark: leaderboard over many runs, ingest throughput; printed as markdown.

Usage::

    .venv/bin/python benchmarks/store_bench.py [--runs 1000000] [--dbs sqlite,postgresql]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--ingest-runs 3000] [--clients 50] [--client-procs 5] [--workers 1,2]
        [--batch-sizes 1,100] [--batch-runs 20000] [--payloads fake,realistic]
        [--skip-leaderboard] [--skip-ingest]

Part 1 fills a fresh database (a temporary SQLite file; a temporary PostgreSQL
database on the server of ``--pg-url``, dropped afterwards) with ``--runs``
synthetic runs (SQLAlchemy core executemany, 10 suites x versions, 2 scenarios,
200 devices, 5 % without energy, 5 % invalid, 30 % estimated), ANALYZEs it and
times :meth:`Store.leaderboard` as the CLI and the API call it: median of 5
after one warm-up, including building the result rows.

Part 2 starts the ingest server (``wattbench serve``'s code, ``--workers`` uvicorn
processes, no access log) on loopback in front of a fresh database and lets ``--clients``
concurrent clients (``--client-procs`` processes x threads, one kept-alive
connection each, pre-serialised bodies with fresh uuids) POST runs: one per request
(``POST /api/v1/runs``, ``--batch-sizes 1``) or N per request (a JSON array to
``POST /api/v1/runs/batch``, ``--batch-sizes N``: a device sending its spool); runs/s is
runs acknowledged as created / wall time from the common start to the last answer.
Two payloads: the fake run of the tests (2 trials, ~5 KB) and a realistic one
(3 trials with 2000-point power traces, ~82 KB); ``--payloads`` picks.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from wattbench.results_db.schema import Device, Environment, ModelArtifactRow, Run, SuiteRow
from wattbench.results_db.store import Store

DEFAULT_BATCH_BYTES = 4 * 1024 * 1024  # as the uploader (not imported: older checkouts lack it)

SUITES = [(f"suite{i}", v) for i in range(5) for v in ("1.0", "1.1")]
SCENARIOS = ("single-stream", "offline")
BATCH = 10_000


# -- databases -------------------------------------------------------------------------------
@contextmanager
def fresh_database(kind: str, pg_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            yield f"sqlite:///{Path(d) / 'bench.db'}"
        return
    import psycopg

    url = make_url(pg_url)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"wb_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- part 1: leaderboard ---------------------------------------------------------------------
def fill_synthetic(store: Store, n: int, seed: int = 1) -> float:
    rng = random.Random(seed)
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(
            insert(Device),
            [
                {"name": f"dev-{i:03d}", "cpu_model": f"cpu-{i % 7}", "created_at": now}
                for i in range(200)
            ],
        )
        conn.execute(
            insert(Environment),
            [{"fingerprint_sha256": f"{i:064x}", "data": {"i": i}} for i in range(50)],
        )
        conn.execute(insert(SuiteRow), [{"name": s, "version": v} for s, v in SUITES])
        conn.execute(
            insert(ModelArtifactRow),
            [
                {
                    "sha256": f"{i:064x}",
                    "name": f"model-{i}",
                    "format": "onnx",
                    "precision": "fp32",
                    "weights": "random(seed=0)",
                }
                for i in range(100)
            ],
        )
    t0 = time.perf_counter()
    config = {"suite": "x", "adapter": "onnxruntime"}
    adapter = {"adapter": "onnxruntime", "runtime": "onnxruntime"}
    quality = {"passed": True, "kind": "sanity"}
    done = 0
    while done < n:
        rows = []
        for _ in range(min(BATCH, n - done)):
            has_energy = rng.random() >= 0.05
            ipj = rng.lognormvariate(4.0, 1.0) if has_energy else None
            lat = rng.uniform(1, 50)
            rows.append(
                {
                    "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "device_id": rng.randint(1, 200),
                    "environment_id": rng.randint(1, 50),
                    "suite_id": rng.randint(1, len(SUITES)),
                    "model_artifact_id": rng.randint(1, 100),
                    "scenario": SCENARIOS[rng.random() < 0.3],
                    "adapter": "onnxruntime",
                    "runtime_version": "1.20.0",
                    "execution_provider": "CPUExecutionProvider",
                    "device_target": "cpu",
                    "precision": "fp32",
                    "batch": 1,
                    "threads": 4,
                    "config": config,
                    "adapter_description": adapter,
                    "inputs": "synthetic",
                    "labels": ["bench", f"git:{rng.getrandbits(28):07x}"],
                    "valid": rng.random() >= 0.05,
                    "invalid_reasons": [],
                    "warnings": [],
                    "quality": quality,
                    "started_at": now - timedelta(seconds=done),
                    "finished_at": now - timedelta(seconds=done) + timedelta(seconds=30),
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
                    "joules_per_inference": 1 / ipj if ipj else None,
                    "energy_method": "estimated" if rng.random() < 0.3 else "counter",
                    "energy_scope": "package",
                    "energy_uncertainty_j": 1.0,
                    "upload_state": "received",
                    "upload_attempts": 0,
                }
            )
            done += 1
        with store.engine.begin() as conn:
            conn.execute(insert(Run), rows)
        print(f"  {store.engine.dialect.name}: {done}/{n} runs", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t0
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.commit()
    return elapsed


def timed(fn: Callable[[], Any], reps: int = 5) -> tuple[float, int]:
    rows = fn()  # warm-up (page cache, plan cache)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(rows)


def leaderboard_queries(store: Store) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("`leaderboard --suite suite0 --limit 10`",
         lambda: store.leaderboard("suite0", limit=10)),
        ("`leaderboard --limit 10` (all 10 suite versions x 2 scenarios)",
         lambda: store.leaderboard(limit=10)),
        ("API default: `GET /api/v1/leaderboard` (top 100 per group)",
         lambda: store.leaderboard(limit=100)),
        ("`--suite suite0 --limit 100 --include-invalid --hide-estimated`",
         lambda: store.leaderboard(
             "suite0", limit=100, include_invalid=True, hide_estimated=True)),
        ("full ranking of one suite, no limit (reference)",
         lambda: store.leaderboard("suite0")),
    ]  # fmt: skip


def bench_leaderboard(kinds: list[str], n: int, pg_url: str) -> list[str]:
    out = [
        f"### Leaderboard over {n:,} runs",
        "",
        "| database | query | rows returned | median time |",
        "|---|---|---:|---:|",
    ]
    for kind in kinds:
        with fresh_database(kind, pg_url) as url:
            store = Store.open(url)
            fill_s = fill_synthetic(store, n)
            out_rows = leaderboard_queries(store)
            for label, fn in out_rows:
                reps = 1 if "no limit" in label else 5
                t, count = timed(fn, reps)
                out.append(f"| {kind} | {label} | {count:,} | {t * 1000:.1f} ms |")
            out.append(f"| {kind} | (bulk insert of the {n:,} runs) | | {fill_s:.0f} s |")
            store.close()
    return out


# -- part 2: ingest --------------------------------------------------------------------------
PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def payloads() -> dict[str, bytes]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))
    from test_store import make_result

    with tempfile.TemporaryDirectory() as d:
        small = make_result(Path(d)).model_copy(update={"run_id": PLACEHOLDER})
    trials = []
    for k in range(3):
        t = small.trials[k % len(small.trials)]
        trace = [(i * 0.005, 5.0 + (i % 13) * 0.1) for i in range(2000)]
        e = t.energy[0].model_copy(update={"trace": trace})
        trials.append(t.model_copy(update={"index": k, "energy": [e]}))
    # consistent figures (the ingest API checks them): totals of the three trials
    from wattbench.harness.protocol import summarize_energy

    inferences = sum(t.inferences for t in trials)
    real = small.model_copy(
        update={
            "trials": trials,
            "inferences": inferences,
            "throughput_ips": inferences / sum(t.duration_s for t in trials),
            "energy": [summarize_energy([t.energy[0] for t in trials], inferences)],
        }
    )
    return {
        "fake run (2 trials, 11-point traces)": small.model_dump_json().encode(),
        "realistic run (3 trials x 2000-point trace)": real.model_dump_json().encode(),
    }


def _fresh(body: bytes) -> bytes:
    return body.replace(PLACEHOLDER.encode(), str(uuid.uuid4()).encode(), 1)


def _client_proc(
    port: int, token: str, body: bytes, quotas: list[int], batch: int, start_at: float, q: Any
) -> None:
    """Threads POSTing ``quota`` runs each: one per request (``batch`` 1, ``POST
    /api/v1/runs``) or ``batch`` per request (a JSON array, ``POST /api/v1/runs/batch``)."""
    results: list[tuple[int, int, float]] = []
    lock = threading.Lock()

    def client(quota: int) -> None:
        ok = bad = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        path = "/api/v1/runs" if batch == 1 else "/api/v1/runs/batch"
        while time.time() < start_at:
            time.sleep(0.001)
        while quota > 0:
            n = min(batch, quota)
            quota -= n
            if batch == 1:
                data = _fresh(body)
            else:
                data = b"[" + b",".join(_fresh(body) for _ in range(n)) + b"]"
            try:
                conn.request("POST", path, body=data, headers=headers)
                resp = conn.getresponse()
                answer = resp.read()
                if batch == 1:
                    created = int(resp.status == 201)
                else:
                    created = json.loads(answer)["created"] if resp.status == 200 else 0
                ok += created
                bad += n - created
            except (OSError, http.client.HTTPException):
                bad += n
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        with lock:
            results.append((ok, bad, time.time()))

    threads = [threading.Thread(target=client, args=(n,)) for n in quotas]
    for t in threads:
        t.start()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0 = _self_cpu_s()
    for t in threads:
        t.join()
    q.put((results, _self_cpu_s() - cpu0))


def _self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children (uvicorn workers)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _postgres_cpu_s() -> float:
    """CPU seconds of the PostgreSQL processes: the live ones, plus the backends that have
    exited (their time is in the postmaster's children times once it reaped them)."""
    total = 0.0
    for p in psutil.process_iter(["name", "ppid"]):
        if (p.info.get("name") or "").startswith("postgres"):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                t = p.cpu_times()
                total += t.user + t.system
                parent = psutil.Process(p.info["ppid"]).name() if p.info["ppid"] else ""
                if not parent.startswith("postgres"):  # the postmaster
                    total += t.children_user + t.children_system
    return total


def bench_ingest(
    kinds: list[str],
    pg_url: str,
    total: int,
    clients: int,
    procs: int,
    worker_counts: list[int],
    batches: list[int] | None = None,
    batch_total: int = 20_000,
    which: str = "fake,realistic",
) -> list[str]:
    out = [
        f"### Ingest: {clients} concurrent clients on loopback",
        "",
        "| central database | server processes | payload | body size | runs per request "
        "| runs | runs/s | errors | CPU ms per run: server / PostgreSQL / clients |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    wanted = [w.strip() for w in which.split(",") if w.strip()]
    cases = [
        (label, body, batch)
        for label, body in payloads().items()
        if any(label.startswith(w) for w in wanted)
        for batch in batches or [1]
    ]
    for label, body, batch in cases:
        n = total if "fake" in label else max(total // 3, clients)
        if batch > 1:
            # as the uploader: at most DEFAULT_BATCH_BYTES (4 MiB) per request
            batch = max(2, min(batch, DEFAULT_BATCH_BYTES // (len(body) + 1)))
            n = batch_total if "fake" in label else max(batch_total // 10, clients * batch)
        for kind, workers in ((k, w) for k in kinds for w in worker_counts):
            with fresh_database(kind, pg_url) as url:
                from wattbench.results_db.tokens import create_token

                store = Store.open(url)
                token = create_token(store, "bench-01")
                port = _free_port()
                code = (
                    "import sys\n"
                    "from wattbench.results_db.server import run_server\n"
                    "from wattbench.results_db.store import Store\n"
                    "run_server(Store.open(sys.argv[1]), '127.0.0.1', int(sys.argv[2]),"
                    " access_log=False, workers=int(sys.argv[3]))\n"
                )
                server = subprocess.Popen(
                    [sys.executable, "-c", code, url, str(port), str(workers)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    _wait(port)
                    per_client = [n // clients + (i < n % clients) for i in range(clients)]
                    groups = [per_client[i::procs] for i in range(procs)]
                    ctx = mp.get_context("fork")
                    q = ctx.Queue()
                    start_at = time.time() + 1.0
                    ps = [
                        ctx.Process(
                            target=_client_proc, args=(port, token, body, g, batch, start_at, q)
                        )
                        for g in groups
                    ]
                    for p in ps:
                        p.start()
                    time.sleep(max(start_at - time.time(), 0))
                    server_cpu0, pg_cpu0 = _tree_cpu_s(server.pid), _postgres_cpu_s()
                    answers = [q.get() for _ in ps]
                    server_cpu = _tree_cpu_s(server.pid) - server_cpu0
                    pg_cpu = _postgres_cpu_s() - pg_cpu0 if kind == "postgresql" else 0.0
                    client_cpu = sum(a[1] for a in answers)
                    results = [r for a in answers for r in a[0]]
                    for p in ps:
                        p.join()
                    ok = sum(r[0] for r in results)
                    bad = sum(r[1] for r in results)
                    wall = max(r[2] for r in results) - start_at
                    stored = store.count_runs()
                    assert stored == ok, (stored, ok)
                finally:
                    server.terminate()
                    server.wait(timeout=30)
                    store.close()
            per_run = [f"{c / max(ok, 1) * 1000:.1f}" for c in (server_cpu, pg_cpu, client_cpu)]
            out.append(
                f"| {kind} | {workers} | {label} | {len(body) / 1024:.0f} KiB | {batch} | "
                f"{ok:,} | {ok / wall:.0f} | {bad} | {' / '.join(per_run)} |"
            )
            print(out[-1], file=sys.stderr, flush=True)
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


# -- main ------------------------------------------------------------------------------------
def machine(pg_url: str, kinds: list[str]) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; RAM {mem:.0f} GiB; "
        f"load average at start {os.getloadavg()[0]:.1f}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
    ]
    if "postgresql" in kinds:
        import psycopg

        admin = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(admin) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        lines.append(f"- PostgreSQL {row[0] if row else '?'} on the same machine (defaults)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--dbs", default="sqlite,postgresql")
    ap.add_argument(
        "--pg-url",
        default=os.environ.get(
            "WATTBENCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--ingest-runs", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--client-procs", type=int, default=5)
    ap.add_argument("--workers", default="1,2", help="Server process counts to try.")
    ap.add_argument(
        "--batch-sizes",
        default="1,100",
        help="Runs per request: 1 = POST /api/v1/runs, more = POST /api/v1/runs/batch.",
    )
    ap.add_argument(
        "--batch-runs", type=int, default=20_000, help="Fake runs sent in the batched cases."
    )
    ap.add_argument("--payloads", default="fake,realistic", help="fake, realistic or both.")
    ap.add_argument("--skip-leaderboard", action="store_true")
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.dbs.split(",") if k.strip()]
    lines = ["## Results store benchmark", "", *machine(args.pg_url, kinds), ""]
    if not args.skip_leaderboard:
        lines += [*bench_leaderboard(kinds, args.runs, args.pg_url), ""]
    if not args.skip_ingest:
        workers = [int(w) for w in args.workers.split(",")]
        batches = [int(b) for b in args.batch_sizes.split(",")]
        lines += bench_ingest(
            kinds,
            args.pg_url,
            args.ingest_runs,
            args.clients,
            args.client_procs,
            workers,
            batches,
            args.batch_runs,
            args.payloads,
        )
    lines.append("")
    lines.append(f"- load average at the end {os.getloadavg()[0]:.1f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
