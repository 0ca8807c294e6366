"""Count the bytes an HTTP exchange puts on the network, at the client socket.

:class:`MeteredClient` is ``http.client`` over a socket wrapper that counts every
byte written and read (request line, headers and body, both ways) on one
keep-alive connection. On Linux the kernel's ``TCP_INFO`` of the same socket adds
what the wrapper cannot see: TLS records (for https) and the number of TCP
segments, from which the TCP/IP header bytes follow. The OS interface counters
(:func:`interface_counters`) are a cross-check of the whole window, never the
figure: other traffic on the same interface adds to them.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil

from wattbench.core.errors import ConfigError

#: Offsets in Linux ``struct tcp_info`` (stable ABI since 4.2): bytes_acked,
#: bytes_received (u64) and segs_out, segs_in (u32).
_TCPI_BYTES_ACKED = 120
_TCPI_BYTES_RECEIVED = 128
_TCPI_SEGS_OUT = 136
_TCPI_SEGS_IN = 140
_TCPI_MIN_LEN = 144
#: IPv4 (20) + TCP with the timestamp option (32) bytes per segment; IPv6 has 40.
TCPIP_HEADER_BYTES = {socket.AF_INET: 52, socket.AF_INET6: 72}


@dataclass
class TcpInfo:
    """The kernel's per-connection totals."""

    bytes_acked: int
    bytes_received: int
    segs_out: int
    segs_in: int


def tcp_info(sock: socket.socket) -> TcpInfo | None:
    """``TCP_INFO`` totals of a connected socket, None where the OS has none."""
    opt = getattr(socket, "TCP_INFO", None)
    if opt is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, opt, 256)
    except OSError:
        return None
    if len(raw) < _TCPI_MIN_LEN:
        return None
    return TcpInfo(
        bytes_acked=struct.unpack_from("=Q", raw, _TCPI_BYTES_ACKED)[0],
        bytes_received=struct.unpack_from("=Q", raw, _TCPI_BYTES_RECEIVED)[0],
        segs_out=struct.unpack_from("=I", raw, _TCPI_SEGS_OUT)[0],
        segs_in=struct.unpack_from("=I", raw, _TCPI_SEGS_IN)[0],
    )


class _Counter:
    def __init__(self) -> None:
        self.sent = 0
        self.received = 0


class _CountingRaw(io.RawIOBase):
    """The read side of a socket, counting what ``recv`` returns."""

    def __init__(self, sock: socket.socket, counter: _Counter) -> None:
        self._sock = sock
        self._counter = counter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._sock.recv_into(buffer)
        self._counter.received += n
        return n


class _CountingSocket:
    """Wraps a connected socket; counts bytes written and read through it."""

    def __init__(self, sock: socket.socket, counter: _Counter) -> None:
        self._sock = sock
        self._counter = counter

    def sendall(self, data: Any) -> None:
        self._sock.sendall(data)
        self._counter.sent += memoryview(data).nbytes

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if "r" not in mode or "w" in mode:
            raise ValueError(f"counting socket only reads through makefile, not {mode!r}")
        return io.BufferedReader(_CountingRaw(self._sock, self._counter))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@dataclass
class Exchange:
    """One request/response as it crossed the socket."""

    ok: bool
    status: int | None
    body: bytes
    #: HTTP bytes written/read (headers + body); plaintext for https
    http_sent: int
    http_received: int
    #: TCP payload bytes (TLS included) and segments, from TCP_INFO; None without it
    tcp_sent: int | None
    tcp_received: int | None
    segs_out: int | None
    segs_in: int | None
    header_bytes_per_segment: int
    round_trip_ns: int
    error: str | None = None
    #: bytes of a fresh connection's handshake are part of the first exchange on it
    new_connection: bool = False

    @property
    def stream_sent(self) -> int:
        """Bytes of the TCP stream sent: TCP_INFO's when known, else the socket count."""
        return self.tcp_sent if self.tcp_sent is not None else self.http_sent

    @property
    def stream_received(self) -> int:
        return self.tcp_received if self.tcp_received is not None else self.http_received

    @property
    def header_bytes(self) -> int:
        """TCP/IP header bytes of the counted segments (0 where segments are unknown)."""
        segs = (self.segs_out or 0) + (self.segs_in or 0)
        return segs * self.header_bytes_per_segment

    @property
    def wire_bytes(self) -> int:
        """Both directions on the wire: stream bytes plus TCP/IP headers."""
        return self.stream_sent + self.stream_received + self.header_bytes


