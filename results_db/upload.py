"""Runner side of the upload path: push pending runs to the central store.

Every run is committed to the local store first (``upload_state = 'pending'``).
:func:`upload_pending` sends pending runs oldest first, either to a ``wattbench
serve`` ingest API (``http(s)://host:port``) or, on trusted lab machines,
straight into the central database (a SQLAlchemy URL such as
``postgresql+psycopg://user@host/db``). A run is marked ``uploaded`` only after
the central store acknowledged it; the central store is idempotent on the run
uuid, so a run whose acknowledgement was lost is simply acknowledged again as a
duplicate: the effect is exactly once.

Failures:

* network errors, 408, 429 and 5xx are transient: retried with exponential
  backoff (``backoff_s * 2**k`` with jitter, at most ``MAX_BACKOFF_S``) up to
  ``max_attempts`` times; then the pass stops and the rest stays pending;
* 401 (bad or revoked token) and 404 (not an ingest API) stop the pass at once;
* 400, 403, 413 and 422 concern one run: it stays pending with the server's
  reason in ``runs.upload_last_error`` and the pass goes on with the next run;
* 409 is a **conflict**: the central store holds this run id with different content
  (the answer names the first differing field). The run stays pending here, the
  stored one is never overwritten, and the pass goes on.

Pending runs go in **batches** (``POST /api/v1/runs/batch``, a JSON array of at most
``batch_size`` runs and ``batch_bytes`` bytes): one request and one server transaction for
many runs, each answered on its own (created, duplicate, conflict, invalid, forbidden: the
same outcomes as above, run by run). A transient failure retries the whole batch (the runs
that made it come back as duplicates). A server without the batch endpoint (404/405: an
older ``wattbench serve``) gets single posts for the rest of the pass; a batch refused as
too large (413) is halved, down to single posts; a batch refused whole (400, 422) is sent
again run by run, so each run gets its own answer.

The transports live in :mod:`~wattbench.results_db.upload_http` (the ingest API; only
the standard library is used for HTTP, so a small device needs no extras) and
:mod:`~wattbench.results_db.upload_db` (a database URL); the local spool of pending
runs in :mod:`~wattbench.results_db.upload_spool`; outcomes and failure classes in
:mod:`~wattbench.results_db.upload_outcomes`. The names callers import from here are
re-exported so that this module stays the public entry point.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wattbench.core.errors import ConfigError
from wattbench.results_db.store import Store
from wattbench.results_db.upload_db import (
    _DatabaseTarget,
    _plausible_run,
    _store_failure,
    is_database_url,
)
from wattbench.results_db.upload_http import (
    BATCH_PATH,
    PROFILES_PATH,
    RUNS_PATH,
    ProfileUpload,
    _batch_answers,
    _detail,
    _HttpTarget,
    upload_profile,
)
from wattbench.results_db.upload_outcomes import (
    _ACKNOWLEDGED,
    CONFLICT,
    CREATED,
    DUPLICATE,
    FAILED,
    MAX_BACKOFF_S,
    REJECTED,
    _Answer,
    _BatchRefused,
    _Conflict,
    _Fatal,
    _NoBatch,
    _Rejected,
    _TooLarge,
    _Transient,
)
from wattbench.results_db.upload_spool import _mark_uploaded, run_payload, run_payloads

__all__ = [
    "BATCH_PATH",
    "CONFLICT",
    "CREATED",
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_BATCH_RUNS",
    "DUPLICATE",
    "FAILED",
    "MAX_BACKOFF_S",
    "PROFILES_PATH",
    "REJECTED",
    "RUNS_PATH",
    "_ACKNOWLEDGED",
    "ProfileUpload",
    "UploadReport",
    "_Answer",
    "_BatchRefused",
    "_Conflict",
    "_DatabaseTarget",
    "_Fatal",
    "_HttpTarget",
    "_NoBatch",
    "_Rejected",
    "_TooLarge",
    "_Transient",
    "_batch_answers",
    "_detail",
    "_mark_uploaded",
    "_plausible_run",
    "_store_failure",
    "is_database_url",
    "run_payload",
    "run_payloads",
    "upload_pending",
    "upload_profile",
]

#: Runs per batch, and bytes per batch (half the server's default body limit of 8 MiB).
DEFAULT_BATCH_RUNS = 100
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024


@dataclass
class UploadReport:
    """What one :func:`upload_pending` pass did."""

    target: str
    created: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    attempts: int = 0
    stopped: str | None = None  # why the pass stopped early (server down, bad token, ...)
    pending: int = 0  # runs still pending in the local store after the pass

    @property
    def delivered(self) -> int:
        """Runs acknowledged in this pass (created or already there)."""
        return len(self.created) + len(self.duplicates)

    @property
    def ok(self) -> bool:
        """True when nothing is left pending."""
        return self.pending == 0

    def summary(self) -> str:
        """One line for people."""
        text = (
            f"{self.delivered} run(s) uploaded to {self.target} "
            f"({len(self.created)} new, {len(self.duplicates)} already there)"
        )
        if self.rejected:
            text += f"; {len(self.rejected)} rejected"
        if self.conflicts:
            text += f"; {len(self.conflicts)} conflict(s)"
        return text + f"; {self.pending} pending"


def _by_size(
    run_ids: list[str], bodies: dict[str, bytes], max_bytes: int
) -> list[list[tuple[str, bytes]]]:
    """Consecutive groups of runs whose bodies add up to at most ``max_bytes`` (a larger
    run alone)."""
    groups: list[list[tuple[str, bytes]]] = []
    size = max_bytes + 1
    for run_id in run_ids:
        body = bodies[run_id]
        if size + len(body) + 1 > max_bytes:
            groups.append([])
            size = 2
        groups[-1].append((run_id, body))
        size += len(body) + 1
    return groups


def upload_pending(
    store: Store,
    target: str,
    token: str | None,
    *,
    max_attempts: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 30.0,
    on_result: Callable[[str, str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    batch_size: int = DEFAULT_BATCH_RUNS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> UploadReport:
    """Send every pending run of ``store`` to ``target``; runs that fail stay pending.

    ``target`` is an ingest API URL (needs ``token``) or a database URL. Runs go in
    batches of at most ``batch_size`` runs and ``batch_bytes`` bytes (``batch_size`` 1:
    one request per run). Each request is tried up to ``max_attempts`` times on
    transient failures, waiting ``backoff_s``, then twice as long, and so on (jittered,
    capped at ``MAX_BACKOFF_S``); a pass therefore ends within about ``max_attempts *
    (timeout_s + MAX_BACKOFF_S)`` seconds of an outage. ``on_result(run_id, outcome)``
    is called after each run. Never raises for an unreachable target: the report says
    what stayed pending.
    """
    if max_attempts < 1:
        raise ConfigError("--max-attempts must be at least 1")
    if backoff_s < 0:
        raise ConfigError("--backoff must be >= 0 seconds")
    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    sender: _HttpTarget | _DatabaseTarget
    if is_database_url(target):
        sender = _DatabaseTarget(target)
    else:
        if not token:
            raise ConfigError(
                "uploading to an ingest API needs --token (or WATTBENCH_TOKEN): "
                "create one on the server with `wattbench token create --device NAME`"
            )
        sender = _HttpTarget(target, token, timeout_s)
    report = UploadReport(target=sender.display)
    upload = _Pass(store, sender, report, max_attempts, backoff_s, sleep, on_result)
    try:
        pending = store.pending_run_ids()
        for k in range(0, len(pending), batch_size):
            run_ids = pending[k : k + batch_size]
            bodies = run_payloads(store, run_ids)
            for group in _by_size(run_ids, bodies, batch_bytes):
                upload.deliver(group)
                if report.stopped is not None:
                    break
            if report.stopped is not None:
                break
    finally:
        sender.close()
        report.pending = store.count_pending()
    return report


class _Pass:
    """One upload pass: sends groups of runs and keeps the books (local store, report)."""

    def __init__(
        self,
        store: Store,
        sender: _HttpTarget | _DatabaseTarget,
        report: UploadReport,
        max_attempts: int,
        backoff_s: float,
        sleep: Callable[[float], None],
        on_result: Callable[[str, str], None] | None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.report = report
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.on_result = on_result
        self.jitter = random.Random()

    def deliver(self, group: list[tuple[str, bytes]]) -> None:
        """Send ``group``: as one batch when it has several runs and the target takes
        batches, else (and after a refusal of the batch as a whole) run by run."""
        if len(group) == 1 or not self.sender.batches:
            self.one_by_one(group)
            return
        for attempt in range(1, self.max_attempts + 1):
            self.report.attempts += 1
            try:
                answers = self.sender.send_batch(group)
            except _Transient as exc:
                if attempt == self.max_attempts:
                    why = f"{self.sender.display} unavailable after {attempt} attempt(s): {exc}"
                    self.fail(group, str(exc), why)
                    return
                self.wait(attempt)
                continue
            except _Fatal as exc:
                self.fail(group, str(exc), str(exc))
                return
            except _NoBatch:  # an older server: single posts from now on
                self.sender.batches = False
                self.one_by_one(group)
                return
            except _TooLarge:
                half = len(group) // 2
                self.deliver(group[:half])
                if self.report.stopped is None:
                    self.deliver(group[half:])
                return
            except _BatchRefused:
                self.one_by_one(group)
                return
            self.book(group, answers)
            return

    def one_by_one(self, group: list[tuple[str, bytes]]) -> None:
        for run_id, body in group:
            outcome = _send_with_retries(
                self.sender,
                run_id,
                body,
                self.store,
                self.report,
                self.max_attempts,
                self.backoff_s,
                self.sleep,
                self.jitter,
            )
            if self.on_result is not None:
                self.on_result(run_id, outcome)
            if self.report.stopped is not None:
                return

    def book(self, group: list[tuple[str, bytes]], answers: list[_Answer]) -> None:
        """Record a batch's per-run answers: acknowledged runs are marked uploaded (one
        transaction), refused and conflicting ones stay pending with the reason."""
        done = zip(group, answers, strict=True)
        acknowledged = [run_id for (run_id, _), (outcome, _) in done if outcome in _DONE]
        if acknowledged:
            _mark_uploaded(self.store, acknowledged)
        for (run_id, _), (outcome, why) in zip(group, answers, strict=True):
            if outcome == CREATED:
                self.report.created.append(run_id)
            elif outcome == DUPLICATE:
                self.report.duplicates.append(run_id)
            else:
                self.store.record_upload_failure(run_id, why)
                found = self.report.conflicts if outcome == CONFLICT else self.report.rejected
                found.append((run_id, why))
            if self.on_result is not None:
                self.on_result(run_id, outcome)

    def fail(self, group: list[tuple[str, bytes]], error: str, stopped: str) -> None:
        """The batch did not get through: every run stays pending with ``error``."""
        for run_id, _ in group:
            self.store.record_upload_failure(run_id, error)
        self.report.stopped = stopped
        if self.on_result is not None:
            for run_id, _ in group:
                self.on_result(run_id, FAILED)

    def wait(self, attempt: int) -> None:
        delay = min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
        self.sleep(delay * self.jitter.uniform(0.5, 1.0))


_DONE = (CREATED, DUPLICATE)


def _send_with_retries(
    sender: Any,
    run_id: str,
    body: bytes,
    store: Store,
    report: UploadReport,
    max_attempts: int,
    backoff_s: float,
    sleep: Callable[[float], None],
    jitter: random.Random,
) -> str:
    for attempt in range(1, max_attempts + 1):
        report.attempts += 1
        try:
            outcome: str = sender.send(run_id, body)
        except _Transient as exc:
            if attempt == max_attempts:
                store.record_upload_failure(run_id, str(exc))
                report.stopped = f"{sender.display} unavailable after {attempt} attempt(s): {exc}"
                return FAILED
            sleep(min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S) * jitter.uniform(0.5, 1.0))
            continue
        except _Fatal as exc:
            store.record_upload_failure(run_id, str(exc))
            report.stopped = str(exc)
            return FAILED
        except _Rejected as exc:
            store.record_upload_failure(run_id, str(exc))
            report.rejected.append((run_id, str(exc)))
            return REJECTED
        except _Conflict as exc:
            store.record_upload_failure(run_id, str(exc))
            report.conflicts.append((run_id, str(exc)))
            return CONFLICT
        store.mark_uploaded(run_id)
        (report.created if outcome == CREATED else report.duplicates).append(run_id)
        return outcome
    raise AssertionError("unreachable")  # pragma: no cover
