"""Energy accounting against traces with known integrals, and the PolledReader base."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import ClassVar

import pytest

from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, MeasurementError
from wattbench.core.power import (
    EnergyMethod,
    EnergyScope,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.core.validation import missing_uncertainty
from wattbench.power.accounting import (
    Sample,
    counter_energy,
    downsample,
    integrate_power,
    longest_constant_run_s,
    uncertainty_j,
)
from wattbench.power.polled import PolledReader, SensorAccuracy

REL = 1e-9  # float rounding only: these integrals are exact by construction


def sampled(
    fn: Callable[[float], float], t0: float, t1: float, rate_hz: float
) -> list[tuple[float, float]]:
    """``fn`` sampled at ``rate_hz`` from ``t0`` to ``t1`` inclusive."""
    n = round((t1 - t0) * rate_hz)
    return [(t0 + k / rate_hz, float(fn(t0 + k / rate_hz))) for k in range(n + 1)]


def ramp_w(t: float) -> float:
    return 2.0 + 3.0 * t


def ramp_j(a: float, b: float) -> float:
    return 2.0 * (b - a) + 1.5 * (b * b - a * a)


# --- integrate_power ---------------------------------------------------------


def test_constant_power_integrates_to_p_times_t() -> None:
    samples = sampled(lambda t: 25.0, 0.0, 10.0, 10)
    integ = integrate_power(samples, 1.03, 8.97, max_gap_s=0.5)
    assert integ.valid
    assert integ.energy_j == pytest.approx(25.0 * 7.94, rel=REL)
    assert integ.mean_power_w == pytest.approx(25.0, rel=REL)
    assert integ.duration_s == pytest.approx(7.94, rel=REL)


def test_all_samples_identical_is_not_zero_joules() -> None:
    # zeus keeps only samples whose value changed: one sample, 0 J. We keep them all.
    samples = [(t / 100, 3.3) for t in range(0, 501)]
    integ = integrate_power(samples, 0.0, 5.0, max_gap_s=0.05)
    assert integ.energy_j == pytest.approx(16.5, rel=REL)
    assert integ.samples_in_window == 501
    assert integ.integration_error_j == 0.0
    assert integ.stuck_s == pytest.approx(5.0)
    assert integ.valid  # stuck detection is off by default


def test_ramp_is_exact_with_unaligned_window_edges() -> None:
    samples = sampled(ramp_w, 0.0, 6.0, 10)
    integ = integrate_power(samples, 0.37, 4.81, max_gap_s=0.5)
    assert integ.energy_j == pytest.approx(ramp_j(0.37, 4.81), rel=REL)
    assert integ.samples_in_window == 45  # 0.4 … 4.8
    assert integ.peak_power_w == pytest.approx(ramp_w(4.81), rel=REL)


def test_ramp_with_irregular_sample_times_is_exact() -> None:
    times = [0.0, 0.07, 0.31, 0.33, 0.9, 1.4, 1.41, 2.2, 2.9, 3.0]
    samples = [(t, ramp_w(t)) for t in reversed(times)]  # any order
    integ = integrate_power(samples, 0.05, 2.95, max_gap_s=1.0)
    assert integ.energy_j == pytest.approx(ramp_j(0.05, 2.95), rel=REL)


def test_window_between_two_samples_interpolates_both_edges() -> None:
    samples = [(10.0, ramp_w(10.0)), (11.0, ramp_w(11.0))]
    integ = integrate_power(samples, 10.2, 10.3, max_gap_s=2.0)
    assert integ.valid
    assert integ.samples_in_window == 0
    assert integ.energy_j == pytest.approx(ramp_j(10.2, 10.3), rel=REL)
    assert integ.sample_rate_hz == pytest.approx(1.0)
    assert integ.max_gap_s == pytest.approx(1.0)
    assert [t for t, _ in integ.trace] == pytest.approx([0.0, 0.1])


def test_window_edges_on_samples() -> None:
    samples = sampled(ramp_w, 0.0, 2.0, 4)
    integ = integrate_power(samples, 0.5, 1.5, max_gap_s=0.3)
    assert integ.energy_j == pytest.approx(ramp_j(0.5, 1.5), rel=REL)
    assert integ.samples_in_window == 5


def test_step_lies_within_the_integration_error_bound() -> None:
    # 10 W then 40 W, stepping somewhere between the samples at 1 s and 2 s.
    samples = [(0.0, 10.0), (1.0, 10.0), (2.0, 40.0), (3.0, 40.0)]
    integ = integrate_power(samples, 0.0, 3.0, max_gap_s=1.5)
    assert integ.energy_j == pytest.approx(75.0, rel=REL)
    assert integ.integration_error_j == pytest.approx(15.0, rel=REL)
    for t_step in (1.0, 1.25, 1.5, 2.0):
        true_j = 10.0 * t_step + 40.0 * (3.0 - t_step)
        assert abs(integ.energy_j - true_j) <= integ.integration_error_j + 1e-9


def test_step_on_a_sample_grid_is_close() -> None:
    # Step at 5.05 s sampled at 10 Hz: the trapezoid is off by at most 30 W x 0.1 s / 2.
    samples = sampled(lambda t: 10.0 if t < 5.05 else 40.0, 0.0, 10.0, 10)
    integ = integrate_power(samples, 0.0, 10.0, max_gap_s=0.5)
    true_j = 10.0 * 5.05 + 40.0 * 4.95
    assert abs(integ.energy_j - true_j) <= 1.5 + 1e-9
    assert integ.integration_error_j == pytest.approx(1.5, rel=1e-6)


def test_sine_error_is_within_bound_and_small() -> None:
    def fn(t: float) -> float:
        return 20.0 + 10.0 * math.sin(2 * math.pi * 0.5 * t)

    integ = integrate_power(sampled(fn, 0.0, 12.0, 100), 0.123, 10.987, max_gap_s=0.05)

    def exact(t: float) -> float:
        return 20.0 * t - 10.0 / math.pi * math.cos(math.pi * t)

    true_j = exact(10.987) - exact(0.123)
    assert abs(integ.energy_j - true_j) <= integ.integration_error_j
    assert abs(integ.energy_j / true_j - 1) < 1e-4


def test_gap_longer_than_limit_is_invalid_with_reason() -> None:
    samples = [s for s in sampled(ramp_w, 0.0, 10.0, 10) if not 3.0 < s[0] < 4.05]
    integ = integrate_power(samples, 0.5, 9.5, max_gap_s=0.5)
    assert not integ.valid
    assert integ.max_gap_s == pytest.approx(1.1)
    assert "gap" in integ.reasons[0]
    assert "sample faster" in integ.reasons[0]
    # The linear join across the gap is still exact for a ramp: a gap is not zeros.
    assert integ.energy_j == pytest.approx(ramp_j(0.5, 9.5), rel=REL)


def test_gap_within_limit_is_valid() -> None:
    samples = [s for s in sampled(ramp_w, 0.0, 10.0, 10) if not 3.0 < s[0] < 3.25]
    integ = integrate_power(samples, 0.5, 9.5, max_gap_s=0.5)
    assert integ.valid
    assert integ.max_gap_s == pytest.approx(0.3)


@pytest.mark.parametrize("bad", [None, math.nan])
def test_missing_readings_are_gaps_not_zeros(bad: float | None) -> None:
    samples: list[Sample] = list(sampled(ramp_w, 0.0, 4.0, 10))
    for i in (11, 12, 25):
        samples[i] = (samples[i][0], bad)
    integ = integrate_power(samples, 0.0, 4.0, max_gap_s=0.5)
    assert integ.valid
    assert integ.missing == 3
    assert integ.energy_j == pytest.approx(ramp_j(0.0, 4.0), rel=REL)
    assert integ.samples_in_window == 41 - 3


def test_many_missing_readings_make_a_gap() -> None:
    samples = [(t, None if 1.0 < t < 3.0 else 5.0) for t, _ in sampled(ramp_w, 0.0, 4.0, 10)]
    integ = integrate_power(samples, 0.0, 4.0, max_gap_s=0.5)
    assert not integ.valid
    assert "19 readings failed" in integ.reasons[0]
    assert integ.energy_j == pytest.approx(20.0, rel=REL)


def test_all_readings_missing_has_no_energy() -> None:
    integ = integrate_power([(0.0, None), (1.0, math.nan)], 0.0, 1.0, max_gap_s=0.5)
    assert not integ.has_energy
    assert not integ.valid
    assert "failed" in integ.reasons[0]
    integ = integrate_power([], 0.0, 1.0, max_gap_s=0.5)
    assert not integ.has_energy
    assert integ.reasons == ["no power samples cover the window"]


def test_samples_on_one_side_only_are_held_and_count_as_a_gap() -> None:
    integ = integrate_power([(0.0, 4.0), (0.1, 4.0)], 0.2, 1.2, max_gap_s=0.5)
    assert integ.energy_j == pytest.approx(4.0, rel=REL)
    assert integ.max_gap_s == pytest.approx(1.1)
    assert not integ.valid
    integ = integrate_power([(1.0, 4.0), (1.3, 4.0)], 0.9, 1.2, max_gap_s=0.5)
    assert integ.valid
    assert integ.max_gap_s == pytest.approx(0.3)


def test_stuck_sensor_is_invalid_when_enabled() -> None:
    samples = sampled(lambda t: 7.25, 0.0, 10.0, 10)
    assert integrate_power(samples, 0.0, 10.0, max_gap_s=0.5).valid
    integ = integrate_power(samples, 0.0, 10.0, max_gap_s=0.5, stuck_after_s=2.0)
    assert not integ.valid
    assert "stuck at 7.25 W" in integ.reasons[0]
    # A sensor that moves is not stuck, even if values repeat briefly.
    moving = [(t, round(p)) for t, p in sampled(ramp_w, 0.0, 10.0, 10)]
    integ = integrate_power(moving, 0.0, 10.0, max_gap_s=0.5, stuck_after_s=2.0)
    assert integ.valid
    assert 0 < integ.stuck_s < 2.0


def test_achieved_rate_and_max_gap_are_recorded() -> None:
    times = [0.0, 0.01, 0.02, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1]
    integ = integrate_power([(t, 1.0) for t in times], 0.0, 0.1, max_gap_s=1.0)
    assert integ.sample_rate_hz == pytest.approx(80.0)
    assert integ.max_gap_s == pytest.approx(0.03)


def test_negative_energy_is_a_reason() -> None:
    integ = integrate_power([(0.0, -1.0), (1.0, -1.0)], 0.0, 1.0, max_gap_s=2.0)
    assert integ.energy_j == pytest.approx(-1.0)
    assert any("negative" in r for r in integ.reasons)


def test_trace_is_downsampled_keeping_the_ends() -> None:
    samples = sampled(ramp_w, 0.0, 100.0, 100)
    integ = integrate_power(samples, 0.0, 100.0, max_gap_s=0.5, max_trace_points=50)
    assert len(integ.trace) == 50
    assert integ.trace[0] == (0.0, pytest.approx(2.0))
    assert integ.trace[-1] == (pytest.approx(100.0), pytest.approx(302.0))
    assert downsample([(0.0, 1.0)], 5) == [(0.0, 1.0)]


@pytest.mark.parametrize(("t0", "t1"), [(1.0, 1.0), (2.0, 1.0), (0.0, math.inf)])
def test_bad_window_raises(t0: float, t1: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        integrate_power([(0.0, 1.0)], t0, t1, max_gap_s=1.0)


def test_longest_constant_run() -> None:
    assert longest_constant_run_s([]) == (0.0, None)
    run = [(0.0, 1.0), (1.0, 2.0), (2.0, 2.0), (4.5, 2.0), (5.0, 1.0), (6.0, 1.0)]
    assert longest_constant_run_s(run) == (3.5, 2.0)


# --- counter_energy ----------------------------------------------------------


def test_counter_without_wrap() -> None:
    energy, wraps, reasons = counter_energy([(0.0, 100.0), (1.0, 150.0), (2.0, 400.0)], 1000.0)
    assert (energy, wraps, reasons) == (300.0, 0, [])


def test_counter_one_wrap() -> None:
    energy, wraps, reasons = counter_energy([(0.0, 900.0), (1.0, 980.0), (2.0, 30.0)], 1000.0)
    assert (energy, wraps, reasons) == (130.0, 1, [])


def test_counter_several_wraps_in_one_window() -> None:
    # 350 units a read on a counter of range 1000: wraps after reads 3, 6 and 9.
    values = [(700.0 + 350.0 * k) % 1000.0 for k in range(10)]
    reads: list[Sample] = [(float(k), v) for k, v in enumerate(values)]
    energy, wraps, reasons = counter_energy(reads, 1000.0)
    assert energy == pytest.approx(350.0 * 9)
    assert wraps == 3
    assert reasons == []


def test_counter_decrease_with_unknown_range_is_a_reason() -> None:
    energy, wraps, reasons = counter_energy([(0.0, 500.0), (1.0, 600.0), (2.0, 10.0)], None)
    assert energy == 100.0
    assert wraps == 0
    assert "decreased 1 time(s)" in reasons[0]
    assert "unknown" in reasons[0]


def test_counter_failed_edge_read_is_a_reason_middle_read_is_not() -> None:
    energy, _, reasons = counter_energy([(0.0, 5.0), (1.0, None), (2.0, 9.0)], 100.0)
    assert (energy, reasons) == (4.0, [])
    energy, _, reasons = counter_energy([(0.0, None), (1.0, 5.0), (2.0, 9.0)], 100.0)
    assert energy == 4.0
    assert reasons == ["energy counter could not be read at the window start"]
    _, _, reasons = counter_energy([(0.0, 1.0), (1.0, 5.0), (2.0, math.nan)], 100.0)
    assert reasons == ["energy counter could not be read at the window end"]


def test_counter_needs_two_reads() -> None:
    energy, _, reasons = counter_energy([(0.0, 5.0), (1.0, None)], 100.0)
    assert math.isnan(energy)
    assert "fewer than two" in reasons[-1]


def test_counter_reads_too_far_apart_may_miss_a_wrap() -> None:
    _, _, reasons = counter_energy([(0.0, 1.0), (10.0, 2.0)], 100.0, max_interval_s=5.0)
    assert "10 s apart" in reasons[0]


def test_counter_reads_are_sorted() -> None:
    energy, wraps, _ = counter_energy([(2.0, 30.0), (0.0, 900.0), (1.0, 980.0)], 1000.0)
    assert (energy, wraps) == (130.0, 1)


# --- uncertainty -------------------------------------------------------------


def test_uncertainty_formula() -> None:
    # (2 % x 10 W + 0.05 W + 0.01 W / 2) x 100 s + 3 J = 25.5 + 3
    u = uncertainty_j(
        100.0,
        10.0,
        rel_accuracy=0.02,
        abs_accuracy_w=0.05,
        resolution_w=0.01,
        integration_error_j=3.0,
    )
    assert u == pytest.approx(28.5)
    assert uncertainty_j(100.0, 10.0) == 0.0
    with pytest.raises(ValueError):
        uncertainty_j(1.0, 1.0, rel_accuracy=-0.1)


# --- PolledReader ------------------------------------------------------------


class ManualClock:
    """A monotonic clock that moves only when told (optionally during each read)."""

    def __init__(self, t_s: float = 100.0) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s

    def advance(self, seconds: float) -> None:
        self.t_s += seconds


NO_BACKGROUND = 3600.0  # the sampler thread never fires during a test


class ScriptedReader(PolledReader):
    """Power is a function of the fake clock; reads can fail on demand."""

    name: ClassVar[str] = "fake"
    method: ClassVar[EnergyMethod] = EnergyMethod.POLLED
    # an exact sensor: the uncertainty is the integration bound alone
    DEFAULT_ACCURACY: ClassVar[SensorAccuracy | None] = SensorAccuracy(source="test: exact")

    def __init__(
        self,
        clock: ManualClock,
        power: Callable[[float], float] = ramp_w,
        options: ReaderOptions | None = None,
        read_s: float = 0.0,
    ) -> None:
        super().__init__(options or ReaderOptions(sample_interval_s=NO_BACKGROUND), clock=clock)
        self.fake_clock = clock
        self.power = power
        self.read_s = read_s
        self.fail: Exception | None = None
        self.reads = 0

    @classmethod
    def is_available(cls, options: ReaderOptions) -> Availability:
        return Availability.yes()

    def info(self) -> ReaderInfo:
        return ReaderInfo(
            name=self.name, method=self.method, scope=EnergyScope.CHIP, component="fake rail"
        )

    def read_power_w(self) -> float | None:
        self.reads += 1
        # A read that takes read_s: power is sampled in its middle.
        self.fake_clock.advance(self.read_s / 2)
        t = self.fake_clock()
        self.fake_clock.advance(self.read_s / 2)
        if self.fail is not None:
            raise self.fail
        return float(self.power(t))


class UnratedReader(ScriptedReader):
    """A reader whose author forgot the sensor's accuracy."""

    DEFAULT_ACCURACY: ClassVar[SensorAccuracy | None] = None


