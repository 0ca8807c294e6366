"""Migration 0002 on SQLite and PostgreSQL: a schema-v1 database with data upgrades intact."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, Table, create_engine, func, select, text

from wattbench.core import fingerprint
from wattbench.core.errors import SchemaVersionError
from wattbench.core.results import RunResult
from wattbench.results_db.engine import alembic_config
from wattbench.results_db.schema import UPLOAD_PENDING, Base, PowerTrace, Run
from wattbench.results_db.store import Store, head_revision


def get_or_insert(conn: Connection, table: Table, key: dict[str, Any], **values: Any) -> Any:
    found = conn.scalar(select(table.c.id).filter_by(**key))
    if found is not None:
        return found
    return conn.execute(table.insert().values(**key, **values)).inserted_primary_key[0]


def insert_v1_run(conn: Connection, r: RunResult) -> None:
    """Store ``r`` the way schema v1 (before 0002) did, with v1's columns only."""
    md = MetaData()
    md.reflect(conn)
    t = md.tables
    now = datetime.now(timezone.utc)
    dev = r.device
    device_id = get_or_insert(
        conn,
        t["devices"],
        {"name": dev["name"]},
        hostname=dev["hostname"],
        cpu_model=dev["cpu_model"],
        cpu_cores_logical=dev["cpu_cores_logical"],
        cpu_cores_physical=dev["cpu_cores_physical"],
        memory_bytes=dev["memory_bytes"],
        arch=dev["arch"],
        accelerator=None,
        created_at=now,
    )
    env_id = get_or_insert(
        conn,
        t["environments"],
        {"fingerprint_sha256": fingerprint.fingerprint_sha256(r.environment)},
        data=r.environment,
    )
    suite_id = get_or_insert(conn, t["suites"], {"name": r.suite, "version": r.suite_version})
    art_id = get_or_insert(
        conn,
        t["model_artifacts"],
        {"sha256": r.model.sha256},
        name=r.model.name,
        format=r.model.format,
        precision=r.model.precision,
        weights=r.model.weights,
    )
    head = r.energy[0]
    run_id = conn.execute(
        t["runs"]
        .insert()
        .values(
            uuid=r.run_id,
            device_id=device_id,
            environment_id=env_id,
            suite_id=suite_id,
            model_artifact_id=art_id,
            scenario=r.scenario,
            adapter=r.adapter.adapter,
            runtime_version=r.adapter.runtime_version,
            execution_provider=r.adapter.execution_provider,
            device_target=r.adapter.device,
            precision=r.adapter.precision,
            batch=r.config.batch,
            threads=r.config.threads,
            config=r.config.model_dump(mode="json"),
            adapter_description=r.adapter.model_dump(mode="json"),
            inputs=r.inputs,
            labels=list(r.labels),
            valid=r.valid,
            invalid_reasons=list(r.invalid_reasons),
            warnings=list(r.warnings),
            quality=r.quality.model_dump(mode="json"),
            started_at=r.started_at,
            finished_at=r.finished_at,
            created_at=now,
            load_ms=r.load_ms,
            first_inference_ms=r.first_inference_ms,
            preprocess_ms_mean=r.preprocess_ms_mean,
            inferences=r.inferences,
            throughput_ips=r.throughput_ips,
            latency_mean_ms=r.latency.mean_ms,
            latency_p50_ms=r.latency.p50_ms,
            latency_p90_ms=r.latency.p90_ms,
            latency_p95_ms=r.latency.p95_ms,
            latency_p99_ms=r.latency.p99_ms,
            latency_p999_ms=r.latency.p999_ms,
            latency_cv=r.latency.cv,
            inferences_per_joule=head.inferences_per_joule,
            joules_per_inference=head.joules_per_inference,
            energy_method=head.method.value,
            energy_scope=head.scope.value,
            energy_uncertainty_j=head.uncertainty_j,
        )
    ).inserted_primary_key[0]
    for tr in r.trials:
        conn.execute(
            t["trials"]
            .insert()
            .values(
                run_id=run_id,
                index=tr.index,
                queries=tr.queries,
                inferences=tr.inferences,
                duration_s=tr.duration_s,
                throughput_ips=tr.throughput_ips,
                latency=tr.latency.model_dump(mode="json"),
            )
        )
        for i, e in enumerate(tr.energy):
            conn.execute(
                t["energy_measurements"]
                .insert()
                .values(
                    run_id=run_id,
                    trial_index=tr.index,
                    reader=e.reader,
                    is_headline=i == 0,
                    method=e.method.value,
                    scope=e.scope.value,
                    component=e.component,
                    gross_j=e.gross_j,
                    idle_w=e.idle_w,
                    net_j=e.net_j,
                    duration_s=e.duration_s,
                    mean_power_w=e.mean_power_w,
                    peak_power_w=e.peak_power_w,
                    samples=e.samples,
                    sample_rate_hz=e.sample_rate_hz,
                    update_period_s=e.update_period_s,
                    uncertainty_j=e.uncertainty_j,
                    valid=e.valid,
                    invalid_reasons=list(e.invalid_reasons),
                    details=e.details | {"trace": e.trace},  # v1 kept the trace here
                )
            )
    for i, s in enumerate(r.energy):
        conn.execute(
            t["energy_measurements"]
            .insert()
            .values(
                run_id=run_id,
                trial_index=None,
                reader=s.reader,
                is_headline=i == 0,
                method=s.method.value,
                scope=s.scope.value,
                component=s.component,
                gross_j=s.gross_j,
                idle_w=s.idle_w,
                net_j=s.net_j,
                duration_s=s.duration_s,
                mean_power_w=s.mean_power_w,
                peak_power_w=s.peak_power_w,
                samples=None,
                sample_rate_hz=s.sample_rate_hz,
                update_period_s=None,
                uncertainty_j=s.uncertainty_j,
                valid=True,
                invalid_reasons=[],
                details=s.details | {"inferences_per_joule_net": s.inferences_per_joule_net},
            )
        )