@dataclass
class MeteredClient:
    """POSTs to one URL over a persistent, byte-counted connection."""

    url: str
    timeout_s: float = 10.0
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)
    _raw: socket.socket | None = field(default=None, repr=False)
    _counter: _Counter = field(default_factory=_Counter, repr=False)
    _base: TcpInfo | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"invalid --cloud-url {self.url!r}: use http://HOST:PORT/ "
                f"(the address `wattbench cloud serve` prints)"
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")

    # -- connection ------------------------------------------------------------------
    def _connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Baseline before TLS: the handshake's bytes belong to the first exchange; its
        # three segments too (counted from zero below).
        base = tcp_info(raw)
        self._base = None if base is None else TcpInfo(base.bytes_acked, base.bytes_received, 0, 0)
        sock: Any = raw
        if self.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=self.host)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        conn.sock = _CountingSocket(sock, self._counter)
        self._conn, self._raw = conn, raw

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._raw = None

    def local_address(self) -> str | None:
        """This end's IP address of the current connection (for the interface check)."""
        if self._raw is None:
            return None
        try:
            return str(self._raw.getsockname()[0])
        except OSError:
            return None

    # -- requests --------------------------------------------------------------------
    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Exchange:
        """One exchange; never raises for network trouble (the Exchange says what failed).

        A kept-alive connection the server has dropped is retried once on a fresh one,
        as browsers do; the bytes of both attempts are counted.
        """
        ex = self._once(method, path, body, headers)
        if ex.ok or ex.new_connection or ex.status is not None:
            return ex
        retry = self._once(method, path, body, headers)
        for name in ("http_sent", "http_received", "tcp_sent", "tcp_received"):
            a, b = getattr(ex, name), getattr(retry, name)
            setattr(retry, name, None if a is None or b is None else a + b)
        for name in ("segs_out", "segs_in"):
            a, b = getattr(ex, name), getattr(retry, name)
            setattr(retry, name, None if a is None or b is None else a + b)
        retry.round_trip_ns += ex.round_trip_ns
        return retry

    def _once(
        self, method: str, path: str, body: bytes, headers: dict[str, str] | None
    ) -> Exchange:
        t0 = time.perf_counter_ns()
        new = False
        will_close = False
        c0 = (self._counter.sent, self._counter.received)
        info0: TcpInfo | None = None
        family = socket.AF_INET
        try:
            if self._conn is None:
                self._connect()
                new = True
            assert self._conn is not None and self._raw is not None
            family = self._raw.family
            info0 = self._base if new else tcp_info(self._raw)
            hdrs = {"Content-Length": str(len(body)), **(headers or {})}
            self._conn.request(method, self.base_path + path, body=body, headers=hdrs)
            resp = self._conn.getresponse()
            data = resp.read()
            status: int | None = resp.status
            error = None if resp.status < 500 else f"HTTP {resp.status}"
            will_close = bool(resp.will_close)
        except (OSError, http.client.HTTPException) as exc:
            data, status = b"", None
            error = _describe(exc)
        t1 = time.perf_counter_ns()
        info1 = tcp_info(self._raw) if self._raw is not None else None
        d = None if info0 is None or info1 is None else _delta(info0, info1)
        ex = Exchange(
            ok=error is None and status is not None and status < 400,
            status=status,
            body=data,
            http_sent=self._counter.sent - c0[0],
            http_received=self._counter.received - c0[1],
            tcp_sent=None if d is None else d.bytes_acked,
            tcp_received=None if d is None else d.bytes_received,
            segs_out=None if d is None else d.segs_out,
            segs_in=None if d is None else d.segs_in,
            header_bytes_per_segment=TCPIP_HEADER_BYTES.get(family, 52),
            round_trip_ns=t1 - t0,
            error=error if status is None or status >= 400 else None,
            new_connection=new,
        )
        if ex.error is None and status is not None and status >= 400:
            ex.error = f"HTTP {status}"
        if not ex.ok or will_close:
            self.close()  # a broken or server-closed connection is not reused
        return ex


def _delta(a: TcpInfo, b: TcpInfo) -> TcpInfo:
    return TcpInfo(
        bytes_acked=b.bytes_acked - a.bytes_acked,
        bytes_received=b.bytes_received - a.bytes_received,
        segs_out=b.segs_out - a.segs_out,
        segs_in=b.segs_in - a.segs_in,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        return "connection closed by the server"
    return type(exc).__name__


# -- OS interface counters (cross-check only) -------------------------------------------
def interface_for(address: str | None) -> str | None:
    """The network interface that holds ``address`` (loopback → its interface)."""
    if address is None:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    for nic, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            try:
                if ipaddress.ip_address(a.address.split("%")[0]) == ip:
                    return nic
            except ValueError:
                continue
    if ip.is_loopback:
        return next((n for n in psutil.net_if_addrs() if n.startswith("lo")), None)
    return None


def interface_counters(nic: str | None) -> tuple[int, int] | None:
    """(bytes sent, bytes received) of ``nic`` from the OS, None where unreadable."""
    if nic is None:
        return None
    try:
        c = psutil.net_io_counters(pernic=True).get(nic)
    except (OSError, RuntimeError):
        return None
    return None if c is None else (int(c.bytes_sent), int(c.bytes_recv))
