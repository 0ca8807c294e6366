"""Real short sweeps through the CLI: a coordinate search on ONNX Runtime that measures a
fraction of its grid, and sweeps/runs on a fake sysfs tree whose CPU is past its thermal
trip point, so every trial is marked throttled in the output, the JSON and the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.e2e

RUN = """
[run]
suite = "mobilenet_v2"
adapter = "onnxruntime"
duration = 0.2
repeats = 1
idle-s = 0.2
warmup = 0.05
cooldown = 0
min-queries = 3
e2e-queries = 0
power = "estimate"
tdp-w = 15
"""
WATTBENCH = [sys.executable, "-m", "wattbench.harness.cli"]


def _wattbench(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WATTBENCH_TUNE_JOURNAL": str(tmp / "journal.json")}
    done = subprocess.run([*WATTBENCH, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _stored(db: str, sweep_id: str) -> list[Any]:
    from sqlalchemy import select

    from wattbench.results_db.schema import Run
    from wattbench.results_db.store import Store

    store = Store.open(db)
    with store.engine.connect() as conn:
        rows = conn.execute(select(Run.uuid, Run.labels)).all()
    out = [store.load_result(u) for u, labels in rows if f"sweep:{sweep_id}" in labels]
    store.close()
    return out


def test_a_coordinate_search_measures_part_of_the_grid(tmp_path: Path) -> None:
    (tmp_path / "sweep.toml").write_text(
        RUN + "\n[sweep]\nbatch = [1, 2, 3, 4, 6, 8, 12, 16]\nthreads = [1, 2]\n"
        "latency-bound-ms = 2000\n"
    )
    db = f"sqlite:///{tmp_path / 's.db'}"
    done = _wattbench(
        tmp_path, "sweep", "settings", "--config", str(tmp_path / "sweep.toml"),
        "--db", db, "--no-git-labels", "--search", "bisect", "--json",
    )  # fmt: skip
    data = json.loads(done.stdout)
    assert data["search"] == "coordinate" and data["grid"] == 16
    assert 2 <= data["measured"] < 16
    assert len(data["points"]) == data["measured"] + 1 and data["points"][0]["baseline"]
    keys = [p["key"] for p in data["points"]]
    assert len(set(keys)) == len(keys)  # no point measured twice
    assert data["optimal"]["key"] in keys
    assert "(grid 16)" in done.stderr
    runs = _stored(db, data["sweep_id"])
    assert len(runs) == data["measured"] + 1
    assert all("sweep-meta:search=coordinate,grid=16,p90<=2000ms" in r.labels for r in runs)


def hot_tree(root: Path) -> Path:
    """cpufreq policies (writable, for the tuner) and a CPU zone past its passive trip."""
    z = root / "sys/class/thermal/thermal_zone0"
    z.mkdir(parents=True)
    (z / "type").write_text("x86_pkg_temp\n")
    (z / "temp").write_text("97000\n")
    (z / "trip_point_0_type").write_text("passive\n")
    (z / "trip_point_0_temp").write_text("95000\n")
    p = root / "sys/devices/system/cpu/cpufreq/policy0"
    p.mkdir(parents=True)
    for name, v in (
        ("scaling_max_freq", 1800000), ("cpuinfo_min_freq", 600000),
        ("cpuinfo_max_freq", 1800000), ("scaling_cur_freq", 1800000),
    ):  # fmt: skip
        (p / name).write_text(f"{v}\n")
    return root


def test_a_sweep_on_a_hot_device_marks_every_point_throttled(tmp_path: Path) -> None:
    tree = hot_tree(tmp_path / "tree")
    (tmp_path / "sweep.toml").write_text(RUN + "\n[sweep]\ncpu-max-freq = [600000, 1800000]\n")
    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["sweep", "settings", "--config", str(tmp_path / "sweep.toml"), "--db", db]
    args += ["--sysfs-root", str(tree), "--no-git-labels"]
    done = _wattbench(tmp_path, *args)
    assert "THROTTLED" in done.stdout and "max C" in done.stdout
    assert "measured 2 of 2 grid points" in done.stdout
    assert "THROTTLED during a trial: baseline, cpu-max-freq=600MHz" in done.stdout
    # the setting came back; the stored runs carry the flags
    assert (tree / "sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq").read_text() == (
        "1800000\n"
    )
    done = _wattbench(tmp_path, *args, "--json")
    data = json.loads(done.stdout)
    assert len(data["throttled"]) == 3
    assert all(p["throttled"] and p["max_temp_c"] == 97.0 for p in data["points"])
    runs = _stored(db, data["sweep_id"])
    assert len(runs) == 3
    for r in runs:
        assert r.trials[0].throttled and r.thermal is not None
        assert r.thermal.throttled_trials == [0] and r.thermal.max_temp_c == 97.0
        assert "x86_pkg_temp at 97 C >= its passive trip 95 C" in r.trials[0].throttle_reasons


def test_wattbench_run_summary_says_throttled(tmp_path: Path) -> None:
    tree = hot_tree(tmp_path / "tree")
    done = _wattbench(
        tmp_path, "run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime",
        "--duration", "0.2", "--repeats", "2", "--idle-s", "0.2", "--warmup", "0.05",
        "--cooldown", "0", "--min-queries", "3", "--e2e-queries", "0", "--power", "estimate",
        "--tdp-w", "15", "--sysfs-root", str(tree), "--db", f"sqlite:///{tmp_path / 'r.db'}",
        "--no-git-labels",
    )  # fmt: skip
    line = next(ln for ln in done.stdout.splitlines() if "thermal" in ln)
    assert "max 97.0 C (x86_pkg_temp)" in line and "THROTTLED in 2/2 trials" in line
    assert "trial 1 throttled" in done.stderr


def test_a_rebuilt_run_keeps_its_throttle_flags(tmp_path: Path) -> None:
    """Stored without its payload (rows only), the flags come back from the thermal
    section in the run's extras."""
    from wattbench.core.results import RunResult, ThermalSummary, TrialThermal
    from wattbench.results_db.store import Store

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
    from seed import base_run

    run: RunResult = base_run(tmp_path)
    trials = [
        t.model_copy(update={"throttled": t.index == 1, "max_temp_c": 70.0 + t.index,
                             "throttle_reasons": ["gpu0: hw_slowdown"] if t.index == 1 else []})
        for t in run.trials
    ]  # fmt: skip
    thermal = ThermalSummary(
        max_temp_c=72.0, sensors={"gpu0": 72.0}, throttled_trials=[1],
        trials=[TrialThermal(index=t.index, throttled=t.throttled, max_temp_c=t.max_temp_c,
                             throttle_reasons=t.throttle_reasons) for t in trials],
    )  # fmt: skip
    run = run.model_copy(update={"trials": trials, "thermal": thermal})
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    store.save_run(run, keep_payload=False)
    back = store.load_result(run.run_id)
    store.close()
    assert back is not None and back.thermal == thermal
    assert [t.throttled for t in back.trials] == [False, True, False]
    assert back.trials[1].throttle_reasons == ["gpu0: hw_slowdown"]
    assert back.trials[2].max_temp_c == 72.0