def test_polled_reader_integrates_with_interpolated_edges() -> None:
    clock = ManualClock(0.0)
    r = UnratedReader(clock, read_s=0.02)
    r.start()  # reads over [0, 0.02]: sample at 0.01 W(0.01); window opens at 0.02
    clock.advance(0.48)
    r.sample_now()  # [0.5, 0.52] -> t = 0.51
    clock.advance(0.5)
    r.sample_now()  # t = 1.03
    clock.advance(0.3)
    reading = r.stop()  # window closes at 1.34; closing sample at 1.35
    assert reading.duration_s == pytest.approx(1.32)
    assert reading.energy_j == pytest.approx(ramp_j(0.02, 1.34), rel=REL)
    assert reading.samples == 2
    assert reading.method is EnergyMethod.POLLED
    assert reading.details["t_start_s"] == pytest.approx(0.02)
    assert reading.details["failed_reads"] == 0
    # No DEFAULT_ACCURACY and no accuracy_* option: no uncertainty, so not a valid
    # measurement; the reason names the reader and the remedy.
    assert reading.uncertainty_j is None
    assert not reading.valid
    assert reading.invalid_reasons == [missing_uncertainty(r.name)]
    assert "accuracy_pct" in reading.invalid_reasons[0]


def test_polled_reader_with_accuracy_is_valid_with_an_uncertainty() -> None:
    clock = ManualClock(0.0)
    r = ScriptedReader(clock, power=lambda t: 5.0)
    r.start()
    clock.advance(1.0)
    reading = r.stop()
    assert reading.valid and reading.invalid_reasons == []
    assert reading.uncertainty_j == 0.0  # exact sensor, constant power: nothing to bound
    opts = ReaderOptions(sample_interval_s=NO_BACKGROUND, params={"fake.accuracy_pct": "2"})
    r = UnratedReader(clock, power=lambda t: 5.0, options=opts)
    r.start()
    clock.advance(1.0)
    reading = r.stop()
    assert reading.valid  # the option supplies the accuracy the class lacks
    assert reading.uncertainty_j == pytest.approx(0.02 * 5.0 * 1.0)


