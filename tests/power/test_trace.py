"""TraceReplayReader: external meter traces aligned to the run by wall-clock time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from wattbench.core.errors import ConfigError, MeasurementError
from wattbench.core.power import EnergyMethod, EnergyReading, EnergyScope, ReaderOptions
from wattbench.power.trace import TraceReplayReader, load_trace

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Clocks:
    """A wall clock and a monotonic clock that move together unless told otherwise."""

    def __init__(self, wall_s: float = EPOCH + 10.25) -> None:
        self.wall_s = wall_s
        self.mono_s = 500.0
        self.slept: list[float] = []

    def wall(self) -> float:
        return self.wall_s

    def mono(self) -> float:
        return self.mono_s

    def advance(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_s += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def ramp_w(t_rel: float) -> float:
    return 10.0 + 2.0 * t_rel


def ramp_j(a: float, b: float) -> float:
    return 10.0 * (b - a) + (b * b - a * a)


def write_csv(path: Path, rows: list[tuple[float, float | None]], header: str) -> Path:
    lines = [header] + [f"{t!r},{'' if p is None else repr(p)}" for t, p in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def ramp_rows(
    t0_rel: float = 0.0, t1_rel: float = 60.0, rate_hz: float = 1.0
) -> list[tuple[float, float | None]]:
    n = round((t1_rel - t0_rel) * rate_hz)
    return [(EPOCH + t0_rel + k / rate_hz, ramp_w(t0_rel + k / rate_hz)) for k in range(n + 1)]


def make(path: Path, clocks: Clocks, **params: str) -> TraceReplayReader:
    options = ReaderOptions(
        params={"trace.path": str(path)} | {f"trace.{k}": v for k, v in params.items()}
    )
    return TraceReplayReader(options, wall_clock=clocks.wall, clock=clocks.mono, sleep=clocks.sleep)


def window(reader: TraceReplayReader, clocks: Clocks, seconds: float) -> EnergyReading:
    reader.start()
    clocks.advance(seconds)
    return reader.stop()


@pytest.mark.parametrize("header", ["timestamp,watts", "time_s,power_w", "Timestamp, Watts"])
def test_csv_ramp_over_unaligned_wall_window_is_exact(tmp_path: Path, header: str) -> None:
    path = write_csv(tmp_path / "meter.csv", ramp_rows(), header)
    clocks = Clocks()  # window opens 10.25 s into the trace
    reading = window(make(path, clocks), clocks, 20.5)
    assert reading.valid, reading.invalid_reasons
    assert reading.energy_j == pytest.approx(ramp_j(10.25, 30.75), rel=1e-9)
    assert reading.duration_s == pytest.approx(20.5)
    assert reading.method is EnergyMethod.EXTERNAL
    assert reading.scope is EnergyScope.WALL
    assert reading.samples == 20
    assert reading.sample_rate_hz == pytest.approx(1.0)
    # No trace.accuracy_*: the ±5 % convention for an unknown meter, plus the trapezoid bound.
    assert reading.uncertainty_j == pytest.approx(
        0.05 * reading.energy_j + reading.details["integration_error_j"]
    )
    assert "convention" in reading.details["sensor_accuracy"]["source"]


@pytest.mark.parametrize(("t_key", "w_key"), [("t", "w"), ("timestamp", "watts")])
def test_json_trace(tmp_path: Path, t_key: str, w_key: str) -> None:
    path = tmp_path / "joulescope.json"
    path.write_text(json.dumps([{t_key: t, w_key: p} for t, p in ramp_rows()]))
    clocks = Clocks()
    reading = window(make(path, clocks), clocks, 5.0)
    assert reading.energy_j == pytest.approx(ramp_j(10.25, 15.25), rel=1e-9)


def test_offset_shifts_the_trace(tmp_path: Path) -> None:
    # The meter's clock is 100 s behind the host's.
    rows = [(t - 100.0, p) for t, p in ramp_rows()]
    path = write_csv(tmp_path / "m.csv", rows, "timestamp,watts")
    clocks = Clocks()
    reading = window(make(path, clocks, offset_s="100"), clocks, 3.0)
    assert reading.valid
    assert reading.energy_j == pytest.approx(ramp_j(10.25, 13.25), rel=1e-9)


def test_relative_timestamps_get_a_hint(tmp_path: Path) -> None:
    rows = [(t - EPOCH, p) for t, p in ramp_rows()]
    path = write_csv(tmp_path / "m.csv", rows, "time_s,power_w")
    clocks = Clocks()
    with pytest.raises(MeasurementError, match=r"look relative.*trace\.offset_s"):
        window(make(path, clocks), clocks, 3.0)
    # ... and the offset it asks for fixes it.
    reading = window(make(path, clocks, offset_s=repr(EPOCH)), clocks, 3.0)
    assert reading.valid


def test_trace_ending_inside_the_window_is_invalid(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", ramp_rows(0.0, 12.0), "timestamp,watts")
    clocks = Clocks()
    reading = window(make(path, clocks), clocks, 5.0)  # window ends at 15.25
    assert not reading.valid
    assert "ends inside the window" in reading.invalid_reasons[0]
    assert "trace.wait_s" in reading.invalid_reasons[0]


def test_trace_before_the_window_raises(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", ramp_rows(0.0, 5.0), "timestamp,watts")
    clocks = Clocks()
    with pytest.raises(MeasurementError, match=r"spans .* but the window is .*offset_s"):
        window(make(path, clocks), clocks, 2.0)


def test_file_written_after_start_is_read_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "later.csv"
    clocks = Clocks()
    reader = make(path, clocks)
    reader.start()
    clocks.advance(4.0)
    write_csv(path, ramp_rows(), "timestamp,watts")
    reading = reader.stop()
    assert reading.energy_j == pytest.approx(ramp_j(10.25, 14.25), rel=1e-9)


def test_missing_file_at_stop_raises_naming_the_path(tmp_path: Path) -> None:
    clocks = Clocks()
    with pytest.raises(MeasurementError, match=r"nowhere\.csv does not exist"):
        window(make(tmp_path / "nowhere.csv", clocks), clocks, 1.0)


def test_wait_s_rereads_until_the_trace_covers_the_window(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "live.csv", ramp_rows(0.0, 14.0), "timestamp,watts")
    clocks = Clocks()
    reader = make(path, clocks, wait_s="2")
    flushed = {"n": 0}

    def sleep(seconds: float) -> None:
        clocks.advance(seconds)
        flushed["n"] += 1
        if flushed["n"] == 3:  # the meter flushes its next lines
            write_csv(path, ramp_rows(0.0, 20.0), "timestamp,watts")

    reader._sleep = sleep
    reader.start()
    clocks.advance(4.5)  # ends at 14.75, beyond the last flushed sample
    reading = reader.stop()
    assert flushed["n"] == 3
    assert reading.valid, reading.invalid_reasons
    assert reading.energy_j == pytest.approx(ramp_j(10.25, 14.75), rel=1e-9)


def test_wait_s_gives_up_after_the_deadline(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "stale.csv", ramp_rows(0.0, 14.0), "timestamp,watts")
    clocks = Clocks()
    reading = window(make(path, clocks, wait_s="0.5"), clocks, 4.5)
    assert sum(clocks.slept) == pytest.approx(0.5)
    assert not reading.valid


def test_empty_and_nan_power_are_gaps(tmp_path: Path) -> None:
    rows: list[tuple[float, float | None]] = list(ramp_rows(rate_hz=10))
    rows[120] = (rows[120][0], None)
    rows[121] = (rows[121][0], math.nan)
    path = tmp_path / "m.csv"
    write_csv(path, rows, "timestamp,watts")
    with path.open("a") as f:
        f.write(f"{EPOCH + 60.05},OL\n")  # a meter's overload marker
    clocks = Clocks()
    reading = window(make(path, clocks), clocks, 5.0)
    assert reading.valid  # a 0.3 s gap in a 10 Hz trace is under 5 intervals
    assert reading.details["missing_samples"] == 2
    assert reading.energy_j == pytest.approx(ramp_j(10.25, 15.25), rel=1e-9)


def test_long_gap_in_the_trace_is_invalid(tmp_path: Path) -> None:
    rows = [r for r in ramp_rows(rate_hz=10) if not EPOCH + 11 < r[0] < EPOCH + 13]
    path = write_csv(tmp_path / "m.csv", rows, "timestamp,watts")
    clocks = Clocks()
    reading = window(make(path, clocks), clocks, 5.0)
    assert not reading.valid
    assert "gap" in reading.invalid_reasons[0]


def test_wall_clock_step_is_invalid(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", ramp_rows(), "timestamp,watts")
    clocks = Clocks()
    reader = make(path, clocks)
    reader.start()
    clocks.advance(5.0)
    clocks.wall_s += 1.0  # NTP stepped the clock
    reading = reader.stop()
    assert not reading.valid
    assert "wall clock moved +1.000 s" in reading.invalid_reasons[-1]


def test_uncertainty_from_accuracy_options(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", ramp_rows(), "timestamp,watts")
    clocks = Clocks(EPOCH + 10.0)
    reading = window(make(path, clocks, accuracy_pct="0.5"), clocks, 10.0)
    # 30 -> 50 W over 10 s: 400 J. 0.5 % of 40 W x 10 s = 2 J; integration bound:
    # 10 intervals x 2 W x 1 s / 2 = 10 J.
    assert reading.energy_j == pytest.approx(400.0)
    assert reading.uncertainty_j == pytest.approx(2.0 + 10.0)


def test_unterminated_last_line_is_ignored(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", ramp_rows(), "timestamp,watts")
    with path.open("a") as f:
        f.write("17672")  # the logger is mid-line
    assert len(load_trace(path)) == 61


def test_bad_files_name_the_fix(tmp_path: Path) -> None:
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("when,amps\n1,2\n")
    with pytest.raises(MeasurementError, match="write 'timestamp,watts'"):
        load_trace(bad_header)
    bad_time = tmp_path / "t.csv"
    bad_time.write_text("timestamp,watts\nyesterday,5\n2,5\n")
    with pytest.raises(MeasurementError, match=r"t\.csv:2: timestamp 'yesterday'"):
        load_trace(bad_time)
    bad_json = tmp_path / "j.json"
    bad_json.write_text('[{"time": 1, "power": 2}]')
    with pytest.raises(MeasurementError, match="item 0"):
        load_trace(bad_json)


def test_availability_and_options(tmp_path: Path) -> None:
    ok, reason = TraceReplayReader.is_available(ReaderOptions())
    assert not ok
    assert "--power-opt trace.path=" in reason
    ok, reason = TraceReplayReader.is_available(
        ReaderOptions(params={"trace.path": str(tmp_path / "x.csv")})
    )
    assert ok
    assert "read at the end of each window" in reason
    ok, reason = TraceReplayReader.is_available(
        ReaderOptions(params={"trace.path": "x.csv", "trace.offset_s": "ten"})
    )
    assert not ok
    assert "trace.offset_s" in reason
    with pytest.raises(ConfigError, match=r"trace\.scope"):
        TraceReplayReader(ReaderOptions(params={"trace.path": "x", "trace.scope": "moon"}))
    reader = TraceReplayReader(
        ReaderOptions(params={"trace.path": "x.csv", "trace.scope": "board"})
    )
    assert reader.info().scope is EnergyScope.BOARD


def test_start_stop_misuse(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", ramp_rows(), "timestamp,watts")
    clocks = Clocks()
    reader = make(path, clocks)
    with pytest.raises(MeasurementError, match="without start"):
        reader.stop()
    reader.start()
    with pytest.raises(MeasurementError, match="twice"):
        reader.start()


def test_gap_limit_follows_the_trace_rate_around_the_window(tmp_path: Path) -> None:
    # An hour at 1 Hz, then 10 Hz; the window sits in the 10 Hz part, over a 0.8 s hole.
    slow = [(EPOCH - 3600.0 + k, 20.0) for k in range(3600)]
    fast = [(t, p) for t, p in ramp_rows(rate_hz=10) if not EPOCH + 12.1 < t < EPOCH + 12.9]
    path = write_csv(tmp_path / "m.csv", slow + fast, "timestamp,watts")
    clocks = Clocks()
    reading = window(make(path, clocks), clocks, 5.0)
    assert reading.details["max_gap_limit_s"] == pytest.approx(0.5)
    assert not reading.valid
    assert reading.energy_j == pytest.approx(ramp_j(10.25, 15.25), rel=1e-9)
