"""Writing many runs in one transaction: the ingest API's batch upload.

:meth:`BatchWriter.save_runs` applies the rules of
:meth:`~wattbench.results_db.ingest.RunWriter.save_run` to **each run** of a batch —
a stored uuid with the same content hash is a duplicate, with another hash a conflict
naming the first differing field, and the stored run is never touched — but writes
the new runs of the whole batch in **one transaction** with a few statements per
table instead of a few per run:

* one ``SELECT`` finds the uuids already stored (and their hashes), one executemany
  inserts the ``runs`` rows of the others and one ``SELECT`` reads their ids back;
* trials, energy measurements, power traces, latency bins and payloads of all the new
  runs, one executemany per table;
* the shared rows (device, environment, suite, model) once per distinct key, and not
  at all once their ids are remembered (as the single-run writer does).

Per run, not all or nothing: duplicates and conflicts are left out, the other runs are
stored. The write itself is all or nothing: a database failure rolls the whole batch
back (nothing of it is stored), and the batch can be sent again as it is (the runs that
made it are then duplicates). Runs are inserted in uuid order, so that two batches
holding the same runs lock them in the same order (no deadlock); a deadlock or a race
lost on a shared row still only retries the transaction.

A uuid repeated within one batch is written once; its later copies are then compared
with what was stored, like any re-sent run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

import pydantic_core
from sqlalchemy import JSON, Connection, Table, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from wattbench.core import fingerprint
from wattbench.core.canonical import content_sha256
from wattbench.core.errors import StoreError
from wattbench.core.results import RunResult
from wattbench.results_db import summaries
from wattbench.results_db.engine import display_url, one_line
from wattbench.results_db.errors import RunConflictError
from wattbench.results_db.ingest import (
    _SAVE_ATTEMPTS,
    RunWriter,
    _Ids,
    _is_sqlite_busy,
    _is_unique_violation,
)
from wattbench.results_db.rows import (
    energy_rows,
    histogram_rows,
    payload_values,
    run_values,
    trace_rows,
    trial_rows,
)
from wattbench.results_db.schema import (
    UPLOAD_STATES,
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

#: Per-run outcomes of :meth:`BatchWriter.save_runs`.
CREATED = "created"
DUPLICATE = "duplicate"
CONFLICT = "conflict"

#: PostgreSQL errors that only mean "try the transaction again".
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


@dataclass(frozen=True)
class SaveOutcome:
    """What happened to one run of a batch: created, duplicate or conflict."""

    run_id: str
    status: str
    #: the conflict (first differing field, the device holding the uuid) when status is
    #: ``conflict``; the stored run was kept
    conflict: RunConflictError | None = None


class BatchWriter(RunWriter):
    """A :class:`RunWriter` that can also save many runs in one transaction."""

    def save_runs(
        self,
        results: Sequence[RunResult],
        upload_state: str,
        keep_payload: bool,
        digests: Sequence[str] | None = None,
    ) -> list[SaveOutcome]:
        """Store ``results`` in one transaction; one outcome per run, in order.

        ``digests`` are their content hashes when the caller has them already. Raises
        :class:`~wattbench.core.errors.StoreError` when the database fails: then nothing
        of the batch was written.
        """
        if upload_state not in UPLOAD_STATES:
            raise ValueError(f"upload_state must be one of {UPLOAD_STATES}")
        if digests is None:
            digests = [content_sha256(r) for r in results]
        if len(digests) != len(results):
            raise ValueError("one digest per run")
        first: dict[str, int] = {}  # run id -> index of its first copy in the batch
        for i, r in enumerate(results):
            first.setdefault(r.run_id, i)
        # uuid order: batches holding the same runs lock their rows in the same order
        order = sorted(first.values(), key=lambda i: results[i].run_id)
        inserted, stored = self._write_with_retries(
            [results[i] for i in order], [digests[i] for i in order], upload_state, keep_payload
        )
        outcomes: list[SaveOutcome] = []
        for i, r in enumerate(results):
            if first[r.run_id] == i and r.run_id in inserted:
                outcomes.append(SaveOutcome(r.run_id, CREATED))
                continue
            # stored before this batch, or a later copy of a run of this batch
            head = first[r.run_id]
            known = digests[head] if results[head].run_id in inserted else stored.get(r.run_id)
            if known == digests[i]:
                outcomes.append(SaveOutcome(r.run_id, DUPLICATE))
                continue
            try:  # legacy run without a hash, or other content: as save_run decides
                created = self._resolve_stored(r, digests[i], known)
            except RunConflictError as exc:
                outcomes.append(SaveOutcome(r.run_id, CONFLICT, exc))
            else:
                assert not created
                outcomes.append(SaveOutcome(r.run_id, DUPLICATE))
        return outcomes

    def _write_with_retries(
        self,
        results: list[RunResult],
        digests: list[str],
        upload_state: str,
        keep_payload: bool,
    ) -> tuple[dict[str, int], dict[str, str | None]]:
        """(uuid -> id of each run inserted, uuid -> hash of each run already stored)."""
        if not results:
            return {}, {}
        last: Exception | None = None
        cache_dropped = False
        for attempt in range(_SAVE_ATTEMPTS):
            learned: _Ids = {}
            try:
                with self.engine.begin() as conn:
                    written = self._write_batch(
                        conn, results, digests, upload_state, keep_payload, learned
                    )
            except IntegrityError as exc:
                if not _is_unique_violation(exc):
                    if cache_dropped or not self._ids:
                        raise self._batch_error(len(results), exc) from exc
                    self._ids.clear()  # a remembered shared row is gone: forget all
                    cache_dropped = True
                    continue
                last = exc  # a concurrent writer inserted the same shared key first
            except OperationalError as exc:
                if not (_is_sqlite_busy(exc) or _is_retryable(exc)):
                    raise self._batch_error(len(results), exc) from exc
                last = exc
            except (DBAPIError, SQLAlchemyError) as exc:
                if not _is_retryable(exc):
                    raise self._batch_error(len(results), exc) from exc
                last = exc
            else:
                self._ids.update(learned)  # only ids of committed rows are remembered
                return written
            time.sleep(min(0.005 * 2**attempt, 0.5))
        assert last is not None
        raise self._batch_error(len(results), last) from last

    def _batch_error(self, n: int, exc: BaseException) -> StoreError:
        return StoreError(
            f"could not save a batch of {n} run(s) to {display_url(self.engine)}: "
            f"{one_line(exc)}; nothing of it was written"
        )

    def _write_batch(
        self,
        conn: Connection,
        results: list[RunResult],
        digests: list[str],
        upload_state: str,
        keep_payload: bool,
        learned: _Ids,
    ) -> tuple[dict[str, int], dict[str, str | None]]:
        now = datetime.now(timezone.utc)
        values = []
        for r, digest in zip(results, digests, strict=True):
            v = run_values(r, now, upload_state, **self._shared_ids(conn, r, now, learned))
            v["content_sha256"] = digest
            values.append(v)
        # Which uuids are stored already (duplicates or conflicts, decided after the commit);
        # the others are inserted without ON CONFLICT: a concurrent writer that stores one
        # of them first makes this insert fail (unique violation) and the batch retries.
        stored = _stored_hashes(conn, [v["uuid"] for v in values])
        fresh = [v for v in values if v["uuid"] not in stored]
        inserted = _insert_runs(conn, fresh) if fresh else {}
        new = [(r, v) for r, v in zip(results, values, strict=True) if v["uuid"] in inserted]
        # the dashboard's per-configuration summaries, in this transaction: one upsert per
        # summary key, in key order (concurrent batches update shared rows in one order)
        merged = _merged_summaries(v for _, v in new if v["valid"])
        if merged:
            conn.execute(summaries._upsert(conn.dialect.name), merged)
        children: dict[Any, list[dict[str, Any]]] = {
            Trial: [],
            EnergyMeasurement: [],
            PowerTrace: [],
            LatencyBin: [],
            RunPayload: [],
        }
        for r, v in new:
            run_id = inserted[v["uuid"]]
            children[Trial] += trial_rows(run_id, r)
            children[EnergyMeasurement] += energy_rows(run_id, r)
            children[PowerTrace] += trace_rows(run_id, r)
            children[LatencyBin] += histogram_rows(run_id, r)
            if keep_payload:
                children[RunPayload].append(payload_values(run_id, r))
        for table, rows_ in children.items():
            if rows_:
                _insert_many(conn, table.__table__, rows_)
        return inserted, stored

    def _shared_ids(
        self, conn: Connection, r: RunResult, now: datetime, learned: _Ids
    ) -> dict[str, int]:
        """The device/environment/suite/model ids of a run (as the single-run writer)."""
        m = r.model
        return {
            "device_id": self._device_id(conn, r, now, learned),
            "environment_id": self._shared_id(
                conn,
                learned,
                Environment,
                {"fingerprint_sha256": fingerprint.fingerprint_sha256(r.environment)},
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
        }


def _merged_summaries(values: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``config_summaries`` rows of valid runs, one per summary key (in key order):
    what :func:`~wattbench.results_db.summaries.add_run` would add run by run."""
    rows: dict[str, dict[str, Any]] = {}
    for v in values:
        row = summaries.summary_row(v)
        have = rows.get(row["key_sha256"])
        if have is None:
            rows[row["key_sha256"]] = row
            continue
        have["runs"] += row["runs"]
        if _utc(row["first_started_at"]) < _utc(have["first_started_at"]):
            have["first_started_at"] = row["first_started_at"]
        if (_utc(row["last_started_at"]), row["last_run_uuid"]) > (
            _utc(have["last_started_at"]),
            have["last_run_uuid"],
        ):
            have["last_started_at"] = row["last_started_at"]
            have["last_run_uuid"] = row["last_run_uuid"]
        for m in summaries.SUMMARY_METRICS:
            have[f"{m}_n"] += row[f"{m}_n"]
            have[f"{m}_sum"] += row[f"{m}_sum"]
    return [rows[k] for k in sorted(rows)]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _stored_hashes(conn: Connection, uuids: list[str]) -> dict[str, str | None]:
    """uuid -> content hash of those of ``uuids`` already stored (one query per 1000)."""
    stored: dict[str, str | None] = {}
    for k in range(0, len(uuids), 1000):
        q = select(Run.uuid, Run.content_sha256).where(Run.uuid.in_(uuids[k : k + 1000]))
        stored.update((str(u), h) for u, h in conn.execute(q))
    return stored


