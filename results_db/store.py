"""The results store: open, migrate, save runs atomically, rank them.

SQLite (the default, in the user's data directory) or PostgreSQL through
psycopg 3 (``pip install 'wattbench[postgres]'``). A run is written in one
transaction: a failure leaves nothing half-written. Saving is idempotent on the
run uuid and safe under concurrent writers (the central store behind
``wattbench serve``): a writer that loses a race on a shared row retries.

Every run recorded on this machine starts ``pending`` upload
(``runs.upload_state``) with its exact payload kept in ``run_payloads``;
:mod:`wattbench.results_db.upload` sends pending runs to the central store.

:class:`Store` is the one object callers hold; the work is done by
:mod:`~wattbench.results_db.engine` (connecting, schema revision),
:mod:`~wattbench.results_db.ingest` (writing, upload bookkeeping),
:mod:`~wattbench.results_db.rows` (a RunResult as table rows),
:mod:`~wattbench.results_db.read` (reading runs back) and
:mod:`~wattbench.results_db.leaderboard` (ranking). The names callers import from
here are re-exported so that this module stays the public entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from wattbench.core.errors import StoreError
from wattbench.core.results import RunResult
from wattbench.results_db import batch, ingest, profiles, read
from wattbench.results_db import engine as _db
from wattbench.results_db import leaderboard as _leaderboard
from wattbench.results_db.batch import SaveOutcome
from wattbench.results_db.engine import UPGRADE_HINT, default_db_url, head_revision
from wattbench.results_db.leaderboard import LeaderboardRow
from wattbench.results_db.profiles import ProfileInfo
from wattbench.results_db.rows import (
    DEVICE_INVENTORY_KEYS,
    EXTRA_SECTIONS,
    MAX_TRACE_POINTS,
    device_name,
    downsample,
)
from wattbench.results_db.schema import UPLOAD_PENDING, Run

__all__ = [
    "DEVICE_INVENTORY_KEYS",
    "EXTRA_SECTIONS",
    "MAX_TRACE_POINTS",
    "UPGRADE_HINT",
    "LeaderboardRow",
    "ProfileInfo",
    "Store",
    "default_db_url",
    "device_name",
    "downsample",
    "head_revision",
]


class Store:
    """A results database at ``url``; use :meth:`open`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._writer = batch.BatchWriter(engine)

    @property
    def display_url(self) -> str:
        return _db.display_url(self.engine)

    @classmethod
    def open(cls, url: str | None = None, *, check_schema: bool = True) -> Store:
        """Connect; create the schema in an empty database; refuse a stale schema."""
        store = cls(_db.open_engine(url))
        if check_schema:
            store.ensure_schema()
        return store

    def close(self) -> None:
        self.engine.dispose()

    # -- schema --------------------------------------------------------------------------
    def current_revision(self) -> str | None:
        return _db.current_revision(self.engine)

    def ensure_schema(self) -> None:
        """Create a fresh schema in an empty database; otherwise insist on the head."""
        _db.ensure_schema(self.engine)

    def upgrade(self) -> tuple[str | None, str]:
        """Apply pending migrations; returns (from, to) revisions."""
        return _db.upgrade(self.engine)

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
        recorded (gzip'd JSON) so that an upload sends it verbatim. Safe under
        concurrent writers (see :class:`~wattbench.results_db.ingest.RunWriter`).
        """
        created = self._writer.save_run(result, upload_state, keep_payload)
        if created:  # the device's latest `wattbench doctor --save` profile, if it has one
            profiles.link_run(self.engine, result.run_id, device_name(result))
        return created

    def save_runs(
        self,
        results: Sequence[RunResult],
        *,
        upload_state: str = UPLOAD_PENDING,
        keep_payload: bool = True,
        digests: Sequence[str] | None = None,
    ) -> list[SaveOutcome]:
        """Store many runs in one transaction; one outcome per run (created, duplicate or
        conflict), by the rules of :meth:`save_run` applied to each
        (:class:`~wattbench.results_db.batch.BatchWriter`). A database failure writes
        nothing of the batch (:class:`~wattbench.core.errors.StoreError`)."""
        outcomes = self._writer.save_runs(results, upload_state, keep_payload, digests)
        created: dict[str, list[str]] = {}
        for r, o in zip(results, outcomes, strict=True):
            if o.status == batch.CREATED:
                created.setdefault(device_name(r), []).append(r.run_id)
        for device, run_ids in created.items():  # as save_run: the latest doctor profile
            _link_profile(self.engine, run_ids, device)
        return outcomes

    # -- device profiles (wattbench doctor --save) ----------------------------------------
    def save_device_profile(self, report: dict[str, Any]) -> int:
        """Store a ``wattbench doctor --json`` report as its device's profile; its id.

        Runs stored afterwards point at the latest profile of their device name.
        """
        return profiles.save_profile(self.engine, report)

    def latest_device_profile(self, device: str) -> ProfileInfo | None:
        """The newest profile of ``device``, or None when it was never profiled."""
        return profiles.latest_profile(self.engine, device)

    def run_device_profile(self, run_id: str) -> ProfileInfo | None:
        """The profile a stored run points at (None: its device was not profiled then)."""
        return profiles.run_profile(self.engine, run_id)

    # -- upload bookkeeping --------------------------------------------------------------
    def pending_run_ids(self, limit: int | None = None) -> list[str]:
        """Uuids of runs not yet acknowledged by the central store, oldest first."""
        return ingest.pending_run_ids(self._session, limit)

    def count_pending(self) -> int:
        """How many runs still wait for upload."""
        return ingest.count_pending(self._session)

    def mark_uploaded(self, run_id: str) -> None:
        """Record that the central store acknowledged ``run_id`` (created or duplicate)."""
        ingest.mark_uploaded(self.engine, run_id)

    def record_upload_failure(self, run_id: str, error: str) -> None:
        """Count a failed attempt; the run stays pending with ``error`` as its last error."""
        ingest.record_upload_failure(self.engine, run_id, error)

    # -- reading -------------------------------------------------------------------------
    def leaderboard(
        self,
        suite: str | None = None,
        *,
        include_invalid: bool = False,
        hide_estimated: bool = False,
        limit: int | None = None,
        mode: str = "edge",
        scope: str | None = None,
    ) -> list[LeaderboardRow]:
        """Runs ranked by inferences per joule within each rank group.

        A rank group is suite version × scenario × mode × energy scope × measured or
        estimated; ``scope`` keeps one energy scope only. With ``limit`` (top N per group)
        the cost does not grow with the number of stored runs (see
        :func:`~wattbench.results_db.leaderboard.leaderboard`).
        """
        return _leaderboard.leaderboard(
            self._session,
            suite,
            include_invalid=include_invalid,
            hide_estimated=hide_estimated,
            limit=limit,
            mode=mode,
            scope=scope,
        )

    def get_run(self, run_id: str) -> Run | None:
        return read.get_run(self._session, run_id)

    def run_device_name(self, run_id: str) -> str | None:
        """The device a stored run belongs to, or None when ``run_id`` is not stored."""
        return read.run_device_name(self._session, run_id)

    def count_runs(self) -> int:
        return read.count_runs(self._session)

    def power_traces(self, run_id: str) -> dict[tuple[int, str], list[tuple[float, float]]]:
        """``{(trial_index, reader): [(t_s, power_w), ...]}`` of a run (old runs too)."""
        return read.power_traces(self._session, run_id)

    def latency_histogram(self, run_id: str) -> list[tuple[float, int]]:
        """A run's per-query latency histogram: ``[(upper_edge_ms, count), ...]``."""
        return read.latency_histogram(self._session, run_id)

    def load_result(self, run_id: str) -> RunResult | None:
        """The stored run as a :class:`RunResult`, or None when ``run_id`` is not stored.

        Exactly as recorded when recorded here; otherwise rebuilt from its rows, with the
        model file's local path (not stored) as ``.``.
        """
        return read.load_result(self._session, run_id)


def _link_profile(engine: Engine, run_ids: list[str], device: str) -> None:
    """:func:`~wattbench.results_db.profiles.link_run` for many just-stored runs of one
    device: one transaction, nothing written when the device has no profile."""
    try:
        with engine.begin() as conn:
            pid = conn.scalar(profiles._latest_id_query(device))
            if pid is not None:
                conn.execute(
                    update(Run)
                    .where(Run.uuid.in_(run_ids), Run.device_profile_id.is_(None))
                    .values(device_profile_id=pid)
                )
    except SQLAlchemyError as exc:
        raise StoreError(
            f"{len(run_ids)} run(s) are stored, but linking them to the device profile of "
            f"{device!r} failed in {_db.display_url(engine)}: {_db.one_line(exc)}"
        ) from exc
