"""The results store on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.errors import SchemaVersionError, StoreError
from wattbench.core.power import EnergyMethod, EnergyScope
from wattbench.core.results import RunResult
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness.protocol import Runner
from wattbench.results_db.schema import EnergyMeasurement, Run, Trial
from wattbench.results_db.store import Store, head_revision


def make_result(
    tmp_path: Path,
    *,
    latency_s: float = 0.001,
    power_w: float = 5.0,
    method: EnergyMethod = EnergyMethod.COUNTER,
    labels: tuple[str, ...] = (),
    nan: bool = False,
) -> RunResult:
    clock = FakeClock()
    cfg = RunConfig(
        suite="fake",
        adapter="fake",
        duration_s=1,
        min_queries=10,
        repeats=2,
        warmup_s=0.1,
        idle_s=1,
        cooldown_s=0,
        labels=labels,
        device_name="bench-01",
    )
    adapter = FakeAdapter(clock, latency_s, (lambda x: x * float("nan")) if nan else None)
    reader = FakePowerReader(clock, power_w, method=method)
    return Runner(
        cfg,
        FakeSuite(),
        adapter,
        [reader],
        ModelCache(tmp_path / "cache"),
        clock_ns=clock,
        sleep=clock.advance,
    ).execute()


def test_fresh_database_gets_schema_at_head(db_url: str) -> None:
    store = Store.open(db_url)
    assert store.current_revision() == head_revision()
    assert store.count_runs() == 0


def test_save_run_writes_every_table_and_is_idempotent(db_url: str, tmp_path: Path) -> None:
    store = Store.open(db_url)
    result = make_result(tmp_path)
    assert store.save_run(result) is True
    assert store.save_run(result) is False  # same uuid: acknowledged, not duplicated
    assert store.count_runs() == 1
    with store.engine.connect() as conn:
        run = conn.execute(select(Run)).one()
        assert run.uuid == result.run_id
        assert run.valid is True
        assert run.inferences_per_joule == pytest.approx(200.0)
        assert conn.scalar(select(func.count(Trial.id))) == 2
        # one row per trial plus the run total, for the one reader
        energy = conn.execute(select(EnergyMeasurement)).all()
        assert len(energy) == 3
        totals = [e for e in energy if e.trial_index is None]
        assert len(totals) == 1 and totals[0].gross_j == pytest.approx(10.0)
        assert all(e.method == "counter" and e.scope == "board" for e in energy)


def test_leaderboard_ranks_by_inferences_per_joule_and_hides_invalid(
    db_url: str, tmp_path: Path
) -> None:
    store = Store.open(db_url)
    slow = make_result(tmp_path, latency_s=0.002)  # 100 inf/J at 5 W
    fast = make_result(tmp_path, latency_s=0.001)  # 200 inf/J
    broken = make_result(tmp_path, nan=True)
    for r in (slow, fast, broken):
        store.save_run(r)
    assert not broken.valid
    rows = store.leaderboard("fake")
    assert [r.run_id for r in rows] == [fast.run_id, slow.run_id]
    assert [r.rank for r in rows] == [1, 2]
    assert rows[0].inferences_per_joule == pytest.approx(200.0)
    assert rows[1].joules_per_inference == pytest.approx(0.01)
    assert rows[0].energy_method == "counter" and not rows[0].energy_estimated
    with_invalid = store.leaderboard("fake", include_invalid=True)
    assert broken.run_id in {r.run_id for r in with_invalid}


def test_estimated_runs_are_labelled_and_can_be_hidden(db_url: str, tmp_path: Path) -> None:
    store = Store.open(db_url)
    est = make_result(tmp_path, method=EnergyMethod.ESTIMATED)
    meas = make_result(tmp_path, latency_s=0.004)
    store.save_run(est)
    store.save_run(meas)
    rows = {r.run_id: r for r in store.leaderboard()}
    assert rows[est.run_id].energy_estimated is True
    assert rows[meas.run_id].energy_estimated is False
    assert [r.run_id for r in store.leaderboard(hide_estimated=True)] == [meas.run_id]


def test_runs_rank_like_with_like_per_energy_scope(db_url: str, tmp_path: Path) -> None:
    """The same device measured at chip and at wall scope: two groups, each with a rank 1."""
    store = Store.open(db_url)
    wall = make_result(tmp_path, latency_s=0.004)  # 50 inf/J
    chip = make_result(tmp_path, latency_s=0.001)  # 200 inf/J: would "beat" wall
    chip = chip.model_copy(
        update={"energy": [chip.energy[0].model_copy(update={"scope": EnergyScope.CHIP})]}
    )
    wall = wall.model_copy(
        update={"energy": [wall.energy[0].model_copy(update={"scope": EnergyScope.WALL})]}
    )
    store.save_run(chip)
    store.save_run(wall)
    for limit in (None, 10):
        rows = store.leaderboard(limit=limit)
        assert [(r.energy_scope, r.rank) for r in rows] == [("wall", 1), ("chip", 1)]
        assert rows[0].rank_group.endswith(" · edge · wall · measured")
        assert rows[1].rank_group.endswith(" · edge · chip · measured")
        assert [r.run_id for r in store.leaderboard(scope="chip", limit=limit)] == [chip.run_id]


def test_labels_with_sql_metacharacters_and_unicode_round_trip(db_url: str, tmp_path: Path) -> None:
    store = Store.open(db_url)
    labels = ("x'); DROP TABLE runs; --", "ünïcødé ⚡", 'quote"s')
    store.save_run(make_result(tmp_path, labels=labels))
    (row,) = store.leaderboard()
    assert row.labels == list(labels)


def test_stale_schema_is_a_one_line_error_naming_the_upgrade(db_url: str) -> None:
    store = Store.open(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    with pytest.raises(SchemaVersionError, match="newer than this wattbench"):
        Store.open(db_url)


def test_older_schema_names_wattbench_db_upgrade(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store.open(db_url)
    import wattbench.results_db.engine as engine_mod

    # Pretend this wattbench ships a newer migration than the database has.
    monkeypatch.setattr(engine_mod, "head_revision", lambda: "0002_future")
    with pytest.raises(SchemaVersionError, match="run `wattbench db upgrade`"):
        Store.open(db_url)


def test_foreign_tables_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    store = Store.open(url, check_schema=False)
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE something (id INTEGER)"))
    with pytest.raises(StoreError, match="not a wattbench database"):
        Store.open(url)


def test_unreachable_databases_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    with pytest.raises(StoreError, match="cannot connect"):
        Store.open("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError, match="invalid database URL"):
        Store.open("not a url")


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
