"""Server hardening: slow, idle and too many clients; chunked and compressed bodies.

For the ingest API (``wattbench serve``: uvicorn with the guarded protocol) and the cloud
endpoint (``wattbench cloud serve``: the standard library's threading server), with short
timeouts so that the tests take seconds.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEVICE, serve_in_thread

from wattbench.core.results import RunResult
from wattbench.harness.network.server import CloudServer
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token

READ_TIMEOUT = 1.5


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_by_server(sock: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closed ``sock`` (a read returns EOF or fails), else None."""
    t0 = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - t0 < within_s:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0
        if not data:
            return time.monotonic() - t0
    return None


def trickle(sock: socket.socket, data: bytes, every_s: float, stop: threading.Event) -> None:
    """Send ``data`` one byte every ``every_s`` seconds until done, stopped or cut off."""
    for b in data:
        if stop.wait(every_s):
            return
        try:
            sock.send(bytes([b]))
        except OSError:
            return


def raw_request(sock: socket.socket, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    sock.sendall(head + body)
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp.status, resp.read()


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[tuple[str, str, Store]]:
    store = Store.open(f"sqlite:///{tmp_path / 'central.db'}")
    token = create_token(store, DEVICE)
    with serve_in_thread(store, read_timeout_s=READ_TIMEOUT, max_connections=6) as url:
        yield url, token, store


def post(url: str, token: str, run: RunResult) -> int:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(
            "POST", "/api/v1/runs", run.model_dump_json(), {"Authorization": f"Bearer {token}"}
        )
        return conn.getresponse().status
    finally:
        conn.close()


def test_ingest_drops_slow_and_silent_clients_and_serves_the_others(
    ingest: tuple[str, str, Store], new_run: Callable[..., RunResult]
) -> None:
    url, token, store = ingest
    stop = threading.Event()
    slow_head = connect(url)  # headers at one byte a second
    head = b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    threading.Thread(target=trickle, args=(slow_head, head, 1.0, stop), daemon=True).start()
    silent = connect(url)  # connects, sends nothing
    slow_body = connect(url)  # headers at once, then the body at one byte a second
    slow_body.sendall(
        b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    threading.Thread(target=trickle, args=(slow_body, b"{" * 1000, 1.0, stop), daemon=True).start()
    try:
        # meanwhile, other clients are served at once
        t0 = time.monotonic()
        assert [post(url, token, new_run()) for _ in range(5)] == [201] * 5
        assert time.monotonic() - t0 < READ_TIMEOUT
        for sock in (slow_head, silent):
            took = closed_by_server(sock, READ_TIMEOUT + 3)
            assert took is not None, "a slow client was kept"
        slow_body.settimeout(READ_TIMEOUT + 3)
        resp = http.client.HTTPResponse(slow_body)
        resp.begin()  # the app answers before closing: 408 with the reason
        assert resp.status == 408 and json.loads(resp.read())["error"] == "request_timeout"
        assert post(url, token, new_run()) == 201  # still serving
    finally:
        stop.set()
        for sock in (slow_head, silent, slow_body):
            sock.close()
    assert store.count_runs() == 6


def test_ingest_caps_connections_with_503(
    ingest: tuple[str, str, Store], new_run: Callable[..., RunResult]
) -> None:
    url, token, _store = ingest
    idle = [connect(url) for _ in range(6)]  # max_connections=6, all taken
    try:
        time.sleep(0.2)
        assert post(url, token, new_run()) == 503  # answered, not queued: clients retry
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert post(url, token, new_run()) == 201


def test_ingest_bounds_chunked_and_refuses_compressed_bodies(
    tmp_path: Path, new_run: Callable[..., RunResult]
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'central.db'}")
    token = create_token(store, DEVICE)
    auth = f"Authorization: Bearer {token}\r\n".encode()
    with serve_in_thread(store, max_body_bytes=4096) as url:
        body = new_run().model_dump_json().encode()
        assert len(body) > 4096
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:3000], body[3000:]))
        with contextlib.closing(connect(url)) as sock:
            head = b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            status, answer = raw_request(sock, head + auth + b"\r\n", chunks + b"0\r\n\r\n")
        assert status == 413 and json.loads(answer)["error"] == "too_large"
        bomb = gzip.compress(b"{" + b" " * 10_000_000 + b"}")  # 10 MB of JSON, 10 kB zipped
        with contextlib.closing(connect(url)) as sock:
            head = (
                b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                + b"Content-Length: %d\r\n" % len(bomb)
            )
            status, answer = raw_request(sock, head + auth + b"\r\n", bomb)
        assert status == 415 and json.loads(answer)["error"] == "unsupported_encoding"
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
            assert resp.status == 200  # still serving
    assert store.count_runs() == 0


