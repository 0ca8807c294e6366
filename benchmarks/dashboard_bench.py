"""Dashboard benchmark: first render of the leaderboard over a big database.

Usage::

    .venv/bin/python benchmarks/dashboard_bench.py [--runs 100000] [--dbs sqlite,postgresql]
        [--layouts spread,one] [--probes browser,apptest] [--reps 3] [--baseline DIR]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Fills a fresh database with ``--runs`` synthetic runs (SQLAlchemy core executemany, 200
devices, 5 % invalid, 30 % estimated) in two layouts: **spread** (10 suite versions x 2
scenarios, like benchmarks/store_bench.py: the default group holds ~7 % of the runs) and
**one group** (every run in one suite version and scenario: the worst case, ~95 k valid
runs in the group the page opens on). The runs are written in bulk, past the store's
``save_run``, so the per-configuration summaries are then rebuilt from them
(:func:`wattbench.results_db.summaries.rebuild`, what migration 0007 does), as
``save_run`` would have kept them.

Two probes, each ``--reps`` times on a cold server:

* **browser**: ``wattbench dashboard`` in a fresh process (cold caches, as right after it
  starts), the page loaded in headless Chromium (``/usr/bin/chromium`` via Playwright,
  the flags of tests/dashboard/test_dashboard_browser.py): from ``page.goto`` to the
  leaderboard's grid cells and its *Download CSV* button (the last element) being drawn;
  then a second tab (warm ``st.cache_data``).
* **apptest**: the leaderboard page through Streamlit's AppTest in a fresh Python process
  (the figure this benchmark reported before the browser probe existed): the script run
  to its last element, then a second run.

``--baseline DIR`` measures another checkout too (``git worktree add DIR <commit>``: the
code before a change), on its own database filled by its own code with the same runs,
its probes taking turns with this checkout's so that both see the same load on a shared
machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import fresh_database

from wattbench.results_db import summaries
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
    with store.engine.begin() as conn:  # what save_run keeps, run by run
        summaries.rebuild(conn)
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


def probe(url: str, extra_env: dict[str, str] | None = None) -> dict[str, object]:
    """The AppTest probe in a fresh Python process."""
    env = {**os.environ, **(extra_env or {}), "WATTBENCH_DASHBOARD_DB": url}
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "probe.py"  # AppTest.from_function needs the source in a file
        script.write_text(_PROBE)
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"probe failed: {out.stderr[-3000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


CHROMIUM = os.environ.get("WATTBENCH_CHROMIUM", "/usr/bin/chromium")
#: as tests/dashboard/test_dashboard_browser.py launches it
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def dashboard_server(url: str, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """``wattbench dashboard`` on ``url`` in a fresh process; yields its base URL once its
    health check answers (before any page has been drawn: caches cold)."""
    exe = Path(sys.executable).with_name("wattbench")
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [str(exe), "dashboard", "--db", url, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={
                **os.environ,
                **(extra_env or {}),
                "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            },
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"dashboard exited: {log.read()[-2000:]!r}")
                try:
                    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("dashboard did not answer within 120 s")
                time.sleep(0.1)
            yield base
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)


def _load(browser: Any, base: str) -> tuple[float, str]:
    """Seconds from navigation to the leaderboard drawn (grid cells and its last element);
    and the table's caption."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    try:
        t0 = time.perf_counter()
        page.goto(base, wait_until="commit")
        page.get_by_role("heading", name="Leaderboard").wait_for(timeout=180_000)
        page.locator('[data-testid="stDataFrame"] [role="gridcell"]').first.wait_for(
            state="attached", timeout=180_000
        )
        page.get_by_role("button", name="Download CSV").wait_for(timeout=180_000)
        elapsed = time.perf_counter() - t0
        caption = page.get_by_text(" with ≈ ESTIMATED energy").first.inner_text()
    finally:
        page.close()
    return elapsed, caption