def _insert_runs(conn: Connection, values: list[dict[str, Any]]) -> dict[str, int]:
    """Insert ``runs`` rows (their uuids are not stored); uuid -> id.

    PostgreSQL: the ids are drawn from the table's sequence first, then the rows are
    copied in (``COPY``). Otherwise one executemany and one query for the ids. Either is
    far cheaper than a multi-row ``INSERT … RETURNING``, whose thousands of placeholders
    the driver parses anew for every batch.
    """
    if _copies(conn):
        ids = conn.execute(_NEXT_RUN_IDS, {"n": len(values)}).scalars().all()
        rows = [{"id": int(i), **v} for i, v in zip(ids, values, strict=True)]
        _copy(conn, cast(Table, Run.__table__), rows)
        return {v["uuid"]: v["id"] for v in rows}
    conn.execute(insert(Run), values)
    found: dict[str, int] = {}
    uuids = [v["uuid"] for v in values]
    for k in range(0, len(uuids), 1000):
        q = select(Run.uuid, Run.id).where(Run.uuid.in_(uuids[k : k + 1000]))
        found.update((str(u), int(i)) for u, i in conn.execute(q))
    return found


_NEXT_RUN_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('runs', 'id')) FROM generate_series(1, :n)"
)


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys): ``COPY`` on PostgreSQL, else executemany."""
    if _copies(conn):
        _copy(conn, table, rows)
    else:
        conn.execute(insert(table), rows)


def _copies(conn: Connection) -> bool:
    """Rows go in by ``COPY``: PostgreSQL through psycopg 3."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def _copy(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``COPY table (columns) FROM STDIN`` with ``rows``, on the connection's transaction.

    JSON values are written as SQLAlchemy writes them (``json.dumps``, ``None`` as JSON
    ``null`` unless the column says otherwise), so the stored text is the same either way
    (label filters match on it); power trace points compactly (:data:`_COMPACT_JSON`).
    The driver's errors come back as SQLAlchemy's (:class:`~sqlalchemy.exc.IntegrityError`
    for a uuid stored meanwhile, …).
    """
    import psycopg

    keys = list(rows[0])
    columns = [table.c[k] for k in keys]
    as_json = [
        (i, "null" if not c.type.none_as_null else None, _json_writer(table.name, c.name))
        for i, c in enumerate(columns)
        if isinstance(c.type, JSON)
    ]
    quote = conn.dialect.identifier_preparer.quote
    sql = (
        f"COPY {conn.dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(c.name) for c in columns)}) FROM STDIN"
    )
    raw: Any = conn.connection.driver_connection
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                values = [row[k] for k in keys]
                for i, none, dumps in as_json:
                    v = values[i]
                    values[i] = none if v is None else dumps(v)
                copy.write_row(values)
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


#: JSON columns written compactly by pydantic's serialiser (Rust) instead of ``json.dumps``:
#: the same values, without the spaces. Only where the text is never matched (label filters
#: match ``json.dumps`` text) and the gain is large: 2000-point power traces, ~5x faster.
_COMPACT_JSON = frozenset({("power_traces", "points")})


def _json_writer(table: str, column: str) -> Callable[[Any], str]:
    if (table, column) in _COMPACT_JSON:
        return _compact_json
    return json.dumps


def _compact_json(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


def _is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction can simply run again."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _RETRY_SQLSTATES
