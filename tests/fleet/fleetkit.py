"""Fleet test kit: a unique queue prefix on the real RabbitMQ, a fresh PostgreSQL store,
and worker processes (``wattbench worker``) that find a fast fake adapter and suite.

RabbitMQ is ``WATTBENCH_TEST_BROKER_URL`` (default amqp://guest:guest@127.0.0.1:5672//);
tests skip visibly when it is unreachable (fail under WATTBENCH_REQUIRE_BROKER=1).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from wattbench.fleet import broker
from wattbench.results_db.schema import CampaignCell

HERE = Path(__file__).resolve().parent
FAKEPLUG = HERE / "fakeplug"
WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
BROKER = os.environ.get("WATTBENCH_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")

#: a cell of the fast fake (about half a second of protocol)
FAST_RUN = """
suite = "fleet-fake"
power = "estimate"
duration = 0.2
repeats = 1
idle-s = 0.2
warmup = 0.05
cooldown = 0
min-queries = 1
e2e-queries = 0
"""


def _broker_reachable() -> str | None:
    from kombu import Connection

    try:
        with Connection(BROKER, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def broker_url_or_skip() -> str:
    why = _broker_reachable()
    if why is not None:
        if os.environ.get("WATTBENCH_REQUIRE_BROKER") == "1":
            pytest.fail(f"RabbitMQ required but unreachable at {BROKER}: {why}")
        pytest.skip(f"fleet tests skipped: RabbitMQ unreachable at {BROKER}: {why}")
    return BROKER


def cli(*args: str) -> tuple[int, str, str]:
    """``wattbench ARGS`` in this process: (exit code, stdout, stderr)."""
    from wattbench.harness.cli import main

    o, e = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, o.getvalue(), e.getvalue()


class Fleet:
    """Workers and campaigns of one test, on its own queue prefix and store."""

    def __init__(self, broker_url: str, db: str, tmp: Path) -> None:
        self.broker = broker_url
        self.db = db
        self.tmp = tmp
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.queues: set[str] = set()
        self.engine = create_engine(db)
        self._logs: list[Path] = []

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(FAKEPLUG), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path}

    def start_worker(self, device: str, *tags: str, extra: tuple[str, ...] = ()) -> None:
        self.queues.update(broker.worker_queues(self.prefix, device, list(tags)))
        log = self.tmp / f"worker-{device}-{len(self._logs)}.log"
        self._logs.append(log)
        cmd = [
            WATTBENCH, "worker", "--device", device, "--broker", self.broker, "--db", self.db,
            "--queue-prefix", self.prefix, "--heartbeat-s", "0.5", "--no-scan-adapters",
            *(a for t in tags for a in ("--tag", t)), *extra,
        ]  # fmt: skip
        with log.open("wb") as fh:
            self.workers[device] = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env()
            )

    def wait_registered(self, *devices: str, timeout: float = 60.0) -> None:
        from wattbench.results_db.schema import FleetDevice

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                names = set(conn.scalars(select(FleetDevice.name)))
            if set(devices) <= names:
                return
            self.check_alive()
            time.sleep(0.1)
        raise AssertionError(f"workers {devices} did not register:\n{self.logs()}")

    def check_alive(self) -> None:
        for name, p in self.workers.items():
            if p.poll() is not None:
                raise AssertionError(f"worker {name} exited {p.returncode}:\n{self.logs()}")

    def kill(self, device: str, sig: int = signal.SIGKILL, wait: float = 30.0) -> int:
        p = self.workers[device]
        p.send_signal(sig)
        return p.wait(timeout=wait)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self._logs
        )

    def campaign_file(self, body: str, name: str = "campaign.toml") -> Path:
        path = self.tmp / name
        path.write_text(body)
        return path

    def submit(self, body: str) -> str:
        code, out, err = cli(
            "campaign", "submit", str(self.campaign_file(body)), "--broker", self.broker,
            "--db", self.db, "--queue-prefix", self.prefix, "--json",
        )  # fmt: skip
        assert code == 0, err
        data = json.loads(out)
        self.track_cell_queues()
        return str(data["campaign_id"])

    def track_cell_queues(self) -> None:
        with self.engine.connect() as conn:
            self.queues.update(conn.scalars(select(CampaignCell.queue).distinct()))

    def status(self, campaign_id: str, *extra: str) -> dict[str, Any]:
        code, out, err = cli("campaign", "status", campaign_id, "--db", self.db, "--json", *extra)
        assert code == 0, err
        return dict(json.loads(out))

    def wait_for(
        self, campaign_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.status(campaign_id)
            if done(st):
                return st
            time.sleep(0.2)
        raise AssertionError(f"timed out; last status {json.dumps(st)}\n{self.logs()}")

    def wait_settled(self, campaign_id: str, timeout: float = 90.0) -> dict[str, Any]:
        return self.wait_for(
            campaign_id,
            lambda s: s["overall"]["pending"] == 0 and s["overall"]["running"] == 0,
            timeout,
        )

    def close(self) -> None:
        for p in self.workers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.workers.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.track_cell_queues()
        with contextlib.suppress(Exception):
            broker.delete_queues(self.broker, self.prefix, sorted(self.queues))
        self.engine.dispose()


class TcpProxy:
    """A TCP proxy to the broker that can drop every connection and refuse new ones for a
    while: a broker restart, seen from a worker, without restarting the shared broker."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        import socket
        import threading

        self.upstream = upstream
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    def _listen(self) -> None:
        import socket
        import threading

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener: Any) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        """Close the listener and every proxied connection (the broker "goes down")."""
        import socket

        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def resume(self) -> None:
        """Accept connections again, on the same port (the broker "is back")."""
        self._listen()

    def close(self) -> None:
        self.cut()
