"""The built-in offline and server drivers: scheduling on a fake clock, threads on real time."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scenario_fakes import PREPARED, SleepSession, config, fake_session

from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness.protocol import Runner
from wattbench.harness.scenario_drivers import (
    DEFAULT_LATENCY_BOUND_MS,
    PROBE_MAX_BUSY,
    SEARCH_MAX_PROBES,
    SEARCH_REL_TOL,
    OfflineDriver,
    ServerDriver,
    driver_for,
    over_bound_limit,
    poisson_schedule_ns,
)
from wattbench.harness.scenarios import SingleStreamDriver, make_driver

MS = 1_000_000


# -- the Poisson schedule ----------------------------------------------------------------
def test_schedule_is_seeded_and_meets_both_minimums() -> None:
    a = poisson_schedule_ns(50.0, 2.0, 10, seed=3)
    assert a == poisson_schedule_ns(50.0, 2.0, 10, seed=3)
    assert a != poisson_schedule_ns(50.0, 2.0, 10, seed=4)
    assert a[0] == 0 and a[-1] >= 2e9 and a[-2] < 2e9  # stops at the first arrival past min_s
    assert all(x < y for x, y in itertools.pairwise(a))
    few = poisson_schedule_ns(50.0, 0.01, 40, seed=3)
    assert len(few) == 40  # the query minimum rules when the time minimum is short


def test_schedule_has_exponential_gaps_at_the_target_rate() -> None:
    a = np.asarray(poisson_schedule_ns(200.0, 50.0, 1, seed=0), dtype=np.float64) / 1e9
    gaps = np.diff(a)
    assert gaps.mean() == pytest.approx(1 / 200, rel=0.03)
    # exponential: std equals mean; P(gap > mean) = 1/e
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.05)
    assert np.mean(gaps > 1 / 200) == pytest.approx(np.exp(-1), abs=0.02)


def test_schedule_scales_with_the_rate() -> None:
    slow = np.asarray(poisson_schedule_ns(10.0, 0.0, 50, seed=1), dtype=np.float64)
    fast = np.asarray(poisson_schedule_ns(20.0, 0.0, 50, seed=1), dtype=np.float64)
    assert fast == pytest.approx(slow / 2, abs=2)


def test_schedule_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ConfigError, match="--target-qps"):
        poisson_schedule_ns(0.0, 1.0, 1, seed=0)


@pytest.mark.parametrize("n", [1, 2, 5, 37, 100, 101, 250, 1000])
def test_over_bound_limit_is_sufficient_and_tight(n: int) -> None:
    # A bound of 1.0; k latencies just over it, the rest well under it.
    limit = over_bound_limit(n)
    for k in range(n + 1):
        lat = np.array([0.5] * (n - k) + [1.0 + 1e-9] * k)
        if k >= limit:
            assert np.percentile(lat, 99) > 1.0, (n, k)  # the p99 must fail: safe to stop
        elif k == limit - 1:
            assert np.percentile(lat, 99) <= 1.0, (n, k)  # one fewer may still pass


# -- server: scheduling on a fake clock ---------------------------------------------------
def lindley(schedule_ns: list[int], service_ns: int) -> list[int]:
    """Latency from arrival of a FIFO single-server queue with constant service time."""
    out, free_at = [], 0
    for a in schedule_ns:
        start = max(a, free_at)
        free_at = start + service_ns
        out.append(free_at - a)
    return out


def server(clock: FakeClock, **overrides: object) -> ServerDriver:
    return ServerDriver(config(scenario="server", **overrides), sleep=clock.advance)


def test_latency_runs_from_the_scheduled_arrival_so_queueing_counts() -> None:
    clock = FakeClock()
    served = server(clock, target_qps=10).serve(
        fake_session(clock, 0.010), PREPARED, [0, 5 * MS, 30 * MS], clock
    )
    assert served.latencies_ns == [10 * MS, 15 * MS, 10 * MS]
    assert served.duration_ns == 40 * MS and served.busy_ns == 30 * MS
    assert not served.aborted


@pytest.mark.parametrize("qps", [20.0, 90.0, 150.0])
def test_single_worker_is_a_fifo_queue(qps: float) -> None:
    clock = FakeClock()
    schedule = poisson_schedule_ns(qps, 1.0, 10, seed=7)
    served = server(clock, target_qps=qps).serve(
        fake_session(clock, 0.010), PREPARED, schedule, clock
    )
    assert served.latencies_ns == lindley(schedule, 10 * MS)


def test_window_below_capacity_meets_the_bound() -> None:
    clock = FakeClock()
    d = server(clock, target_qps=10.0, latency_bound_ms=50.0)
    session = fake_session(clock, 0.010)
    assert d.calibrate(session, PREPARED, clock)["search"] == []
    assert session.runs == 0  # a given QPS needs no probing
    win = d.window(session, PREPARED, 2.0, 10, clock)
    assert win.queries == len(poisson_schedule_ns(10.0, 2.0, 10, seed=0)) == session.runs
    assert min(win.latencies_ns) == 10 * MS
    assert np.percentile(win.latencies_ns, 50) == 10 * MS  # most arrive to an idle server
    assert win.details["bound_met"] is True and "warnings" not in win.details
    assert win.details["target_qps"] == 10.0
    assert win.details["busy_share"] == pytest.approx(win.queries * 0.010 / (win.duration_ns / 1e9))


def test_window_over_capacity_warns() -> None:
    clock = FakeClock()
    d = server(clock, target_qps=200.0, latency_bound_ms=50.0)
    session = fake_session(clock, 0.010)
    d.calibrate(session, PREPARED, clock)
    win = d.window(session, PREPARED, 1.0, 10, clock)
    assert win.details["bound_met"] is False
    assert win.details["p99_ms"] > 400  # the queue grew for the whole second
    (warning,) = win.details["warnings"]
    assert "breaks the 50 ms bound" in warning and "--target-qps" in warning
    assert win.details["completed_qps"] == pytest.approx(100, rel=0.02)  # capacity, not 200


def test_default_latency_bound() -> None:
    clock = FakeClock()
    details = server(clock, target_qps=5.0).calibrate(fake_session(clock, 0.01), PREPARED, clock)
    assert details["latency_bound_ms"] == DEFAULT_LATENCY_BOUND_MS
    assert details["latency_bound_source"] == "default" and details["qps_source"] == "user"


def test_window_before_calibration_is_a_bug() -> None:
    clock = FakeClock()
    with pytest.raises(RuntimeError, match="calibrate"):
        server(clock).window(fake_session(clock, 0.01), PREPARED, 1.0, 1, clock)


# -- server: the QPS search ----------------------------------------------------------------
def test_search_finds_the_highest_rate_within_the_bound() -> None:
    clock = FakeClock()
    d = server(clock, latency_bound_ms=50.0, duration_s=8.0, min_queries=100)
    session = fake_session(clock, 0.010)  # capacity: 100 QPS
    details = d.calibrate(session, PREPARED, clock)
    search = details["search"]
    qps = details["target_qps"]
    assert d.target_qps == qps and details["qps_source"] == "search"
    assert details["service_ms_single"] == pytest.approx(10.0)
    assert 2 <= len(search) <= SEARCH_MAX_PROBES
    met = [q for q, _, ok in search if ok]
    missed = [q for q, _, ok in search if not ok]
    # The same seeded schedule, compressed, only queues more: met is monotone in QPS.
    assert qps == max(met) < min(missed)
    assert (min(missed) - qps) / min(missed) <= SEARCH_REL_TOL
    assert 50 < qps < 100
    for _q, p99, ok in search:
        if ok:
            assert p99 is not None and p99 <= 50.0
    # The measured window at the found rate meets the bound on this deterministic system.
    win = d.window(session, PREPARED, 2.0, 100, clock)
    assert win.details["bound_met"] is True


def test_probe_fails_when_the_workers_never_idle() -> None:
    # 20 % over capacity: within a generous bound on a short probe, but the queue only grows.
    clock = FakeClock()
    d = server(clock, latency_bound_ms=10_000.0, duration_s=2.0, min_queries=20)
    p99, met, busy = d.probe(fake_session(clock, 0.010), PREPARED, 120.0, clock)
    assert p99 is not None and p99 <= 10_000.0
    assert busy > PROBE_MAX_BUSY and met is False


def test_probe_stops_once_the_p99_must_fail() -> None:
    clock = FakeClock()
    d = server(clock, latency_bound_ms=20.0, duration_s=8.0, min_queries=100)
    session = fake_session(clock, 0.010)
    p99, met, _ = d.probe(session, PREPARED, 500.0, clock)
    planned = len(poisson_schedule_ns(500.0, 2.0, 100, seed=0))
    assert p99 is None and met is False
    assert session.runs < planned / 10  # it stopped long before the schedule's end


def test_search_rejects_a_bound_below_one_query() -> None:
    clock = FakeClock()
    d = server(clock, latency_bound_ms=5.0)
    with pytest.raises(ConfigError, match="raise --latency-bound-ms"):
        d.calibrate(fake_session(clock, 0.010), PREPARED, clock)


# -- offline -------------------------------------------------------------------------------
def test_offline_runs_batches_back_to_back() -> None:
    clock = FakeClock()
    d = OfflineDriver(config(scenario="offline", batch=4))
    session = fake_session(clock, 0.005)
    assert d.calibrate(session, PREPARED, clock) == {
        "concurrency": 1,
        "concurrency_source": "default",
        "batch": 4,
    }
    win = d.window(session, PREPARED, 0.1, 7, clock)
    assert win.queries == 20 and win.samples == 80
    assert set(win.latencies_ns) == {5 * MS}
    assert win.duration_ns == 100 * MS
    assert win.details["samples_per_s"] == pytest.approx(800.0)


def test_offline_workers_overlap_in_the_runtime() -> None:
    one = SleepSession(0.02)
    w1 = OfflineDriver(config(scenario="offline")).window(one, PREPARED, 0.3, 5)
    two = SleepSession(0.02)
    w2 = OfflineDriver(config(scenario="offline", concurrency=2)).window(two, PREPARED, 0.3, 5)
    assert one.max_in_flight == 1 and two.max_in_flight == 2
    rate1 = w1.samples / (w1.duration_ns / 1e9)
    rate2 = w2.samples / (w2.duration_ns / 1e9)
    assert rate2 > 1.6 * rate1
    assert w2.details["concurrency"] == 2 and w2.duration_ns >= 0.3e9
    assert all(lat >= 0.02e9 for lat in w2.latencies_ns)


def test_offline_worker_errors_propagate() -> None:
    d = OfflineDriver(config(scenario="offline", concurrency=2))
    with pytest.raises(RuntimeError, match="exploded"):
        d.window(SleepSession(0.005, fail_after=3), PREPARED, 0.5, 5)


# -- server: threads on real time ----------------------------------------------------------
def test_server_workers_share_one_fifo() -> None:
    schedule = poisson_schedule_ns(60.0, 0.5, 10, seed=2)
    results = {}
    for c in (1, 2):
        session = SleepSession(0.02)
        d = ServerDriver(config(scenario="server", target_qps=60.0, concurrency=c))
        served = d.serve(session, PREPARED, schedule)
        assert len(served.latencies_ns) == len(schedule) == session.runs
        assert min(served.latencies_ns) >= 0.02e9  # from the scheduled arrival
        results[c] = (session.max_in_flight, float(np.mean(served.latencies_ns)))
    assert results[1][0] == 1 and results[2][0] == 2
    assert results[2][1] < results[1][1]  # a second worker drains the queue faster


def test_server_worker_errors_propagate() -> None:
    d = ServerDriver(config(scenario="server", target_qps=100.0, concurrency=2))
    d.calibrate(SleepSession(0.001), PREPARED)
    with pytest.raises(RuntimeError, match="exploded"):
        d.window(SleepSession(0.002, fail_after=3), PREPARED, 0.5, 5)


# -- dispatch and the protocol -------------------------------------------------------------
def test_dispatch() -> None:
    assert isinstance(make_driver(config()), SingleStreamDriver)
    assert isinstance(make_driver(config(scenario="offline")), OfflineDriver)
    assert isinstance(make_driver(config(scenario="server")), ServerDriver)
    with pytest.raises(ConfigError, match="--scenario"):
        driver_for(config())


def run_protocol(tmp_path: Path, **overrides: object) -> tuple[Runner, FakeClock]:
    clock = FakeClock()
    cfg = config(
        duration_s=1.0,
        min_queries=10,
        repeats=2,
        warmup_s=0.01,
        warmup_queries=2,
        idle_s=0.5,
        cooldown_s=0.0,
        e2e_queries=0,
        **overrides,
    )
    runner = Runner(
        cfg,
        FakeSuite(),
        FakeAdapter(clock, 0.010),
        [FakePowerReader(clock, 5.0)],
        ModelCache(tmp_path / "cache"),
        clock_ns=clock,
        sleep=clock.advance,
    )
    return runner, clock


def test_offline_through_the_protocol(tmp_path: Path) -> None:
    runner, _ = run_protocol(tmp_path, scenario="offline", batch=2)
    result = runner.execute()
    assert result.scenario == "offline"
    windows = result.scenario_details.pop("windows")
    assert result.scenario_details == {
        "concurrency": 1,
        "concurrency_source": "default",
        "batch": 2,
    }
    assert [w["trial"] for w in windows] == list(range(len(result.trials)))  # kept per trial
    assert result.throughput_ips == pytest.approx(200.0)  # 2 samples per 10 ms
    assert result.energy[0].inferences_per_joule == pytest.approx(200.0 / 5.0)


def test_server_search_through_the_protocol(tmp_path: Path) -> None:
    runner, clock = run_protocol(tmp_path, scenario="server", latency_bound_ms=50.0)
    runner._driver = ServerDriver(runner.config, sleep=clock.advance)  # fake time throughout
    result = runner.execute()
    assert result.scenario == "server"
    details = result.scenario_details
    assert details["qps_source"] == "search" and details["search"]
    assert 50 < details["target_qps"] < 100
    # the trials run at the found rate: inferences per second track it
    for t in result.trials:
        assert t.throughput_ips == pytest.approx(details["target_qps"], rel=0.35)
