"""`wattbench leaderboard`: the achieved 95 % interval as flat CSV columns and in the table."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbench.core.confidence import TARGET_REACHED, TrialConfidence
from wattbench.core.stats import median_ci
from wattbench.results_db.leaderboard import CONFIDENCE_COLUMNS
from wattbench.results_db.store import Store

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))


def wattbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATTBENCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )


def test_csv_has_flat_interval_columns_and_json_stays_structured(
    tmp_path: Path, new_run: Callable[..., Any]
) -> None:
    ipj = [98.0, 99.0, 100.0, 100.5, 101.0, 102.0, 103.0, 104.0]
    p90 = [5.0, 5.1, 5.2, 5.2, 5.3, 5.4, 5.5, 5.6]
    conf = TrialConfidence(
        trials=len(ipj),
        min_trials=3,
        target_pct=3.0,
        budget_s=600.0,
        measured_s=42.0,
        stopped=TARGET_REACHED,
        inferences_per_joule=median_ci(ipj),
        latency_p90_ms=median_ci(p90),
    )
    with_ci = new_run(ipj=200.0).model_copy(update={"confidence": conf})
    # an older run: no interval recorded
    without_ci = new_run(ipj=100.0).model_copy(update={"confidence": None})
    db = f"sqlite:///{tmp_path / 'results.db'}"
    store = Store.open(db)
    store.save_run(with_ci)
    store.save_run(without_ci)

    proc = wattbench("leaderboard", "--db", db, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    header = proc.stdout.splitlines()[0].split(",")
    assert "confidence" not in header
    assert header[-len(CONFIDENCE_COLUMNS) :] == list(CONFIDENCE_COLUMNS)
    by_run = {r["run_id"]: r for r in rows}
    got = by_run[with_ci.run_id]
    iv = conf.inferences_per_joule
    assert iv.low is not None and iv.high is not None and iv.half_width is not None
    assert float(got["ipj_ci_low"]) == iv.low and float(got["ipj_ci_high"]) == iv.high
    assert float(got["ipj_ci_half_width_pct"]) == iv.half_width * 100
    assert float(got["p90_ci_low_ms"]) == conf.latency_p90_ms.low
    assert float(got["p90_ci_high_ms"]) == conf.latency_p90_ms.high
    assert got["trials"] == "8" and got["ci_target_pct"] == "3.0"
    assert got["ci_stop_reason"] == "target reached"
    old = by_run[without_ci.run_id]
    assert all(old[c] == "" for c in CONFIDENCE_COLUMNS), old  # no interval: empty, never 0
    assert not any("half_width" in v for r in rows for v in r.values())  # no JSON blob

    data = json.loads(wattbench("leaderboard", "--db", db, "--format", "json").stdout)
    j = {r["run_id"]: r for r in data}
    assert j[with_ci.run_id]["confidence"]["inferences_per_joule"]["low"] == iv.low
    assert j[without_ci.run_id]["confidence"] is None

    table = wattbench("leaderboard", "--db", db)
    assert table.returncode == 0, table.stderr
    line_ci = next(ln for ln in table.stdout.splitlines() if with_ci.run_id[:8] in ln)
    line_old = next(ln for ln in table.stdout.splitlines() if without_ci.run_id[:8] in ln)
    assert f"±{iv.half_width * 100:.2g} %" in line_ci
    assert "—" in line_old and "±0" not in line_old
