"""The leaderboard's `throttled` column (issue 18 item 5): how many of a run's trials the
device throttled in, from the run's `thermal` section; `—` (None) without one, never 0."""

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

from wattbench.core.results import RunResult, ThermalSummary, TrialThermal
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


def with_thermal(run: RunResult, throttled: set[int] | None) -> RunResult:
    """``run`` with a thermal section whose ``throttled`` trials throttled; None: no section
    (a machine without a sensor)."""
    if throttled is None:
        return run.model_copy(update={"thermal": None})
    trials = [
        t.model_copy(update={"throttled": t.index in throttled, "max_temp_c": 80.0})
        for t in run.trials
    ]
    thermal = ThermalSummary(
        max_temp_c=80.0,
        sensors={"cpu": 80.0},
        throttled_trials=sorted(throttled),
        trials=[
            TrialThermal(
                index=t.index,
                throttled=t.throttled,
                max_temp_c=t.max_temp_c,
                throttle_reasons=["cpu: passive trip"] if t.throttled else [],
            )
            for t in trials
        ],
        period_s=0.5,
        sources=["thermal_zone"],
    )
    return run.model_copy(update={"trials": trials, "thermal": thermal})


def three_runs(new_run: Callable[..., RunResult]) -> tuple[RunResult, RunResult, RunResult]:
    """A run that throttled in one trial, one that sampled and never throttled, one with no
    thermal section."""
    hot = with_thermal(new_run(ipj=300.0), {1})
    cool = with_thermal(new_run(ipj=200.0), set())
    unsampled = with_thermal(new_run(ipj=100.0), None)
    assert len(hot.trials) >= 2, "the base run needs two trials"
    return hot, cool, unsampled


def test_store_leaderboard_counts_throttled_trials_both_paths(
    db_url: str, new_run: Callable[..., RunResult]
) -> None:
    hot, cool, unsampled = three_runs(new_run)
    n = len(hot.trials)
    store = Store.open(db_url)
    for r in (hot, cool, unsampled):
        store.save_run(r)
    want = {hot.run_id: (1, n), cool.run_id: (0, n), unsampled.run_id: (None, None)}
    # limit: the per-group UNION ALL path (the table, the API); None: every run ranked
    for limit in (10, None):
        rows = store.leaderboard(limit=limit)
        got = {r.run_id: (r.throttled_trials, r.thermal_trials) for r in rows}
        assert got == want, (limit, got)


def test_cli_json_csv_and_table_show_throttled(
    tmp_path: Path, new_run: Callable[..., RunResult]
) -> None:
    hot, cool, unsampled = three_runs(new_run)
    n = len(hot.trials)
    db = f"sqlite:///{tmp_path / 'results.db'}"
    store = Store.open(db)
    for r in (hot, cool, unsampled):
        store.save_run(r)

    proc = wattbench("leaderboard", "--db", db, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = {r["run_id"]: r for r in json.loads(proc.stdout)}
    assert (data[hot.run_id]["throttled_trials"], data[hot.run_id]["thermal_trials"]) == (1, n)
    assert (data[cool.run_id]["throttled_trials"], data[cool.run_id]["thermal_trials"]) == (0, n)
    assert data[unsampled.run_id]["throttled_trials"] is None
    assert data[unsampled.run_id]["thermal_trials"] is None

    proc = wattbench("leaderboard", "--db", db, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(proc.stdout))}
    assert (rows[hot.run_id]["throttled_trials"], rows[hot.run_id]["thermal_trials"]) == (
        "1",
        str(n),
    )
    assert rows[cool.run_id]["throttled_trials"] == "0"
    # no thermal section: empty, never 0
    assert rows[unsampled.run_id]["throttled_trials"] == ""
    assert rows[unsampled.run_id]["thermal_trials"] == ""

    table = wattbench("leaderboard", "--db", db)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(ln for ln in lines if "throttled" in ln and "run" in ln)
    assert "throttled" in header

    def line(run: RunResult) -> str:
        return next(ln for ln in lines if run.run_id[:8] in ln)

    assert f"1/{n} trials" in line(hot)
    assert f"0/{n} trials" in line(cool)
    assert "—" in line(unsampled) and "trials" not in line(unsampled)
    assert any(ln.startswith("throttled:") for ln in lines)  # the legend
