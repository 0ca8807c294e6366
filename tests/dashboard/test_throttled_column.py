"""The leaderboard page's `throttled` column (issue 18 item 5): a run's throttled trials from
its `thermal` section; `—` for a run that sampled no temperature, never `0`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from wattbench.core.results import RunResult, ThermalSummary, TrialThermal
from wattbench.results_db.store import Store


def _ok(at: Any) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def variant(template: RunResult, hours: int, throttled: set[int] | None) -> RunResult:
    """A new run of ``template``'s configuration, ``hours`` later, whose ``throttled`` trials
    throttled (None: no thermal section)."""
    update: dict[str, Any] = {
        "run_id": str(uuid.uuid4()),
        "started_at": template.started_at + timedelta(hours=hours),
        "finished_at": template.finished_at + timedelta(hours=hours),
        "thermal": None,
    }
    if throttled is not None:
        trials = [t.model_copy(update={"throttled": t.index in throttled}) for t in template.trials]
        update["trials"] = trials
        update["thermal"] = ThermalSummary(
            max_temp_c=90.0,
            sensors={"x86_pkg_temp": 90.0},
            throttled_trials=sorted(throttled),
            trials=[TrialThermal(index=t.index, throttled=t.throttled) for t in trials],
            period_s=0.5,
            sources=["thermal zone x86_pkg_temp"],
        )
    return template.model_copy(update=update)


def test_throttled_column_per_run_and_per_configuration(
    lab_sqlite: tuple[str, list[RunResult]], run_page: Callable[..., Any], tmp_path: Path
) -> None:
    _, runs = lab_sqlite
    template = next(
        r
        for r in runs
        if r.valid
        and r.suite == "mobilenet_v2"
        and r.scenario == "single-stream"
        and r.config.mode == "edge"
        and len(r.trials) >= 2
    )
    n = len(template.trials)
    unsampled = variant(template, 0, None)
    cool = variant(template, 1, set())
    hot = variant(template, 2, {1})  # the latest run of the configuration
    url = f"sqlite:///{tmp_path / 'thermal.db'}"
    store = Store.open(url)
    for r in (unsampled, cool, hot):
        store.save_run(r)

    at = run_page(url, "leaderboard")
    _ok(at)
    # One configuration: it shows its latest run's (the run *open run* opens).
    table = at.dataframe[0].value
    assert table["throttled"].tolist() == [f"1/{n} trials"]

    at.radio(key="lb_per").set_value("run").run()
    _ok(at)
    table = at.dataframe[0].value
    by_run = dict(
        zip(table["detail"].str.removeprefix("run?run="), table["throttled"], strict=True)
    )
    assert by_run == {
        hot.run_id: f"1/{n} trials",
        cool.run_id: f"0/{n} trials",
        unsampled.run_id: "—",  # no temperature sampled: —, never 0
    }
