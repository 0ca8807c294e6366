"""Device profiles in the store: a run points at the latest profile of its device when stored."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from test_store import make_result

from wattbench.core.errors import ConfigError
from wattbench.core.results import RunResult
from wattbench.results_db.store import Store

DEVICE = "bench-01"


@pytest.fixture(scope="module")
def run_result(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return make_result(tmp_path_factory.mktemp("run"))


def fresh(run: RunResult) -> RunResult:
    return run.model_copy(update={"run_id": str(uuid.uuid4())})


def report(device: str, outcome: str, at: datetime, idle_w: float = 5.0) -> dict[str, Any]:
    """The parts of a `wattbench doctor --json` report a profile keeps."""
    return {
        "device_name": device,
        "hostname": "host",
        "wattbench_version": "9.9.9",
        "created_at": at.isoformat(),
        "outcome": outcome,
        "exit_code": {"validated": 0, "failed": 1, "estimate_only": 3}[outcome],
        "headline_reader": "rapl" if outcome == "validated" else None,
        "readers": [
            {
                "name": "rapl",
                "status": "measured",
                "verdict": "ok" if outcome == "validated" else "fail",
                "method": "counter",
                "scope": "chip",
                "component": "cpu package (package-0)",
                "idle_mean_w": idle_w,
                "idle_std_w": 0.1,
                "requested_rate_hz": 10.0,
                "achieved_rate_hz": 9.9,
                "step_delta_w": 20.0,
                "step_delay_s": 0.05,
                "checks": [],
            },
            {"name": "hwmon", "status": "absent", "checks": []},
        ],
    }


def test_a_run_points_at_the_latest_profile_of_its_device(
    db_url: str, run_result: RunResult
) -> None:
    store = Store.open(db_url)
    now = datetime.now(timezone.utc)
    unprofiled = fresh(run_result)
    store.save_run(unprofiled)
    store.save_device_profile(report(DEVICE, "failed", now - timedelta(hours=2)))
    newest = store.save_device_profile(report(DEVICE, "validated", now - timedelta(hours=1), 7.0))
    store.save_device_profile(report("other-box", "validated", now))  # another device
    run = fresh(run_result)
    assert store.save_run(run)

    assert store.run_device_profile(unprofiled.run_id) is None
    profile = store.run_device_profile(run.run_id)
    assert profile is not None and profile.id == newest
    assert profile.validated and profile.device_name == DEVICE
    assert profile.created_at == pytest.approx(now - timedelta(hours=1), abs=timedelta(seconds=1))
    assert (profile.headline_reader, profile.headline_scope) == ("rapl", "chip")
    assert profile.noise_floor_w == 7.0 and profile.sample_rate_hz == 9.9
    assert [r["name"] for r in profile.readers] == ["rapl"]  # absent readers are not kept

    # a duplicate save leaves the stored run and its profile as they are
    store.save_device_profile(report(DEVICE, "failed", now))
    assert not store.save_run(run)
    again = store.run_device_profile(run.run_id)
    assert again is not None and again.id == newest
    latest = store.latest_device_profile(DEVICE)
    assert latest is not None and latest.outcome == "failed"

    rows = {r.run_id: r for r in store.leaderboard(limit=10)}
    assert rows[run.run_id].device_validation == "validated"
    assert rows[unprofiled.run_id].device_validation is None
    rows = {r.run_id: r for r in store.leaderboard()}
    assert rows[run.run_id].device_validation == "validated"


def test_a_report_without_an_outcome_is_refused(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ConfigError, match="not a doctor report"):
        store.save_device_profile({"device_name": DEVICE, "outcome": "great"})
