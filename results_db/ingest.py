"""Writing runs: one transaction per run, idempotent on its uuid, safe under concurrent writers.

Also the upload bookkeeping of runs recorded here (``runs.upload_state``), which
:mod:`wattbench.results_db.upload` drives.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from wattbench.core import fingerprint
from wattbench.core.canonical import content_sha256, difference_between
from wattbench.core.errors import StoreError
from wattbench.core.results import RunResult
from wattbench.results_db import read, summaries
from wattbench.results_db.engine import display_url, one_line
from wattbench.results_db.errors import RunConflictError
from wattbench.results_db.rows import (
    DEVICE_INVENTORY_KEYS,
    device_name,
    energy_rows,
    histogram_rows,
    payload_values,
    run_values,
    trace_rows,
    trial_rows,
)
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

_SAVE_ATTEMPTS = 8

#: Shared-row cache: (table, *key) -> id (or, for devices, (id, inventory facts)).
_Ids = dict[tuple[Any, ...], Any]


class _StoredDiffers(Exception):
    """Raised inside the transaction (rolling it back): the uuid is stored, its hash differs."""

    def __init__(self, stored_sha256: str | None) -> None:
        super().__init__(stored_sha256)
        self.stored_sha256 = stored_sha256


class RunWriter:
    """Saves runs to ``engine``, remembering the ids of shared rows once committed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        # Ids of committed device/environment/suite/model rows (never deleted), by key.
        self._ids: _Ids = {}

    def save_run(self, result: RunResult, upload_state: str, keep_payload: bool) -> bool:
        """Store a run in one transaction; False when its uuid was already stored.

        A stored uuid is a duplicate only with the same content (the sha256 of the
        canonical payload, :mod:`wattbench.core.canonical`); different content raises
        :class:`~wattbench.results_db.errors.RunConflictError` naming the first differing
        field, and the stored run is left as it is.

        Concurrent writers are fine: losing a race on a shared row (the device, suite,
        environment or model) rolls back and tries again, and a run that a concurrent
        writer stored first is reported as already stored. Written with SQLAlchemy core
        (a handful of statements per run) because the central store's ingest rate
        depends on it.
        """
        if upload_state not in UPLOAD_STATES:
            raise ValueError(f"upload_state must be one of {UPLOAD_STATES}")
        digest = content_sha256(result)
        last: Exception | None = None
        cache_dropped = False
        for attempt in range(_SAVE_ATTEMPTS):
            learned: _Ids = {}
            try:
                with self.engine.begin() as conn:
                    created = self._write_run(
                        conn, result, upload_state, keep_payload, learned, digest
                    )
            except _StoredDiffers as differs:
                return self._resolve_stored(result, digest, differs.stored_sha256)
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

    def _resolve_stored(self, result: RunResult, digest: str, stored_sha256: str | None) -> bool:
        """The uuid is stored with another (or, before 0004, no) hash: duplicate or conflict.

        A run stored before migration 0004 has no hash: it is hashed from its payload (or
        its rows) now, and the hash is kept when it matches. Otherwise the first field
        that differs is found against the stored run (exact when its payload is kept;
        on a central store, against the run rebuilt from its rows).
        """
        try:
            stored = read.load_result(self._session, result.run_id)
            stored_device = read.run_device_name(self._session, result.run_id)
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._save_error(result, exc) from exc
        if stored is None:  # deleted meanwhile: nothing to conflict with
            raise self._save_error(result, RuntimeError("the stored run vanished; try again"))
        if stored_sha256 is None and content_sha256(stored) == digest:
            _update_run(self.engine, result.run_id, content_sha256=digest)
            return False
        path = difference_between(result, stored) or (
            "not visible in the stored rows (the run was stored without its payload)"
        )
        raise RunConflictError(result.run_id, path, display_url(self.engine), stored_device)

    def _save_error(self, result: RunResult, exc: BaseException) -> StoreError:
        return StoreError(
            f"could not save run {result.run_id} to {display_url(self.engine)}: "
            f"{one_line(exc)}; nothing was written"
        )

    def _shared_id(
        self,
        conn: Connection,
        learned: _Ids,
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

    def _device_id(self, conn: Connection, r: RunResult, now: datetime, learned: _Ids) -> int:
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

    def _write_run(
        self,
        conn: Connection,
        r: RunResult,
        upload_state: str,
        keep_payload: bool,
        learned: _Ids,
        digest: str,
    ) -> bool:
        now = datetime.now(timezone.utc)
        env_sha = fingerprint.fingerprint_sha256(r.environment)
        m = r.model
        ids = {
            "device_id": self._device_id(conn, r, now, learned),
            "environment_id": self._shared_id(
                conn, learned, Environment, {"fingerprint_sha256": env_sha}, {"data": r.environment}
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
        }
        values = run_values(r, now, upload_state, **ids)
        values["content_sha256"] = digest
        run_id = _insert_run_row(conn, values)
        if run_id is None:
            stored = conn.scalar(select(Run.content_sha256).where(Run.uuid == r.run_id))
            if stored == digest:
                return False
            raise _StoredDiffers(stored)
        if values["valid"]:  # the dashboard's per-configuration summary, in this transaction
            summaries.add_run(conn, values)
        trials = trial_rows(run_id, r)
        energy = energy_rows(run_id, r)
        traces = trace_rows(run_id, r)
        bins = histogram_rows(run_id, r)
        if trials:
            conn.execute(insert(Trial), trials)
        if energy:
            conn.execute(insert(EnergyMeasurement), energy)
        if traces:
            conn.execute(insert(PowerTrace), traces)
        if bins:
            conn.execute(insert(LatencyBin), bins)
        if keep_payload:
            conn.execute(insert(RunPayload).values(**payload_values(run_id, r)))
        return True


def _insert_run_row(conn: Connection, values: dict[str, Any]) -> int | None:
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


def _is_unique_violation(exc: IntegrityError) -> bool:
    if getattr(exc.orig, "sqlstate", None) == "23505":  # psycopg: unique_violation
        return True
    return "UNIQUE constraint failed" in str(exc.orig)


def _is_sqlite_busy(exc: OperationalError) -> bool:
    text = str(exc.orig or exc).lower()
    return "database is locked" in text or "database is busy" in text


# -- upload bookkeeping ------------------------------------------------------------------
def pending_run_ids(session: sessionmaker[Session], limit: int | None = None) -> list[str]:
    """Uuids of runs not yet acknowledged by the central store, oldest first."""
    q = select(Run.uuid).where(Run.upload_state == UPLOAD_PENDING).order_by(Run.id)
    if limit is not None:
        q = q.limit(limit)
    with session() as s:
        return list(s.scalars(q))


def count_pending(session: sessionmaker[Session]) -> int:
    """How many runs still wait for upload."""
    with session() as s:
        q = select(func.count(Run.id)).where(Run.upload_state == UPLOAD_PENDING)
        return int(s.scalar(q) or 0)


def mark_uploaded(engine: Engine, run_id: str) -> None:
    """Record that the central store acknowledged ``run_id`` (created or duplicate)."""
    _update_run(
        engine,
        run_id,
        upload_state=UPLOAD_DONE,
        uploaded_at=datetime.now(timezone.utc),
        upload_attempts=Run.upload_attempts + 1,
        upload_last_error=None,
    )


def record_upload_failure(engine: Engine, run_id: str, error: str) -> None:
    """Count a failed attempt; the run stays pending with ``error`` as its last error."""
    _update_run(
        engine, run_id, upload_attempts=Run.upload_attempts + 1, upload_last_error=error[:2000]
    )


def _update_run(engine: Engine, run_id: str, **values: Any) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(update(Run).where(Run.uuid == run_id).values(**values))
    except (DBAPIError, SQLAlchemyError) as exc:
        raise StoreError(
            f"could not update run {run_id} in {display_url(engine)}: {one_line(exc)}"
        ) from exc
