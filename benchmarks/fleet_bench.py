"""Fleet benchmark: what the campaign plumbing costs per cell, and status over a big campaign.

Usage::

    .venv/bin/python benchmarks/fleet_bench.py [--cells 500] [--workers 4]
        [--broker amqp://guest:guest@127.0.0.1:5672//]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--status-cells 10000]

Part 1 (scheduling): a fresh PostgreSQL store, ``--workers`` ``wattbench worker`` processes
with the no-op executor (``wattbench.fleet.executor:NoopExecutor``: every cell's "run" is
a prepared fake result, so what is timed is the plumbing: delivery, claim, store, finish,
acknowledgement) sharing one tag queue, and a campaign of ``--cells`` cells to any one of
them. Per cell, the **cycle** is the time from the previous cell's end on the same worker
to this cell's end (everything a worker spends per cell besides the benchmark itself);
median and p99 over all cells but each worker's first. Also: submit time and throughput.

Part 2 (status): a campaign of ``--status-cells`` cells over 20 devices in mixed states
(recorded directly, nothing queued), then ``wattbench campaign status``'s query
(:func:`wattbench.fleet.ledger.status`) and the dashboard's progress query, repeated:
queries per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import fresh_database

from wattbench.fleet import broker, ledger
from wattbench.fleet.spec import parse_campaign
from wattbench.results_db.schema import CampaignCell, FleetDevice, Run
from wattbench.results_db.store import Store

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def scheduling(broker_url: str, db: str, cells: int, workers: int) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    store = Store.open(db)
    engine = store.engine
    procs: list[subprocess.Popen[bytes]] = []
    logs = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    devices = [f"bench-{i}" for i in range(workers)]
    try:
        for d in devices:
            with (logs / f"{d}.log").open("wb") as fh:
                procs.append(
                    subprocess.Popen(
                        [
                            WATTBENCH, "worker", "--device", d, "--tag", "bench",
                            "--broker", broker_url, "--db", db, "--queue-prefix", prefix,
                            "--no-scan-adapters", "--loglevel", "WARNING",
                            "--executor", "wattbench.fleet.executor:NoopExecutor",
                        ],
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if len(conn.scalars(select(FleetDevice.name)).all()) == workers:
                    break
            time.sleep(0.2)
        time.sleep(3.0)  # the workers' consumers attach after they register
        spec = parse_campaign(
            f'name = "bench"\n[matrix]\nseed = {list(range(cells))}\n'
            '[run]\nsuite = "fake"\nadapter = "noop"\n'
            '[target]\ntags = ["bench"]\neach_device = false\n',
            Path("bench.toml"),
        )
        t0 = time.perf_counter()
        sub = ledger.create_campaign(engine, spec, prefix)
        broker.publish_cells(broker_url, prefix, sub.messages)
        submit_s = time.perf_counter() - t0
        while True:
            st = ledger.status(engine, sub.campaign_id)["overall"]
            if st["done"] + st["failed"] + st["skipped"] == cells:
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"a worker died; logs in {logs}")
            time.sleep(0.2)
        wall_s = time.perf_counter() - t0
        with engine.connect() as conn:
            rows = conn.execute(
                select(CampaignCell.device, CampaignCell.started_at, CampaignCell.finished_at)
                .where(CampaignCell.campaign_id == sub.campaign_id)
                .order_by(CampaignCell.device, CampaignCell.finished_at)
            ).all()
            stored = len(conn.scalars(select(Run.uuid)).all())
        assert st["done"] == cells and stored == cells, (st, stored)
        cycles: list[float] = []
        inside: list[float] = []
        per: dict[str, int] = {}
        prev: dict[str, object] = {}
        for device, started, finished in rows:
            per[device] = per.get(device, 0) + 1
            inside.append((finished - started).total_seconds() * 1e3)
            if device in prev:
                cycles.append((finished - prev[device]).total_seconds() * 1e3)  # type: ignore[operator]
            prev[device] = finished
        return {
            "cells": cells,
            "workers": workers,
            "submit_s": round(submit_s, 3),
            "wall_s": round(wall_s, 2),
            "cells_per_s": round(cells / wall_s, 1),
            "cycle_ms_median": round(statistics.median(cycles), 1),
            "cycle_ms_p90": round(_pct(cycles, 90), 1),
            "cycle_ms_p99": round(_pct(cycles, 99), 1),
            "cycles_over_500ms": sum(c > 500 for c in cycles),
            "claim_to_finish_ms_median": round(statistics.median(inside), 1),
            "claim_to_finish_ms_p99": round(_pct(inside, 99), 1),
            "cells_per_worker_min": min(per.values()),
            "cells_per_worker_max": max(per.values()),
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        queues = {q for d in devices for q in broker.worker_queues(prefix, d, ["bench"])}
        broker.delete_queues(broker_url, prefix, sorted(queues))
        store.close()


def status_throughput(db: str, cells: int, repeats: int = 50) -> dict[str, float]:
    from wattbench.dashboard.queries import campaigns as dq
    from wattbench.results_db.readonly import open_readonly

    store = Store.open(db)
    engine = store.engine
    devices = [f"st-{i:02d}" for i in range(20)]
    for d in devices:
        ledger.register_device(engine, d, [], hostname=None, adapters=None, metrics_port=None)
    per_device = cells // len(devices)
    spec = parse_campaign(
        f'name = "status"\n[matrix]\nseed = {list(range(per_device))}\n'
        f'[run]\nsuite = "fake"\nadapter = "noop"\n[target]\ndevices = {json.dumps(devices)}\n',
        Path("status.toml"),
    )
    t0 = time.perf_counter()
    sub = ledger.create_campaign(engine, spec, "status")
    create_s = time.perf_counter() - t0
    rng = random.Random(1)
    ids = [m[0] for m in sub.messages]
    rng.shuffle(ids)
    states = ["done"] * 6 + ["failed", "skipped", "running", "pending"]
    with engine.begin() as conn:
        for i, status in enumerate(states):
            chunk = ids[i * len(ids) // len(states) : (i + 1) * len(ids) // len(states)]
            conn.execute(
                update(CampaignCell)
                .where(CampaignCell.id.in_(chunk))
                .values(status=status, reason="x" if status == "failed" else None)
            )
    t0 = time.perf_counter()
    for _ in range(repeats):
        ledger.status(engine, sub.campaign_id)
    cli_s = (time.perf_counter() - t0) / repeats
    db_ro = open_readonly(db)
    try:
        t0 = time.perf_counter()
        for _ in range(repeats):
            dq.progress(db_ro, sub.campaign_id)
        page_s = (time.perf_counter() - t0) / repeats
    finally:
        db_ro.close()
    store.close()
    return {
        "cells": len(ids),
        "create_s": round(create_s, 2),
        "status_ms": round(cli_s * 1e3, 1),
        "status_per_s": round(1 / cli_s, 1),
        "dashboard_progress_ms": round(page_s * 1e3, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=500)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--status-cells", type=int, default=10_000)
    ap.add_argument(
        "--broker",
        default=os.environ.get("WATTBENCH_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    )
    ap.add_argument(
        "--pg-url",
        default=os.environ.get(
            "WATTBENCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--json", type=Path, help="Also write the figures here.")
    args = ap.parse_args()
    out: dict[str, object] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    with fresh_database("postgresql", args.pg_url) as db:
        out["scheduling"] = scheduling(args.broker, db, args.cells, args.workers)
    with fresh_database("postgresql", args.pg_url) as db:
        out["status"] = status_throughput(db, args.status_cells)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