def browser_probe(url: str, extra_env: dict[str, str] | None = None) -> dict[str, object]:
    """One cold server: the first load, then a second one (warm caches)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            t0 = time.perf_counter()
            with dashboard_server(url, extra_env) as base:
                start = time.perf_counter() - t0
                load0 = os.getloadavg()[0]
                cold, caption = _load(browser, base)
                warm, _ = _load(browser, base)
        finally:
            browser.close()
    return {"cold_s": cold, "warm_s": warm, "caption": caption, "load": load0, "start_s": start}


def _median(results: list[dict[str, object]], key: str) -> float:
    return statistics.median(float(r[key]) for r in results)  # type: ignore[arg-type]


def _all(results: list[dict[str, object]], key: str) -> str:
    return ", ".join(f"{float(r[key]):.2f}" for r in results)  # type: ignore[arg-type]


#: The top-level folders that install as ``wattbench.<folder>`` (pyproject's package-dir).
PARTS = ("core", "adapters", "suites", "power", "harness", "results_db", "analysis", "dashboard")
PARTS_MAYBE = ("tuners", "fleet")


def baseline_env(checkout: Path, tmp: Path) -> dict[str, str]:
    """``PYTHONPATH`` that makes ``wattbench`` the code of another checkout (e.g. ``git
    worktree add /tmp/old HEAD~1``): a ``wattbench`` folder of symlinks to its parts, found
    before this venv's editable install. Its database schema is its own (filled by its
    own ``fill``)."""
    pkg = tmp / "wattbench"
    pkg.mkdir()
    for part in (*PARTS, *PARTS_MAYBE):
        if (checkout / part).is_dir():
            (pkg / part).symlink_to(checkout / part)
    return {"PYTHONPATH": str(tmp)}


def fill_with(checkout: Path, env: dict[str, str], url: str, n: int, one_group: bool) -> None:
    """Fill ``url`` with the other checkout's code (the same runs: the same seeded
    generator), in a subprocess."""
    code = (
        f"import sys; sys.path.insert(0, {str(checkout / 'benchmarks')!r}); "
        f"from dashboard_bench import fill; fill({url!r}, {n}, {one_group})"
    )
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--dbs", default="sqlite,postgresql")
    ap.add_argument("--layouts", default="spread,one")
    ap.add_argument("--probes", default="browser,apptest")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (the code before a change): its figures are measured too, "
        "its probes taking turns with this checkout's, so both see the same machine load",
    )
    args = ap.parse_args()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} logical CPUs, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        file=sys.stderr,
    )
    print(
        "| database | layout | valid runs in the shown group | rows shown | code | probe | "
        "first render (cold, median) | all | re-render (cached) | load average |"
    )
    print("|---|---|---:|---:|---|---|---:|---|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        codes: dict[str, dict[str, str] | None] = {"this checkout": None}
        if args.baseline:
            codes["baseline"] = baseline_env(args.baseline.resolve(), Path(tmp))
        for kind in args.dbs.split(","):
            for layout in args.layouts.split(","):
                one_group = layout == "one"
                with contextlib.ExitStack() as stack:
                    urls: dict[str, str] = {}
                    for name, env in codes.items():
                        urls[name] = stack.enter_context(fresh_database(kind, args.pg_url))
                        t0 = time.perf_counter()
                        if env is None:
                            fill(urls[name], args.runs, one_group)
                        else:
                            assert args.baseline is not None
                            fill_with(args.baseline, env, urls[name], args.runs, one_group)
                        print(
                            f"  ({kind} {layout}, {name}: filled in "
                            f"{time.perf_counter() - t0:.0f} s)",
                            file=sys.stderr,
                        )
                    for probe_kind in args.probes.split(","):
                        fn = browser_probe if probe_kind == "browser" else probe
                        results: dict[str, list[dict[str, object]]] = {n: [] for n in codes}
                        loads: dict[str, list[float]] = {n: [] for n in codes}
                        for _ in range(args.reps):  # the codes take turns
                            for name, env in codes.items():
                                loads[name].append(os.getloadavg()[0])
                                results[name].append(fn(urls[name], env))
                                loads[name].append(os.getloadavg()[0])
                        for name in codes:
                            _report(kind, layout, name, probe_kind, urls[name], results[name])
                            print(f"{min(loads[name]):.1f}–{max(loads[name]):.1f} |", flush=True)


def _report(
    kind: str, layout: str, code: str, probe_kind: str, url: str, results: list[dict[str, object]]
) -> None:
    if probe_kind == "browser":
        print(
            f"  ({kind} {layout}, {code}: server start to health check "
            f"{_all(results, 'start_s')} s)",
            file=sys.stderr,
        )
    caption = str(results[0]["caption"])
    shown = caption.split(" · ")[0]
    name = "one group" if layout == "one" else "spread (10 suites x 2 scenarios)"
    print(
        f"| {kind} | {name} | {_group_size(url):,} | {shown} | {code} | {probe_kind} | "
        f"**{_median(results, 'cold_s'):.2f} s** | {_all(results, 'cold_s')} | "
        f"{_median(results, 'warm_s'):.2f} s | ",
        end="",
    )


def _group_size(url: str) -> int:
    """Valid runs in the group the page opens on (the largest); any schema revision."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.execute(
                text(
                    "SELECT count(*) AS n FROM runs WHERE valid GROUP BY suite_id, scenario "
                    "ORDER BY n DESC LIMIT 1"
                )
            ).scalar()
    finally:
        engine.dispose()
    return int(n or 0)


if __name__ == "__main__":
    main()
