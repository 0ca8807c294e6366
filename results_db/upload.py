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

Only the standard library is used for HTTP, so a small device needs no extras.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from wattbench.core.errors import ConfigError, StoreError
from wattbench.core.results import RunResult
from wattbench.core.validation import describe_problems, validate_result
from wattbench.results_db.engine import one_line
from wattbench.results_db.errors import RunConflictError
from wattbench.results_db.schema import UPLOAD_DONE, UPLOAD_RECEIVED, Run, RunPayload
from wattbench.results_db.store import Store

#: Longest wait between two attempts, whatever the backoff base.
MAX_BACKOFF_S = 30.0
RUNS_PATH = "/api/v1/runs"
BATCH_PATH = "/api/v1/runs/batch"
PROFILES_PATH = "/api/v1/profiles"
#: Runs per batch, and bytes per batch (half the server's default body limit of 8 MiB).
DEFAULT_BATCH_RUNS = 100
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024

#: Outcomes passed to ``on_result``.
CREATED = "created"
DUPLICATE = "duplicate"
REJECTED = "rejected"
CONFLICT = "conflict"
FAILED = "failed"


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


class _Transient(Exception):
    """Worth retrying: the server or network is (perhaps briefly) unavailable."""


class _Fatal(Exception):
    """Stops the pass: nothing else will get through either (bad token, wrong URL)."""


class _Rejected(Exception):
    """This run will not be accepted as it is."""


class _Conflict(Exception):
    """The target holds this run id with different content; it keeps its own."""


class _NoBatch(Exception):
    """The server has no batch endpoint (an older one): send runs one by one."""


class _TooLarge(Exception):
    """The server refused the batch as too large: send smaller ones."""


class _BatchRefused(Exception):
    """The server could not read the batch as a whole: send its runs one by one."""


#: One run's answer in a batch: (outcome, the server's reason for a refusal or conflict).
_Answer = tuple[str, str]
#: Per-run statuses of a batch answer that acknowledge the run.
_ACKNOWLEDGED = {"created": CREATED, "duplicate": DUPLICATE}