def test_polled_reader_failed_read_is_a_gap() -> None:
    clock = ManualClock()
    r = ScriptedReader(clock, power=lambda t: 6.0)
    r.start()
    clock.advance(0.1)
    r.fail = OSError(5, "Input/output error")
    r.sample_now()
    r.fail = None
    clock.advance(0.1)
    reading = r.stop()
    assert reading.energy_j == pytest.approx(6.0 * 0.2, rel=REL)  # not 6 W x 0.1 s
    assert reading.details["missing_samples"] == 1
    assert reading.details["failed_reads"] == 1
    assert "Input/output error" in reading.details["first_failure"]


def test_polled_reader_with_no_readable_sample_raises() -> None:
    clock = ManualClock()
    r = ScriptedReader(clock)
    r.fail = ValueError("invalid literal for int() with base 10: ''")
    r.start()
    clock.advance(1.0)
    with pytest.raises(MeasurementError, match=r"fake reader: all 2 power readings .*2 failed"):
        r.stop()


def test_polled_reader_gap_limit_follows_sample_interval() -> None:
    clock = ManualClock()
    opts = ReaderOptions(sample_interval_s=NO_BACKGROUND, params={"fake.max_gap_s": "0.5"})
    r = ScriptedReader(clock, options=opts)
    r.start()
    clock.advance(1.0)
    reading = r.stop()
    assert not reading.valid
    assert reading.details["max_gap_limit_s"] == 0.5
    assert reading.energy_j == pytest.approx(ramp_j(100.0, 101.0), rel=REL)


