"""End-to-end: `wattbench gate` as a subprocess on two real ONNX Runtime runs.

The candidate is made slower on purpose: a ``sitecustomize`` on its PYTHONPATH
wraps ``OnnxRuntimeSession.run`` with a 50 ms sleep, inside the timed region.
That is about 6x a MobileNetV2 inference on one thread here, and a sleep cannot
be sped up, so the direction of the difference survives a noisy shared machine
(threads 1 vs 2 would not: under contention 2 threads can be the slower).

Noise can still make a side unstable, so exit codes are asserted as sets (a slower
candidate: regression or inconclusive, never a pass); what must hold exactly is
direction (the slow side is never reported as the faster one) and that the same
runs give the same verdict lines from JSON files and from label selectors in a
database (fixed bootstrap seed).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
pytest.importorskip("onnx", reason="needs the models extra")

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
SLEEP_S = 0.05
RUN = [
    "run",
    "--suite",
    "mobilenet_v2",
    "--adapter",
    "onnxruntime",
    "--json",
    "--duration",
    "0.3",
    "--repeats",
    "5",
    "--idle-s",
    "0.3",
    "--warmup",
    "0.1",
    "--cooldown",
    "0",
    "--min-queries",
    "5",
    "--threads",
    "1",
    "--device-name",
    "e2e",
]
SITECUSTOMIZE = f"""
import os
import time

from wattbench.adapters import onnxruntime as _adapter

_run = _adapter.OnnxRuntimeSession.run


def _slow_run(self, prepared):
    time.sleep({SLEEP_S})
    return _run(self, prepared)


