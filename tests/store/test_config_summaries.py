"""``config_summaries`` (migration 0007): kept by ``save_run`` equal to a recomputation from
the runs, on SQLite and PostgreSQL; filled by the migration for runs stored before it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select
from test_migrations import v1_database

from wattbench.core.power import EnergyMethod
from wattbench.core.results import RunResult
from wattbench.results_db import summaries
from wattbench.results_db.engine import alembic_config
from wattbench.results_db.schema import ConfigSummary
from wattbench.results_db.store import Store, head_revision

NewRun = Callable[..., RunResult]


def stored_rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(ConfigSummary))]
    for r in rows:
        r.pop("id")
    return sorted(rows, key=lambda r: str(r["key_sha256"]))


def recomputed(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return sorted(summaries.recompute(conn), key=lambda r: str(r["key_sha256"]))


def assert_rows_equal(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Equal rows; sums to rounding (added one run at a time vs. by the database)."""
    assert [r["key_sha256"] for r in got] == [r["key_sha256"] for r in want]
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for k, v in w.items():
            if k.endswith("_sum"):
                assert g[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k
            else:
                assert g[k] == v, k


def varied_runs(new_run: NewRun) -> list[RunResult]:
    """Runs over several keys: two devices, two thread counts, an estimated one, later and
    earlier starts, an invalid one (never summarised) and one without an energy figure."""
    out: list[RunResult] = []
    for i in range(12):
        r = new_run(device=f"dev-{i % 2}", ipj=100.0 + 7 * i)
        config = r.config.model_copy(update={"threads": 1 + i % 3 // 2})
        r = r.model_copy(
            update={"config": config, "started_at": r.started_at + timedelta(minutes=i % 5)}
        )
        out.append(r)
    est = out[0].energy[0].model_copy(update={"method": EnergyMethod.ESTIMATED})
    out.append(new_run(device="dev-0").model_copy(update={"energy": [est]}))
    out.append(new_run(device="dev-1").model_copy(update={"valid": False}))
    return out


def test_summaries_equal_a_recomputation_after_inserts(db_url: str, new_run: NewRun) -> None:
    store = Store.open(db_url)
    runs = varied_runs(new_run)
    for r in runs:
        assert store.save_run(r)
    assert not store.save_run(runs[3])  # a duplicate is not counted twice
    rows = stored_rows(store)
    assert_rows_equal(rows, recomputed(store))
    assert sum(r["runs"] for r in rows) == sum(r.valid for r in runs)
    assert len(rows) >= 5 and all(r["runs"] >= 1 for r in rows)
    # The latest run of each key (by start, then uuid) is its drill-down target.
    valid = sorted((r for r in runs if r.valid), key=lambda r: (r.started_at, r.run_id))
    assert valid[-1].run_id in {row["last_run_uuid"] for row in rows}
    store.close()


def test_concurrent_writers_of_one_key_are_all_counted(db_url: str, new_run: NewRun) -> None:
    store = Store.open(db_url)
    store.save_run(new_run())  # the shared rows exist: the writers race on the summary only
    errors: list[BaseException] = []

    def write(n: int) -> None:
        mine = Store.open(db_url)
        try:
            for _ in range(n):
                mine.save_run(new_run())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=write, args=(8,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = stored_rows(store)
    assert len(rows) == 1 and rows[0]["runs"] == 33
    assert_rows_equal(rows, recomputed(store))
    store.close()


def test_migration_fills_the_summaries_of_stored_runs(db_url: str, new_run: NewRun) -> None:
    # Runs stored before 0007 (here: a schema-v1 database) are summarised by the upgrade.
    old = [new_run(ipj=100.0), new_run(ipj=300.0), new_run(device="dev-9", ipj=50.0)]
    v1_database(db_url, old)
    store = Store.open(db_url, check_schema=False)
    assert store.upgrade() == ("0001_v1", head_revision())
    rows = stored_rows(store)
    assert_rows_equal(rows, recomputed(store))
    assert sorted(r["runs"] for r in rows) == [1, 2]
    assert sorted(r["inferences_per_joule_sum"] for r in rows) == pytest.approx([50.0, 400.0])
    # ... and later runs are added to the rows the migration wrote (same keys).
    store.save_run(new_run(ipj=200.0))
    rows = stored_rows(store)
    assert sorted(r["runs"] for r in rows) == [1, 3]
    assert_rows_equal(rows, recomputed(store))

    # Down to 0006 (the table goes) and up again: the same rows, rebuilt from the runs.
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0006_profiles")
        command.upgrade(alembic_config(conn), "head")
    assert_rows_equal(stored_rows(store), rows)
    store.close()


def test_rebuild_replaces_the_rows_by_the_recomputation(db_url: str, new_run: NewRun) -> None:
    store = Store.open(db_url)
    for r in varied_runs(new_run):
        store.save_run(r)
    want = stored_rows(store)
    with store.engine.begin() as conn:
        conn.execute(ConfigSummary.__table__.delete().where(ConfigSummary.runs > 1))
        assert summaries.rebuild(conn) == len(want)
    assert_rows_equal(stored_rows(store), want)
    store.close()


def test_summary_key_is_stable() -> None:
    values: dict[str, Any] = dict.fromkeys(summaries.KEY_COLUMNS)
    values |= {"suite_id": 1, "scenario": "offline", "batch": 1, "threads": None}
    # A migration computes the same key from the same values (frozen): never change it.
    assert summaries.summary_key(values) == summaries.summary_key(values | {"batch": 1.0})
    assert summaries.summary_key(values) != summaries.summary_key(values | {"threads": 1})
    assert len(summaries.summary_key(values)) == 64
