"""HTTP hardening of the ingest server (:mod:`wattbench.results_db.server`).

* requests' headers within a deadline: uvicorn's protocol (httptools or h11) with a timer
  from a request's first byte, or from connecting (:func:`guarded_protocol`);
* the body within the same deadline and the body limit, Content-Length or chunked
  (:func:`read_limited_body`); compressed bodies refused (:func:`check_body_headers`);
* uvicorn settings against slow, idle and too many clients, TLS when given
  (:func:`hardening`).

Refusals are :class:`Reply` errors, which the app turns into their JSON response.
uvicorn is imported only when the protocol is built.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
from starlette.requests import Request

#: Largest accepted run body; a real run with full power traces is well under 1 MiB.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: Seconds a client has for a request's headers (from its first byte, or from connecting)
#: and then again for its body; a slower client is dropped (slowloris).
DEFAULT_READ_TIMEOUT_S = 30.0
#: Seconds an idle kept-alive connection stays open.
DEFAULT_IDLE_TIMEOUT_S = 5.0
#: Connections served at once; a request beyond them gets 503 (clients retry later).
DEFAULT_MAX_CONNECTIONS = 256
#: Largest request line + headers (h11).
MAX_HEADER_BYTES = 64 * 1024
#: The read timeout of the worker processes of ``run_server(workers=N)``.
ENV_READ_TIMEOUT = "WATTBENCH_SERVE_READ_TIMEOUT"


class Reply(Exception):
    """A finished response raised from deep inside the ingest path."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(body.get("detail", ""))
        self.status = status
        self.body = body
        self.headers = headers


def error_reply(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Reply:
    return Reply(status, {"status": "error", "error": code, "detail": detail, **extra}, headers)


def check_body_headers(request: Request, max_body_bytes: int) -> None:
    """Refuse a compressed body (415) or one whose Content-Length is over the limit (413)."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):  # no decompression: no zip bombs
        raise error_reply(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding[:40]!r} refused: send the run as plain JSON "
            f"(`wattbench upload` does)",
            headers={"Connection": "close"},
        )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_body_bytes:
        raise too_large(max_body_bytes)


async def read_limited_body(request: Request, max_body_bytes: int, read_timeout_s: float) -> bytes:
    """The whole body (Content-Length or chunked) within the read timeout (408) and the
    body limit (413)."""
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(read_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body_bytes:
                    raise too_large(max_body_bytes)
                chunks.append(chunk)
    except TimeoutError:
        raise error_reply(
            408,
            "request_timeout",
            f"the body did not arrive within {read_timeout_s:g} s: check the network",
            headers={"Connection": "close"},
        ) from None
    return b"".join(chunks)


def too_large(limit: int) -> Reply:
    return error_reply(
        413,
        "too_large",
        f"body over {limit} bytes: a run is far smaller; is this a wattbench run JSON?",
        headers={"Connection": "close"},  # the rest of the body is not read
    )


def guarded_protocol() -> type[Any]:
    """uvicorn's HTTP protocol (httptools or h11) with a deadline on request headers.

    uvicorn times out idle kept-alive connections but not a client that connects and
    sends nothing, or sends its headers one byte a second: each such connection would be
    held forever and count against ``--max-connections``. Here the headers of every
    request must be complete within the read timeout of its first byte (or of the
    connection); the app then gives the body the same time. Defined once, at module
    level, so that ``--workers N`` can pickle it by name.
    """
    global _GuardedHTTPProtocol
    if _GuardedHTTPProtocol is not None:
        return _GuardedHTTPProtocol
    import logging

    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    log = logging.getLogger("uvicorn.error")
    base: Any = AutoHTTPProtocol

    class GuardedHTTPProtocol(base):
        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self._wb_timeout = float(
                getattr(config, "wattbench_read_timeout_s", None)
                or os.environ.get(ENV_READ_TIMEOUT)
                or DEFAULT_READ_TIMEOUT_S
            )
            self._wb_timer: Any = None
            self._wb_cycle: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._wb_arm()

        def data_received(self, data: bytes) -> None:
            if self._wb_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._wb_arm()  # the first bytes of the next request
            super().data_received(data)
            if self.cycle is not None and self.cycle is not self._wb_cycle:
                self._wb_cycle = self.cycle  # its headers are complete
                self._wb_disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._wb_disarm()
            super().connection_lost(exc)

        def _wb_arm(self) -> None:
            self._wb_disarm()
            self._wb_timer = self.loop.call_later(self._wb_timeout, self._wb_expire)

        def _wb_disarm(self) -> None:
            if self._wb_timer is not None:
                self._wb_timer.cancel()
                self._wb_timer = None

        def _wb_expire(self) -> None:
            self._wb_timer = None
            if not self.transport.is_closing():
                log.warning(
                    "dropped %s: no complete request headers within %g s",
                    self.client,
                    self._wb_timeout,
                )
                self.transport.close()

    GuardedHTTPProtocol.__qualname__ = "GuardedHTTPProtocol"  # picklable by name
    _GuardedHTTPProtocol = GuardedHTTPProtocol
    return GuardedHTTPProtocol


_GuardedHTTPProtocol: type[Any] | None = None


def __getattr__(name: str) -> Any:
    # uvicorn's worker processes unpickle the protocol class by name
    if name == "GuardedHTTPProtocol":
        return guarded_protocol()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def hardening(
    idle_timeout_s: float,
    max_connections: int,
    tls_certfile: str | None,
    tls_keyfile: str | None,
) -> dict[str, Any]:
    """uvicorn settings against slow, idle and too many clients; TLS when given."""
    return {
        "http": guarded_protocol(),
        "timeout_keep_alive": idle_timeout_s,
        "limit_concurrency": max_connections,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "ssl_certfile": tls_certfile,
        "ssl_keyfile": tls_keyfile,
    }
