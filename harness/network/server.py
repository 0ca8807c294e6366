"""The "cloud" side: a real HTTP inference endpoint (``wattbench cloud serve``).

It loads a suite's model on an adapter once and answers ``POST /v1/infer`` (wire
format in :mod:`wattbench.harness.network.payload`) and ``GET /v1/health`` (what
it serves). Inference is serialised behind one lock, so a request's energy is
its own: when the server runs power readers, each request's inference is wrapped
in a reader window and the joules go back in the answer (``compute_j``).

The standard library's threading HTTP server keeps the endpoint free of extra
dependencies, so any board can play "cloud" for another. Hardened for an open network:
each request (headers and body) must arrive within ``read_timeout_s`` (a client sending
a byte a second is dropped, the others are served), an idle kept-alive connection closes
after ``idle_timeout_s``, at most ``max_connections`` are served at once (more get 503),
chunked bodies (no Content-Length) get 411 and compressed ones 415.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from wattbench.core.adapter import Adapter, AdapterOptions, ModelArtifact, Session
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError, WattbenchError
from wattbench.core.power import PowerReader
from wattbench.core.suite import Suite
from wattbench.harness.network.payload import confidence_reader, decode

#: Largest request body accepted (a 4K PNG is ~25 MB).
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Seconds to receive one whole request (headers and body) once the server waits for it.
READ_TIMEOUT_S = 30.0
#: Seconds an idle kept-alive connection (or one silent read) may take.
IDLE_TIMEOUT_S = 10.0
#: Connections served at once (one thread each); more are answered 503 and closed.
MAX_CONNECTIONS = 64


def choose_artifact(
    suite: Suite, adapter: Adapter, cache: ModelCache, model: Path | None
) -> ModelArtifact:
    """The user's model, else the first format the adapter loads that the suite builds."""
    if model is not None:
        return suite.user_model(model)
    choice = suite.pick_build(adapter.formats, "fp32")
    if choice is not None:
        return suite.build_model(choice[0], cache, choice[1])
    raise ConfigError(
        f"{suite.name} cannot build a model for adapter {adapter.name} (it loads "
        f"{', '.join(adapter.formats)}): pass one with --model"
    )


class CloudModel:
    """One loaded model answering single samples, optionally metered by readers."""

    def __init__(
        self,
        suite: Suite,
        session: Session,
        artifact: ModelArtifact,
        readers: Sequence[PowerReader] = (),
    ) -> None:
        self.suite = suite
        self.session = session
        self.artifact = artifact
        self.readers = list(readers)
        self.specs = session.inputs()
        self._lock = threading.Lock()
        self._read = confidence_reader(session)  # dequantises full-integer outputs
        self.requests = 0

    @classmethod
    def load(
        cls,
        suite: Suite,
        adapter: Adapter,
        cache: ModelCache,
        *,
        model: Path | None = None,
        threads: int | None = None,
        device: str = "cpu",
        readers: Sequence[PowerReader] = (),
    ) -> CloudModel:
        artifact = choose_artifact(suite, adapter, cache, model)
        opts = AdapterOptions(device=device, threads=threads, precision=artifact.precision)
        return cls(suite, adapter.load(artifact, opts), artifact, readers)

    def describe(self) -> dict[str, Any]:
        d = self.session.describe()
        return {
            "suite": self.suite.name,
            "suite_version": self.suite.version,
            "model": self.artifact.name,
            "model_sha256": self.artifact.sha256,
            "weights": self.artifact.weights,
            "adapter": d.adapter,
            "runtime": f"{d.runtime} {d.runtime_version}",
            "device": d.device,
            "power": [r.name for r in self.readers],
            "classes": _classes(self.session),
        }

    def _feed(self, kind: str, obj: Any) -> dict[str, np.ndarray]:
        if kind == "image":
            rows = self.suite.preprocess_feed(obj, self.specs)
            return {k: v[None, ...] for k, v in rows.items()}
        names = {s.name for s in self.specs}
        if set(obj) != names:
            raise ValueError(
                f"npz inputs {sorted(obj)} do not match the cloud model's {sorted(names)}"
            )
        return dict(obj)

    def infer(self, body: bytes, content_type: str) -> dict[str, Any]:
        """Answer one request body; ValueError for a payload that cannot be used."""
        kind, obj = decode(body, content_type)
        feed = self._feed(kind, obj)
        with self._lock:
            prepared = self.session.prepare(feed)
            t0 = time.perf_counter_ns()
            for r in self.readers:
                r.start()
            try:
                out = self.session.run(prepared)
            finally:
                readings = [r.stop() for r in self.readers]
            ms = (time.perf_counter_ns() - t0) / 1e6
            self.requests += 1
        answer, confidence = self._read(out)
        head = readings[0] if readings else None
        return {
            "answer": answer,
            "confidence": confidence,
            "compute_j": None if head is None else head.energy_j,
            "energy_method": None if head is None else head.method.value,
            "server_ms": ms,
        }

    def close(self) -> None:
        for r in self.readers:
            r.close()
        self.session.close()


def _classes(session: Session) -> int | None:
    """Size of the first output's last dimension (the class count of a classifier)."""
    outs = session.outputs()
    last = outs[0].shape[-1] if outs and outs[0].shape else None
    return last if isinstance(last, int) else None


