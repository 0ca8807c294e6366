"""Fixtures of the lab-store tests: fake runs, cloned cheaply, and live ingest servers.

A fake run takes ~70 ms to produce (the real protocol on fake time), so one is
made per session and cloned with a fresh uuid (and device or labels) per use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_store import make_result

from wattbench.core.results import RunResult
from wattbench.results_db.store import Store

DEVICE = "bench-01"  # the device name make_result() runs carry


@pytest.fixture(scope="session")
def base_result(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return make_result(tmp_path_factory.mktemp("base-run"))


def clone(
    result: RunResult,
    *,
    device: str | None = None,
    labels: list[str] | None = None,
    ipj: float | None = None,
) -> RunResult:
    """``result`` with a new run uuid (and, optionally, another device/labels/headline)."""
    update: dict[str, Any] = {"run_id": str(uuid.uuid4())}
    if device is not None:
        update["device"] = result.device | {"name": device}
    if labels is not None:
        update["labels"] = labels
    if ipj is not None:
        # consistent figures (the ingest API checks inferences / gross J): scale the energy
        old = result.energy[0]
        scale = (result.inferences / ipj) / old.gross_j
        head = old.model_copy(
            update={
                "inferences_per_joule": ipj,
                "joules_per_inference": 1 / ipj,
                "gross_j": old.gross_j * scale,
                "net_j": old.net_j * scale,
                "mean_power_w": old.mean_power_w * scale,
                "inferences_per_joule_net": (
                    result.inferences / (old.net_j * scale) if old.net_j > 0 else None
                ),
            }
        )
        update["energy"] = [head, *result.energy[1:]]
    return result.model_copy(update=update)


@pytest.fixture
def new_run(base_result: RunResult) -> Callable[..., RunResult]:
    """``new_run(device=…, labels=…, ipj=…)``: a fresh run (new uuid) like the base one."""
    return lambda **kw: clone(base_result, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(
    url: str, timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {out[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server at {url} did not become healthy in {timeout_s} s")


class ServerProcess:
    """``wattbench serve`` machinery in a child process, so that it can be SIGKILLed."""

    def __init__(self, db_url: str, port: int | None = None) -> None:
        self.db_url = db_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        code = (
            "import sys\n"
            "from wattbench.results_db.server import run_server\n"
            "from wattbench.results_db.store import Store\n"
            "run_server(Store.open(sys.argv[1]), '127.0.0.1', int(sys.argv[2]), access_log=False)\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, self.db_url, str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
        wait_healthy(self.url, proc=self.proc)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flushing; whatever was in flight is lost."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """Start ingest servers in child processes; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(db_url: str, port: int | None = None) -> ServerProcess:
        srv = ServerProcess(db_url, port).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@contextlib.contextmanager
def serve_in_thread(store: Store, **app_kwargs: Any) -> Iterator[str]:
    """An ingest server on a free loopback port in this process; yields its URL."""
    import uvicorn

    from wattbench.results_db.server import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(store, **app_kwargs),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def local_store(tmp_path: Path, name: str = "device.db") -> Store:
    """A device's own SQLite store."""
    return Store.open(f"sqlite:///{tmp_path / name}")
