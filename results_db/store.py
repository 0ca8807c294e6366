"""The results store: open, migrate, save runs atomically, rank them.

SQLite (the default, in the user's data directory) or PostgreSQL through
psycopg 3 (``pip install 'wattbench[postgres]'``). A run is written in one
transaction: a failure leaves nothing half-written.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from pydantic import BaseModel
from sqlalchemy import Engine, create_engine, event, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from wattbench.harness import fingerprint
from wattbench.harness.errors import SchemaVersionError, StoreError
from wattbench.harness.results import RunResult, TrialEnergy
from wattbench.results_db.schema import (
    Device,
    EnergyMeasurement,
    Environment,
    ModelArtifactRow,
    Run,
    SuiteRow,
    Trial,
)

UPGRADE_HINT = "run `wattbench db upgrade`"


def default_db_url() -> str:
    """``WATTBENCH_DB`` or SQLite in the platform's user data directory."""
    env = os.environ.get("WATTBENCH_DB")
    if env:
        return env
    path = Path(platformdirs.user_data_dir("wattbench")) / "wattbench.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _alembic_config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("wattbench.results_db") / "migrations")
    )
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(None))
    head = script.get_current_head()
    assert head is not None
    return head


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the dashboard read while a runner writes; the timeout waits out
    # short write locks instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class LeaderboardRow(BaseModel):
    """One ranked configuration; the JSON shape of `wattbench leaderboard --format json`."""

    rank: int
    run_id: str
    suite: str
    suite_version: str
    scenario: str
    model: str
    weights: str
    adapter: str
    runtime_version: str
    execution_provider: str
    device: str
    hardware: str | None
    precision: str
    batch: int
    threads: int | None
    inferences_per_joule: float | None
    joules_per_inference: float | None
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    throughput_ips: float
    energy_method: str | None
    energy_scope: str | None
    energy_estimated: bool
    energy_uncertainty_pct: float | None
    valid: bool
    labels: list[str]
    created_at: datetime


