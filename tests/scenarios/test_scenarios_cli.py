"""End-to-end: `wattbench run --scenario/--driver` as a subprocess on the real ONNX Runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
pytest.importorskip("onnx", reason="needs the models extra")

pytestmark = pytest.mark.e2e

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
SHORT = [
    "--suite",
    "mobilenet_v2",
    "--adapter",
    "onnxruntime",
    "--duration",
    "0.3",
    "--repeats",
    "2",
    "--warmup",
    "0.1",
    "--idle-s",
    "0.2",
    "--cooldown",
    "0",
    "--min-queries",
    "5",
    "--threads",
    "1",
    "--e2e-queries",
    "5",
    "--power",
    "estimate",
    "--no-git-labels",
    "--json",
]


def run(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [WATTBENCH, "run", *SHORT, "--db", f"sqlite:///{tmp_path / 'r.db'}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr  # stdout is only the JSON


def test_offline(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "--scenario", "offline", "--concurrency", "2", "--batch", "2")
    assert result["scenario"] == "offline"
    windows = result["scenario_details"].pop("windows")
    assert len(windows) == len(result["trials"])
    assert result["scenario_details"] == {
        "concurrency": 2,
        "concurrency_source": "user",
        "batch": 2,
    }
    for t in result["trials"]:
        assert t["inferences"] == 2 * t["queries"] and t["duration_s"] >= 0.3
    assert result["energy"][0]["inferences_per_joule"] > 0  # samples per joule


def test_server_at_a_given_rate(tmp_path: Path) -> None:
    result, _ = run(
        tmp_path, "--scenario", "server", "--target-qps", "20", "--latency-bound-ms", "500"
    )
    assert result["scenario"] == "server"
    d = result["scenario_details"]
    assert d["target_qps"] == 20.0 and d["qps_source"] == "user" and d["search"] == []
    assert d["latency_bound_ms"] == 500.0 and d["latency_percentile"] == 99.0
    # Poisson arrivals at 20/s: throughput follows the arrivals, not the runtime's capacity
    total_q = sum(t["queries"] for t in result["trials"])
    total_s = sum(t["duration_s"] for t in result["trials"])
    assert 8 < total_q / total_s < 40
    assert result["latency"]["p99_ms"] < 500 or any("breaks" in w for w in result["warnings"])


def test_loadgen_keeps_its_logs(tmp_path: Path) -> None:
    pytest.importorskip("mlperf_loadgen", reason="needs MLPerf LoadGen (wattbench[loadgen])")
    result, stderr = run(tmp_path, "--driver", "loadgen")
    assert result["scenario"] == "single-stream"
    assert result["scenario_details"]["driver"] == "loadgen"
    logs = result["artifacts"]
    assert set(logs) == {"mlperf_log_summary.txt", "mlperf_log_detail.txt"}
    summary = logs["mlperf_log_summary.txt"]
    assert "Scenario : SingleStream" in summary and "Mode     : PerformanceOnly" in summary
    assert "Result is : " in summary
    assert '"key": "result_validity"' in logs["mlperf_log_detail.txt"]
    if "Result is : INVALID" in summary:  # 0.3 s windows may be too short for LoadGen
        assert any("MLPerf LoadGen result is INVALID" in w for w in result["warnings"])
        assert "MLPerf LoadGen result is INVALID" in stderr


def test_an_unknown_driver_is_one_error_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [WATTBENCH, "run", *SHORT, "--db", f"sqlite:///{tmp_path / 'r.db'}", "--driver", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert "--driver" in line and "loadgen" in line
