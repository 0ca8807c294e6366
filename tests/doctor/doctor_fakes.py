"""Helpers of the doctor tests: sensors that a thread moves while an injected load runs,
the injected load, and a reader of files that honours modes as a non-root user would."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

from wattbench.core.power import ReaderOptions
from wattbench.harness.doctor import DoctorSettings

#: Short phases: the doctor's logic, not its patience, is under test.
FAST = DoctorSettings(idle_s=0.6, step_s=0.6, sample_interval_s=0.02, min_step_w=0.5)


class FakeLoad:
    """The known load, injected: the fake sensors rise while it runs."""

    description = "fake load (the test's sensors rise while it runs)"

    def __init__(self, reaches: bool = True) -> None:
        self.active = threading.Event()
        self.reaches = reaches
        self.calls: list[float] = []
        #: (start, end) of each load, end None while it runs
        self.spans: list[tuple[float, float | None]] = []
        self.on_start: list[Callable[[], None]] = []
        self.on_end: list[Callable[[], None]] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.reaches:
            self.spans.append((time.monotonic(), None))
            self.active.set()
            for f in self.on_start:
                f()
        time.sleep(seconds)
        if self.reaches:
            self.spans[-1] = (self.spans[-1][0], time.monotonic())
        self.active.clear()
        for f in self.on_end:
            f()

    def loaded_s(self, t0: float, t1: float) -> float:
        """How long the load ran within ``[t0, t1]`` (monotonic seconds)."""
        total = 0.0
        for on, off in list(self.spans):
            end = t1 if off is None else min(off, t1)
            total += max(0.0, end - max(on, t0))
        return total


class Sensor:
    """A thread that writes ``idle_w`` (or ``load_w`` while the load runs) through ``write``
    every ``period_s``, with a little deterministic noise."""

    def __init__(
        self,
        write: Callable[[float, float], None],
        load: FakeLoad,
        idle_w: float,
        load_w: float,
        period_s: float = 0.002,
        noise_w: float = 0.02,
    ) -> None:
        self.write = write
        self.load = load
        self.idle_w, self.load_w = idle_w, load_w
        self.period_s, self.noise_w = period_s, noise_w
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def power_w(self, i: int, t0: float, t1: float) -> float:
        """The mean power over ``[t0, t1]``: exact at the load's edges however late the
        thread runs (a counter advanced by it then holds the true energy)."""
        share = self.load.loaded_s(t0, t1) / (t1 - t0) if t1 > t0 else 0.0
        base = self.idle_w + (self.load_w - self.idle_w) * share
        return base + self.noise_w * ((i % 3) - 1)

    def _loop(self) -> None:
        last = time.monotonic()
        for i in itertools.count():
            if self._stop.wait(self.period_s):
                return
            now = time.monotonic()
            self.write(self.power_w(i, last, now), now - last)
            last = now

    def __enter__(self) -> Sensor:
        self.write(self.idle_w, 0.0)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def options(root: Path | None = None, **params: str) -> ReaderOptions:
    return ReaderOptions(sysfs_root=root or Path("/nonexistent-root"), params=params)


def read_as_user(path: Path) -> bytes:
    """Read as an unprivileged user would: tests run as root, and root ignores file modes,
    so a mode without read bits is a PermissionError here."""
    if path.stat().st_mode & 0o444 == 0:
        raise PermissionError(13, "Permission denied", str(path))
    return path.read_bytes()