def v1_database(url: str, runs: list[RunResult]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001_v1")
        for r in runs:
            insert_v1_run(conn, r)
    engine.dispose()


def comparable(r: RunResult) -> dict[str, Any]:
    """What a rebuilt run must reproduce: everything but the model's local path."""
    data = r.model_dump(mode="json")
    data["model"].pop("path")
    return data


def test_v1_database_with_data_upgrades_to_head(db_url: str, new_run: Any) -> None:
    old = [new_run(labels=["x'); DROP TABLE runs; --", "ünï ⚡"]), new_run(ipj=500.0)]
    v1_database(db_url, old)
    with pytest.raises(SchemaVersionError, match="wattbench db upgrade"):
        Store.open(db_url)

    store = Store.open(db_url, check_schema=False)
    assert store.upgrade() == ("0001_v1", head_revision())
    store = Store.open(db_url)  # now at head
    assert store.count_runs() == 2
    # Existing runs were recorded locally and never uploaded: they join the queue.
    assert store.pending_run_ids() == [r.run_id for r in old]
    with store.engine.connect() as conn:
        assert set(conn.scalars(select(Run.upload_state))) == {UPLOAD_PENDING}
        assert conn.scalar(select(func.count(PowerTrace.id))) == 0  # old traces stay put
    for r in old:
        rebuilt = store.load_result(r.run_id)
        assert rebuilt is not None
        expected = comparable(r)
        expected["latency_histogram"] = []  # schema v1 had none
        expected["latency_e2e"] = None  # nor end-to-end latency (0003)
        expected["e2e_breakdown_ms"] = {}
        expected["confidence"] = None  # kept in runs.extras, which v1 rows lack
        assert comparable(rebuilt) == expected
        # Traces of v1 runs are read from energy_measurements.details.
        traces = store.power_traces(r.run_id)
        assert traces == {(t.index, e.reader): e.trace for t in r.trials for e in t.energy}
    rows = store.leaderboard(include_invalid=True)
    assert [row.run_id for row in rows] == [old[1].run_id, old[0].run_id]
    assert rows[1].labels == ["x'); DROP TABLE runs; --", "ünï ⚡"]

    # New runs go to the new tables next to the old ones.
    fresh = new_run()
    assert store.save_run(fresh)
    assert set(store.power_traces(fresh.run_id)) == {(0, "fake"), (1, "fake")}
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count(PowerTrace.id))) == 2
    assert store.count_runs() == 3


def test_models_match_the_migrations(db_url: str) -> None:
    store = Store.open(db_url)
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def test_downgrade_to_v1_and_back(db_url: str, new_run: Any) -> None:
    store = Store.open(db_url)
    store.save_run(new_run())
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001_v1")
    assert store.current_revision() == "0001_v1"
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM runs")).scalar() == 1
    store.upgrade()
    assert store.current_revision() == head_revision()
    assert store.count_runs() == 1
