"""`wattbench doctor` end to end: the estimate-only machine, --json, --report, and --save with
the leaderboard saying whether (and when) a run's device was validated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from doctor_fakes import FakeLoad, Sensor
from test_rapl import FakePowercap
from test_store import make_result

from wattbench.core.power import ReaderOptions
from wattbench.core.results import RunResult
from wattbench.harness import doctor as doctor_module
from wattbench.harness.cli import main
from wattbench.power.nvml import NvmlReader
from wattbench.results_db.store import Store

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
DEVICE = "bench-01"  # the device make_result() runs carry


def wattbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATTBENCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )


@pytest.fixture(scope="module")
def run_result(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return make_result(tmp_path_factory.mktemp("run"))


def fresh(run: RunResult) -> RunResult:
    import uuid

    return run.model_copy(update={"run_id": str(uuid.uuid4())})


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    code = exc.value.code
    return int(code) if isinstance(code, int) else 1, capsys.readouterr().out


def test_estimate_only_machine_exits_3_and_says_so(tmp_path: Path) -> None:
    if NvmlReader.is_available(ReaderOptions()).available:
        pytest.skip("an NVIDIA GPU is readable here: this is not an estimate-only machine")
    empty = tmp_path / "root"  # no powercap, hwmon or INA3221 under it
    empty.mkdir()
    report = tmp_path / "doctor.md"
    proc = wattbench("doctor", "--sysfs-root", str(empty), "--report", str(report))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "only the ESTIMATE is available here" in proc.stdout
    assert "exit 3:" in proc.stdout
    assert "rapl: no RAPL here" in proc.stdout  # each absent reader with its reason
    assert "**estimate_only** (exit 3)" in report.read_text()

    db = f"sqlite:///{tmp_path / 'results.db'}"
    proc = wattbench(
        "doctor", "--sysfs-root", str(empty), "--json", "--save", "--db", db,
        "--device-name", DEVICE,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    data = json.loads(proc.stdout)
    assert data["outcome"] == "estimate_only" and data["exit_code"] == 3
    assert data["exit_codes"] == {
        "0": "every measured reader passed",
        "1": "a reader failed a check",
        "3": "only the estimate is available",
    }
    assert {r["name"]: r["status"] for r in data["readers"]}["estimate"] == "estimate"
    assert "saved profile #1 (estimate_only)" in proc.stderr
    profile = Store.open(db).latest_device_profile(DEVICE)
    assert profile is not None and profile.outcome == "estimate_only" and not profile.validated


def test_save_then_a_run_shows_validated_in_the_leaderboard(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    run_result: RunResult,
) -> None:
    db = f"sqlite:///{tmp_path / 'results.db'}"
    store = Store.open(db)
    before = fresh(run_result)
    store.save_run(before)  # stored before the device was validated

    tree = FakePowercap(tmp_path / "root")
    tree.zone("intel-rapl:0", "package-0", 1_000_000)
    load = FakeLoad()
    monkeypatch.setattr(doctor_module, "CpuLoad", lambda workers=None: load)
    with Sensor(lambda p, dt: tree.advance("intel-rapl:0", p * dt), load, 6.0, 46.0, 0.001):
        code, out = cli(
            capsys,
            "doctor", "--power", "rapl", "--sysfs-root", str(tree.root), "--idle-s", "0.6",
            "--step-s", "0.6", "--sample-interval-s", "0.05", "--device-name", DEVICE,
            "--json", "--save", "--db", db,
        )  # fmt: skip
    data = json.loads(out)
    assert code == 0, out
    assert data["outcome"] == "validated" and data["headline_reader"] == "rapl"
    assert load.calls == [0.6]

    after = fresh(run_result)
    store.save_run(after)
    code, out = cli(capsys, "leaderboard", "--db", db, "--format", "json")
    assert code == 0
    rows: dict[str, Any] = {r["run_id"]: r for r in json.loads(out)}
    assert rows[after.run_id]["device_validation"] == "validated"
    assert rows[after.run_id]["device_validation_at"] is not None
    assert rows[before.run_id]["device_validation"] is None
    assert rows[before.run_id]["device_validation_at"] is None

    code, out = cli(capsys, "leaderboard", "--db", db)
    assert code == 0
    assert f"✓ device validated by `wattbench doctor`: {DEVICE} (" in out

    profile = store.run_device_profile(after.run_id)
    assert profile is not None and profile.validated
    assert profile.headline_reader == "rapl" and profile.headline_scope == "chip"
    assert profile.noise_floor_w == pytest.approx(6.0, rel=0.2)
    assert profile.sample_rate_hz is not None and profile.sample_rate_hz > 5
    assert [r["name"] for r in profile.readers] == ["rapl"]
    assert profile.wattbench_version == data["wattbench_version"]


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in (
        (("--power", "nope"), "error: unknown power reader 'nope'"),
        (("--idle-s", "0"), "error: --idle-s must be > 0"),
        (("--report", "x.txt"), "error: --report x.txt: name a .md or .json file"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["doctor", "--sysfs-root", str(tmp_path), *args])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.strip().startswith(message), err