class CloudServer(ThreadingHTTPServer):
    """HTTP/1.1 keep-alive server around a :class:`CloudModel`."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        model: CloudModel,
        *,
        max_requests: int | None = None,
        verbose: bool = False,
        read_timeout_s: float = READ_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.model = model
        self.max_requests = max_requests
        self.verbose = verbose
        self.answered = 0
        self.stopping = False
        self.read_timeout_s = read_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.refused = 0  # connections answered 503 (over max_connections)
        self.dropped = 0  # connections closed for sending too slowly
        self._guard = threading.Lock()
        self._active = 0
        self._deadlines: dict[socket.socket, float] = {}
        self._lingering: list[tuple[socket.socket, float]] = []  # refused, closing gently
        self._closed = threading.Event()
        super().__init__(address, _Handler)
        threading.Thread(target=self._reap, name="cloud-reaper", daemon=True).start()

    # -- connection cap and read deadlines --------------------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._guard:
            busy = self._active >= self.max_connections
            if busy:
                self.refused += 1
            else:
                self._active += 1
        if busy:  # answered here, without a thread: the cap holds under a flood
            body = b'{"error":"too many connections: retry later"}'
            head = (
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            try:
                request.settimeout(1.0)
                request.sendall(head.encode() + body)
                # close gently: the client may still be sending its request, and closing
                # with unread data would reset the connection before it reads the 503
                request.shutdown(socket.SHUT_WR)
                request.setblocking(False)
            except OSError:
                self.shutdown_request(request)
                return
            with self._guard:
                self._lingering.append((request, time.monotonic() + 1.0))
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: Any) -> None:
        with self._guard:
            self._active -= 1
            self._deadlines.pop(request, None)

    def expect_request(self, conn: socket.socket) -> None:
        """The handler starts reading a request on ``conn``: it has read_timeout_s."""
        with self._guard:
            self._deadlines[conn] = time.monotonic() + self.read_timeout_s

    def request_read(self, conn: socket.socket) -> None:
        """The request on ``conn`` has arrived in full: no deadline while it is answered."""
        with self._guard:
            self._deadlines.pop(conn, None)

    def _reap(self) -> None:
        """Shut down connections whose request is late (a blocked read then ends)."""
        while not self._closed.wait(0.2):
            now = time.monotonic()
            with self._guard:
                late = [c for c, t in self._deadlines.items() if t < now]
                for c in late:
                    del self._deadlines[c]
                self.dropped += len(late)
            for c in late:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
            self._drain_refused(now)

    def _drain_refused(self, now: float) -> None:
        """Read and drop what refused clients still send; close at EOF or after 1 s."""
        with self._guard:
            lingering, self._lingering = self._lingering, []
        keep = []
        for sock, close_at in lingering:
            done = now >= close_at
            while not done:
                try:
                    done = not sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError:
                    done = True
            if done:
                with contextlib.suppress(OSError):
                    sock.close()
            else:
                keep.append((sock, close_at))
        with self._guard:
            self._lingering.extend(keep)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a client gone or dropped: not a bug
            return
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        self._closed.set()
        with self._guard:
            lingering, self._lingering = self._lingering, []
        for sock, _ in lingering:
            with contextlib.suppress(OSError):
                sock.close()
        super().server_close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def count_and_maybe_stop(self) -> None:
        self.answered += 1
        if self.max_requests is not None and self.answered >= self.max_requests:
            self.stopping = True
            # shutdown() waits for serve_forever: never call it on a serving thread
            threading.Thread(target=self._stop, daemon=True).start()

    def _stop(self) -> None:
        self.shutdown()
        self.server_close()  # new connections are refused, not left hanging


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes: without this, Nagle + delayed ACK add ~40 ms
    disable_nagle_algorithm = True
    server: CloudServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def setup(self) -> None:
        super().setup()
        # each blocking read (idle waits between requests included) at most idle_timeout_s
        self.connection.settimeout(self.server.idle_timeout_s)

    def handle_one_request(self) -> None:
        self.server.expect_request(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.request_read(self.connection)

    def _refuse(self, status: int, error: str) -> None:
        self.close_connection = True  # the body (if any) was not read
        self._send(status, {"error": error})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.request_read(self.connection)
        if self.path.rstrip("/") in ("/v1/health", ""):
            self._send(200, {"status": "ok", **self.server.model.describe()})
        else:
            self._send(404, {"error": f"no such path {self.path}: POST /v1/infer"})

    def do_POST(self) -> None:
        if self.server.stopping:  # kept-alive connections outlive shutdown(): refuse
            self.close_connection = True
            self._send(503, {"error": "server is shutting down"})
            return
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "send the body with a Content-Length (chunked bodies are refused)")
            return
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in ("", "identity"):
            self._refuse(415, f"Content-Encoding {encoding[:40]!r} refused: send it uncompressed")
            return
        raw_length = (self.headers.get("Content-Length") or "0").strip()
        if not raw_length.isdigit():
            self._refuse(400, f"invalid Content-Length {raw_length[:40]!r}")
            return
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            self._refuse(413, f"body over {MAX_BODY_BYTES} bytes")
            return
        body = self.rfile.read(length)
        if len(body) < length:  # dropped for being slow, or the client left
            self.close_connection = True
            return
        self.server.request_read(self.connection)
        if self.path.rstrip("/") != "/v1/infer":
            self._send(404, {"error": f"no such path {self.path}: POST /v1/infer"})
            return
        try:
            answer = self.server.model.infer(body, self.headers.get("Content-Type") or "")
        except (ValueError, WattbenchError) as exc:
            self._send(400, {"error": str(exc)})
            return
        except Exception as exc:  # a runtime failure is the server's fault: 500, keep serving
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self.server.count_and_maybe_stop()
        if self.server.stopping:
            self.close_connection = True
        self._send(200, answer)
