"""The leaderboard page shows each row's achieved 95 % interval (issue 20, `--target-ci`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from wattbench.core.confidence import TARGET_REACHED, TrialConfidence
from wattbench.core.results import RunResult
from wattbench.core.stats import median_ci
from wattbench.results_db.store import Store

IPJ = [98.0, 99.0, 100.0, 100.5, 101.0, 102.0, 103.0, 104.0]
P90 = [5.0, 5.1, 5.2, 5.2, 5.3, 5.4, 5.5, 5.6]


def _ok(at: Any) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def confidence() -> TrialConfidence:
    return TrialConfidence(
        trials=len(IPJ),
        min_trials=5,
        target_pct=3.0,
        budget_s=600.0,
        measured_s=40.0,
        stopped=TARGET_REACHED,
        inferences_per_joule=median_ci(IPJ),
        latency_p90_ms=median_ci(P90),
    )


def test_interval_column_per_run_and_per_configuration(
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
    )
    older = template.model_copy(update={"run_id": str(uuid.uuid4()), "confidence": None})
    newer = template.model_copy(
        update={
            "run_id": str(uuid.uuid4()),
            "confidence": confidence(),
            "started_at": template.started_at + timedelta(hours=1),
            "finished_at": template.finished_at + timedelta(hours=1),
        }
    )
    url = f"sqlite:///{tmp_path / 'ci.db'}"
    store = Store.open(url)
    store.save_run(older)
    store.save_run(newer)
    hw = median_ci(IPJ).half_width
    assert hw is not None
    want = f"±{hw * 100:.2g} %"

    at = run_page(url, "leaderboard")
    _ok(at)
    # One configuration: it shows its latest run's interval (the run *open run* opens).
    table = at.dataframe[0].value
    assert table["95% CI inf/J"].tolist() == [want]
    assert table["CI stop"].tolist() == ["target reached"]

    at.radio(key="lb_per").set_value("run").run()
    _ok(at)
    table = at.dataframe[0].value
    by_run = dict(
        zip(table["detail"].str.removeprefix("run?run="), table["95% CI inf/J"], strict=True)
    )
    stop = dict(zip(table["detail"].str.removeprefix("run?run="), table["CI stop"], strict=True))
    assert by_run == {newer.run_id: want, older.run_id: "—"}  # no interval: —, never 0
    assert stop == {newer.run_id: "target reached", older.run_id: "—"}


def test_pareto_hover_names_the_latest_runs_interval(
    lab_sqlite: tuple[str, list[RunResult]], run_page: Callable[..., Any], tmp_path: Path
) -> None:
    _, runs = lab_sqlite
    valid = [
        r
        for r in runs
        if r.valid
        and r.suite == "mobilenet_v2"
        and r.scenario == "single-stream"
        and r.config.mode == "edge"
    ]
    with_ci = valid[0].model_copy(update={"run_id": str(uuid.uuid4()), "confidence": confidence()})
    other = next(
        r
        for r in valid
        if r.adapter.precision != valid[0].adapter.precision
        and r.energy[0].scope == valid[0].energy[0].scope
    )
    without = other.model_copy(update={"run_id": str(uuid.uuid4()), "confidence": None})
    url = f"sqlite:///{tmp_path / 'pareto.db'}"
    store = Store.open(url)
    store.save_run(with_ci)
    store.save_run(without)
    hw = median_ci(IPJ).half_width
    assert hw is not None

    at = run_page(url, "pareto")
    _ok(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    points = [t for t in fig["data"] if t.get("mode") == "markers"]
    assert all("latest run's 95% CI inf/J" in t["hovertemplate"] for t in points)
    cells = [tuple(c[4:6]) for t in points for c in t["customdata"]]
    assert sorted(cells) == sorted([(f"±{hw * 100:.2g} %", "target reached"), ("—", "—")])