# -- the cloud endpoint ----------------------------------------------------------------------
class _EchoModel:
    """Stands in for a loaded model: the tests are about the HTTP layer."""

    requests = 0

    def describe(self) -> dict[str, Any]:
        return {"status": "ok"}

    def infer(self, body: bytes, content_type: str) -> dict[str, Any]:
        return {"answer": len(body)}

    def close(self) -> None:
        pass


@pytest.fixture
def cloud() -> Iterator[CloudServer]:
    server = CloudServer(
        ("127.0.0.1", 0),
        _EchoModel(),  # type: ignore[arg-type]
        read_timeout_s=READ_TIMEOUT,
        idle_timeout_s=READ_TIMEOUT,
        max_connections=4,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def infer(server: CloudServer, body: bytes = b"x" * 100, **headers: str) -> tuple[int, Any]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=10)
    try:
        conn.request("POST", "/v1/infer", body, headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_cloud_drops_a_byte_a_second_client_and_serves_the_others(cloud: CloudServer) -> None:
    url = cloud.url.rstrip("/")
    stop = threading.Event()
    slow = connect(url)
    head = b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    threading.Thread(target=trickle, args=(slow, head, 1.0, stop), daemon=True).start()
    try:
        assert [infer(cloud)[0] for _ in range(5)] == [200] * 5
        took = closed_by_server(slow, READ_TIMEOUT + 3)
        assert took is not None and cloud.dropped >= 1
    finally:
        stop.set()
        slow.close()
    assert infer(cloud)[0] == 200


def test_cloud_caps_connections_and_refuses_chunked_and_compressed(cloud: CloudServer) -> None:
    url = cloud.url.rstrip("/")
    held = [connect(url) for _ in range(4)]  # max_connections=4
    try:
        time.sleep(0.2)
        status, body = infer(cloud)
        assert status == 503 and "too many connections" in body["error"]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert infer(cloud)[0] == 200
    with contextlib.closing(connect(url)) as sock:
        head = b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        status, answer = raw_request(sock, head, b"5\r\nhello\r\n0\r\n\r\n")
    assert status == 411 and "Content-Length" in json.loads(answer)["error"]
    status, answer = infer(cloud, gzip.compress(b"x" * 1000), **{"Content-Encoding": "gzip"})
    assert status == 415
    with contextlib.closing(connect(url)) as sock:
        head = b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"
        status, answer = raw_request(sock, head)
    assert status == 400 and "Content-Length" in json.loads(answer)["error"]
    assert infer(cloud)[0] == 200


def test_tls_with_uvicorns_options_and_a_verifying_uploader(
    tmp_path: Path, new_run: Callable[..., RunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--tls-cert/--tls-key``: the uploader (stdlib, verifying) reaches it over https,
    trusting a self-signed certificate through ``SSL_CERT_FILE`` as docs/store.md says."""
    import shutil
    import subprocess

    from wattbench.results_db.upload import upload_pending

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    central = Store.open(f"sqlite:///{tmp_path / 'central.db'}")
    token = create_token(central, DEVICE)
    device = Store.open(f"sqlite:///{tmp_path / 'device.db'}")
    run = new_run()
    device.save_run(run)
    with serve_in_thread(central, tls_certfile=str(cert), tls_keyfile=str(key)) as url:
        assert url.startswith("https://")
        report = upload_pending(device, url, token, max_attempts=1)
    assert report.created == [run.run_id] and central.count_runs() == 1