def test_polled_reader_stuck_option() -> None:
    clock = ManualClock()
    opts = ReaderOptions(sample_interval_s=NO_BACKGROUND, params={"fake.stuck_after_s": "1"})
    r = ScriptedReader(clock, power=lambda t: 3.0, options=opts)
    r.start()
    for _ in range(4):
        clock.advance(0.5)
        r.sample_now()
    reading = r.stop()
    assert not reading.valid
    assert "stuck" in reading.invalid_reasons[0]
    assert reading.energy_j == pytest.approx(6.0, rel=REL)


def test_polled_reader_uncertainty_adds_sensor_and_integration_terms() -> None:
    clock = ManualClock(0.0)
    opts = ReaderOptions(
        sample_interval_s=NO_BACKGROUND,
        params={"fake.accuracy_pct": "1", "fake.accuracy_w": "0.1"},
    )
    r = ScriptedReader(clock, options=opts)
    r.start()
    clock.advance(2.0)
    reading = r.stop()
    # ramp 2 -> 8 W over 2 s: E = 10 J; sensor (1 % x 5 W + 0.1 W) x 2 s = 0.3 J;
    # integration bound |8 - 2| x 2 / 2 = 6 J.
    assert reading.energy_j == pytest.approx(10.0)
    assert reading.uncertainty_j == pytest.approx(0.3 + 6.0)