class Store:
    """A results database at ``url``; use :meth:`open`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @classmethod
    def open(cls, url: str | None = None, *, check_schema: bool = True) -> Store:
        """Connect; create the schema in an empty database; refuse a stale schema."""
        url = url or default_db_url()
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(
                f"invalid database URL {url!r}: use e.g. sqlite:///path/wattbench.db or "
                f"postgresql+psycopg://user@host/db"
            ) from exc
        if parsed.drivername == "postgresql":  # psycopg 3, not the legacy psycopg2 default
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
            parent = Path(parsed.database).expanduser().resolve().parent
            if not parent.is_dir():
                raise StoreError(
                    f"cannot open database {parsed.database}: directory {parent} does not exist "
                    f"(create it or pass another --db)"
                )
        try:
            engine = create_engine(parsed, pool_pre_ping=True)
        except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
            raise StoreError(
                f"no driver for {parsed.drivername}: pip install 'wattbench[postgres]' "
                f"({_one_line(exc)})"
            ) from exc
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except (DBAPIError, SQLAlchemyError) as exc:
            engine.dispose()
            raise StoreError(
                f"cannot connect to database {store.display_url}: {_one_line(exc)} "
                f"(check the server and --db / WATTBENCH_DB)"
            ) from exc
        if check_schema:
            store.ensure_schema()
        return store

    def close(self) -> None:
        self.engine.dispose()

    # -- schema --------------------------------------------------------------------------
    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def _is_empty(self) -> bool:
        return not inspect(self.engine).get_table_names()

    def ensure_schema(self) -> None:
        """Create a fresh schema in an empty database; otherwise insist on the head."""
        head = head_revision()
        current = self.current_revision()
        if current == head:
            return
        if current is None:
            if self._is_empty():
                self.upgrade()
                return
            raise StoreError(
                f"{self.display_url} has tables but is not a wattbench database: pass another --db"
            )
        script = ScriptDirectory.from_config(_alembic_config(None))
        try:
            known = script.get_revision(current) is not None
        except CommandError:
            known = False
        if not known:
            raise SchemaVersionError(
                f"database schema {current} is newer than this wattbench ({head}): "
                f"upgrade wattbench"
            )
        raise SchemaVersionError(
            f"database schema is at {current}, this wattbench needs {head}: {UPGRADE_HINT}"
        )

    def upgrade(self) -> tuple[str | None, str]:
        """Apply pending migrations; returns (from, to) revisions."""
        before = self.current_revision()
        try:
            with self.engine.begin() as conn:
                command.upgrade(_alembic_config(conn), "head")
        except (DBAPIError, SQLAlchemyError) as exc:
            raise StoreError(f"migration failed on {self.display_url}: {_one_line(exc)}") from exc
        return before, head_revision()

    # -- writing -------------------------------------------------------------------------
    def save_run(self, result: RunResult) -> bool:
        """Store a run in one transaction; False when its uuid was already stored."""
        try:
            with self._session.begin() as s:
                if s.scalar(select(Run.id).where(Run.uuid == result.run_id)) is not None:
                    return False
                s.add(self._run_row(s, result))
        except (DBAPIError, SQLAlchemyError) as exc:
            raise StoreError(
                f"could not save run {result.run_id} to {self.display_url}: {_one_line(exc)}; "
                f"nothing was written"
            ) from exc
        return True

    @staticmethod
    def _get_or_create(s: Session, model: Any, where: dict[str, Any], **values: Any) -> Any:
        row = s.scalars(select(model).filter_by(**where)).first()
        if row is None:
            row = model(**where, **values)
            s.add(row)
            s.flush()
        return row

    def _run_row(self, s: Session, r: RunResult) -> Run:
        dev = r.device
        device = self._get_or_create(
            s,
            Device,
            {"name": dev.get("name") or dev.get("hostname") or "unknown"},
            hostname=dev.get("hostname"),
            cpu_model=dev.get("cpu_model"),
            cpu_cores_logical=dev.get("cpu_cores_logical"),
            cpu_cores_physical=dev.get("cpu_cores_physical"),
            memory_bytes=dev.get("memory_bytes"),
            arch=dev.get("arch"),
            accelerator=dev.get("accelerator"),
            created_at=datetime.now(timezone.utc),
        )
        env = self._get_or_create(
            s,
            Environment,
            {"fingerprint_sha256": fingerprint.fingerprint_sha256(r.environment)},
            data=r.environment,
        )
        suite = self._get_or_create(s, SuiteRow, {"name": r.suite, "version": r.suite_version})
        art = self._get_or_create(
            s,
            ModelArtifactRow,
            {"sha256": r.model.sha256},
            name=r.model.name,
            format=r.model.format,
            precision=r.model.precision,
            weights=r.model.weights,
        )
        head = r.headline
        run = Run(
            uuid=r.run_id,
            device=device,
            environment=env,
            suite=suite,
            model_artifact=art,
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
            created_at=datetime.now(timezone.utc),
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
            inferences_per_joule=head.inferences_per_joule if head else None,
            joules_per_inference=head.joules_per_inference if head else None,
            energy_method=head.method.value if head else None,
            energy_scope=head.scope.value if head else None,
            energy_uncertainty_j=head.uncertainty_j if head else None,
        )
        for t in r.trials:
            run.trials.append(
                Trial(
                    index=t.index,
                    queries=t.queries,
                    inferences=t.inferences,
                    duration_s=t.duration_s,
                    throughput_ips=t.throughput_ips,
                    latency=t.latency.model_dump(mode="json"),
                )
            )
            for i, e in enumerate(t.energy):
                run.energy.append(_energy_row(e, t.index, i == 0))
        for i, summary in enumerate(r.energy):
            run.energy.append(
                EnergyMeasurement(
                    trial_index=None,
                    reader=summary.reader,
                    is_headline=i == 0,
                    method=summary.method.value,
                    scope=summary.scope.value,
                    component=summary.component,
                    gross_j=summary.gross_j,
                    idle_w=summary.idle_w,
                    net_j=summary.net_j,
                    duration_s=summary.duration_s,
                    mean_power_w=summary.mean_power_w,
                    peak_power_w=summary.peak_power_w,
                    samples=None,
                    sample_rate_hz=summary.sample_rate_hz,
                    update_period_s=None,
                    uncertainty_j=summary.uncertainty_j,
                    valid=all(
                        e.valid for t in r.trials for e in t.energy if e.reader == summary.reader
                    ),
                    invalid_reasons=[],
                    details=summary.details
                    | {"inferences_per_joule_net": summary.inferences_per_joule_net}
                    | (
                        {"carbon": r.carbon.model_dump(mode="json")}
                        if i == 0 and r.carbon is not None
                        else {}
                    ),
                )
            )
        return run

    # -- reading -------------------------------------------------------------------------
    def leaderboard(
        self,
        suite: str | None = None,
        *,
        include_invalid: bool = False,
        hide_estimated: bool = False,
        limit: int | None = None,
    ) -> list[LeaderboardRow]:
        """Runs ranked by inferences per joule within each suite version and scenario."""
        q = (
            select(Run, SuiteRow, Device, ModelArtifactRow)
            .join(SuiteRow, Run.suite_id == SuiteRow.id)
            .join(Device, Run.device_id == Device.id)
            .join(ModelArtifactRow, Run.model_artifact_id == ModelArtifactRow.id)
        )
        if suite:
            q = q.where(SuiteRow.name == suite)
        if not include_invalid:
            q = q.where(Run.valid.is_(True))
        if hide_estimated:
            q = q.where(Run.energy_method != "estimated")
        q = q.order_by(
            SuiteRow.name,
            SuiteRow.version,
            Run.scenario,
            Run.inferences_per_joule.desc().nulls_last(),
            Run.id,
        )
        rows: list[LeaderboardRow] = []
        rank_key: tuple[str, str, str] | None = None
        rank = 0
        with self._session() as s:
            for run, st, dev, art in s.execute(q):
                key = (st.name, st.version, run.scenario)
                rank = rank + 1 if key == rank_key else 1
                rank_key = key
                if limit is not None and rank > limit:
                    continue
                unc = (
                    run.energy_uncertainty_j / (run.joules_per_inference * run.inferences) * 100
                    if run.energy_uncertainty_j is not None
                    and run.joules_per_inference
                    and run.inferences
                    else None
                )
                rows.append(
                    LeaderboardRow(
                        rank=rank,
                        run_id=run.uuid,
                        suite=st.name,
                        suite_version=st.version,
                        scenario=run.scenario,
                        model=art.name,
                        weights=art.weights,
                        adapter=run.adapter,
                        runtime_version=run.runtime_version,
                        execution_provider=run.execution_provider,
                        device=dev.name,
                        hardware=dev.accelerator or dev.cpu_model,
                        precision=run.precision,
                        batch=run.batch,
                        threads=run.threads,
                        inferences_per_joule=run.inferences_per_joule,
                        joules_per_inference=run.joules_per_inference,
                        latency_p50_ms=run.latency_p50_ms,
                        latency_p90_ms=run.latency_p90_ms,
                        latency_p99_ms=run.latency_p99_ms,
                        throughput_ips=run.throughput_ips,
                        energy_method=run.energy_method,
                        energy_scope=run.energy_scope,
                        energy_estimated=run.energy_method == "estimated",
                        energy_uncertainty_pct=unc,
                        valid=run.valid,
                        labels=list(run.labels or []),
                        created_at=run.created_at,
                    )
                )
        return rows

    def get_run(self, run_id: str) -> Run | None:
        with self._session() as s:
            return s.scalars(select(Run).where(Run.uuid == run_id)).first()

    def count_runs(self) -> int:
        with self._session() as s:
            return int(s.scalar(select(func.count(Run.id))) or 0)


def _energy_row(e: TrialEnergy, trial_index: int, headline: bool) -> EnergyMeasurement:
    return EnergyMeasurement(
        trial_index=trial_index,
        reader=e.reader,
        is_headline=headline,
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
        # Traces are bounded by the reader (<= 2000 points); kept with the trial.
        details=e.details | {"trace": e.trace},
    )