_adapter.OnnxRuntimeSession.run = _slow_run
"""


pytestmark = [pytest.mark.e2e]


class Runs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = f"sqlite:///{root / 'results.db'}"
        self.env = {**os.environ, "WATTBENCH_CACHE": str(root / "cache"), "WATTBENCH_DB": self.db}
        self.env.pop("WATTBENCH_DATA_DIR", None)
        hook = root / "slow"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.base = self.run("base.json", "--label", "branch:main", "--label", "git:b45e")
        slow_env = {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
        }
        self.slow = self.run(
            "slow.json", "--label", "branch:feature", "--label", "git:510e", env=slow_env
        )

    def run(self, name: str, *args: str, env: dict[str, str] | None = None) -> Path:
        proc = self.wattbench(*RUN, "--db", self.db, *args, env=env)
        assert proc.returncode == 0, proc.stderr
        path = self.root / name
        path.write_text(proc.stdout)
        return path

    def wattbench(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [WATTBENCH, *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**self.env, **(env or {})},
        )

    def gate(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.wattbench("gate", *args)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("gate-e2e"))


def p90s(path: Path) -> list[float]:
    data: dict[str, Any] = json.loads(path.read_text())
    return [t["latency"]["p90_ms"] for t in data["trials"]]


def lines_by_metric(stdout: str) -> dict[str, str]:
    return {line.split()[1].rstrip(":"): line for line in stdout.splitlines()}


def test_the_injected_sleep_really_slows_the_candidate(runs: Runs) -> None:
    assert min(p90s(runs.slow)) >= SLEEP_S * 1000
    assert statistics.median(p90s(runs.slow)) > statistics.median(p90s(runs.base))
    assert json.loads(runs.slow.read_text())["valid"] is True


@pytest.fixture(scope="module")
def file_gate(runs: Runs) -> subprocess.CompletedProcess[str]:
    """The slow candidate gated against the baseline through the two JSON files."""
    return runs.gate(
        "--baseline", str(runs.base), "--candidate", str(runs.slow),
        "--markdown", str(runs.root / "gate.md"), "--junit", str(runs.root / "gate.xml"),
    )  # fmt: skip


def test_slower_candidate_is_a_regression_or_inconclusive_never_a_pass(
    runs: Runs, file_gate: subprocess.CompletedProcess[str]
) -> None:
    proc = file_gate
    md, xml = runs.root / "gate.md", runs.root / "gate.xml"
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    lines = lines_by_metric(proc.stdout)
    assert set(lines) == {"joules_per_inference", "latency_p90_ms", "throughput_ips"}
    latency, throughput = lines["latency_p90_ms"], lines["throughput_ips"]
    assert latency.startswith(("REGRESSION latency_p90_ms +", "INCONCLUSIVE latency_p90_ms +"))
    assert throughput.startswith(("REGRESSION throughput_ips -", "INCONCLUSIVE throughput_ips -"))
    # No power sensor here: the energy figure is the estimate, reported but not gated.
    energy = lines["joules_per_inference"]
    assert energy.startswith("SKIPPED joules_per_inference ")
    assert "skipped: estimated energy" in energy and "not gated" in energy
    if proc.returncode == 1:
        assert "REGRESSION" in latency or "REGRESSION" in throughput
    suite = ET.parse(xml).getroot()[0]
    assert suite.get("tests") == "3" and suite.get("skipped") == "1"
    verdict = {1: "REGRESSION", 2: "INCONCLUSIVE"}[proc.returncode]
    assert md.read_text().startswith(
        f"## {'❌' if verdict == 'REGRESSION' else '⚠️'} wattbench gate: {verdict}"
    )


def test_slower_candidate_is_a_regression_when_instability_is_allowed(runs: Runs) -> None:
    # Without the stability limit only the test and the effect decide. Each candidate
    # trial is >= 50 ms; a baseline trial would need a sustained > 5x slowdown of its
    # ~9 ms inference to overlap, so 5 vs 5 trials separate completely (p = 0.004).
    proc = runs.gate(
        "--baseline", str(runs.base), "--candidate", str(runs.slow),
        "--metric", "latency", "--max-cv", "100%",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("REGRESSION latency_p90_ms +")
    assert "gate: REGRESSION" in proc.stderr


def test_faster_candidate_is_never_a_regression(runs: Runs) -> None:
    proc = runs.gate(
        "--baseline", str(runs.slow), "--candidate", str(runs.base),
        "--metric", "latency", "--metric", "throughput",
    )  # fmt: skip
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    lines = lines_by_metric(proc.stdout)
    assert lines["latency_p90_ms"].startswith(
        ("PASS latency_p90_ms -", "INCONCLUSIVE latency_p90_ms -")
    )
    assert lines["throughput_ips"].startswith(
        ("PASS throughput_ips +", "INCONCLUSIVE throughput_ips +")
    )


def test_a_run_against_itself_is_never_a_regression(runs: Runs) -> None:
    proc = runs.gate(
        "--baseline", str(runs.base), "--candidate", str(runs.base), "--include-estimated"
    )
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    lines = lines_by_metric(proc.stdout)
    assert all(" +0.0% " in line for line in lines.values()), proc.stdout
    assert "ESTIMATED energy" in lines["joules_per_inference"]


def test_label_selectors_in_the_database_give_the_same_verdicts_as_the_files(
    runs: Runs, file_gate: subprocess.CompletedProcess[str]
) -> None:
    from_files = file_gate
    from_db = runs.gate(
        "--baseline", "label:branch:main~5", "--candidate", "git:510e", "--db", runs.db
    )
    assert from_db.returncode == from_files.returncode
    assert from_db.stdout == from_files.stdout
    slow_id = json.loads(runs.slow.read_text())["run_id"]
    by_id = runs.gate("--baseline", "branch:main", "--candidate", slow_id[:8], "--db", runs.db)
    assert by_id.stdout == from_files.stdout


def test_mismatched_configuration_exits_2_naming_the_field(runs: Runs) -> None:
    data = json.loads(runs.slow.read_text())
    data["config"]["batch"] = 4
    other = runs.root / "batch4.json"
    other.write_text(json.dumps(data))
    proc = runs.gate("--baseline", str(runs.base), "--candidate", str(other))
    assert proc.returncode == 2
    assert "batch (baseline 1, candidate 4)" in proc.stdout