class _HttpTarget:
    """``POST /api/v1/runs`` over one kept-alive connection, reopened after errors."""

    def __init__(self, url: str, token: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid --to {url!r}: use http(s)://host:port or a database URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.path = parts.path.rstrip("/") + RUNS_PATH
        self.batch_path = parts.path.rstrip("/") + BATCH_PATH
        self.batches = True  # until the server shows it has no batch endpoint
        self.token = token
        self.timeout_s = timeout_s
        self.display = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout_s, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST on the kept-alive connection (reopened once if the server closed it)."""
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token}",
            "User-Agent": "wattbench-upload",
        }
        for fresh in (False, True):
            reused = self.conn is not None and not fresh
            if self.conn is None or fresh:
                self.close()
                self.conn = self._connect()
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                status, data = resp.status, resp.read()
                if resp.will_close:
                    self.close()
                return status, data
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused:  # the server may have closed an idle kept-alive connection
                    continue
                raise _Transient(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        raise _Transient("no response")  # pragma: no cover - the loop returns or raises

    def _refusal(self, status: int, detail: str) -> Exception:
        """The exception for an answer that is not an acknowledgement."""
        if status in (408, 429) or status >= 500:
            return _Transient(f"HTTP {status}: {detail}")
        if status == 401:
            return _Fatal(f"the server refused the token (HTTP 401: {detail})")
        if status == 404:
            return _Fatal(f"no wattbench ingest API at {self.display} (HTTP 404): check --to")
        if status == 409:
            return _Conflict(f"HTTP 409: {detail}")
        return _Rejected(f"HTTP {status}: {detail}")

    def send(self, run_id: str, body: bytes) -> str:
        status, data = self._post(self.path, body)
        if status in (200, 201):
            return DUPLICATE if status == 200 else CREATED
        raise self._refusal(status, _detail(data))

    def send_batch(self, group: list[tuple[str, bytes]]) -> list[_Answer]:
        """POST the runs as one JSON array; one answer per run, in order."""
        body = b"[" + b",".join(b for _, b in group) + b"]"
        status, data = self._post(self.batch_path, body)
        if status == 200:
            return _batch_answers(group, data)
        if status in (404, 405):
            raise _NoBatch(f"HTTP {status}")
        if status == 413:
            raise _TooLarge(f"HTTP 413: {_detail(data)}")
        refusal = self._refusal(status, _detail(data))
        if isinstance(refusal, _Transient | _Fatal):
            raise refusal
        raise _BatchRefused(str(refusal))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class _DatabaseTarget:
    """Copy runs straight into the central database (trusted lab machines)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store: Store | None = None
        self.display = make_url(url).render_as_string(hide_password=True)
        self.batches = True

    def _open(self) -> Store:
        try:
            if self.store is None:
                self.store = Store.open(self.url)
        except StoreError as exc:
            raise _store_failure(exc) from exc
        return self.store

    def send(self, run_id: str, body: bytes) -> str:
        store = self._open()
        try:
            result = _plausible_run(body)
            created = store.save_run(result, upload_state=UPLOAD_RECEIVED, keep_payload=False)
        except RunConflictError as exc:
            raise _Conflict(str(exc)) from exc
        except StoreError as exc:
            raise _store_failure(exc) from exc
        return CREATED if created else DUPLICATE

    def send_batch(self, group: list[tuple[str, bytes]]) -> list[_Answer]:
        """The plausible runs in one transaction (:meth:`Store.save_runs`)."""
        store = self._open()
        answers: list[_Answer] = [("", "")] * len(group)
        good: list[tuple[int, RunResult]] = []
        for i, (_, body) in enumerate(group):
            try:
                good.append((i, _plausible_run(body)))
            except _Rejected as exc:
                answers[i] = (REJECTED, str(exc))
        try:
            outcomes = store.save_runs(
                [r for _, r in good], upload_state=UPLOAD_RECEIVED, keep_payload=False
            )
        except StoreError as exc:
            raise _store_failure(exc) from exc
        for (i, _), outcome in zip(good, outcomes, strict=True):
            if outcome.conflict is not None:
                answers[i] = (CONFLICT, str(outcome.conflict))
            else:
                answers[i] = (CREATED if outcome.status == "created" else DUPLICATE, "")
        return answers

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def _plausible_run(body: bytes) -> RunResult:
    """The run in ``body``, or :class:`_Rejected` (not a run, or implausible)."""
    try:
        result = RunResult.model_validate_json(body)
    except ValidationError as exc:
        raise _Rejected(f"not a valid run: {exc.errors()[0]['msg']}") from exc
    problems = validate_result(result)
    if problems:
        raise _Rejected(f"implausible run: {describe_problems(problems)}")
    return result


def _store_failure(exc: StoreError) -> Exception:
    """A database target's error: a schema to upgrade stops the pass, the rest is retried."""
    if "wattbench db upgrade" in str(exc) or "newer than" in str(exc):
        return _Fatal(str(exc))
    return _Transient(str(exc))


def _batch_answers(group: list[tuple[str, bytes]], data: bytes) -> list[_Answer]:
    """The per-run answers of a ``200`` to a batch; :class:`_BatchRefused` when they do not
    match the runs sent (then each run is sent again on its own)."""
    try:
        results = json.loads(data)["results"]
        if not isinstance(results, list) or len(results) != len(group):
            raise ValueError("one answer per run expected")
        answers: list[_Answer] = []
        for (run_id, _), entry in zip(group, results, strict=True):
            if entry.get("run_id") not in (run_id, None):
                raise ValueError(f"answer for {entry.get('run_id')!r} in place of {run_id}")
            status = str(entry.get("status"))
            detail = f"HTTP {entry.get('code')}: {entry.get('detail') or status}"
            if status in _ACKNOWLEDGED:
                answers.append((_ACKNOWLEDGED[status], ""))
            elif status == "conflict":
                answers.append((CONFLICT, detail))
            else:  # invalid, forbidden (or a status this uploader does not know)
                answers.append((REJECTED, detail))
        return answers
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _BatchRefused(f"unexpected answer to a batch: {exc}") from exc


def _detail(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return data[:200].decode(errors="replace").strip() or "no body"
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("status") or body)
    return str(body)[:200]


@dataclass
class ProfileUpload:
    """The central store's answer to an uploaded device profile."""

    #: ``created``, or ``duplicate`` when the same report was stored already
    status: str
    profile_id: int
    #: the server, without credentials
    server: str


def upload_profile(
    url: str,
    token: str,
    report: dict[str, Any],
    *,
    timeout_s: float = 30.0,
    max_attempts: int = 4,
    backoff_s: float = 0.5,
) -> ProfileUpload:
    """Send a ``wattbench doctor --json`` report to a ``wattbench serve`` ingest API
    (``POST /api/v1/profiles``) as its device's profile; runs uploaded afterwards point
    at it. Idempotent: the same report again is acknowledged as ``duplicate``.

    Network errors, 408, 429 and 5xx are retried with backoff (``max_attempts`` in
    all); any other refusal raises :class:`~wattbench.core.errors.StoreError` with the
    server's reason, and a URL that is not http(s) raises
    :class:`~wattbench.core.errors.ConfigError`.
    """
    target = _HttpTarget(url, token, timeout_s)
    path = urlsplit(url).path.rstrip("/") + PROFILES_PATH
    body = json.dumps(report).encode()
    try:
        for attempt in range(max(max_attempts, 1)):
            try:
                status, data = target._post(path, body)
            except _Transient as exc:
                failure: Exception = exc
            else:
                if status in (200, 201):
                    answer = json.loads(data)
                    return ProfileUpload(
                        status=str(answer.get("status")),
                        profile_id=int(answer["profile_id"]),
                        server=target.display,
                    )
                failure = target._refusal(status, _detail(data))
                if status in (404, 405):
                    failure = _Fatal(
                        f"HTTP {status}: no {PROFILES_PATH} there; is it a wattbench serve "
                        f"(of this version or newer)? check --upload-to"
                    )
                if not isinstance(failure, _Transient):
                    break
            if attempt + 1 < max_attempts:
                time.sleep(min(backoff_s * 2**attempt, MAX_BACKOFF_S))
    finally:
        target.close()
    raise StoreError(f"device profile not uploaded to {target.display}: {failure}")


def is_database_url(target: str) -> bool:
    """True for a SQLAlchemy URL (sqlite:///…, postgresql+psycopg://…), not http(s)."""
    if target.split(":", 1)[0].lower() in ("http", "https"):
        return False
    try:
        make_url(target).get_dialect()
    except (ArgumentError, NoSuchModuleError):
        return False
    return True


def run_payload(store: Store, run_id: str) -> bytes:
    """The JSON body to upload for a stored run: as recorded, or rebuilt from its rows."""
    with store.engine.connect() as conn:
        row = conn.execute(
            select(RunPayload.encoding, RunPayload.data)
            .join(Run, Run.id == RunPayload.run_id)
            .where(Run.uuid == run_id)
        ).first()
    if row is not None and row.encoding == "json+gzip":
        return gzip.decompress(row.data)
    result = store.load_result(run_id)
    if result is None:
        raise StoreError(f"run {run_id} is not in {store.display_url}")
    return result.model_dump_json().encode()


def run_payloads(store: Store, run_ids: list[str]) -> dict[str, bytes]:
    """:func:`run_payload` of many runs: the kept payloads in one query."""
    found: dict[str, bytes] = {}
    with store.engine.connect() as conn:
        for k in range(0, len(run_ids), 500):
            rows = conn.execute(
                select(Run.uuid, RunPayload.encoding, RunPayload.data)
                .join(Run, Run.id == RunPayload.run_id)
                .where(Run.uuid.in_(run_ids[k : k + 500]))
            )
            for run_id, encoding, data in rows:
                if encoding == "json+gzip":
                    found[run_id] = gzip.decompress(data)
    for run_id in run_ids:
        if run_id not in found:
            found[run_id] = run_payload(store, run_id)
    return found


def _mark_uploaded(store: Store, run_ids: list[str]) -> None:
    """:meth:`Store.mark_uploaded` of many runs, in one transaction."""
    try:
        with store.engine.begin() as conn:
            conn.execute(
                update(Run)
                .where(Run.uuid.in_(run_ids))
                .values(
                    upload_state=UPLOAD_DONE,
                    uploaded_at=datetime.now(timezone.utc),
                    upload_attempts=Run.upload_attempts + 1,
                    upload_last_error=None,
                )
            )
    except SQLAlchemyError as exc:
        raise StoreError(
            f"could not mark {len(run_ids)} run(s) uploaded in {store.display_url}: {one_line(exc)}"
        ) from exc


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
