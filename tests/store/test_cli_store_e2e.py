"""End to end through the real `wattbench` command: a run recorded offline on a device
(its own SQLite) reaches the central store through `wattbench serve` exactly once across
an outage; tokens, export. Skipped until cli.py registers the store commands.

``WATTBENCH_CLI`` may name another executable to test (default: the venv's ``wattbench``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

pytestmark = pytest.mark.e2e

WATTBENCH = os.environ.get("WATTBENCH_CLI") or str(Path(sys.executable).with_name("wattbench"))


pytest.importorskip("fastapi", reason="needs the server extra")
pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
pytest.importorskip("onnx", reason="needs the models extra")

SHORT = [
    "--duration", "0.2", "--repeats", "2", "--idle-s", "0.2", "--warmup", "0.05",
    "--cooldown", "0", "--min-queries", "5", "--threads", "1", "--no-git-labels",
]  # fmt: skip


def wattbench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATTBENCH, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ}
    )


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


class Serve:
    def __init__(self, db: str, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [WATTBENCH, "serve", "--db", db, "--port", str(port), "--no-access-log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "wattbench serve exited"
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("wattbench serve did not come up")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


def test_offline_run_reaches_the_central_postgresql_once_across_an_outage(
    pg_url: str, tmp_path: Path
) -> None:
    db_url = pg_url
    device_db = f"sqlite:///{tmp_path / 'device.db'}"
    run = wattbench(
        "run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime", "--db", device_db,
        "--device-name", "edge-07", "--label", "x'); DROP TABLE runs; --", "--json", *SHORT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    run_id = json.loads(run.stdout)["run_id"]

    created = wattbench("token", "create", "--device", "edge-07", "--db", db_url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()

    port = free_port()
    down = wattbench(
        "upload", "--to", f"http://127.0.0.1:{port}", "--token", token, "--db", device_db,
        "--max-attempts", "2", "--backoff", "0.05",
    )  # fmt: skip
    line = error_line(down)
    assert "1 run(s) still pending" in line and "wattbench upload" in line

    server = Serve(db_url, port)
    try:
        up = wattbench(
            "upload", "--to", server.url, "--token", token, "--db", device_db,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        assert "1 new" in up.stderr and "0 pending" in up.stderr
        again = wattbench("upload", "--to", server.url, "--token", token, "--db", device_db)
        assert again.returncode == 0 and "0 run(s) uploaded" in again.stderr
        with urllib.request.urlopen(f"{server.url}/api/v1/leaderboard") as resp:
            rows = json.loads(resp.read())
        assert [r["run_id"] for r in rows] == [run_id]
        assert rows[0]["labels"] == ["x'); DROP TABLE runs; --"]
        # `run --upload` stores locally first, then pushes what is pending.
        second = wattbench(
            "run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime", "--db", device_db,
            "--device-name", "edge-07", "--json", "--upload", server.url, "--token", token,
            *SHORT,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr
        assert "1 new" in second.stderr
        second_id = json.loads(second.stdout)["run_id"]
    finally:
        server.kill()

    export = wattbench("export", "--db", db_url, "--format", "csv")
    assert export.returncode == 0, export.stderr
    rows = list(csv.DictReader(io.StringIO(export.stdout)))
    assert {r["run_id"] for r in rows} == {run_id, second_id}
    assert all(r["device"] == "edge-07" and r["upload_state"] == "received" for r in rows)
    bad = wattbench("export", "--db", db_url, "--format", "xml")
    assert "unknown --format" in error_line(bad)
