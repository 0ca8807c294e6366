"""The dashboard's query and calculation modules, without Streamlit: read-only access,
filters, configurations and ranking, the Pareto front, the procurement model, the CLI."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pytest
import typer
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from wattbench.analysis.pareto import pareto_mask
from wattbench.analysis.procurement import (
    SECONDS_PER_YEAR,
    BuyerInputs,
    Candidate,
    plan_all,
    plan_one,
)
from wattbench.core.errors import SchemaVersionError, StoreError
from wattbench.core.results import RunResult
from wattbench.dashboard.queries import aggregated, compare, escalation, leaderboard
from wattbench.dashboard.queries.common import Filters, energy_badge
from wattbench.results_db.readonly import DB_ENV, Database, open_readonly
from wattbench.results_db.store import Store

LabDb = tuple[str, list[RunResult]]


# -- read-only -------------------------------------------------------------------------------
def _assert_write_refused(db: Database) -> None:
    with pytest.raises(DBAPIError, match=r"(?i)read-?only"), db.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET valid = false"))
    with pytest.raises(DBAPIError, match=r"(?i)read-?only"), db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE intruder (x integer)"))


def test_sqlite_is_opened_read_only(lab_sqlite: LabDb) -> None:
    db = open_readonly(lab_sqlite[0])
    assert db.state == "ok"
    _assert_write_refused(db)
    db.close()


def test_postgresql_is_opened_read_only(pg_url: str, tmp_path: Path) -> None:
    from seed import base_run

    store = Store.open(pg_url)
    store.save_run(base_run(tmp_path))
    store.close()
    db = open_readonly(pg_url)
    assert db.state == "ok"
    _assert_write_refused(db)
    assert len(leaderboard.groups(db)) == 1
    db.close()


def test_missing_and_empty_databases_are_states_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    assert open_readonly(f"sqlite:///{path}").state == "missing"
    assert not path.exists()
    Store.open(f"sqlite:///{path}").close()
    assert open_readonly(f"sqlite:///{path}").state == "empty"


def test_bad_urls_and_stale_schemas_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="invalid database URL"):
        open_readonly("not a url")
    with pytest.raises(StoreError, match="cannot read database"):
        open_readonly("postgresql+psycopg://nobody@127.0.0.1:1/none")
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store.open(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001_schema_v1'"))
    store.close()
    with pytest.raises(SchemaVersionError, match="wattbench db upgrade"):
        open_readonly(url)


# -- leaderboard data ------------------------------------------------------------------------
def test_runs_configurations_rank_and_filters(lab_sqlite: LabDb) -> None:
    url, runs = lab_sqlite
    db = open_readonly(url)
    runs_df = leaderboard.runs_frame(db, "mobilenet_v2", "1.0", "single-stream")
    valid = [
        r for r in runs if r.valid and r.suite == "mobilenet_v2" and r.scenario == "single-stream"
    ]
    assert set(runs_df["run_id"]) == {r.run_id for r in valid}  # invalid runs excluded
    edge = [r for r in valid if r.config.mode == "edge"]
    configs = leaderboard.configurations(leaderboard.filter_runs(runs_df, Filters()))
    assert configs["runs"].sum() == len(edge)  # one mode at a time, edge by default
    hybrid = leaderboard.filter_runs(runs_df, Filters(mode="hybrid"))
    assert set(hybrid["run_id"]) == {r.run_id for r in valid if r.config.mode == "hybrid"}
    # A configuration never mixes measured and estimated energy.
    assert (configs["estimated"] == configs["energy"].str.startswith("≈")).all()
    # Ranks restart per rank group (energy scope × measured/estimated): like with like.
    ranked = leaderboard.rank(configs, "inferences_per_joule")
    by_p90 = leaderboard.rank(configs, "latency_p90_ms")
    assert ranked["rank_group"].nunique() >= 2
    assert ranked["rank_group"].iloc[0] == "wall · measured"
    for _, part in ranked.groupby("rank_group"):
        assert part["inferences_per_joule"].is_monotonic_decreasing
        assert part["rank"].tolist() == list(range(1, len(part) + 1))
        assert part["energy_scope"].nunique() == 1 and part["estimated"].nunique() == 1
    for _, part in by_p90.groupby("rank_group"):
        assert part["latency_p90_ms"].is_monotonic_increasing

    measured = leaderboard.filter_runs(runs_df, Filters(hide_estimated=True))
    assert len(measured) and not measured["estimated"].any()
    nightly = leaderboard.filter_runs(runs_df, Filters(labels=("lab", "nightly")))
    assert len(nightly) and all(
        {"lab", "nightly"} <= set(x) for x in leaderboard.labels_of(nightly)
    )
    oct_only = leaderboard.filter_runs(runs_df, Filters(until=date(2026, 10, 31)))
    assert (oct_only["started_at"].dt.month == 10).all()
    npu = "Synthetic NPU card E (test data)"
    some = leaderboard.filter_runs(runs_df, Filters(hardware=(npu,), precisions=("int8",)))
    assert set(some["hardware"]) == {npu} and set(some["precision"]) == {"int8"}
    assert "tokens_per_joule" not in leaderboard.rankings_for("mobilenet_v2")
    assert leaderboard.rankings_for("slm")[0] == "tokens_per_joule"
    assert leaderboard.rankings_for("mobilenet_v2", mode="hybrid")[0] == (
        "energy_to_solution_j_per_inference"
    )
    db.close()


_SQL_FILTERS = (
    Filters(),
    Filters(mode="hybrid"),
    Filters(hide_estimated=True, labels=("nightly",)),
    Filters(precisions=("int8",), runtimes=("openvino",), until=date(2026, 10, 31)),
    Filters(devices=("synthetic-coral-like-02",), since=date(2026, 10, 20)),
)


def check_sql_grouping_matches_pandas(db: Database) -> None:
    """The configurations grouped by the database, from the per-configuration summaries
    and from the runs, equal those grouped in pandas; the drill-down's medians equal the
    pandas medians of the same runs."""
    import pandas as pd

    runs_df = leaderboard.runs_frame(db, "mobilenet_v2", "1.0", "single-stream")
    cols = [
        "config",
        "energy",
        "mode",
        "inferences_per_joule",
        "joules_per_inference",
        "latency_p90_ms",
        "throughput_ips",
        "uncertainty_pct",
        "energy_to_solution_j_per_inference",
        "purchase_price",
        "currency",
        "runs",
        "devices",
        "run_id",
        "last_run",
    ]
    sizes = []
    for f in _SQL_FILTERS:
        pandas = leaderboard.configurations(leaderboard.filter_runs(runs_df, f))
        ways = [None, False] + ([True] if aggregated.summaries_answer(f) else [])
        for way in ways:
            sql = aggregated.configurations_sql(
                db, "mobilenet_v2", "1.0", "single-stream", f, summaries=way
            )
            pd.testing.assert_frame_equal(
                sql.sort_values("config")[cols].reset_index(drop=True),
                pandas.sort_values("config")[cols].reset_index(drop=True),
                check_dtype=False,
                rtol=1e-9,
            )
        sizes.append(len(pandas))
        # The drill-down: exact medians and the latest runs of a few configurations.
        chosen = pandas.sort_values("config").head(3)
        keys = [aggregated.config_key(r) for r in chosen.itertuples()]
        detail = aggregated.configuration_medians(
            db, "mobilenet_v2", "1.0", "single-stream", f, keys, recent=2
        )
        assert [aggregated.config_key(r) for r in detail.itertuples()] == keys
        runs = leaderboard.filter_runs(runs_df, f)
        for key, row in zip(keys, detail.itertuples(), strict=True):
            mine = runs[[aggregated.config_key(r) == key for r in runs.itertuples()]]
            mine = mine.sort_values(["started_at", "run_id"])
            assert row.runs == len(mine)
            assert row.run_ids == list(mine["run_id"].iloc[-2:])
            for m in ("inferences_per_joule", "latency_p90_ms", "uncertainty_pct"):
                assert getattr(row, m) == pytest.approx(mine[m].median(), rel=1e-9)
    assert sizes[0] > sizes[2] > 0 and sizes[1] == 1 and 0 < sizes[3] < sizes[0]
    # The sidebar's choices: the same from the summaries and from the runs.
    from_summaries = aggregated.facets(db, "mobilenet_v2", "1.0", "single-stream", summaries=True)
    from_runs = aggregated.facets(db, "mobilenet_v2", "1.0", "single-stream", summaries=False)
    assert from_summaries == from_runs


def test_configurations_grouped_in_sql_match_pandas_sqlite(lab_sqlite: LabDb) -> None:
    db = open_readonly(lab_sqlite[0])
    check_sql_grouping_matches_pandas(db)
    fc = aggregated.facets(db, "mobilenet_v2", "1.0", "single-stream")
    assert fc.modes == ("edge", "hybrid", "cloud")
    assert fc.labels[0] == "synthetic" and "nightly" in fc.labels
    assert len(fc.hardware) == 5 and all("Synthetic" in h for h in fc.hardware)
    db.close()


def test_sweep_points_come_from_the_stored_network_sections(lab_sqlite: LabDb) -> None:
    from seed import SWEEP_ID, THRESHOLDS

    url, runs = lab_sqlite
    db = open_readonly(url)
    sw = escalation.sweeps(db)
    assert list(sw["sweep"]) == [SWEEP_ID]
    assert sw["kind"][0] == "threshold" and sw["runs"][0] == len(THRESHOLDS)
    pts = escalation.sweep_points(db, SWEEP_ID)
    assert list(pts["value"]) == list(THRESHOLDS)
    by_id = {r.run_id: r for r in runs}
    for p in pts.itertuples():
        n = by_id[p.run_id].network
        assert n is not None and n.threshold == float(p.value)
        assert p.energy_to_solution_j == pytest.approx(n.energy_to_solution_j_per_inference)
        assert p.energy_to_solution_j == pytest.approx(p.edge_j + p.network_j + p.cloud_j)
        assert p.agreement_with_cloud == pytest.approx(n.agreement_with_cloud)
        assert p.network_energy == "modelled"
        assert p.edge_energy.startswith("measured: polled")
    # More escalation: more energy and closer agreement with the cloud.
    assert pts["escalation_rate"].is_monotonic_increasing
    assert pts["energy_to_solution_j"].is_monotonic_increasing
    assert pts["agreement_with_cloud"].iloc[-1] > pts["agreement_with_cloud"].iloc[0]
    assert escalation.sweep_points(db, SWEEP_ID[:-1]).empty  # a prefix is not the sweep
    db.close()


def test_trial_samples_pool_per_trial_values(lab_sqlite: LabDb) -> None:
    url, runs = lab_sqlite
    db = open_readonly(url)
    run = runs[0]
    s = compare.trial_samples(db, [run.run_id])
    assert len(s["throughput_ips"]) == len(run.trials)
    expected = [t.energy[0].gross_j / t.inferences for t in run.trials]
    assert s["joules_per_inference"] == pytest.approx(expected)
    db.close()


def test_energy_badge_is_honest() -> None:
    assert energy_badge("estimated", "chip") == "≈ ESTIMATED · chip"
    assert energy_badge("counter", "board") == "measured: counter · board"
    assert energy_badge(None, None) == "no energy figure"


# -- Pareto ----------------------------------------------------------------------------------
def test_pareto_mask() -> None:
    x = [1.0, 2.0, 3.0, 2.0, None, 1.0, 4.0, math.nan]
    y = [5.0, 3.0, 4.0, 3.0, 1.0, 6.0, 1.0, 0.5]
    assert pareto_mask(x, y) == [True, True, False, True, False, False, True, False]
    assert pareto_mask([], []) == []


# -- procurement -----------------------------------------------------------------------------
def _inputs(**kw: object) -> BuyerInputs:
    base: dict[str, object] = {
        "required_ips": 250.0,
        "latency_bound_ms": 20.0,
        "electricity_price_per_kwh": 0.25,
        "lifetime_years": 3.0,
        "carbon_g_per_kwh": 400.0,
    }
    return BuyerInputs(**(base | kw))  # type: ignore[arg-type]


def test_plan_counts_devices_energy_cost_and_carbon() -> None:
    c = Candidate("x", 100.0, 10.0, 15.0, 0.05, idle_w=2.0, device_price=300.0)
    p = plan_one(c, _inputs())
    assert p is not None
    assert p.devices == 3  # ceil(250 / 100)
    assert p.utilisation == pytest.approx(250 / 300)
    joules = 250 * 0.05 * SECONDS_PER_YEAR + 3 * (1 - 250 / 300) * 2.0 * SECONDS_PER_YEAR
    kwh = joules / 3.6e6
    assert p.energy_kwh_per_year == pytest.approx(kwh)
    assert p.energy_cost_per_year == pytest.approx(kwh * 0.25)
    assert p.kg_co2e_per_year == pytest.approx(kwh * 400 / 1000)
    assert p.capex == 900.0
    per_million = (900 + 3 * kwh * 0.25) / (250 * SECONDS_PER_YEAR * 3 / 1e6)
    assert p.cost_per_million == pytest.approx(per_million)


def test_plan_applies_the_latency_bound_and_ranks_by_cost() -> None:
    slow = Candidate("slow", 1000.0, 30.0, 40.0, 0.01, idle_w=1.0, device_price=100.0)
    tail = Candidate("tail", 1000.0, 10.0, 40.0, 0.01, idle_w=1.0, device_price=100.0)
    cheap = Candidate("cheap", 300.0, 5.0, 6.0, 0.02, idle_w=1.0, device_price=50.0)
    dear = Candidate("dear", 300.0, 5.0, 6.0, 0.02, idle_w=1.0, device_price=5000.0)
    unpriced = Candidate("unpriced", 300.0, 5.0, 6.0, 0.02)
    plans = plan_all([slow, tail, dear, unpriced, cheap], _inputs())
    assert [p.config for p in plans] == ["cheap", "tail", "dear", "unpriced"]
    assert plans[-1].cost_per_million is None and "price" in plans[-1].notes
    assert "idle power unknown" in plans[-1].notes
    p99 = plan_all([slow, tail, cheap], _inputs(latency_percentile="p99"))
    assert [p.config for p in p99] == ["cheap"]
    assert plan_one(Candidate("z", 0.0, 1.0, 1.0, 0.1), _inputs()) is None


def test_buyer_inputs_are_validated() -> None:
    assert _inputs().problems() == []
    assert len(_inputs(required_ips=0, lifetime_years=-1).problems()) == 2


# -- CLI -------------------------------------------------------------------------------------
def _cli() -> typer.Typer:
    from wattbench.harness.cli import dashboard as cli_dashboard

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """wattbench"""

    cli_dashboard.register(app)
    return app


def test_cli_refuses_bad_database_before_launching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wattbench.harness.cli import dashboard as cli_dashboard

    launched: list[list[str]] = []
    monkeypatch.setattr(cli_dashboard, "launch", lambda cmd, env: launched.append(cmd) or 0)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store.open(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001_schema_v1'"))
    store.close()
    res = CliRunner().invoke(_cli(), ["dashboard", "--db", url])
    assert isinstance(res.exception, SchemaVersionError)
    assert "wattbench db upgrade" in str(res.exception)
    assert launched == []


def test_cli_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from wattbench.core.errors import UnavailableError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "streamlit" else real(n, *a)
    )
    res = CliRunner().invoke(_cli(), ["dashboard"])
    assert isinstance(res.exception, UnavailableError)
    assert "pip install 'wattbench[dashboard]'" in str(res.exception)


def test_cli_launches_streamlit_on_the_app_with_the_url(
    lab_sqlite: LabDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wattbench.harness.cli import dashboard as cli_dashboard

    launched: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(cli_dashboard, "launch", lambda cmd, env: launched.append((cmd, env)) or 0)
    res = CliRunner().invoke(_cli(), ["dashboard", "--db", lab_sqlite[0], "--port", "8765"])
    assert res.exit_code == 0, res.output
    ((args, env),) = launched
    assert args[1:4] == ["-m", "wattbench.dashboard.serve", "run"] and args[4].endswith("app.py")
    assert "8765" in args and env[DB_ENV] == lab_sqlite[0]


def test_importing_the_cli_module_does_not_import_streamlit() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import wattbench.harness.cli.dashboard; "
        "assert not {'streamlit', 'pandas', 'plotly'} & set(sys.modules), sys.modules.keys()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
