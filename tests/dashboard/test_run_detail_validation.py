"""The run detail page says whether the run's device was validated by `wattbench doctor`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from seed import base_run

from wattbench.results_db.store import Store


def _captions(at: Any) -> str:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return " ".join(str(c.value) for c in at.caption)


def test_run_detail_shows_the_device_validation(
    tmp_path: Path, run_page: Callable[..., Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    store = Store.open(url)
    run = base_run(tmp_path)
    device = run.device["name"]
    store.save_run(run)  # before any profile: not validated
    store.save_device_profile(
        {
            "device_name": device,
            "created_at": datetime(2026, 12, 5, 9, 30, tzinfo=timezone.utc).isoformat(),
            "wattbench_version": "9.9.9",
            "outcome": "validated",
            "exit_code": 0,
            "headline_reader": "rapl",
            "readers": [
                {
                    "name": "rapl",
                    "status": "measured",
                    "verdict": "ok",
                    "scope": "chip",
                    "idle_mean_w": 6.2,
                    "idle_std_w": 0.11,
                    "achieved_rate_hz": 49.5,
                }
            ],
        }
    )
    validated = run.model_copy(update={"run_id": str(uuid.uuid4())})
    store.save_run(validated)
    store.close()

    text = _captions(run_page(url, "run", {"run": validated.run_id}))
    assert "✓ Device validated by `wattbench doctor` on 2026-12-05" in text
    assert "rapl (chip), idle 6.2 ± 0.11 W, 49.5 Hz" in text
    text = _captions(run_page(url, "run", {"run": run.run_id}))
    assert f"Device {device} not validated" in text
