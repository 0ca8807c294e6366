"""The built-in offline and server scenarios (MLPerf semantics).

* **offline**: every sample is available at once. ``--concurrency`` worker threads (default 1)
  take the next prepared batch (``--batch`` samples) as soon as they are free, back to back,
  until the window's minimum time and query count are met. ONNX Runtime and OpenVINO release
  the GIL inside ``run()``, so threads overlap in the runtime. A query's latency is its batch's
  run time; the headline is samples per second.
* **server**: queries arrive as a Poisson process at ``--target-qps`` (a seeded exponential
  inter-arrival schedule, the same for every window). ``--concurrency`` workers serve a FIFO
  queue; a query's latency runs from its *scheduled* arrival to its completion, so time spent
  queueing (or a late wake-up of the dispatcher) counts. Without ``--target-qps``,
  :meth:`ServerDriver.calibrate` searches the highest QPS whose p99 latency meets
  ``--latency-bound-ms`` (default :data:`DEFAULT_LATENCY_BOUND_MS`) with short probe windows.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from wattbench.core.adapter import Session
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError
from wattbench.harness.scenarios import (
    ClockNs,
    OnTick,
    ScenarioDriver,
    WindowResult,
    timed_loop,
)

Sleep = Callable[[float], None]

#: p99 latency bound of the server scenario when --latency-bound-ms is not given. MLPerf's
#: per-model datacenter bounds (e.g. 15 ms for ResNet-50) do not fit edge devices; 100 ms is
#: the usual budget of an interactive request and leaves the search a target on slow boards.
DEFAULT_LATENCY_BOUND_MS = 100.0
#: The server scenario's latency percentile (MLPerf: 99th for vision and NLP models).
SERVER_PERCENTILE = 99.0
#: Search: probe windows last a quarter of --duration, clamped to this range (seconds) ...
PROBE_MIN_S = 0.5
PROBE_MAX_S = 2.0
#: ... and hold at least min(--min-queries, this many) queries.
PROBE_MAX_QUERIES = 100
#: Search: stop bisecting when (hi - lo) / hi falls below this, or after this many probes.
SEARCH_REL_TOL = 0.05
SEARCH_MAX_PROBES = 14
#: Search: a probe also fails when its workers were busy more than this share of the time.
#: A short probe above capacity can end before its queue has grown past the bound; a busy
#: share near 1 shows the queue would keep growing (a stable queue idles 1 - load of the
#: time). A short probe 20 % over capacity shows ~0.94, hence 0.9; the price is that with
#: a very loose bound the search stops at 90 % load, where the steady-state p99 might allow
#: a little more.
PROBE_MAX_BUSY = 0.9
#: Search: queries timed one at a time to estimate a query's service time.
CAPACITY_QUERIES = 10
CAPACITY_S = 0.2


def _concurrency(config: RunConfig) -> int:
    return config.concurrency or 1


def poisson_schedule_ns(qps: float, min_s: float, min_queries: int, seed: int) -> list[int]:
    """Arrival offsets (ns from the window's start) of a Poisson process at ``qps``.

    The first query arrives at 0; arrivals continue until both ``min_queries`` have arrived
    and the last arrives at or after ``min_s``. The same ``seed`` gives the same schedule
    scaled by 1 / ``qps``, so windows and probes at different rates are comparable.
    """
    if qps <= 0:
        raise ConfigError(f"target QPS must be positive, got {qps}: pass --target-qps > 0")
    rng = np.random.default_rng(seed)
    min_ns = min_s * 1e9
    offsets: list[int] = [0]
    t_s = 0.0
    # Draw in chunks: the expected count is known, the tail is random.
    while len(offsets) < min_queries or offsets[-1] < min_ns:
        for gap in rng.exponential(1.0 / qps, size=max(16, int(qps * min_s / 4) + 1)):
            t_s += float(gap)
            offsets.append(int(t_s * 1e9))
            if len(offsets) >= min_queries and offsets[-1] >= min_ns:
                break
    return offsets


def over_bound_limit(n: int, percentile: float = SERVER_PERCENTILE) -> int:
    """Queries over the bound that make the ``percentile`` of ``n`` latencies exceed it.

    Percentiles interpolate between order statistics (numpy's default): the p-th lies at
    or above the value of 0-based rank ``floor(p/100 × (n-1))``, which is over the bound
    as soon as ``n - rank`` latencies are.
    """
    return n - math.floor(percentile / 100.0 * (n - 1))


@dataclass
class _Served:
    latencies_ns: list[int]
    duration_ns: int
    aborted: bool
    #: summed run() time of all queries (for the workers' busy share)
    busy_ns: int = 0

    def busy_share(self, workers: int) -> float:
        return self.busy_ns / (workers * self.duration_ns) if self.duration_ns > 0 else 1.0


class OfflineDriver(ScenarioDriver):
    """All samples available: ``concurrency`` workers run batches back to back.

    The batch size is ``--batch`` (the prepared batches hold that many samples); the
    concurrency is ``--concurrency`` (default 1: one query in flight).
    """

    scenario = "offline"
    headline = "samples per second"

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.concurrency = _concurrency(config)

    def calibrate(
        self, session: Session, prepared: Sequence[Any], clock: ClockNs = time.perf_counter_ns
    ) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "concurrency_source": "user" if self.config.concurrency else "default",
            "batch": self.config.batch,
        }

    def window(
        self,
        session: Session,
        prepared: Sequence[Any],
        min_s: float,
        min_queries: int,
        clock: ClockNs = time.perf_counter_ns,
        on_tick: OnTick | None = None,
    ) -> WindowResult:
        if self.concurrency == 1:
            lat, loop_ns = timed_loop(session, prepared, min_s, min_queries, clock, on_tick)
        else:
            lat, loop_ns = self._threaded(session, prepared, min_s, min_queries, clock, on_tick)
        samples = len(lat) * self.config.batch
        return WindowResult(
            lat,
            loop_ns,
            samples,
            details={
                "concurrency": self.concurrency,
                "batch": self.config.batch,
                "samples_per_s": samples / (loop_ns / 1e9) if loop_ns > 0 else None,
            },
        )

    def _threaded(
        self,
        session: Session,
        prepared: Sequence[Any],
        min_s: float,
        min_queries: int,
        clock: ClockNs,
        on_tick: OnTick | None,
    ) -> tuple[list[int], int]:
        run = session.run
        n = len(prepared)
        min_ns = int(min_s * 1e9)
        lock = threading.Lock()
        latencies: list[int] = []
        issued = 0
        last_done = 0
        start = clock()

        def worker() -> None:
            nonlocal issued, last_done
            while True:
                with lock:
                    if issued >= min_queries and clock() - start >= min_ns:
                        return
                    k = issued
                    issued += 1
                p = prepared[k % n]
                t0 = clock()
                run(p)
                t1 = clock()
                with lock:
                    latencies.append(t1 - t0)
                    last_done = max(last_done, t1)
                    done = len(latencies)
                if on_tick is not None and not done & 63:
                    on_tick((t1 - start) / 1e9)

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="wb-offline") as pool:
            futures = [pool.submit(worker) for _ in range(self.concurrency)]
            for f in futures:
                f.result()  # re-raises a runtime error from a worker
        return latencies, last_done - start


class ServerDriver(ScenarioDriver):
    """Poisson arrivals at a target QPS; FIFO queue served by ``concurrency`` workers."""

    scenario = "server"
    headline = "highest QPS meeting the p99 latency bound"

    def __init__(self, config: RunConfig, sleep: Sleep = time.sleep) -> None:
        super().__init__(config)
        self.concurrency = _concurrency(config)
        self.sleep = sleep
        self.target_qps: float | None = config.target_qps
        self.latency_bound_ms = config.latency_bound_ms or DEFAULT_LATENCY_BOUND_MS

    # -- calibration ------------------------------------------------------------------
    def calibrate(
        self, session: Session, prepared: Sequence[Any], clock: ClockNs = time.perf_counter_ns
    ) -> dict[str, Any]:
        details: dict[str, Any] = {
            "latency_bound_ms": self.latency_bound_ms,
            "latency_bound_source": "user" if self.config.latency_bound_ms else "default",
            "latency_percentile": SERVER_PERCENTILE,
            "concurrency": self.concurrency,
            "batch": self.config.batch,
        }
        if self.config.target_qps is not None:
            self.target_qps = self.config.target_qps
            return {"target_qps": self.target_qps, "qps_source": "user", "search": [], **details}
        qps, search, busy, service_ms = self.search(session, prepared, clock)
        self.target_qps = qps
        return {
            "target_qps": qps,
            "qps_source": "search",
            "search": search,
            "search_busy_share": busy,
            "service_ms_single": service_ms,
            **details,
        }

    def probe_window(self) -> tuple[float, int]:
        """(seconds, queries) of one search probe."""
        cfg = self.config
        probe_s = min(max(cfg.duration_s / 4, PROBE_MIN_S), PROBE_MAX_S)
        return probe_s, min(cfg.min_queries, PROBE_MAX_QUERIES)

    def search(
        self, session: Session, prepared: Sequence[Any], clock: ClockNs = time.perf_counter_ns
    ) -> tuple[float, list[tuple[float, float | None, bool]], list[float], float]:
        """The highest QPS whose p99 meets the bound.

        Returns (qps, probes as (qps, p99 ms, met), each probe's busy share, the median
        ms of one query timed alone).

        The service time of one query (timed alone) gives a capacity estimate
        ``concurrency / service time``; the search brackets it (doubling up, halving down)
        and bisects the bracket until it is within :data:`SEARCH_REL_TOL`.
        """
        bound_ms = self.latency_bound_ms
        lat, _ = timed_loop(session, prepared, CAPACITY_S, CAPACITY_QUERIES, clock)
        service_ms = float(np.median(lat)) / 1e6
        p99_alone = float(np.percentile(lat, SERVER_PERCENTILE)) / 1e6
        if p99_alone > bound_ms:
            raise ConfigError(
                f"server: one query alone takes {p99_alone:.1f} ms (p99), above the "
                f"{bound_ms:g} ms latency bound: raise --latency-bound-ms"
            )
        capacity = self.concurrency / max(service_ms / 1e3, 1e-6)
        probes: list[tuple[float, float | None, bool]] = []
        busy: list[float] = []

        def probe(qps: float) -> bool:
            p99_ms, met, share = self.probe(session, prepared, qps, clock)
            probes.append((qps, p99_ms, met))
            busy.append(share)
            return met

        lo: float | None = None
        hi: float | None = None
        q = 1.2 * capacity
        while len(probes) < SEARCH_MAX_PROBES // 3:  # bracket from above
            if probe(q):
                lo, q = q, q * 2
            else:
                hi = q
                break
        if hi is None:  # never missed: the highest probed rate is the answer
            assert lo is not None
            return lo, probes, busy, service_ms
        if lo is None:
            q = 0.5 * capacity
            while len(probes) < 2 * SEARCH_MAX_PROBES // 3:  # bracket from below
                if probe(q):
                    lo = q
                    break
                hi, q = q, q / 2
        if lo is None:
            raise ConfigError(
                f"server: no arrival rate down to {hi:.3g} QPS kept p99 latency within "
                f"{bound_ms:g} ms: raise --latency-bound-ms or pass --target-qps"
            )
        while (hi - lo) / hi > SEARCH_REL_TOL and len(probes) < SEARCH_MAX_PROBES:
            mid = (lo + hi) / 2
            if probe(mid):
                lo = mid
            else:
                hi = mid
        return lo, probes, busy, service_ms

    def probe(
        self,
        session: Session,
        prepared: Sequence[Any],
        qps: float,
        clock: ClockNs = time.perf_counter_ns,
    ) -> tuple[float | None, bool, float]:
        """One short window at ``qps``: (p99 ms, met, the workers' busy share).

        Met: p99 within the bound and the workers busy at most :data:`PROBE_MAX_BUSY` of
        the time. It stops as soon as the p99 must break the bound; its p99 is then None.
        """
        probe_s, probe_queries = self.probe_window()
        schedule = poisson_schedule_ns(qps, probe_s, probe_queries, self.config.seed)
        limit_ns = int(self.latency_bound_ms * 1e6)
        served = self.serve(session, prepared, schedule, clock, abort_over_ns=limit_ns)
        share = served.busy_share(self.concurrency)
        if served.aborted:
            return None, False, share
        p99_ms = float(np.percentile(served.latencies_ns, SERVER_PERCENTILE)) / 1e6
        return p99_ms, p99_ms <= self.latency_bound_ms and share <= PROBE_MAX_BUSY, share

    # -- measured windows ---------------------------------------------------------------
    def window(
        self,
        session: Session,
        prepared: Sequence[Any],
        min_s: float,
        min_queries: int,
        clock: ClockNs = time.perf_counter_ns,
        on_tick: OnTick | None = None,
    ) -> WindowResult:
        if self.target_qps is None:
            raise RuntimeError("ServerDriver.window() before calibrate() settled the QPS")
        qps = self.target_qps
        schedule = poisson_schedule_ns(qps, min_s, min_queries, self.config.seed)
        served = self.serve(session, prepared, schedule, clock, on_tick=on_tick)
        lat = served.latencies_ns
        p99_ms = float(np.percentile(lat, SERVER_PERCENTILE)) / 1e6
        met = p99_ms <= self.latency_bound_ms
        details: dict[str, Any] = {
            "target_qps": qps,
            "scheduled_qps": (len(schedule) - 1) / (schedule[-1] / 1e9) if schedule[-1] else None,
            "completed_qps": len(lat) / (served.duration_ns / 1e9),
            "p99_ms": p99_ms,
            "latency_bound_ms": self.latency_bound_ms,
            "bound_met": met,
            "busy_share": served.busy_share(self.concurrency),
        }
        if not met:
            details["warnings"] = [
                f"server: measured p99 latency {p99_ms:.1f} ms breaks the "
                f"{self.latency_bound_ms:g} ms bound at {qps:.3g} QPS: lower --target-qps, "
                f"raise --latency-bound-ms or --concurrency"
            ]
        return WindowResult(lat, served.duration_ns, len(lat) * self.config.batch, details)

    def serve(
        self,
        session: Session,
        prepared: Sequence[Any],
        schedule_ns: Sequence[int],
        clock: ClockNs = time.perf_counter_ns,
        *,
        abort_over_ns: int | None = None,
        on_tick: OnTick | None = None,
    ) -> _Served:
        """Issue one query per scheduled arrival; latency = completion − scheduled arrival.

        With ``abort_over_ns``, stop as soon as so many queries exceeded it that the p99
        of the whole schedule must too (a search probe needs no more).
        """
        abort_after = (
            over_bound_limit(len(schedule_ns)) if abort_over_ns is not None else len(schedule_ns)
        )
        if self.concurrency == 1:
            return self._serve_inline(
                session, prepared, schedule_ns, clock, abort_over_ns, abort_after, on_tick
            )
        return self._serve_threaded(
            session, prepared, schedule_ns, clock, abort_over_ns, abort_after, on_tick
        )

    def _serve_inline(
        self,
        session: Session,
        prepared: Sequence[Any],
        schedule_ns: Sequence[int],
        clock: ClockNs,
        abort_over_ns: int | None,
        abort_after: int,
        on_tick: OnTick | None,
    ) -> _Served:
        # One worker: the FIFO queue is the schedule itself; a query starts at
        # max(arrival, previous completion), which is what a queue in front of one server does.
        run = session.run
        sleep = self.sleep
        n = len(prepared)
        latencies: list[int] = []
        over = 0
        busy = 0
        start = clock()
        done = start
        for k, offset in enumerate(schedule_ns):
            due = start + offset
            now = clock()
            if now < due:
                sleep((due - now) / 1e9)
                now = clock()
            run(prepared[k % n])
            done = clock()
            busy += done - now
            latencies.append(done - due)
            if abort_over_ns is not None and done - due > abort_over_ns:
                over += 1
                if over >= abort_after:
                    return _Served(latencies, done - start, True, busy)
            if on_tick is not None and not (k + 1) & 63:
                on_tick((done - start) / 1e9)
        return _Served(latencies, done - start, False, busy)

    def _serve_threaded(
        self,
        session: Session,
        prepared: Sequence[Any],
        schedule_ns: Sequence[int],
        clock: ClockNs,
        abort_over_ns: int | None,
        abort_after: int,
        on_tick: OnTick | None,
    ) -> _Served:
        run = session.run
        n = len(prepared)
        fifo: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        lock = threading.Lock()
        latencies: list[int] = []
        last_done = 0
        over = 0
        busy = 0
        aborted = threading.Event()
        start = clock()

        def worker() -> None:
            nonlocal last_done, over, busy
            while True:
                item = fifo.get()
                if item is None:
                    return
                if aborted.is_set():
                    continue  # drain: the probe's answer is known
                k, due = item
                t0 = clock()
                run(prepared[k % n])
                t = clock()
                with lock:
                    busy += t - t0
                    latencies.append(t - due)
                    last_done = max(last_done, t)
                    count = len(latencies)
                    if abort_over_ns is not None and t - due > abort_over_ns:
                        over += 1
                        if over >= abort_after:
                            aborted.set()
                if on_tick is not None and not count & 63:
                    on_tick((t - start) / 1e9)

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="wb-server") as pool:
            futures = [pool.submit(worker) for _ in range(self.concurrency)]
            try:
                for k, offset in enumerate(schedule_ns):
                    if aborted.is_set() or any(f.done() for f in futures):
                        break  # answer known, or a worker died (its error is raised below)
                    due = start + offset
                    now = clock()
                    if now < due:
                        self.sleep((due - now) / 1e9)
                    fifo.put((k, due))
            finally:
                for _ in futures:
                    fifo.put(None)
            for f in futures:
                f.result()
        return _Served(latencies, max(last_done, start) - start, aborted.is_set(), busy)


def driver_for(config: RunConfig) -> ScenarioDriver:
    """The built-in driver of ``config.scenario`` (offline or server)."""
    if config.scenario == "offline":
        return OfflineDriver(config)
    if config.scenario == "server":
        return ServerDriver(config)
    raise ConfigError(
        f"no built-in {config.scenario!r} driver here: use --scenario offline or server"
    )
