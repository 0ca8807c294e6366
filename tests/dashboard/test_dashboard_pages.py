"""Every page of the dashboard through streamlit.testing's AppTest, on seeded databases."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from seed import APP_PATH

from wattbench.core.results import RunResult

LabDb = tuple[str, list[RunResult]]


def _ok(at: Any) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _valid(
    runs: list[RunResult], scenario: str = "single-stream", mode: str = "edge"
) -> list[RunResult]:
    return [
        r
        for r in runs
        if r.valid
        and r.suite == "mobilenet_v2"
        and r.scenario == scenario
        and r.config.mode == mode
    ]


def check_leaderboard(at: Any, runs: list[RunResult]) -> None:
    _ok(at)
    assert at.title[0].value == "Leaderboard"
    # The default selection is the group with the most valid runs (of every mode).
    scenario = max(
        ("single-stream", "offline"),
        key=lambda s: (
            sum(r.valid and r.suite == "mobilenet_v2" and r.scenario == s for r in runs),
            s == "single-stream",
        ),
    )
    # Like with like: one rank group (energy scope × measured/estimated) at a time,
    # widest scope and measured first; every group has its own rank 1.
    assert at.radio(key="lb_scope").value == "wall"
    assert at.radio(key="lb_estimated").value == "measured"
    seen: set[tuple[str, str, str, str]] = set()
    for scope in at.radio(key="lb_scope").options:
        at.radio(key="lb_scope").set_value(scope).run()
        for how in at.radio(key="lb_estimated").options:
            at.radio(key="lb_estimated").set_value(how).run()
            _ok(at)
            table = at.dataframe[0].value
            ranked = table["inf/J"].tolist()
            assert ranked == sorted(ranked, reverse=True)  # best first
            assert table["#"].tolist() == list(range(1, len(table) + 1))
            assert set(table["group (scope · energy)"]) == {f"{scope} · {how}"}
            assert (
                table["energy (method · scope)"]
                .str.startswith("≈ ESTIMATED" if how == "estimated" else "measured")
                .all()
            )
            seen |= set(
                zip(
                    table["hardware"],
                    table["runtime"],
                    table["precision"],
                    table["energy (method · scope)"],
                    strict=True,
                )
            )
    assert {"wall", "chip"} <= set(at.radio(key="lb_scope").options)
    configs = {
        (
            r.device.get("accelerator") or r.device["cpu_model"],
            r.adapter.adapter,
            r.adapter.precision,
            r.energy[0].method.value,
        )
        for r in _valid(runs, scenario)
    }
    assert len(seen) == len(configs)
    assert at.get("download_button")
    # Only edge runs rank here: the sweep's hybrid runs and the cloud run are elsewhere.
    assert "energy-to-solution J/inf" not in table.columns
    assert at.sidebar.radio(key="sel_mode").value == "edge"


def check_leaderboard_hybrid(at: Any, runs: list[RunResult]) -> None:
    at.sidebar.radio(key="sel_mode").set_value("hybrid").run()
    _ok(at)
    table = at.dataframe[0].value
    e2s = table["energy-to-solution J/inf"].tolist()
    assert e2s == sorted(e2s)  # ranked by energy-to-solution, lowest first
    assert len(table) == 1 and table["runs"][0] == len(_valid(runs, mode="hybrid"))
    assert any("device's own share" in i.value for i in at.info)
    at.radio(key="lb_per").set_value("run").run()
    _ok(at)
    per_run = at.dataframe[0].value
    expected = sorted(
        r.network.energy_to_solution_j_per_inference  # type: ignore[union-attr]
        for r in _valid(runs, mode="hybrid")
    )
    assert per_run["energy-to-solution J/inf"].tolist() == pytest.approx(expected)


def check_escalation(at: Any, runs: list[RunResult]) -> None:
    from seed import SWEEP_ID, THRESHOLDS

    _ok(at)
    assert at.title[0].value == "Escalation sweep"
    assert at.selectbox(key="esc_sweep").value == SWEEP_ID
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the curve, the stacked parts
    table = at.dataframe[0].value
    assert list(table["value"]) == list(THRESHOLDS)
    by_id = {r.run_id: r for r in runs}
    for row in table.itertuples():
        n = by_id[row.detail.removeprefix("run?run=")].network
        assert n is not None
        assert row._3 == pytest.approx(n.energy_to_solution_j_per_inference)  # e-t-s J/inf
    assert (table["network J/inf (modelled)"].diff().dropna() >= 0).all()
    assert set(table["cloud energy"]) == {"zero", "measured"}
    assert at.get("download_button")
    at.radio(key="esc_axis").set_value("escalation rate").run()
    _ok(at)


def _sweep_answer(runs: list[RunResult], bound_ms: float | None) -> Any:
    """The seeded settings sweep's front and optimum, computed apart from the page: from the
    RunResults themselves, as `wattbench sweep settings` does."""
    from wattbench.analysis.sweep import answer, point_from_result

    points = []
    for r in runs:
        settings = dict(
            x.removeprefix("setting:").split("=", 1)
            for x in r.labels
            if x.startswith("setting:") and "=" in x
        )
        base = "setting:baseline" in r.labels
        key = "baseline" if base else ",".join(f"{k}={v}" for k, v in settings.items())
        points.append(point_from_result(r, key=key, settings=settings, baseline=base))
    return answer(points, bound_ms=bound_ms, percentile="p90")


def check_settings_sweep(at: Any, runs: list[RunResult]) -> None:
    from seed_sweep import BOUND_MS, HOT, SETTINGS_SWEEP_ID

    _ok(at)
    assert at.title[0].value == "Settings sweep"
    assert at.selectbox(key="sw_sweep").value == SETTINGS_SWEEP_ID
    assert at.number_input(key=f"sw_bound_{SETTINGS_SWEEP_ID}").value == BOUND_MS
    marked, ans = _sweep_answer(runs, BOUND_MS)
    assert ans.optimal not in (None, HOT, "baseline")
    assert any(not p.feasible for p in marked)  # the bound excludes something
    table = at.dataframe[0].value
    assert len(table) == len(runs) == 7
    assert table["setting"].iloc[0] == "baseline" and "baseline" in table[""].iloc[0]
    assert table.loc[table[""].str.contains("OPTIMAL"), "setting"].tolist() == [ans.optimal]
    on_front = table.loc[table[""].str.contains("pareto"), "setting"]
    assert set(on_front) == set(ans.pareto)
    assert table.loc[table["throttled"] == "THROTTLED", "setting"].tolist() == [HOT]
    assert table.loc[table["setting"] == HOT, "max °C"].iloc[0] == 97.0
    feasible = {p.key: "yes" if p.feasible else "no" for p in marked}
    assert dict(zip(table["setting"], table["within bound"], strict=True)) == feasible
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["energy-optimal"] == ans.optimal
    assert metrics["vs the baseline"] == f"{ans.gain:.2f}× inf/J"
    captions = " ".join(c.value for c in at.caption)
    assert "measured **6** of **6** grid points" in captions
    assert any("1 THROTTLED point(s)" in w.value and HOT in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 1 and at.get("download_button")


def check_pareto(at: Any) -> None:
    _ok(at)
    assert at.title[0].value == "Pareto front"
    charts = at.get("plotly_chart")
    assert charts, "no Pareto chart"
    # One front per rank group (energy scope × measured/estimated), no combined front.
    groups = [
        m.value for m in at.markdown if m.value.startswith("**") and " on its front)" in m.value
    ]
    assert len(groups) == len(at.dataframe) >= 2
    assert any("wall · measured" in g for g in groups) and any("chip · " in g for g in groups)
    for table in (d.value for d in at.dataframe):
        assert 1 <= len(table) < 45
        # Each front is monotone: cheaper energy comes with higher latency.
        assert table["p90 ms"].is_monotonic_decreasing
        scopes = {e.split(" · ")[-1].strip() for e in table["energy (method · scope)"]}
        assert len(scopes) == 1, scopes
    names = {t.get("name") for t in json.loads(charts[0].proto.spec)["data"]}
    assert "wall · measured · front" in names and "front" not in names


def check_run_detail(at: Any, run: RunResult) -> None:
    _ok(at)
    assert at.title[0].value == "Run detail"
    labels = [m.label for m in at.metric]
    assert "inferences / J" in labels and "p90 latency" in labels
    assert len(at.get("plotly_chart")) == 2  # power trace, latency histogram + CDF
    trials = at.dataframe[1].value
    assert len(trials) == len(run.trials)
    text = " ".join(str(m.value) for m in at.markdown)
    assert "Environment fingerprint" in text and "Quality check" in text


def check_compare(at: Any) -> None:
    _ok(at)
    table = at.dataframe[1].value
    others = table[table["verdict (95 %)"] != "baseline"]
    assert len(others) == 3  # three metrics for the second configuration
    assert others["CI low %"].notna().all() and others["CI high %"].notna().all()
    assert (others["CI low %"] <= others["Δ vs first %"]).all()
    assert (others["Δ vs first %"] <= others["CI high %"]).all()


def procurement_tables(at: Any) -> list[Any]:
    """The procurement page's plan tables, one per energy group ([0] is the price editor)."""
    return [d.value for d in at.dataframe[1:]]


