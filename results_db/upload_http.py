"""HTTP transport of the upload path: posts runs, batches and device profiles to a
``wattbench serve`` ingest API and turns its answers into outcomes or failures
(:mod:`~wattbench.results_db.upload_outcomes`).

Only the standard library is used for HTTP, so a small device needs no extras.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wattbench.core.errors import ConfigError, StoreError
from wattbench.results_db.upload_outcomes import (
    _ACKNOWLEDGED,
    CONFLICT,
    CREATED,
    DUPLICATE,
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

RUNS_PATH = "/api/v1/runs"
BATCH_PATH = "/api/v1/runs/batch"
PROFILES_PATH = "/api/v1/profiles"


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
