"""The leaderboard page's `validated` column (issue 15): whether the run's device had a
`wattbench doctor --save` profile when the run was stored, its outcome and date; `—` for a
device never profiled. A configuration row shows its latest run's. The page's CSV carries it,
with the 95 % CI and throttled columns the table shows."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from seed import base_run

from wattbench.core.results import RunResult
from wattbench.results_db.store import Store


def _ok(at: Any) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _profile(device: str, day: int, outcome: str) -> dict[str, Any]:
    return {
        "device_name": device,
        "created_at": datetime(2026, 12, day, 9, 30, tzinfo=timezone.utc).isoformat(),
        "wattbench_version": "9.9.9",
        "outcome": outcome,
        "exit_code": 0 if outcome == "validated" else 1,
        "headline_reader": "rapl",
        "readers": [],
    }


def _later(run: RunResult, hours: int) -> RunResult:
    return run.model_copy(
        update={
            "run_id": str(uuid.uuid4()),
            "started_at": run.started_at + timedelta(hours=hours),
            "finished_at": run.finished_at + timedelta(hours=hours),
        }
    )


def _seed(tmp_path: Path) -> tuple[str, RunResult, RunResult, RunResult]:
    """One configuration, three runs: before any profile, after a validated one (Dec 4),
    after a failed one (Dec 5, the latest run)."""
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    store = Store.open(url)
    first = base_run(tmp_path)
    device = first.device["name"]
    validated, failed = _later(first, 1), _later(first, 2)
    store.save_run(first)
    store.save_device_profile(_profile(device, 4, "validated"))
    store.save_run(validated)
    store.save_device_profile(_profile(device, 5, "failed"))
    store.save_run(failed)
    store.close()
    return url, first, validated, failed


def test_validated_column_per_run_and_per_configuration(
    tmp_path: Path, run_page: Callable[..., Any]
) -> None:
    url, first, validated, failed = _seed(tmp_path)
    at = run_page(url, "leaderboard")
    _ok(at)
    # One configuration: its latest run's (the run *open run* opens).
    assert at.dataframe[0].value["validated"].tolist() == ["✗ failed 2026-12-05"]

    at.radio(key="lb_per").set_value("run").run()
    _ok(at)
    table = at.dataframe[0].value
    by_run = dict(
        zip(table["detail"].str.removeprefix("run?run="), table["validated"], strict=True)
    )
    assert by_run == {
        failed.run_id: "✗ failed 2026-12-05",
        validated.run_id: "✓ 2026-12-04",
        first.run_id: "—",  # no profile then: —, not "failed"
    }
    assert "validated: the device's `wattbench doctor" in " ".join(c.value for c in at.caption)


def test_leaderboard_csv_has_the_tables_per_run_columns(tmp_path: Path) -> None:
    from wattbench.dashboard.queries.leaderboard import rank, run_intervals, runs_frame
    from wattbench.dashboard.views.leaderboard import csv_text
    from wattbench.results_db.readonly import open_readonly

    url, first, validated, failed = _seed(tmp_path)
    db = open_readonly(url)
    try:
        rows = runs_frame(db, first.suite, first.suite_version, first.scenario)
        out = pd.read_csv(io.StringIO(csv_text(db, rank(rows, "inferences_per_joule"))))
        intervals = run_intervals(db, [first.run_id, validated.run_id, failed.run_id])
    finally:
        db.close()
    assert len(out) == 3
    by_run = out.set_index("run_id")
    assert by_run.loc[validated.run_id, "validated"] == "✓ 2026-12-04"
    assert by_run.loc[failed.run_id, "device_validation"] == "failed"
    assert by_run.loc[first.run_id, "validated"] == "—"
    assert pd.isna(by_run.loc[first.run_id, "device_validation"])
    # the 95 % CI columns as the table shows them; no thermal section: —, never 0
    for col in ("ci", "ci_stop"):
        assert by_run.loc[intervals["run_id"], col].tolist() == intervals[col].tolist(), col
    assert out["throttled"].tolist() == ["—"] * 3