def test_polled_reader_bad_option_fails_at_construction() -> None:
    opts = ReaderOptions(params={"fake.max_gap_s": "soon"})
    with pytest.raises(ConfigError, match=r"fake\.max_gap_s"):
        ScriptedReader(ManualClock(), options=opts)


def test_polled_reader_start_stop_misuse() -> None:
    clock = ManualClock()
    r = ScriptedReader(clock)
    with pytest.raises(MeasurementError, match="without start"):
        r.stop()
    r.start()
    with pytest.raises(MeasurementError, match="twice"):
        r.start()
    with pytest.raises(MeasurementError, match="no duration"):
        r.stop()  # the manual clock did not move
    r.start()  # usable again after a failed stop
    clock.advance(1.0)
    assert r.stop().valid
    r.close()


def test_polled_reader_background_thread_samples() -> None:
    r = ScriptedReader(ManualClock(), options=ReaderOptions(sample_interval_s=0.001))
    seen = threading.Event()
    real_read = r.read_power_w

    def read() -> float | None:
        if r.reads >= 5:
            seen.set()
        return real_read()

    r.read_power_w = read  # type: ignore[method-assign]
    r.start()
    assert seen.wait(5.0)
    r.fake_clock.advance(1.0)
    reading = r.stop()
    assert reading.samples >= 5
    r.close()


def test_polled_reader_bug_in_thread_surfaces_at_stop() -> None:
    r = ScriptedReader(ManualClock(), options=ReaderOptions(sample_interval_s=0.001))
    hit = threading.Event()

    def read() -> float | None:
        if threading.current_thread() is not threading.main_thread():
            hit.set()
            raise KeyError("rail")  # a bug, not a failed read: must not vanish with the thread
        return 1.0

    r.read_power_w = read  # type: ignore[method-assign]
    r.start()
    assert hit.wait(5.0)
    r.fake_clock.advance(1.0)
    with pytest.raises(KeyError):
        r.stop()


def test_counter_staleness_bounds_the_update_period_from_both_sides() -> None:
    from wattbench.power.accounting import counter_staleness_s

    # Reads every 0.02 s of a counter that moves every 0.1 s: held 0.08 s, bound 0.1 s.
    reads = [(k * 0.02, float(k // 5)) for k in range(20)]
    assert counter_staleness_s(reads) == pytest.approx(0.08 + 0.02)
    # Reads slower than the updates see it move every time: the read interval bounds it.
    assert counter_staleness_s([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]) == pytest.approx(1.0)
    assert counter_staleness_s([(0.0, 1.0)]) == 0.0