def check_procurement(at: Any) -> None:
    _ok(at)
    tables = procurement_tables(at)
    # The lab has chip, module and wall figures, measured and estimated: one table per
    # group, wall first, never one ranking across them.
    groups = [t["group"].iloc[0] for t in tables]
    assert len(groups) > 1 and len(set(groups)) == len(groups), groups
    widest_first = ("wall", "board", "module", "chip")
    order = [widest_first.index(g.split(" · ")[0]) for g in groups]
    assert order == sorted(order), groups
    for t in tables:
        assert t["group"].nunique() == 1
        assert t["rank"].tolist() == list(range(1, len(t) + 1))  # restarts per group
        assert t["total EUR / million inferences"].dropna().is_monotonic_increasing
        assert (t["devices"] >= 1).all()
        assert t["kg CO2e / year"].notna().all()
        estimated = t["group"].iloc[0].endswith("estimated")
        assert t["energy"].str.startswith("≈").eq(estimated).all()
        # Electricity cost is billed from wall/board figures; chip/module ones are lower bounds.
        for energy, basis in zip(t["energy"], t["energy basis"], strict=True):
            lower = energy.endswith(("chip", "module"))
            assert ("LOWER BOUND" in basis) == lower, (energy, basis)


def test_leaderboard(lab_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    url, runs = lab_sqlite
    check_leaderboard(run_page(url, "leaderboard"), runs)


def test_leaderboard_hides_estimates_and_filters(
    lab_sqlite: LabDb, run_page: Callable[..., Any]
) -> None:
    url, _ = lab_sqlite
    at = run_page(url, "leaderboard")
    at.sidebar.toggle(key="sel_hide_est").set_value(True).run()
    _ok(at)
    table = at.dataframe[0].value
    assert not table["energy (method · scope)"].str.contains("ESTIMATED").any()
    at.multiselect(key="sel_precisions").set_value(["int8"]).run()
    assert set(at.dataframe[0].value["precision"]) == {"int8"}
    at.radio(key="lb_metric").set_value("latency_p90_ms").run()
    p90 = at.dataframe[0].value["p90 ms"].tolist()
    assert p90 == sorted(p90)
    at.radio(key="lb_per").set_value("run").run()
    _ok(at)
    assert "device" in at.dataframe[0].value.columns


def test_leaderboard_ranks_one_mode_at_a_time(
    lab_sqlite: LabDb, run_page: Callable[..., Any]
) -> None:
    url, runs = lab_sqlite
    check_leaderboard_hybrid(run_page(url, "leaderboard"), runs)


def test_escalation_sweep(lab_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    url, runs = lab_sqlite
    check_escalation(run_page(url, "escalation"), runs)


def test_slm_ranks_by_tokens_per_joule(lab_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    import statistics

    url, runs = lab_sqlite
    at = run_page(url, "leaderboard")
    at.sidebar.selectbox(key="sel_group").set_value("slm\x1f1.0\x1fsingle-stream").run()
    _ok(at)
    assert at.radio(key="lb_metric").value == "tokens_per_joule"  # first for the slm suite
    slm = [r for r in runs if r.suite == "slm" and r.valid]
    for how in ("measured", "estimated"):  # separate rank groups, each ranked on its own
        at.radio(key="lb_estimated").set_value(how).run()
        _ok(at)
        table = at.dataframe[0].value
        by_hw: dict[str, list[float]] = {}
        for r in slm:
            assert r.generation is not None and r.generation.tokens_per_joule is not None
            if (r.energy[0].method.value == "estimated") != (how == "estimated"):
                continue
            hw = r.device.get("accelerator") or r.device["cpu_model"]
            by_hw.setdefault(hw, []).append(r.generation.tokens_per_joule)
        expected = sorted(((statistics.median(v), k) for k, v in by_hw.items()), reverse=True)
        assert list(table["hardware"]) == [k for _v, k in expected]
        assert table["tokens/J"].tolist() == pytest.approx([v for v, _k in expected])


@pytest.fixture(scope="module")
def sweep_sqlite(tmp_path_factory: pytest.TempPathFactory) -> LabDb:
    """A database holding one seeded settings sweep (seed_sweep.py)."""
    from seed_sweep import seed_settings_sweep

    d = tmp_path_factory.mktemp("sweep-db")
    url = f"sqlite:///{d / 'sweep.db'}"
    return url, seed_settings_sweep(url, d)


def test_settings_sweep(sweep_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    url, runs = sweep_sqlite
    at = run_page(url, "sweep")
    check_settings_sweep(at, runs)
    # No bound: every point is feasible and the optimum is the cheapest point of all.
    from seed_sweep import SETTINGS_SWEEP_ID

    at.number_input(key=f"sw_bound_{SETTINGS_SWEEP_ID}").set_value(0.0).run()
    _ok(at)
    _, ans = _sweep_answer(runs, None)
    table = at.dataframe[0].value
    assert table.loc[table[""].str.contains("OPTIMAL"), "setting"].tolist() == [ans.optimal]
    assert set(table["within bound"]) == {"-"}
    # Another percentile moves the chart's axis and the front with it.
    at.radio(key=f"sw_pct_{SETTINGS_SWEEP_ID}").set_value("p99").run()
    _ok(at)


def test_run_detail_of_a_throttled_run(sweep_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    from seed_sweep import HOT

    url, runs = sweep_sqlite
    hot = next(r for r in runs if {f"setting:{kv}" for kv in HOT.split(",")} <= set(r.labels))
    at = run_page(url, "run", {"run": hot.run_id})
    _ok(at)
    trials = at.dataframe[1].value
    assert trials["throttled"].tolist() == [False, True, False]
    assert trials["max_temp_c"].tolist() == [88.0, 97.0, 88.0]
    assert any("THROTTLED in trial(s) 2" in w.value for w in at.warning)


def test_settings_sweeps_are_not_escalation_sweeps(
    sweep_sqlite: LabDb, lab_sqlite: LabDb, run_page: Callable[..., Any]
) -> None:
    at = run_page(sweep_sqlite[0], "escalation")
    _ok(at)
    assert any("No sweeps stored yet" in i.value for i in at.info)
    at = run_page(lab_sqlite[0], "sweep")  # the lab database has no settings sweep
    _ok(at)
    assert "wattbench sweep settings" in at.code[0].value


def test_pareto(lab_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    check_pareto(run_page(lab_sqlite[0], "pareto"))


def test_run_detail(lab_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    url, runs = lab_sqlite
    run = runs[3]
    at = run_page(url, "run", {"run": run.run_id})
    check_run_detail(at, run)
    assert run.device["name"] in at.subheader[0].value


def test_run_detail_of_an_invalid_estimated_run_says_so(
    lab_sqlite: LabDb, run_page: Callable[..., Any]
) -> None:
    url, runs = lab_sqlite
    bad = next(r for r in runs if not r.valid)
    at = run_page(url, "run", {"run": bad.run_id})
    assert any("INVALID" in e.value for e in at.error)
    est = next(r for r in runs if r.energy[0].estimated)
    at = run_page(url, "run", {"run": est.run_id})
    _ok(at)
    assert any("ESTIMATED" in w.value for w in at.warning)
    assert at.metric[0].value.startswith("≈ ")


def test_compare(lab_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    check_compare(run_page(lab_sqlite[0], "compare"))


def test_procurement(lab_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    at = run_page(lab_sqlite[0], "procurement")
    check_procurement(at)
    # A tight bound leaves fewer configurations, every one within it.
    at.number_input(key="pr_bound").set_value(0.3)
    at.button[0].click().run()  # the form's submit button
    table = pd.concat(procurement_tables(at))
    assert 0 < len(table) < 45
    assert (table["latency ms"] <= 0.3).all()


def test_whole_app_navigation_default_page(
    lab_sqlite: LabDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WATTBENCH_DASHBOARD_DB", lab_sqlite[0])
    at = AppTest.from_file(str(APP_PATH), default_timeout=60).run()
    _ok(at)
    assert at.title[0].value == "Leaderboard"


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_empty_database_explains_how_to_get_a_first_result(
    kind: str, tmp_path: Path, run_page: Callable[..., Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    if kind == "empty":
        from wattbench.results_db.store import Store

        Store.open(url).close()  # schema, no runs
    for page in ("leaderboard", "pareto", "run", "compare", "procurement", "escalation", "sweep"):
        at = run_page(url, page)
        _ok(at)
        assert "wattbench run --suite mobilenet_v2" in at.code[0].value
    assert not (tmp_path / "none.db").exists() or kind == "empty"  # nothing created


def test_stale_schema_is_one_error_line(tmp_path: Path, run_page: Callable[..., Any]) -> None:
    from sqlalchemy import text

    from wattbench.results_db.store import Store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store.open(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001_schema_v1'"))
    store.close()
    at = run_page(url, "leaderboard")
    assert len(at.error) == 1 and "wattbench db upgrade" in at.error[0].value


def test_pages_do_not_write(lab_sqlite: LabDb, run_page: Callable[..., Any]) -> None:
    url, runs = lab_sqlite
    path = Path(url.removeprefix("sqlite:///"))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for page in ("leaderboard", "pareto", "compare", "procurement", "escalation", "sweep"):
        _ok(run_page(url, page))
    _ok(run_page(url, "run", {"run": runs[0].run_id}))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_every_page_on_postgresql(
    pg_url: str, tmp_path: Path, run_page: Callable[..., Any]
) -> None:
    from seed import seed_url

    runs = seed_url(pg_url, tmp_path, repeats=1)
    check_leaderboard(run_page(pg_url, "leaderboard"), runs)
    check_pareto(run_page(pg_url, "pareto"))
    run = next(r for r in runs if r.valid)
    check_run_detail(run_page(pg_url, "run", {"run": run.run_id}), run)
    at = run_page(pg_url, "compare")
    _ok(at)
    # One run per configuration here: 3 trials a side, still enough for a CI.
    check_compare(at)
    check_procurement(run_page(pg_url, "procurement"))
    check_leaderboard_hybrid(run_page(pg_url, "leaderboard"), runs)
    check_escalation(run_page(pg_url, "escalation"), runs)
    from test_dashboard_logic import check_sql_grouping_matches_pandas

    from wattbench.results_db.readonly import open_readonly

    db = open_readonly(pg_url)
    try:
        check_sql_grouping_matches_pandas(db)
    finally:
        db.close()
