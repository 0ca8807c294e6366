"""The results store: open, migrate, save runs atomically, rank them.

SQLite (the default, in the user's data directory) or PostgreSQL through
psycopg 3 (``pip install 'wattbench[postgres]'``). A run is written in one
transaction: a failure leaves nothing half-written. Saving is idempotent on the
run uuid and safe under concurrent writers (the central store behind
``wattbench serve``): a writer that loses a race on a shared row retries.

Every run recorded on this machine starts ``pending`` upload
(``runs.upload_state``) with its exact payload kept in ``run_payloads``;
:mod:`wattbench.results_db.upload` sends pending runs to the central store.
"""

from __future__ import annotations

import functools
import gzip
import os
import time
from collections.abc import Sequence
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
from pydantic import BaseModel, Field
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from wattbench.core import fingerprint
from wattbench.core.errors import SchemaVersionError, StoreError
from wattbench.core.results import EnergySummary, RunResult, TrialEnergy, TrialResult
from wattbench.core.stats import LatencyStats
from wattbench.results_db.schema import (
    UPLOAD_DONE,
    UPLOAD_PENDING,
    UPLOAD_STATES,
    Device,
    EnergyMeasurement,
    Environment,
    LatencyBin,
    ModelArtifactRow,
    PowerTrace,
    Run,
    RunPayload,
    SuiteRow,
    Trial,
)

UPGRADE_HINT = "run `wattbench db upgrade`"

#: Most points kept per reader per trial in ``power_traces`` (readers already downsample).
MAX_TRACE_POINTS = 2000
#: Device facts a run's ``device`` dict may carry (e.g. from the runner's config).
DEVICE_INVENTORY_KEYS = ("nameplate_power_w", "purchase_price", "currency", "rack", "location")
_PAYLOAD_ENCODING = "json+gzip"
_SAVE_ATTEMPTS = 8
_UNION_TERMS = 200


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


#: RunResult sections (added with 0003) kept whole in ``runs.extras``.
EXTRA_SECTIONS = {
    "latency_e2e",
    "e2e_breakdown_ms",
    "scenario_details",
    "artifacts",
    "generation",
    "network",
}


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
    quality: dict[str, Any] = Field(default_factory=dict)
    mode: str = "edge"
    latency_e2e_p90_ms: float | None = None
    ttft_ms: float | None = Field(default=None, description="slm: median time to first token.")
    tpot_ms: float | None = Field(default=None, description="slm: median time per output token.")
    tokens_per_joule: float | None = None
    network_j_per_inference: float | None = Field(
        default=None, description="MODELLED from measured bytes (see docs/network.md)."
    )
    energy_to_solution_j_per_inference: float | None = None


