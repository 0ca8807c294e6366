"""Scenarios (MLPerf semantics) and the drivers that issue their queries.

A :class:`ScenarioDriver` decides *how* queries reach the session inside one
measured window; the protocol decides everything around it (warm-up, quality,
idle baseline, energy windows). A driver may :meth:`~ScenarioDriver.calibrate`
before the trials, outside every energy window (the server scenario searches
its QPS there), and may keep text logs with the run (LoadGen's summary).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from wattbench.core.adapter import Session
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError

ClockNs = Callable[[], int]
OnTick = Callable[[float], None]


@dataclass
class WindowResult:
    """What one measured window did."""

    #: per query: from issue (or scheduled arrival, server) to completion, ns
    latencies_ns: list[int]
    #: wall time of the window, ns
    duration_ns: int
    #: samples processed (queries × batch)
    samples: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def queries(self) -> int:
        return len(self.latencies_ns)


class ScenarioDriver(ABC):
    """Issues a scenario's queries to a session for one window."""

    #: scenario name as stored with the result
    scenario: ClassVar[str]
    #: the headline metric of the scenario, for display
    headline: ClassVar[str]

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def calibrate(
        self, session: Session, prepared: Sequence[Any], clock: ClockNs = time.perf_counter_ns
    ) -> dict[str, Any]:
        """Settle the scenario's parameters before the trials (no energy window open).

        Returns what was settled (stored as the run's ``scenario_details``).
        """
        return {}

    @abstractmethod
    def window(
        self,
        session: Session,
        prepared: Sequence[Any],
        min_s: float,
        min_queries: int,
        clock: ClockNs = time.perf_counter_ns,
        on_tick: OnTick | None = None,
    ) -> WindowResult:
        """Run queries until ``min_s`` and ``min_queries`` are both met."""

    def artifacts(self) -> dict[str, str]:
        """Text logs to keep with the run (name → content)."""
        return {}


def timed_loop(
    session: Session,
    prepared: Sequence[Any],
    min_s: float,
    min_queries: int,
    clock: ClockNs = time.perf_counter_ns,
    on_tick: OnTick | None = None,
) -> tuple[list[int], int]:
    """Run queries back to back until ``min_s`` and ``min_queries`` are both met.

    Only ``session.run`` sits between the two clock reads. Returns per-query
    latencies (ns) and the loop's wall time (ns).
    """
    run = session.run
    n = len(prepared)
    min_ns = int(min_s * 1e9)
    latencies: list[int] = []
    append = latencies.append
    i = 0
    start = clock()
    while True:
        p = prepared[i % n]
        t0 = clock()
        run(p)
        t1 = clock()
        append(t1 - t0)
        i += 1
        elapsed = t1 - start
        if i >= min_queries and elapsed >= min_ns:
            return latencies, elapsed
        if on_tick is not None and not i & 63:
            on_tick(elapsed / 1e9)


class SingleStreamDriver(ScenarioDriver):
    """One query at a time; the next is issued when the previous completes."""

    scenario = "single-stream"
    headline = "p90 latency"

    def window(
        self,
        session: Session,
        prepared: Sequence[Any],
        min_s: float,
        min_queries: int,
        clock: ClockNs = time.perf_counter_ns,
        on_tick: OnTick | None = None,
    ) -> WindowResult:
        lat, loop_ns = timed_loop(session, prepared, min_s, min_queries, clock, on_tick)
        return WindowResult(lat, loop_ns, len(lat) * self.config.batch)


def make_driver(config: RunConfig) -> ScenarioDriver:
    """The driver for ``config.scenario`` and ``config.driver``."""
    if config.driver == "loadgen":
        from wattbench.harness import loadgen

        return loadgen.LoadGenDriver(config)
    if config.scenario == "single-stream":
        return SingleStreamDriver(config)
    if config.scenario in ("offline", "server"):
        from wattbench.harness import scenario_drivers

        return scenario_drivers.driver_for(config)
    raise ConfigError(f"unknown scenario {config.scenario!r}: use single-stream, offline or server")
