"""End to end: `wattbench cloud serve` as a real loopback server, `wattbench run --mode
hybrid|cloud` and `wattbench sweep escalation` as subprocesses, ONNX Runtime on both sides."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
pytest.importorskip("onnx", reason="needs the models extra")

pytestmark = pytest.mark.e2e

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
SHORT = [
    "--duration", "0.3", "--repeats", "2", "--idle-s", "0.2", "--warmup", "0.1",
    "--cooldown", "0", "--min-queries", "5", "--threads", "1", "--power", "estimate",
    "--tdp-w", "10", "--e2e-queries", "0", "--no-git-labels",
]  # fmt: skip


def _cli() -> list[str]:
    """The wattbench CLI; its network commands via the module until cli.py registers them."""
    probe = subprocess.run([WATTBENCH, "cloud", "--help"], capture_output=True, text=True)
    if probe.returncode == 0:
        return [WATTBENCH]
    return [sys.executable, "-m", "wattbench.harness.cli.network"]


CLI = _cli()


def wattbench(*args: str, cli: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(cli or [WATTBENCH]), *args], capture_output=True, text=True, timeout=300
    )


class Server:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                *CLI,
                "cloud",
                "serve",
                "--port",
                "0",
                "--threads",
                "1",
                "--seed",
                "1",
                "--weights",
                "random",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"at (http://\S+)", line)
        assert m, (line, self.proc.stderr.read() if self.proc.stderr else "")
        self.url = m.group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cloud() -> Iterator[Server]:
    s = Server("--power", "estimate", "--tdp-w", "10")
    yield s
    s.stop()


def run(db: str, *args: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    proc = wattbench(
        "run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime", *SHORT, "--json",
        "--db", db, *args,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc


def expected_escalations(result: dict[str, Any], low: set[int]) -> int:
    n = len(result["network"]["per_sample"])
    return sum(sum(i % n in low for i in range(t["queries"])) for t in result["trials"])


def test_hybrid_escalates_exactly_the_low_confidence_inputs(cloud: Server, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    first, _ = run(db, "--mode", "hybrid", "--cloud-url", cloud.url, "--escalate-below", "0")
    net = first["network"]
    assert net["escalated"] == 0 and net["bytes_sent"] == 0
    conf = [s["edge_confidence"] for s in net["per_sample"]]
    order = sorted(conf)
    threshold = (order[1] + order[2]) / 2  # the two least confident inputs go to the cloud
    low = {i for i, c in enumerate(conf) if c < threshold}
    assert len(low) == 2

    result, _ = run(
        db, "--mode", "hybrid", "--cloud-url", cloud.url, "--escalate-below", f"{threshold!r}"
    )
    net = result["network"]
    assert net["escalated"] == expected_escalations(result, low) > 0
    assert net["escalation_failures"] == 0 and result["valid"]
    assert net["escalation_rate"] == pytest.approx(net["escalated"] / net["queries"])
    assert net["network_energy_label"] == "modelled" and net["network_j_per_inference"] > 0
    assert net["energy_model"]["version"] and "Traficom" in net["energy_model"]["core"]["source"]
    assert net["bytes_method"] in ("tcp_info", "socket") and net["payload"] == "jpeg:90"
    size = [s["payload_bytes"] for s in net["per_sample"]]
    n = len(size)
    sent_bodies = sum(
        sum(size[i % n] for i in range(t["queries"]) if i % n in low) for t in result["trials"]
    )
    assert sent_bodies < net["bytes_sent"] < sent_bodies + 300 * net["escalated"]
    assert net["cloud"]["weights"] == "random(seed=1)"
    assert net["cloud_energy"] == "estimated" and net["cloud_j_per_inference"] > 0
    assert net["energy_to_solution_j_per_inference"] > net["edge_j_per_inference"]
    assert result["latency_e2e"]["count"] == net["queries"]


def test_cloud_mode_baseline(cloud: Server, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    result, _ = run(
        db, "--mode", "cloud", "--cloud-url", cloud.url, "--network-link", "lte",
        "--duration", "0.02",
    )  # fmt: skip
    net = result["network"]
    assert net["mode"] == "cloud" and net["escalation_rate"] == 1.0
    assert net["agreement_with_cloud"] == 1.0 and net["link"] == "lte"
    ic = net["interface_check"]
    assert ic is not None and ic["os_bytes_sent"] >= ic["counted_wire_bytes"] > 0


def test_server_dying_mid_run_edge_continues(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

    n = len(MobileNetV2Suite().load_inputs().samples)
    # the reference pass takes n answers; 2 escalations more, then the server exits
    server = Server("--power", "none", "--max-requests", str(n + 2))
    try:
        result, proc = run(
            db, "--mode", "hybrid", "--cloud-url", server.url, "--escalate-below", "1"
        )
    finally:
        server.stop()
    net = result["network"]
    assert net["escalated"] - net["escalation_failures"] == 2
    assert net["escalation_failures"] > 0 and result["valid"]
    assert f"{net['escalation_failures']} of {net['escalated']} escalations" in proc.stderr
    assert net["cloud_energy"] == "none"  # the server metered nothing
    assert net["energy_to_solution_j_per_inference"] is None


def test_bad_cloud_url_is_one_error_line(tmp_path: Path) -> None:
    proc = wattbench(
        "run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime", *SHORT,
        "--db", f"sqlite:///{tmp_path / 'r.db'}", "--mode", "hybrid", "--cloud-url", "nope",
        "--escalate-below", "0.5",
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "--cloud-url" in errors[0]


def test_escalation_sweep_gives_a_curve(cloud: Server, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    out = tmp_path / "curve.csv"
    proc = wattbench(
        "sweep", "escalation", "--suite", "mobilenet_v2", "--adapter", "onnxruntime",
        "--cloud-url", cloud.url, "--thresholds", "0,1", "--duration", "0.2", "--repeats", "1",
        "--warmup", "0.05", "--idle-s", "0.1", "--min-queries", "5", "--threads", "1",
        "--power", "estimate", "--tdp-w", "10", "--db", db, "--out", str(out),
        cli=CLI,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["value"] for r in rows] == ["0", "1"]
    assert float(rows[0]["escalation_rate"]) == 0.0 and float(rows[1]["escalation_rate"]) == 1.0
    assert float(rows[1]["agreement_with_cloud"]) == 1.0
    assert float(rows[1]["energy_to_solution_j"]) > float(rows[0]["energy_to_solution_j"])
    sweep_label = f"sweep:{rows[0]['sweep']}"
    from wattbench.results_db.store import Store

    store = Store.open(db)
    try:
        runs = [store.get_run(r["run_id"]) for r in rows]
    finally:
        store.close()
    assert all(sweep_label in r.labels for r in runs)
    assert [lbl for lbl in runs[1].labels if lbl.startswith("threshold:")] == ["threshold:1"]


def test_run_payload_network_model_and_cloud_j_options_on_pretrained_coral_models(
    coral_data: Path, tmp_path: Path
) -> None:
    """`wattbench run` options: --payload, --network-model, --cloud-j-per-request; the tiny
    Coral MobileNetV1 on the edge escalates everything to the Coral MobileNetV2 served on
    LiteRT, which meters nothing (--power none), so the configured J/request is used."""
    pytest.importorskip("ai_edge_litert", reason="needs the litert extra")
    server = Server(
        "--adapter", "litert", "--model", str(coral_data / "mobilenet_v2_1.0_224_quant.tflite"),
        "--power", "none",
    )  # fmt: skip
    model_file = tmp_path / "net.json"
    model_file.write_text(json.dumps({"links": {"wifi": {"kwh_per_gb": 1.0}}}))
    try:
        proc = wattbench(
            "run", "--suite", "mobilenet_v2", "--adapter", "litert", *SHORT, "--json",
            "--db", f"sqlite:///{tmp_path / 'r.db'}", "--data-dir", str(coral_data),
            "--model", str(coral_data / "mobilenet_v1_0.25_128_quant.tflite"),
            "--mode", "hybrid", "--cloud-url", server.url, "--escalate-below", "1",
            "--payload", "raw", "--network-model", str(model_file),
            "--cloud-j-per-request", "0.25",
        )  # fmt: skip
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    net = result["network"]
    assert result["config"]["payload"] == "raw" and net["payload"] == "raw"
    sizes = [(coral_data / s["name"]).stat().st_size for s in net["per_sample"]]
    assert [s["payload_bytes"] for s in net["per_sample"]] == sizes
    assert net["escalation_rate"] == 1.0 and net["escalation_failures"] == 0
    assert net["energy_model"]["version"].endswith("+custom")
    assert net["energy_model"]["access"]["kwh_per_gb"] == 1.0
    core = net["energy_model"]["core"]["kwh_per_gb"]
    assert net["network_j_per_inference"] == pytest.approx(
        net["wire_bytes"] * 3.6e-3 * (1.0 + core) / net["queries"]
    )
    assert net["cloud_energy"] == "estimated" and "0.25 J per request" in net["cloud_energy_basis"]
    assert net["cloud_j_per_inference"] == pytest.approx(0.25)  # every query answered
    assert net["cloud"]["classes"] == 1001 and net["accuracy"] == net["cloud_accuracy"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--mode", "hybrid", "--escalate-below", "0.5", "--payload", "gif"], "payload"),
        (["--mode", "hybrid", "--escalate-below", "0.5", "--cloud-j-per-request", "-1"],
         "--cloud-j-per-request"),
        (["--mode", "hybrid", "--escalate-below", "0.5", "--network-model", "/nonexistent.json"],
         "--network-model"),
        (["--payload", "raw"], "--mode cloud|hybrid"),
    ],
)  # fmt: skip
def test_bad_network_run_options_are_one_error_line(
    args: list[str], fragment: str, tmp_path: Path
) -> None:
    db = tmp_path / "r.db"
    proc = wattbench(
        "run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime", *SHORT,
        "--db", f"sqlite:///{db}", "--cloud-url", "http://127.0.0.1:9/", *args,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    from wattbench.results_db.store import Store

    store = Store.open(f"sqlite:///{db}")
    try:
        assert store.count_runs() == 0  # nothing half-stored
    finally:
        store.close()
