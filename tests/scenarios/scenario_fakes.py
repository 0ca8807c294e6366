"""Test doubles shared by the scenario tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from wattbench.core.adapter import AdapterOptions
from wattbench.core.config import RunConfig
from wattbench.core.testing import FakeClock, FakeSession


def config(**overrides: Any) -> RunConfig:
    base: dict[str, Any] = {"suite": "fake", "adapter": "fake", "power": ("fake",)}
    base.update(overrides)
    return RunConfig(**base)


def fake_session(clock: FakeClock | None, latency_s: float) -> FakeSession:
    return FakeSession(clock, latency_s, lambda x: np.asarray(x) * 2.0, AdapterOptions())


class SleepSession(FakeSession):
    """A runtime whose inference sleeps ``latency_s`` of real time, releasing the GIL as
    ONNX Runtime does; it counts the most runs that were in flight at once."""

    def __init__(self, latency_s: float, fail_after: int | None = None) -> None:
        super().__init__(None, latency_s, lambda x: np.asarray(x), AdapterOptions())
        self.fail_after = fail_after
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Any:
        return feed["x"]

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        with self._lock:
            self.runs += 1
            if self.fail_after is not None and self.runs > self.fail_after:
                raise RuntimeError("runtime exploded")
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.latency_s)
        with self._lock:
            self.in_flight -= 1
        return [np.asarray(prepared)]


PREPARED = [np.full((1, 4), i, dtype=np.float32) for i in range(4)]
