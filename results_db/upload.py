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
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from wattbench.core.errors import ConfigError, StoreError
from wattbench.core.results import RunResult
from wattbench.core.validation import describe_problems, validate_result
from wattbench.results_db.errors import RunConflictError
from wattbench.results_db.schema import UPLOAD_RECEIVED, Run, RunPayload
from wattbench.results_db.store import Store

#: Longest wait between two attempts, whatever the backoff base.
MAX_BACKOFF_S = 30.0
RUNS_PATH = "/api/v1/runs"

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

    def send(self, run_id: str, body: bytes) -> str:
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
                self.conn.request("POST", self.path, body=body, headers=headers)
                resp = self.conn.getresponse()
                status, data = resp.status, resp.read()
                if resp.will_close:
                    self.close()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused:  # the server may have closed an idle kept-alive connection
                    continue
                raise _Transient(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        else:  # pragma: no cover - the loop always breaks or raises
            raise _Transient("no response")
        detail = _detail(data)
        if status in (200, 201):
            return DUPLICATE if status == 200 else CREATED
        if status in (408, 429) or status >= 500:
            raise _Transient(f"HTTP {status}: {detail}")
        if status == 401:
            raise _Fatal(f"the server refused the token (HTTP 401: {detail})")
        if status == 404:
            raise _Fatal(f"no wattbench ingest API at {self.display} (HTTP 404): check --to")
        if status == 409:
            raise _Conflict(f"HTTP 409: {detail}")
        raise _Rejected(f"HTTP {status}: {detail}")

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

    def send(self, run_id: str, body: bytes) -> str:
        try:
            if self.store is None:
                self.store = Store.open(self.url)
            result = RunResult.model_validate_json(body)
            problems = validate_result(result)
            if problems:
                raise _Rejected(f"implausible run: {describe_problems(problems)}")
            created = self.store.save_run(result, upload_state=UPLOAD_RECEIVED, keep_payload=False)
        except ValidationError as exc:
            raise _Rejected(f"not a valid run: {exc.errors()[0]['msg']}") from exc
        except RunConflictError as exc:
            raise _Conflict(str(exc)) from exc
        except StoreError as exc:
            if "wattbench db upgrade" in str(exc) or "newer than" in str(exc):
                raise _Fatal(str(exc)) from exc
            raise _Transient(str(exc)) from exc
        return CREATED if created else DUPLICATE

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def _detail(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return data[:200].decode(errors="replace").strip() or "no body"
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("status") or body)
    return str(body)[:200]


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
) -> UploadReport:
    """Send every pending run of ``store`` to ``target``; runs that fail stay pending.

    ``target`` is an ingest API URL (needs ``token``) or a database URL. Each run is
    tried up to ``max_attempts`` times on transient failures, waiting ``backoff_s``,
    then twice as long, and so on (jittered, capped at ``MAX_BACKOFF_S``); a pass
    therefore ends within about ``max_attempts * (timeout_s + MAX_BACKOFF_S)`` seconds
    of an outage. ``on_result(run_id, outcome)`` is called after each run.
    Never raises for an unreachable target: the report says what stayed pending.
    """
    if max_attempts < 1:
        raise ConfigError("--max-attempts must be at least 1")
    if backoff_s < 0:
        raise ConfigError("--backoff must be >= 0 seconds")
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
    jitter = random.Random()
    try:
        for run_id in store.pending_run_ids():
            body = run_payload(store, run_id)
            outcome = _send_with_retries(
                sender, run_id, body, store, report, max_attempts, backoff_s, sleep, jitter
            )
            if on_result is not None:
                on_result(run_id, outcome)
            if report.stopped is not None:
                break
    finally:
        sender.close()
        report.pending = store.count_pending()
    return report


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