class Store:
    """A results database at ``url``; use :meth:`open`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        # Ids of committed device/environment/suite/model rows (never deleted), by key.
        self._ids: dict[tuple[Any, ...], Any] = {}

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
    def save_run(
        self,
        result: RunResult,
        *,
        upload_state: str = UPLOAD_PENDING,
        keep_payload: bool = True,
    ) -> bool:
        """Store a run in one transaction; False when its uuid was already stored.

        ``upload_state`` is ``pending`` for a run recorded here (the default),
        ``received`` on the central store. ``keep_payload`` keeps the run exactly as
        recorded (gzip'd JSON) so that an upload sends it verbatim.

        Concurrent writers are fine: losing a race on a shared row (the device, suite,
        environment or model) rolls back and tries again, and a run that a concurrent
        writer stored first is reported as already stored. Written with SQLAlchemy core
        (a handful of statements per run) because the central store's ingest rate
        depends on it; the ids of shared rows are remembered once committed.
        """
        if upload_state not in UPLOAD_STATES:
            raise ValueError(f"upload_state must be one of {UPLOAD_STATES}")
        last: Exception | None = None
        cache_dropped = False
        for attempt in range(_SAVE_ATTEMPTS):
            learned: dict[tuple[Any, ...], Any] = {}
            try:
                with self.engine.begin() as conn:
                    created = self._write_run(conn, result, upload_state, keep_payload, learned)
            except IntegrityError as exc:
                if not _is_unique_violation(exc):
                    if cache_dropped or not self._ids:
                        raise self._save_error(result, exc) from exc
                    # A remembered shared row is gone (database reset under us): forget all.
                    self._ids.clear()
                    cache_dropped = True
                    continue
                last = exc  # a concurrent writer inserted the same key first: look again
            except OperationalError as exc:
                if not _is_sqlite_busy(exc):
                    raise self._save_error(result, exc) from exc
                last = exc  # SQLite: another writer holds or moved past our snapshot
            except (DBAPIError, SQLAlchemyError) as exc:
                raise self._save_error(result, exc) from exc
            else:
                self._ids.update(learned)  # only ids of committed rows are remembered
                return created
            time.sleep(min(0.005 * 2**attempt, 0.5))
        assert last is not None
        raise self._save_error(result, last) from last

    def _save_error(self, result: RunResult, exc: BaseException) -> StoreError:
        return StoreError(
            f"could not save run {result.run_id} to {self.display_url}: {_one_line(exc)}; "
            f"nothing was written"
        )

    def _shared_id(
        self,
        conn: Connection,
        learned: dict[tuple[Any, ...], Any],
        model: Any,
        key: dict[str, Any],
        values: dict[str, Any],
    ) -> int:
        """Id of the environment/suite/model row with ``key``, created when missing."""
        cache_key = (model.__tablename__, *key.values())
        found = self._ids.get(cache_key) or learned.get(cache_key)
        if found is None:
            found = conn.scalar(select(model.id).filter_by(**key))
            if found is None:
                found = _insert_id(conn, insert(model).values(**key, **values))
            learned[cache_key] = found
        return int(found)

    def _device_id(
        self, conn: Connection, r: RunResult, now: datetime, learned: dict[tuple[Any, ...], Any]
    ) -> int:
        dev = r.device
        name = device_name(r)
        given = {k: dev.get(k) for k in (*DEVICE_INVENTORY_KEYS, "tags")}
        cache_key = ("devices", name)
        known = self._ids.get(cache_key) or learned.get(cache_key)
        if known is None:
            cols = [getattr(Device, k) for k in given]
            row = conn.execute(select(Device.id, *cols).where(Device.name == name)).first()
            if row is None:
                device_id = _insert_id(
                    conn,
                    insert(Device).values(
                        name=name,
                        hostname=dev.get("hostname"),
                        cpu_model=dev.get("cpu_model"),
                        cpu_cores_logical=dev.get("cpu_cores_logical"),
                        cpu_cores_physical=dev.get("cpu_cores_physical"),
                        memory_bytes=dev.get("memory_bytes"),
                        arch=dev.get("arch"),
                        accelerator=dev.get("accelerator"),
                        created_at=now,
                        **given,
                    ),
                )
                known = (device_id, given)
            else:
                known = (int(row[0]), dict(zip(given, row[1:], strict=True)))
        device_id, stored = known
        # Inventory facts given with a later run update the device (only when they change,
        # so the usual run writes nothing to the shared row).
        changed = {k: v for k, v in given.items() if v is not None and stored.get(k) != v}
        if changed:
            conn.execute(update(Device).where(Device.id == device_id).values(**changed))
            stored = stored | changed
        learned[cache_key] = (device_id, stored)
        return device_id

    def _insert_run_row(self, conn: Connection, values: dict[str, Any]) -> int | None:
        """Insert the ``runs`` row; None when its uuid is already stored."""
        stmt = _run_insert(conn.dialect.name, bool(conn.dialect.insert_returning))
        if stmt is not None:  # INSERT … ON CONFLICT (uuid) DO NOTHING RETURNING id
            found = conn.execute(stmt, values).scalar()
            return None if found is None else int(found)
        if conn.scalar(select(Run.id).where(Run.uuid == values["uuid"])) is not None:
            return None
        key = conn.execute(insert(Run), values).inserted_primary_key
        assert key is not None
        return int(key[0])

    def _write_run(
        self,
        conn: Connection,
        r: RunResult,
        upload_state: str,
        keep_payload: bool,
        learned: dict[tuple[Any, ...], Any],
    ) -> bool:
        now = datetime.now(timezone.utc)
        env_sha = fingerprint.fingerprint_sha256(r.environment)
        m = r.model
        head = r.headline
        run_id = self._insert_run_row(
            conn,
            {
                "uuid": r.run_id,
                "device_id": self._device_id(conn, r, now, learned),
                "environment_id": self._shared_id(
                    conn,
                    learned,
                    Environment,
                    {"fingerprint_sha256": env_sha},
                    {"data": r.environment},
                ),
                "suite_id": self._shared_id(
                    conn, learned, SuiteRow, {"name": r.suite, "version": r.suite_version}, {}
                ),
                "model_artifact_id": self._shared_id(
                    conn,
                    learned,
                    ModelArtifactRow,
                    {"sha256": m.sha256},
                    {
                        "name": m.name,
                        "format": m.format,
                        "precision": m.precision,
                        "weights": m.weights,
                    },
                ),
                "scenario": r.scenario,
                "adapter": r.adapter.adapter,
                "runtime_version": r.adapter.runtime_version,
                "execution_provider": r.adapter.execution_provider,
                "device_target": r.adapter.device,
                "precision": r.adapter.precision,
                "batch": r.config.batch,
                "threads": r.config.threads,
                "config": r.config.model_dump(mode="json"),
                "adapter_description": r.adapter.model_dump(mode="json"),
                "inputs": r.inputs,
                "labels": list(r.labels),
                "valid": r.valid,
                "invalid_reasons": list(r.invalid_reasons),
                "warnings": list(r.warnings),
                "quality": r.quality.model_dump(mode="json"),
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "created_at": now,
                "load_ms": r.load_ms,
                "first_inference_ms": r.first_inference_ms,
                "preprocess_ms_mean": r.preprocess_ms_mean,
                "inferences": r.inferences,
                "throughput_ips": r.throughput_ips,
                "latency_mean_ms": r.latency.mean_ms,
                "latency_p50_ms": r.latency.p50_ms,
                "latency_p90_ms": r.latency.p90_ms,
                "latency_p95_ms": r.latency.p95_ms,
                "latency_p99_ms": r.latency.p99_ms,
                "latency_p999_ms": r.latency.p999_ms,
                "latency_cv": r.latency.cv,
                "inferences_per_joule": head.inferences_per_joule if head else None,
                "joules_per_inference": head.joules_per_inference if head else None,
                "energy_method": head.method.value if head else None,
                "energy_scope": head.scope.value if head else None,
                "energy_uncertainty_j": head.uncertainty_j if head else None,
                "mode": r.config.mode,
                "extras": r.model_dump(mode="json", include=EXTRA_SECTIONS),
                "latency_e2e_p50_ms": r.latency_e2e.p50_ms if r.latency_e2e else None,
                "latency_e2e_p90_ms": r.latency_e2e.p90_ms if r.latency_e2e else None,
                "ttft_ms": r.generation.ttft_ms.p50_ms if r.generation else None,
                "tpot_ms": r.generation.tpot_ms.p50_ms if r.generation else None,
                "tokens_per_joule": r.generation.tokens_per_joule if r.generation else None,
                "network_j_per_inference": (
                    r.network.network_j_per_inference if r.network else None
                ),
                "energy_to_solution_j_per_inference": (
                    getattr(r.network, "energy_to_solution_j_per_inference", None)
                    if r.network
                    else None
                ),
                "upload_state": upload_state,
                "uploaded_at": now if upload_state != UPLOAD_PENDING else None,
                "upload_attempts": 0,
            },
        )
        if run_id is None:
            return False
        trials = [
            {
                "run_id": run_id,
                "index": t.index,
                "queries": t.queries,
                "inferences": t.inferences,
                "duration_s": t.duration_s,
                "throughput_ips": t.throughput_ips,
                "latency": t.latency.model_dump(mode="json"),
            }
            for t in r.trials
        ]
        energy = [
            _energy_values(run_id, e, t.index, i == 0)
            for t in r.trials
            for i, e in enumerate(t.energy)
        ]
        energy += [
            {
                "run_id": run_id,
                "trial_index": None,
                "reader": summary.reader,
                "is_headline": i == 0,
                "method": summary.method.value,
                "scope": summary.scope.value,
                "component": summary.component,
                "gross_j": summary.gross_j,
                "idle_w": summary.idle_w,
                "net_j": summary.net_j,
                "duration_s": summary.duration_s,
                "mean_power_w": summary.mean_power_w,
                "peak_power_w": summary.peak_power_w,
                "samples": None,
                "sample_rate_hz": summary.sample_rate_hz,
                "update_period_s": None,
                "uncertainty_j": summary.uncertainty_j,
                "valid": all(
                    e.valid for t in r.trials for e in t.energy if e.reader == summary.reader
                ),
                "invalid_reasons": [],
                "details": summary.details
                | {"inferences_per_joule_net": summary.inferences_per_joule_net}
                | (
                    {"carbon": r.carbon.model_dump(mode="json")}
                    if i == 0 and r.carbon is not None
                    else {}
                ),
            }
            for i, summary in enumerate(r.energy)
        ]
        traces: dict[tuple[int, str], list[Any]] = {}
        for t in r.trials:
            for e in t.energy:
                if e.trace and (t.index, e.reader) not in traces:  # unique per run/trial/reader
                    traces[(t.index, e.reader)] = (
                        e.trace
                        if len(e.trace) <= MAX_TRACE_POINTS
                        else downsample(e.trace, MAX_TRACE_POINTS)
                    )
        # RunResult.latency_histogram: read leniently, so results from before the field
        # existed (and payloads from older runners) store fine.
        bins = [
            {"run_id": run_id, "trial_index": None, "upper_ms": float(u), "count": int(c)}
            for u, c in getattr(r, "latency_histogram", None) or ()
        ]
        if trials:
            conn.execute(insert(Trial), trials)
        if energy:
            conn.execute(insert(EnergyMeasurement), energy)
        if traces:
            conn.execute(
                insert(PowerTrace),
                [
                    {
                        "run_id": run_id,
                        "trial_index": k,
                        "reader": reader,
                        "n_points": len(points),
                        "points": points,
                    }
                    for (k, reader), points in traces.items()
                ],
            )
        if bins:
            conn.execute(insert(LatencyBin), bins)
        if keep_payload:
            conn.execute(
                insert(RunPayload).values(
                    run_id=run_id,
                    encoding=_PAYLOAD_ENCODING,
                    data=gzip.compress(r.model_dump_json().encode(), compresslevel=6),
                )
            )
        return True

    # -- upload bookkeeping --------------------------------------------------------------
    def pending_run_ids(self, limit: int | None = None) -> list[str]:
        """Uuids of runs not yet acknowledged by the central store, oldest first."""
        q = select(Run.uuid).where(Run.upload_state == UPLOAD_PENDING).order_by(Run.id)
        if limit is not None:
            q = q.limit(limit)
        with self._session() as s:
            return list(s.scalars(q))

    def count_pending(self) -> int:
        """How many runs still wait for upload."""
        with self._session() as s:
            q = select(func.count(Run.id)).where(Run.upload_state == UPLOAD_PENDING)
            return int(s.scalar(q) or 0)

    def mark_uploaded(self, run_id: str) -> None:
        """Record that the central store acknowledged ``run_id`` (created or duplicate)."""
        self._update_run(
            run_id,
            upload_state=UPLOAD_DONE,
            uploaded_at=datetime.now(timezone.utc),
            upload_attempts=Run.upload_attempts + 1,
            upload_last_error=None,
        )

    def record_upload_failure(self, run_id: str, error: str) -> None:
        """Count a failed attempt; the run stays pending with ``error`` as its last error."""
        self._update_run(
            run_id, upload_attempts=Run.upload_attempts + 1, upload_last_error=error[:2000]
        )

    def _update_run(self, run_id: str, **values: Any) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(update(Run).where(Run.uuid == run_id).values(**values))
        except (DBAPIError, SQLAlchemyError) as exc:
            raise StoreError(
                f"could not update run {run_id} in {self.display_url}: {_one_line(exc)}"
            ) from exc

    # -- reading -------------------------------------------------------------------------
    def leaderboard(
        self,
        suite: str | None = None,
        *,
        include_invalid: bool = False,
        hide_estimated: bool = False,
        limit: int | None = None,
        mode: str = "edge",
    ) -> list[LeaderboardRow]:
        """Runs ranked by inferences per joule within each suite version and scenario.

        Only runs of one ``mode`` are ranked together: a cloud-mode run's own energy is
        the device's encoding only, so it would rank falsely high among edge runs
        (compare those on energy-to-solution, which includes the network and the cloud).

        With ``limit`` (top N per suite version and scenario) each group is read from
        the ``ix_runs_leaderboard`` index, so the cost does not grow with the number of
        stored runs; without it every matching run is ranked.
        """
        if limit is not None:
            return self._leaderboard_top(
                suite, include_invalid, hide_estimated, max(limit, 0), mode
            )
        q = self._leaderboard_select().where(Run.mode == mode)
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
            for row in s.execute(q):
                key = (row.suite, row.suite_version, row.scenario)
                rank = rank + 1 if key == rank_key else 1
                rank_key = key
                rows.append(_leaderboard_row(rank, row))
        return rows

    @staticmethod
    def _leaderboard_select() -> Any:  # a Select; its generic form differs across SA 2.x
        return (
            select(
                Run.id,
                Run.uuid,
                Run.suite_id,
                SuiteRow.name.label("suite"),
                SuiteRow.version.label("suite_version"),
                Run.scenario,
                ModelArtifactRow.name.label("model"),
                ModelArtifactRow.weights,
                Run.adapter,
                Run.runtime_version,
                Run.execution_provider,
                Device.name.label("device"),
                Device.accelerator,
                Device.cpu_model,
                Run.precision,
                Run.batch,
                Run.threads,
                Run.inferences_per_joule,
                Run.joules_per_inference,
                Run.inferences,
                Run.latency_p50_ms,
                Run.latency_p90_ms,
                Run.latency_p99_ms,
                Run.throughput_ips,
                Run.energy_method,
                Run.energy_scope,
                Run.energy_uncertainty_j,
                Run.valid,
                Run.labels,
                Run.created_at,
                Run.quality,
                Run.mode,
                Run.latency_e2e_p90_ms,
                Run.ttft_ms,
                Run.tpot_ms,
                Run.tokens_per_joule,
                Run.network_j_per_inference,
                Run.energy_to_solution_j_per_inference,
            )
            .join(SuiteRow, Run.suite_id == SuiteRow.id)
            .join(Device, Run.device_id == Device.id)
            .join(ModelArtifactRow, Run.model_artifact_id == ModelArtifactRow.id)
        )

    def _leaderboard_top(
        self,
        suite: str | None,
        include_invalid: bool,
        hide_estimated: bool,
        limit: int,
        mode: str = "edge",
    ) -> list[LeaderboardRow]:
        """Top ``limit`` per group; the cost follows the rows returned, not the runs stored.

        1. the (suite, scenario) groups, found by seeking through ``ix_runs_leaderboard``
           (see :meth:`_groups`);
        2. one UNION ALL of a ``LIMIT`` query per group (and validity) over the runs with
           an energy figure, read in index order;
        3. only for groups with places left, the runs without one (they rank last).
        """
        if limit <= 0:
            return []
        with self._session() as s:
            groups = self._groups(s, suite, include_invalid)
            if not groups:
                return []
            valid_values = (True, False) if include_invalid else (True,)

            def query(group: tuple[int, str], valid: bool, ranked: bool, n: int) -> Any:
                q = self._leaderboard_select().where(
                    Run.suite_id == group[0],
                    Run.scenario == group[1],
                    Run.valid.is_(valid),
                    Run.mode == mode,
                )
                if hide_estimated:
                    q = q.where(Run.energy_method != "estimated")
                if ranked:  # plain DESC: the index order on both dialects
                    q = q.where(Run.inferences_per_joule.is_not(None)).order_by(
                        Run.inferences_per_joule.desc(), Run.id
                    )
                else:
                    q = q.where(Run.inferences_per_joule.is_(None)).order_by(Run.id)
                return select(q.limit(n).subquery())

            picked: dict[tuple[int, str], list[Any]] = {g: [] for g in groups}

            def fetch(queries: list[Any]) -> None:
                # SQLite allows 500 terms in a compound SELECT: stay well below.
                for i in range(0, len(queries), _UNION_TERMS):
                    for row in s.execute(union_all(*queries[i : i + _UNION_TERMS])):
                        picked[(row.suite_id, row.scenario)].append(row)

            fetch([query(g, v, True, limit) for g in groups for v in valid_values])
            # Runs without an energy figure rank last: read them only where places are left.
            short = [(g, limit - len(picked[g])) for g in groups if len(picked[g]) < limit]
            fetch([query(g, v, False, n) for g, n in short for v in valid_values])
        out: list[LeaderboardRow] = []
        for group in groups:
            rows = sorted(picked[group], key=_rank_key)
            out += [_leaderboard_row(i + 1, r) for i, r in enumerate(rows[:limit])]
        return out

    @staticmethod
    def _groups(s: Session, suite: str | None, include_invalid: bool) -> list[tuple[int, str]]:
        """(suite_id, scenario) pairs that have runs, in leaderboard order.

        Suites are few (a small table); each suite's scenarios are found by seeking to
        the next larger scenario in ``ix_runs_leaderboard``: a few index probes, not a
        scan of the suite's runs.
        """
        suites_q = select(SuiteRow.id).order_by(SuiteRow.name, SuiteRow.version)
        if suite:
            suites_q = suites_q.where(SuiteRow.name == suite)
        groups: list[tuple[int, str]] = []
        for suite_id in list(s.scalars(suites_q)):
            scenario: str | None = None
            while True:
                q = select(Run.scenario).where(Run.suite_id == suite_id)
                if not include_invalid:
                    q = q.where(Run.valid.is_(True))
                if scenario is not None:
                    q = q.where(Run.scenario > scenario)
                scenario = s.scalar(q.order_by(Run.scenario).limit(1))
                if scenario is None:
                    break
                groups.append((suite_id, scenario))
        return groups

    def get_run(self, run_id: str) -> Run | None:
        with self._session() as s:
            return s.scalars(select(Run).where(Run.uuid == run_id)).first()

    def run_device_name(self, run_id: str) -> str | None:
        """The device a stored run belongs to, or None when ``run_id`` is not stored."""
        q = select(Device.name).join(Run, Run.device_id == Device.id).where(Run.uuid == run_id)
        with self._session() as s:
            return s.scalar(q)

    def count_runs(self) -> int:
        with self._session() as s:
            return int(s.scalar(select(func.count(Run.id))) or 0)

    def power_traces(self, run_id: str) -> dict[tuple[int, str], list[tuple[float, float]]]:
        """``{(trial_index, reader): [(t_s, power_w), ...]}`` of a run.

        Reads ``power_traces`` and, for runs stored before migration 0002, the traces
        kept in ``energy_measurements.details["trace"]``.
        """
        out: dict[tuple[int, str], list[tuple[float, float]]] = {}
        with self._session() as s:
            rid = s.scalar(select(Run.id).where(Run.uuid == run_id))
            if rid is None:
                return out
            for pt in s.scalars(select(PowerTrace).where(PowerTrace.run_id == rid)):
                out[(pt.trial_index, pt.reader)] = [(float(a), float(b)) for a, b in pt.points]
            legacy = select(EnergyMeasurement).where(
                EnergyMeasurement.run_id == rid, EnergyMeasurement.trial_index.is_not(None)
            )
            for em in s.scalars(legacy.order_by(EnergyMeasurement.id)):
                trace = (em.details or {}).get("trace")
                key = (int(em.trial_index or 0), em.reader)
                if trace and key not in out:
                    out[key] = [(float(a), float(b)) for a, b in trace]
        return out

    def latency_histogram(self, run_id: str) -> list[tuple[float, int]]:
        """A run's per-query latency histogram: ``[(upper_edge_ms, count), ...]``."""
        q = (
            select(LatencyBin.upper_ms, LatencyBin.count)
            .join(Run, Run.id == LatencyBin.run_id)
            .where(Run.uuid == run_id, LatencyBin.trial_index.is_(None))
            .order_by(LatencyBin.upper_ms)
        )
        with self._session() as s:
            return [(float(u), int(c)) for u, c in s.execute(q)]

    def load_result(self, run_id: str) -> RunResult | None:
        """The stored run as a :class:`RunResult`, or None when ``run_id`` is not stored.

        Runs recorded here come back exactly as recorded (their payload). Others (the
        central store's, and runs stored before migration 0002) are rebuilt from their
        rows; the model file's local path is not stored, so it comes back as ``.``.
        """
        with self._session() as s:
            run = s.scalars(select(Run).where(Run.uuid == run_id)).first()
            if run is None:
                return None
            payload = s.get(RunPayload, run.id)
            if payload is not None and payload.encoding == _PAYLOAD_ENCODING:
                return RunResult.model_validate_json(gzip.decompress(payload.data))
            return self._rebuild(s, run)

    def _rebuild(self, s: Session, run: Run) -> RunResult:
        dev = run.device
        device: dict[str, Any] = {
            "hostname": dev.hostname,
            "cpu_model": dev.cpu_model,
            "cpu_cores_logical": dev.cpu_cores_logical,
            "cpu_cores_physical": dev.cpu_cores_physical,
            "memory_bytes": dev.memory_bytes,
            "arch": dev.arch,
            "name": dev.name,
        }
        if dev.accelerator is not None:
            device["accelerator"] = dev.accelerator
        for key in DEVICE_INVENTORY_KEYS:
            if getattr(dev, key) is not None:
                device[key] = getattr(dev, key)
        if dev.tags is not None:
            device["tags"] = dev.tags
        traces = {
            (pt.trial_index, pt.reader): [(float(a), float(b)) for a, b in pt.points]
            for pt in run.traces
        }
        per_trial: dict[int, list[TrialEnergy]] = {}
        summaries: list[EnergySummary] = []
        carbon = None
        energy = sorted(run.energy, key=lambda e: (not e.is_headline, e.id))
        for em in energy:
            details = dict(em.details or {})
            if em.trial_index is not None:
                legacy_trace = details.pop("trace", None) or []
                trace = traces.get((em.trial_index, em.reader)) or [
                    (float(a), float(b)) for a, b in legacy_trace
                ]
                per_trial.setdefault(em.trial_index, []).append(
                    TrialEnergy(
                        reader=em.reader,
                        method=em.method,  # type: ignore[arg-type]
                        scope=em.scope,  # type: ignore[arg-type]
                        component=em.component,
                        gross_j=em.gross_j,
                        idle_w=em.idle_w,
                        net_j=em.net_j,
                        duration_s=em.duration_s,
                        mean_power_w=em.mean_power_w,
                        peak_power_w=em.peak_power_w,
                        samples=em.samples or 0,
                        sample_rate_hz=em.sample_rate_hz,
                        update_period_s=em.update_period_s,
                        uncertainty_j=em.uncertainty_j,
                        valid=em.valid,
                        invalid_reasons=list(em.invalid_reasons or []),
                        details=details,
                        trace=trace,
                    )
                )
                continue
            ipj_net = details.pop("inferences_per_joule_net", None)
            if "carbon" in details:
                carbon = details.pop("carbon")
            gross = em.gross_j
            ipj = run.inferences / gross if gross > 0 else None
            jpi = gross / run.inferences if gross > 0 and run.inferences else None
            if not summaries:  # the headline: as stored with the run
                ipj, jpi = run.inferences_per_joule, run.joules_per_inference
            summaries.append(
                EnergySummary(
                    reader=em.reader,
                    method=em.method,  # type: ignore[arg-type]
                    scope=em.scope,  # type: ignore[arg-type]
                    component=em.component,
                    gross_j=gross,
                    net_j=em.net_j,
                    idle_w=em.idle_w,
                    duration_s=em.duration_s,
                    inferences_per_joule=ipj,
                    joules_per_inference=jpi,
                    inferences_per_joule_net=ipj_net,
                    mean_power_w=em.mean_power_w,
                    peak_power_w=em.peak_power_w,
                    uncertainty_j=em.uncertainty_j,
                    sample_rate_hz=em.sample_rate_hz,
                    estimated=em.method == "estimated",
                    details=details,
                )
            )
        trials = [
            TrialResult(
                index=t.index,
                queries=t.queries,
                inferences=t.inferences,
                duration_s=t.duration_s,
                throughput_ips=t.throughput_ips,
                latency=LatencyStats.model_validate(t.latency),
                energy=per_trial.get(t.index, []),
            )
            for t in run.trials
        ]
        lat = [t.latency for t in trials]
        latency = LatencyStats(
            count=sum(x.count for x in lat),
            mean_ms=run.latency_mean_ms,
            min_ms=min((x.min_ms for x in lat), default=run.latency_p50_ms),
            max_ms=max((x.max_ms for x in lat), default=run.latency_p999_ms),
            p50_ms=run.latency_p50_ms,
            p90_ms=run.latency_p90_ms,
            p95_ms=run.latency_p95_ms,
            p99_ms=run.latency_p99_ms,
            p999_ms=run.latency_p999_ms,
            cv=run.latency_cv,
        )
        art = run.model_artifact
        data: dict[str, Any] = {
            "run_id": run.uuid,
            "suite": run.suite.name,
            "suite_version": run.suite.version,
            "scenario": run.scenario,
            "config": run.config,
            "model": {
                "path": ".",
                "sha256": art.sha256,
                "format": art.format,
                "precision": art.precision,
                "weights": art.weights,
                "name": art.name,
            },
            "adapter": run.adapter_description,
            "device": device,
            "environment": run.environment.data,
            "inputs": run.inputs,
            "started_at": _utc(run.started_at),
            "finished_at": _utc(run.finished_at),
            "load_ms": run.load_ms,
            "first_inference_ms": run.first_inference_ms,
            "preprocess_ms_mean": run.preprocess_ms_mean,
            "latency": latency,
            "latency_histogram": [(b.upper_ms, b.count) for b in run.latency_bins],
            "throughput_ips": run.throughput_ips,
            "inferences": run.inferences,
            "trials": trials,
            "energy": summaries,
            "quality": run.quality,
            "carbon": carbon,
            "valid": run.valid,
            "invalid_reasons": list(run.invalid_reasons or []),
            "warnings": list(run.warnings or []),
            "labels": list(run.labels or []),
            # 0003: scenario, end-to-end, generation and network sections as recorded
            **(run.extras or {}),
        }
        if "latency_histogram" not in RunResult.model_fields:  # a RunResult from before it
            data.pop("latency_histogram")
        return RunResult.model_validate(data)


def device_name(result: RunResult) -> str:
    """The device name a run is stored (and authorised) under."""
    dev = result.device
    return str(dev.get("name") or dev.get("hostname") or "unknown")


def downsample(trace: Sequence[Sequence[float]], max_points: int) -> list[tuple[float, float]]:
    """At most ``max_points`` evenly spaced points of ``trace``, keeping the first and last."""
    n = len(trace)
    if n <= max_points:
        return [(float(p[0]), float(p[1])) for p in trace]
    picks = (round(i * (n - 1) / (max_points - 1)) for i in range(max_points))
    return [(float(trace[k][0]), float(trace[k][1])) for k in picks]


@functools.cache
def _run_insert(dialect: str, returning: bool) -> Any:
    """The ``runs`` insert that skips a stored uuid, built once (parameters are bound per
    execution: building 40-odd bind parameters per run costs more than the database)."""
    if not returning or dialect not in ("postgresql", "sqlite"):
        return None
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return dialect_insert(Run).on_conflict_do_nothing(index_elements=["uuid"]).returning(Run.id)


def _insert_id(conn: Connection, stmt: Any) -> int:
    key = conn.execute(stmt).inserted_primary_key
    assert key is not None
    return int(key[0])


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _is_unique_violation(exc: IntegrityError) -> bool:
    if getattr(exc.orig, "sqlstate", None) == "23505":  # psycopg: unique_violation
        return True
    return "UNIQUE constraint failed" in str(exc.orig)


def _is_sqlite_busy(exc: OperationalError) -> bool:
    text = str(exc.orig or exc).lower()
    return "database is locked" in text or "database is busy" in text


def _rank_key(row: Any) -> tuple[bool, float, int]:
    """Leaderboard order within a group: inferences per joule, highest first, NULLs last."""
    ipj = row.inferences_per_joule
    return (ipj is None, -(ipj or 0.0), row.id)


def _leaderboard_row(rank: int, row: Any) -> LeaderboardRow:
    unc = (
        row.energy_uncertainty_j / (row.joules_per_inference * row.inferences) * 100
        if row.energy_uncertainty_j is not None and row.joules_per_inference and row.inferences
        else None
    )
    return LeaderboardRow(
        rank=rank,
        run_id=row.uuid,
        suite=row.suite,
        suite_version=row.suite_version,
        scenario=row.scenario,
        model=row.model,
        weights=row.weights,
        adapter=row.adapter,
        runtime_version=row.runtime_version,
        execution_provider=row.execution_provider,
        device=row.device,
        hardware=row.accelerator or row.cpu_model,
        precision=row.precision,
        batch=row.batch,
        threads=row.threads,
        inferences_per_joule=row.inferences_per_joule,
        joules_per_inference=row.joules_per_inference,
        latency_p50_ms=row.latency_p50_ms,
        latency_p90_ms=row.latency_p90_ms,
        latency_p99_ms=row.latency_p99_ms,
        throughput_ips=row.throughput_ips,
        energy_method=row.energy_method,
        energy_scope=row.energy_scope,
        energy_estimated=row.energy_method == "estimated",
        energy_uncertainty_pct=unc,
        valid=row.valid,
        labels=list(row.labels or []),
        created_at=row.created_at,
        quality=dict(row.quality or {}),
        mode=row.mode,
        latency_e2e_p90_ms=row.latency_e2e_p90_ms,
        ttft_ms=row.ttft_ms,
        tpot_ms=row.tpot_ms,
        tokens_per_joule=row.tokens_per_joule,
        network_j_per_inference=row.network_j_per_inference,
        energy_to_solution_j_per_inference=row.energy_to_solution_j_per_inference,
    )


def _energy_values(run_id: int, e: TrialEnergy, trial_index: int, headline: bool) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "trial_index": trial_index,
        "reader": e.reader,
        "is_headline": headline,
        "method": e.method.value,
        "scope": e.scope.value,
        "component": e.component,
        "gross_j": e.gross_j,
        "idle_w": e.idle_w,
        "net_j": e.net_j,
        "duration_s": e.duration_s,
        "mean_power_w": e.mean_power_w,
        "peak_power_w": e.peak_power_w,
        "samples": e.samples,
        "sample_rate_hz": e.sample_rate_hz,
        "update_period_s": e.update_period_s,
        "uncertainty_j": e.uncertainty_j,
        "valid": e.valid,
        "invalid_reasons": list(e.invalid_reasons),
        # Since 0002 the trace lives in power_traces (bounded, one row per reader/trial).
        "details": dict(e.details),
    }
