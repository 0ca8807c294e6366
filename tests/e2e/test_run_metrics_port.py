"""`wattbench run --metrics-port P` serves the worker's live power metrics while it runs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
FAKEPLUG = Path(__file__).resolve().parents[1] / "fleet" / "fakeplug"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(wattbench_[a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_run_serves_live_metrics(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(FAKEPLUG), os.environ.get("PYTHONPATH", "")]),
    }
    # one long window on the estimated reader: seconds of run to scrape
    args = [
        "run",
        "--suite",
        "fleet-fake",
        "--power",
        "estimate",
        "--device-name",
        "bench-1",
        "--db",
        f"sqlite:///{tmp_path / 'r.db'}",
        "--duration",
        "4",
        "--repeats",
        "1",
        "--idle-s",
        "0.3",
        "--warmup",
        "0",
        "--cooldown",
        "0",
        "--metrics-port",
        str(port),
    ]
    proc = subprocess.Popen(
        [WATTBENCH, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    scrapes: list[dict[str, float]] = []
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    scrapes.append(_samples(r.read().decode()))
            except OSError:
                pass
            time.sleep(0.5)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert scrapes, "nothing scraped while the run lasted"
    last = scrapes[-1]
    assert last['wattbench_run_up{device="bench-1"}'] == 1.0
    power = 'wattbench_power_watts{device="bench-1",reader="estimate"}'
    energy = 'wattbench_energy_joules_total{device="bench-1",reader="estimate"}'
    energies = [s[energy] for s in scrapes if energy in s]
    assert len(energies) >= 2 and energies[-1] > energies[0], energies  # the counter moves
    assert last[power] > 0
