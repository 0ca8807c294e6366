"""EstimatedCpuReader: TDP x utilisation from injected CPU time counters and clock."""

from __future__ import annotations

import importlib.util
from collections import namedtuple

import pytest

from wattbench.core.errors import MeasurementError
from wattbench.core.power import EnergyMethod, EnergyScope, ReaderOptions
from wattbench.power.estimated import (
    FALLBACK_REL_UNCERTAINTY,
    FALLBACK_W_PER_LOGICAL_CPU,
    MODEL_REL_UNCERTAINTY,
    EstimatedCpuReader,
    busy_and_total,
)

CpuTimes = namedtuple(
    "CpuTimes",
    ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"],
)

UNKNOWN_CPU = "Imaginary Quantum CPU 9000 @ 9.99GHz"

# A sampling interval far longer than any test: the background thread never takes
# a sample, so every figure comes from the counters at the window edges only.
NO_SAMPLING = 3600.0


class FakeCpu:
    """psutil-like cumulative CPU time counters and a monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.times = CpuTimes(100.0, 0.0, 50.0, 1000.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        self.now = 1000.0
        self.calls = 0

    def cpu_times(self) -> CpuTimes:
        self.calls += 1
        return self.times

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float, **cpu_seconds: float) -> None:
        self.now += seconds
        fields = self.times._asdict()
        for k, v in cpu_seconds.items():
            fields[k] += v
        self.times = CpuTimes(**fields)


def make_reader(
    cpu: FakeCpu,
    tdp_w: float | None = 100.0,
    cpu_model: str = UNKNOWN_CPU,
    logical_cpus: int = 4,
) -> EstimatedCpuReader:
    return EstimatedCpuReader(
        ReaderOptions(tdp_w=tdp_w, sample_interval_s=NO_SAMPLING),
        cpu_times=cpu.cpu_times,
        clock=cpu.clock,
        cpu_model=cpu_model,
        logical_cpus=logical_cpus,
    )


@pytest.fixture
def cpu() -> FakeCpu:
    return FakeCpu()


def test_energy_is_tdp_times_util_times_duration(cpu: FakeCpu) -> None:
    r = make_reader(cpu, tdp_w=100.0)
    r.start()
    # 4 CPUs for 2 s = 8 CPU-seconds, half of them busy.
    cpu.advance(2.0, user=3.0, system=1.0, idle=4.0)
    reading = r.stop()
    r.close()
    assert reading.valid
    assert reading.invalid_reasons == []
    assert reading.duration_s == 2.0
    assert reading.details["cpu_utilisation"] == 0.5
    assert reading.mean_power_w == 50.0
    assert reading.energy_j == 100.0
    assert reading.uncertainty_j == 100.0 * MODEL_REL_UNCERTAINTY
    assert reading.peak_power_w == 50.0
    assert reading.samples == 0
    assert reading.method is EnergyMethod.ESTIMATED
    assert reading.scope is EnergyScope.CHIP
    assert UNKNOWN_CPU in reading.component


def test_full_utilisation_is_clamped_to_tdp(cpu: FakeCpu) -> None:
    r = make_reader(cpu, tdp_w=30.0)
    r.start()
    cpu.advance(1.0, user=4.0)
    reading = r.stop()
    assert reading.details["cpu_utilisation"] == 1.0
    assert reading.energy_j == 30.0


def test_tdp_w_option_wins_over_the_table(cpu: FakeCpu) -> None:
    # The i7-8650U is in codecarbon's table at 15 W; --tdp-w must still win.
    r = make_reader(cpu, tdp_w=42.0, cpu_model="Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    assert r.tdp_w == 42.0
    assert r.tdp_source == "user (--tdp-w)"
    assert not r.uses_fallback
    assert r.rel_uncertainty == MODEL_REL_UNCERTAINTY
    r.start()
    cpu.advance(1.0, user=1.0, idle=3.0)
    reading = r.stop()
    assert reading.energy_j == pytest.approx(42.0 * 0.25 * 1.0)
    assert reading.details["tdp_source"] == "user (--tdp-w)"


@pytest.mark.skipif(
    importlib.util.find_spec("codecarbon") is None,
    reason="codecarbon not installed: its cpu_power.csv TDP table is unavailable",
)
def test_tdp_from_the_table_when_cpu_is_known(cpu: FakeCpu) -> None:
    r = make_reader(cpu, tdp_w=None, cpu_model="Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    assert r.tdp_w == 15.0
    assert "cpu_power.csv" in r.tdp_source
    assert not r.uses_fallback
    assert r.rel_uncertainty == MODEL_REL_UNCERTAINTY


def test_unknown_cpu_uses_labelled_fallback(cpu: FakeCpu) -> None:
    r = make_reader(cpu, tdp_w=None, cpu_model=UNKNOWN_CPU, logical_cpus=4)
    assert r.uses_fallback
    assert r.tdp_source.startswith("fallback")
    assert UNKNOWN_CPU in r.tdp_source
    assert "--tdp-w" in r.tdp_source
    assert r.tdp_w == FALLBACK_W_PER_LOGICAL_CPU * 4
    assert r.rel_uncertainty == FALLBACK_REL_UNCERTAINTY == 1.0
    info = r.info()
    assert info.details["tdp_source"] == r.tdp_source
    assert info.details["relative_uncertainty"] == 1.0

    r.start()
    cpu.advance(2.0, user=4.0, idle=4.0)
    reading = r.stop()
    assert reading.valid
    assert reading.energy_j == pytest.approx(20.0 * 0.5 * 2.0)
    assert reading.uncertainty_j == pytest.approx(reading.energy_j)  # 100%
    assert reading.details["tdp_source"].startswith("fallback")


def test_counters_that_do_not_advance_give_an_invalid_reading(cpu: FakeCpu) -> None:
    r = make_reader(cpu)
    r.start()
    cpu.advance(0.001)  # time passes, the kernel counters do not tick
    reading = r.stop()
    assert not reading.valid
    assert reading.invalid_reasons
    assert any("did not advance" in reason for reason in reading.invalid_reasons)
    # never a silently valid 0 J
    assert not (reading.valid and reading.energy_j == 0.0)


def test_zero_duration_window_raises(cpu: FakeCpu) -> None:
    r = make_reader(cpu)
    r.start()
    cpu.advance(0.0, user=1.0, idle=1.0)
    with pytest.raises(MeasurementError, match="no duration"):
        r.stop()
    # the reader is usable again afterwards
    r.start()
    cpu.advance(1.0, user=1.0, idle=1.0)
    assert r.stop().valid


def test_steal_and_iowait_are_not_busy(cpu: FakeCpu) -> None:
    r = make_reader(cpu, tdp_w=100.0)
    r.start()
    cpu.advance(2.0, user=2.0, steal=2.0, iowait=2.0, idle=2.0)
    reading = r.stop()
    assert reading.details["cpu_utilisation"] == 0.25
    assert reading.energy_j == 100.0 * 0.25 * 2.0


def test_irq_softirq_nice_count_as_busy(cpu: FakeCpu) -> None:
    r = make_reader(cpu, tdp_w=100.0)
    r.start()
    cpu.advance(1.0, nice=1.0, irq=1.0, softirq=1.0, idle=1.0)
    reading = r.stop()
    assert reading.details["cpu_utilisation"] == 0.75


def test_guest_time_is_counted_once_as_busy(cpu: FakeCpu) -> None:
    # Linux reports guest time inside user (and guest_nice inside nice).
    before = cpu.times
    cpu.advance(1.0, user=4.0, guest=2.0, idle=4.0)
    busy0, total0 = busy_and_total(before)
    busy1, total1 = busy_and_total(cpu.times)
    assert total1 - total0 == 8.0
    assert busy1 - busy0 == 4.0  # user (which includes the guest's 2 s) is busy


def test_start_twice_raises(cpu: FakeCpu) -> None:
    r = make_reader(cpu)
    r.start()
    try:
        with pytest.raises(MeasurementError, match="start"):
            r.start()
    finally:
        r.close()


def test_stop_without_start_raises(cpu: FakeCpu) -> None:
    r = make_reader(cpu)
    with pytest.raises(MeasurementError, match="without start"):
        r.stop()


def test_stop_twice_raises(cpu: FakeCpu) -> None:
    r = make_reader(cpu)
    r.start()
    cpu.advance(1.0, user=1.0, idle=1.0)
    r.stop()
    with pytest.raises(MeasurementError):
        r.stop()


def test_method_is_estimated(cpu: FakeCpu) -> None:
    r = make_reader(cpu)
    assert EstimatedCpuReader.method is EnergyMethod.ESTIMATED
    assert EstimatedCpuReader.method.value == "estimated"
    info = r.info()
    assert info.method is EnergyMethod.ESTIMATED
    assert info.scope is EnergyScope.CHIP
    assert info.details["tdp_w"] == 100.0
    assert EstimatedCpuReader.is_available(ReaderOptions()).available


def test_close_stops_a_running_window(cpu: FakeCpu) -> None:
    r = make_reader(cpu)
    r.start()
    r.close()
    # after close the reader can open a fresh window
    r.start()
    cpu.advance(1.0, user=2.0, idle=2.0)
    assert r.stop().energy_j == pytest.approx(100.0 * 0.5)


def test_background_samples_build_a_trace(cpu: FakeCpu) -> None:
    """With a short interval the sampler records (t, W) points from counter deltas."""
    import threading

    sampled = threading.Event()
    counts = {"n": 0}
    base = cpu.cpu_times

    def cpu_times() -> CpuTimes:
        counts["n"] += 1
        if counts["n"] >= 2:
            # every background sample sees 1 more busy and 1 more idle CPU-second
            cpu.advance(0.5, user=1.0, idle=1.0)
            if counts["n"] >= 4:
                sampled.set()
        return base()

    r = EstimatedCpuReader(
        ReaderOptions(tdp_w=80.0, sample_interval_s=0.001),
        cpu_times=cpu_times,
        clock=cpu.clock,
        cpu_model=UNKNOWN_CPU,
        logical_cpus=2,
    )
    r.start()
    assert sampled.wait(5.0)
    reading = r.stop()
    assert reading.valid
    assert reading.samples >= 2
    assert reading.trace
    assert all(w == pytest.approx(40.0) for _, w in reading.trace)
    assert reading.peak_power_w == pytest.approx(40.0)
    assert reading.details["cpu_utilisation"] == pytest.approx(0.5)
