"""Fixtures of the reliability tests (issue 19): fake runs, live ingest servers, stores.

A fake run (the real protocol on fake time) is made once per session and cloned with a
fresh uuid per use, as in tests/store.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.results import RunResult
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness.protocol import Runner
from wattbench.results_db.store import Store

DEVICE = "bench-01"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "long: tens of seconds (fault injection at scale); -m 'not long' skips them"
    )


def make_result(tmp_path: Path, *, latency_s: float = 0.001, power_w: float = 5.0) -> RunResult:
    clock = FakeClock()
    cfg = RunConfig(
        suite="fake",
        adapter="fake",
        duration_s=1,
        min_queries=10,
        repeats=2,
        warmup_s=0.1,
        idle_s=1,
        cooldown_s=0,
        device_name=DEVICE,
    )
    return Runner(
        cfg,
        FakeSuite(),
        FakeAdapter(clock, latency_s),
        [FakePowerReader(clock, power_w)],
        ModelCache(tmp_path / "cache"),
        clock_ns=clock,
        sleep=clock.advance,
    ).execute()


@pytest.fixture(scope="session")
def base_result(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return make_result(tmp_path_factory.mktemp("base-run"))


def clone(result: RunResult, **update: Any) -> RunResult:
    """``result`` with a new run uuid and the given top-level fields replaced."""
    return result.model_copy(update={"run_id": str(uuid.uuid4()), **update})


@pytest.fixture
def new_run(base_result: RunResult) -> Callable[..., RunResult]:
    return lambda **kw: clone(base_result, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout_s: float = 30.0) -> None:
    import ssl

    context = ssl.create_default_context() if url.startswith("https") else None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1, context=context) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server at {url} did not become healthy in {timeout_s} s")


@contextlib.contextmanager
def serve_in_thread(store: Store, **options: Any) -> Iterator[str]:
    """The ingest server (``run_server``'s uvicorn settings) on a free port; yields its URL."""
    import uvicorn

    from wattbench.results_db.server import uvicorn_config

    port = free_port()
    config = uvicorn_config(store, "127.0.0.1", port, access_log=False, **options)
    config.log_level = "warning"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    scheme = "https" if options.get("tls_certfile") else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def local_store(tmp_path: Path, name: str = "device.db") -> Store:
    return Store.open(f"sqlite:///{tmp_path / name}")
