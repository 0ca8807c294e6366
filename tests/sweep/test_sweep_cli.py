"""A real sweep: batch x threads on ONNX Runtime through the CLI, stored in SQLite; the
optimum recomputed from the stored runs matches the sweep's answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from wattbench.analysis.sweep import answer, point_from_result

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.e2e

SWEEP = """
[run]
suite = "mobilenet_v2"
adapter = "onnxruntime"
duration = 0.3
repeats = 1
idle-s = 0.3
warmup = 0.1
cooldown = 0
min-queries = 5
e2e-queries = 0
power = "estimate"
tdp-w = 15

[sweep]
batch = [1, 2]
threads = [1, 2]
latency-bound-ms = 500
percentile = "p90"
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "sweep.toml").write_text(SWEEP)
    db = f"sqlite:///{tmp / 'sweep.db'}"
    env = {**os.environ, "WATTBENCH_TUNE_JOURNAL": str(tmp / "journal.json")}
    cmd = [sys.executable, "-m", "wattbench.harness.cli", "sweep", "settings"]
    args = ["--config", str(tmp / "sweep.toml"), "--db", db, "--no-git-labels"]
    done = subprocess.run(
        [*cmd, *args, "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), db, done.stderr


def test_the_sweep_measures_baseline_and_grid(sweep: tuple[dict[str, Any], str, str]) -> None:
    data, _db, stderr = sweep
    assert set(data) >= {"sweep_id", "points", "pareto", "optimal", "baseline"}
    keys = [p["key"] for p in data["points"]]
    grid = [f"batch={b},threads={t}" for b in (1, 2) for t in (1, 2)]
    assert keys == ["baseline", *grid]
    assert data["baseline"]["key"] == "baseline" and data["baseline"]["baseline"]
    for p in data["points"]:
        assert p["j_per_inference"] > 0 and p["inferences_per_joule"] > 0
        assert p["latency_ms"]["p90"] > 0 and p["latency_ms"]["p99"] >= p["latency_ms"]["p90"]
    assert data["optimal"]["key"] in keys and data["pareto"]
    assert data["gain"] == pytest.approx(
        data["baseline"]["j_per_inference"] / data["optimal"]["j_per_inference"]
    )
    assert "point 5/5" in stderr


def test_the_optimum_recomputed_from_the_stored_runs_matches(
    sweep: tuple[dict[str, Any], str, str],
) -> None:
    from sqlalchemy import select

    from wattbench.results_db.schema import Run
    from wattbench.results_db.store import Store

    data, db, _ = sweep
    store = Store.open(db)
    with store.engine.connect() as conn:
        rows = conn.execute(select(Run.uuid, Run.labels)).all()
    tag = f"sweep:{data['sweep_id']}"
    points = []
    for run_id, labels in rows:
        if tag not in labels:
            continue
        result = store.load_result(run_id)
        assert result is not None
        settings = dict(
            lbl.removeprefix("setting:").split("=", 1)
            for lbl in labels
            if lbl.startswith("setting:") and "=" in lbl
        )
        base = "setting:baseline" in labels
        key = "baseline" if base else ",".join(f"{k}={v}" for k, v in settings.items())
        if not base:
            assert result.config.batch == int(settings["batch"])
            assert result.config.threads == int(settings["threads"])
        points.append(point_from_result(result, key=key, settings=settings, baseline=base))
    assert len(points) == 5
    _, ans = answer(points, bound_ms=500, percentile="p90")
    assert ans.optimal == data["optimal"]["key"]
    assert ans.pareto == data["pareto"]
    assert ans.gain == pytest.approx(data["gain"])
