"""Byte counts at the client socket against the exact raw HTTP bytes."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator

import pytest

from wattbench.core.errors import ConfigError
from wattbench.harness.network.meter import (
    MeteredClient,
    interface_counters,
    interface_for,
    tcp_info,
)


class RawServer:
    """A loopback HTTP/1.1 server on a bare socket: it records each raw request it
    reads and answers with a pre-built raw response, so both sizes are known exactly."""

    def __init__(self, body_bytes: int, close_after: int | None = None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        body = b"x" * body_bytes
        self.response = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.requests: list[bytes] = []
        self.close_after = close_after
        threading.Thread(target=self._serve, daemon=True).start()

    def _read_request(self, conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(rest) < length:
            rest += conn.recv(65536)
        return head + b"\r\n\r\n" + rest

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while True:
                    req = self._read_request(conn)
                    if req is None:
                        break
                    self.requests.append(req)
                    conn.sendall(self.response)
                    if self.close_after and len(self.requests) >= self.close_after:
                        break

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[RawServer]:
    s = RawServer(body_bytes=3000)
    yield s
    s.close()


def test_counts_equal_the_raw_http_bytes_both_ways(server: RawServer) -> None:
    client = MeteredClient(f"http://127.0.0.1:{server.port}/api")
    body = bytes(range(256)) * 40  # 10240 bytes
    ex = client.request("POST", "/v1/infer", body, {"Content-Type": "image/jpeg"})
    assert ex.ok and ex.status == 200 and len(ex.body) == 3000
    assert server.requests[0].startswith(b"POST /api/v1/infer HTTP/1.1\r\n")
    assert ex.http_sent == len(server.requests[0])  # request line + headers + body, exactly
    assert ex.http_received == len(server.response)
    assert ex.new_connection
    if sys.platform.startswith("linux"):
        # the kernel's own count of the same TCP stream agrees byte for byte
        assert ex.tcp_sent == ex.http_sent and ex.tcp_received == ex.http_received
        assert ex.segs_out and ex.segs_in and ex.segs_out >= 2  # handshake included
        assert ex.header_bytes == (ex.segs_out + ex.segs_in) * 52
        assert ex.wire_bytes == ex.http_sent + ex.http_received + ex.header_bytes
    # a second request on the kept-alive connection is counted on its own
    ex2 = client.request("POST", "/v1/infer", b"abc", {"Content-Type": "image/jpeg"})
    assert not ex2.new_connection
    assert ex2.http_sent == len(server.requests[1]) and ex2.http_received == len(server.response)
    if ex2.tcp_sent is not None:
        assert ex2.tcp_sent == ex2.http_sent
    client.close()


def test_refused_connection_is_a_failed_exchange_not_an_exception() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    ex = MeteredClient(f"http://127.0.0.1:{port}/").request("POST", "/v1/infer", b"x")
    assert not ex.ok and ex.error == "connection refused" and ex.status is None
    assert ex.http_sent == 0 and ex.wire_bytes == 0


def test_a_dropped_keepalive_connection_is_retried_once() -> None:
    s = RawServer(body_bytes=10, close_after=1)  # closes after each first request
    try:
        client = MeteredClient(f"http://127.0.0.1:{s.port}/")
        assert client.request("POST", "/a", b"1").ok
        ex = client.request("POST", "/b", b"2")
        assert ex.ok and len(s.requests) == 2
        assert ex.http_received == len(s.response)
    finally:
        s.close()


@pytest.mark.parametrize("url", ["ftp://h/", "127.0.0.1:8000", "http:///path"])
def test_bad_urls_name_the_option(url: str) -> None:
    with pytest.raises(ConfigError, match="--cloud-url"):
        MeteredClient(url)


def test_loopback_interface_counters_are_readable() -> None:
    nic = interface_for("127.0.0.1")
    assert nic is not None
    assert interface_counters(nic) is not None
    assert interface_for("not an ip") is None and interface_counters(None) is None
    with socket.socket() as s:
        info = tcp_info(s)  # unconnected: zeros where the OS has TCP_INFO
        assert info is None or (info.bytes_acked, info.bytes_received) == (0, 0)
