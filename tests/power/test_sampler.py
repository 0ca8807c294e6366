"""The sampler process (power/sampler.py) and the file readers on it, on fake sysfs trees."""

from __future__ import annotations

import itertools
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wattbench.core.errors import ConfigError
from wattbench.core.power import ReaderOptions
from wattbench.power.hwmon import HwmonReader
from wattbench.power.jetson import JetsonReader
from wattbench.power.sampler import (
    ProcessSampler,
    SensorFiles,
    parse_number,
    process_sampling_supported,
)
from wattbench.power.shelly import ShellyReader

pytestmark = pytest.mark.skipif(
    process_sampling_supported() is not None,
    reason=f"no sampler process here: {process_sampling_supported()}",
)


def write(path: Path, text: str) -> None:
    """Replace a file atomically, as a sysfs read sees one whole value."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def hwmon_tree(root: Path, files: dict[str, str]) -> Path:
    d = root / "sys/class/hwmon/hwmon0"
    d.mkdir(parents=True)
    (d / "name").write_text("ina226\n")
    for name, value in files.items():
        (d / name).write_text(value + "\n")
    return d


def hwmon(root: Path, interval_s: float, **params: str) -> HwmonReader:
    return HwmonReader(
        ReaderOptions(
            sysfs_root=root,
            sample_interval_s=interval_s,
            params={f"hwmon.{k}": v for k, v in params.items()},
        )
    )


def busy_python(seconds: float) -> int:
    """A pure-Python loop that holds the GIL, as a Python workload does."""
    acc, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for i in range(2000):
            acc = (acc + i * i) % 1_000_003
    return acc


@pytest.fixture
def reader_5w(tmp_path: Path) -> Iterator[HwmonReader]:
    hwmon_tree(tmp_path, {"power1_input": "5000000"})
    r = hwmon(tmp_path, 0.01)
    yield r
    r.close()


# --- parsing and the files ---------------------------------------------------------


def test_parse_number() -> None:
    assert parse_number(b"5000000\n") == 5e6
    assert parse_number(b"12 ms\n") == 12.0
    assert parse_number(b"18446744073709551615\n") == float(2**64 - 1)
    with pytest.raises(ValueError):
        parse_number(b"")
    with pytest.raises(ValueError):
        parse_number(b"garbled\n")


def test_sensor_files_reopen_a_replaced_file_and_name_a_failing_one(tmp_path: Path) -> None:
    path = tmp_path / "power1_input"
    path.write_text("1000\n")
    files = SensorFiles([str(path)])
    assert files.watch_replaced  # not under /sys
    assert files.read(0) == 1000.0
    write(path, "2000\n")  # a rename over it: the open file is the old one
    assert files.read(0) == 2000.0
    path.write_text("3000\n")  # rewritten in place
    assert files.read(0) == 3000.0
    path.unlink()
    with pytest.raises(FileNotFoundError, match="power1_input"):
        files.read(0)
    path.mkdir()
    with pytest.raises(IsADirectoryError, match="power1_input"):
        files.read(0)
    files.close()


# --- the ring ------------------------------------------------------------------------


def test_ring_wraps_keeping_the_newest_samples_in_order(tmp_path: Path) -> None:
    path = tmp_path / "power1_input"
    path.write_text("7\n")
    s = ProcessSampler([str(path)], capacity=8)
    try:
        s.resume(0.001)
        time.sleep(0.1)  # ~100 samples into 8 slots: the ring comes round many times
        paused = s.pause()
        assert paused.count > 20
        data, lost = s.take()
        rows, torn = s.rows(data)
        assert (len(rows), lost, torn) == (8, paused.count - 8, 0)
        times = [r[0] for r in rows]
        assert times == sorted(times) and len(set(times)) == 8
        assert all(r[1] == 7.0 for r in rows)
        assert s.take() == (b"", 0)  # nothing new
        # The next run continues the count; its samples are new ones only.
        s.resume(0.001)
        time.sleep(0.02)
        paused2 = s.pause()
        data, lost = s.take()
        rows2, _ = s.rows(data)
        assert len(rows2) + lost == paused2.count - paused.count
        assert rows2[0][0] > times[-1]
    finally:
        s.close()
    assert s.proc.returncode == 0


def test_drained_ring_loses_nothing_while_the_child_writes(tmp_path: Path) -> None:
    path = tmp_path / "power1_input"
    path.write_text("7\n")
    s = ProcessSampler([str(path)], capacity=64)
    chunks: list[bytes] = []
    lost_total = 0
    try:
        s.resume(0.001)
        end = time.monotonic() + 0.3
        while time.monotonic() < end:  # a drain every 10 ms: 64 slots last ~64 ms
            time.sleep(0.01)
            data, lost = s.take(lag=2)
            chunks.append(data)
            lost_total += lost
        paused = s.pause()
        data, lost = s.take()
        chunks.append(data)
        lost_total += lost
        rows, torn = s.rows(b"".join(chunks))
    finally:
        s.close()
    assert torn == 0
    assert len(rows) + lost_total == paused.count
    assert lost_total == 0
    times = [r[0] for r in rows]
    assert all(b > a for a, b in itertools.pairwise(times))


def test_overflowing_ring_is_gaps_never_made_up_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hwmon_tree(tmp_path, {"power1_input": "5000000"})
    monkeypatch.setattr(HwmonReader, "SAMPLER_CAPACITY", 8)
    r = hwmon(tmp_path, 0.002)
    # No drain: the ring holds the last 8 samples of the window only.
    monkeypatch.setattr(r, "_drain_loop", lambda proc, period_s: None)
    try:
        r.start()
        time.sleep(0.3)
        reading = r.stop()
    finally:
        r.close()
    assert reading.details["sampler"] == "process"
    assert reading.details["sampler_lost_samples"] > 50
    assert any("lost" in w for w in reading.details["warnings"])
    assert not reading.valid  # the lost stretch is a gap over the limit
    assert any("gap" in why for why in reading.invalid_reasons)
    assert reading.energy_j == pytest.approx(5.0 * reading.duration_s, rel=1e-6)


# --- rate ------------------------------------------------------------------------------


def test_process_sampler_keeps_100_hz_beside_a_pure_python_loop(
    reader_5w: HwmonReader,
) -> None:
    reader_5w.start()
    busy_python(1.0)
    reading = reader_5w.stop()
    assert reading.details["sampler"] == "process"
    assert reading.details["sampler_read"] == "file"
    assert reading.sample_rate_hz is not None
    assert reading.sample_rate_hz >= 90.0, reading.details
    assert reading.valid, reading.invalid_reasons
    assert reading.energy_j == pytest.approx(5.0 * reading.duration_s, rel=1e-9)
    assert reading.details["warnings"] == []
    assert reading.details["sampler_cpu_s"] is not None


def test_a_short_rate_is_recorded_and_said(tmp_path: Path) -> None:
    hwmon_tree(tmp_path, {"power1_input": "5000000"})
    # A thread at 2 kHz beside a pure-Python loop: the GIL holds it far below that.
    r = hwmon(tmp_path, 0.0005, sampler="thread", max_gap_s="10")
    try:
        r.start()
        busy_python(0.3)
        reading = r.stop()
    finally:
        r.close()
    assert reading.details["sampler"] == "thread"
    assert reading.details["requested_sample_rate_hz"] == 2000.0
    assert reading.sample_rate_hz is not None and reading.sample_rate_hz < 1800
    assert reading.details["sampler_max_gap_s"] > 0
    (warning,) = [w for w in reading.details["warnings"] if "achieved" in w]
    assert "2000 Hz requested" in warning and "largest gap" in warning


# --- a sampler process that dies or stops ---------------------------------------


def test_killed_sampler_process_makes_the_window_invalid_never_zero(
    reader_5w: HwmonReader,
) -> None:
    reader_5w.start()
    proc = reader_5w._proc
    assert proc is not None
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    time.sleep(0.2)
    reading = reader_5w.stop()
    assert not reading.valid
    assert any("sampler process" in why and "signal 9" in why for why in reading.invalid_reasons)
    assert reading.energy_j > 0  # the edge samples of this process still cover the window
    # The next window gets a new sampler process.
    reader_5w.start()
    time.sleep(0.1)
    again = reader_5w.stop()
    assert again.valid, again.invalid_reasons
    assert reader_5w._proc is not None and reader_5w._proc.pid != proc.pid


def test_stopped_sampler_process_is_killed_and_the_window_invalid(
    reader_5w: HwmonReader,
) -> None:
    reader_5w.start()
    proc = reader_5w._proc
    assert proc is not None
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGSTOP)  # alive, but it will never answer
    reading = reader_5w.stop()
    assert not reading.valid
    assert any("did not answer" in why for why in reading.invalid_reasons)
    assert any("killed" in why for why in reading.invalid_reasons)
    assert not proc.alive()
    assert reading.energy_j > 0


def test_sampler_process_that_died_between_windows_is_replaced(
    reader_5w: HwmonReader,
) -> None:
    reader_5w.start()
    time.sleep(0.05)
    reader_5w.stop()
    proc = reader_5w._proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.proc.wait()
    reader_5w.start()
    time.sleep(0.1)
    reading = reader_5w.stop()
    assert reading.valid, reading.invalid_reasons
    assert any("between windows" in w for w in reading.details["warnings"])


def test_close_ends_the_sampler_process(reader_5w: HwmonReader) -> None:
    reader_5w.start()
    proc = reader_5w._proc
    assert proc is not None
    time.sleep(0.02)
    reader_5w.close()  # with the window still open
    assert proc.proc.returncode == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("hwmon-sampler")]


# --- the same figures as the threaded path -------------------------------------------


def test_process_and_thread_integrate_the_same_samples(tmp_path: Path) -> None:
    d = hwmon_tree(tmp_path, {"power1_input": "5000000"})
    stop = threading.Event()

    def ramp() -> None:  # 5 W + 10 W/s
        t0 = time.monotonic()
        while not stop.is_set():
            write(d / "power1_input", f"{round((5 + 10 * (time.monotonic() - t0)) * 1e6)}\n")
            time.sleep(0.001)

    writer = threading.Thread(target=ramp, daemon=True)
    writer.start()
    proc_reader = hwmon(tmp_path, 0.005)
    thread_reader = hwmon(tmp_path, 0.005, sampler="thread")
    try:
        proc_reader.start()
        time.sleep(0.3)
        reading = proc_reader.stop()
        samples = list(proc_reader._samples)
    finally:
        stop.set()
        writer.join()
        proc_reader.close()
    assert reading.details["sampler"] == "process"
    assert len({p for _, p in samples}) > 10  # it saw the value move
    t0, t1 = reading.details["t_start_s"], reading.details["t_end_s"]
    same = thread_reader.make_reading(samples, t0, t1)
    for field in ("energy_j", "duration_s", "samples", "sample_rate_hz", "uncertainty_j"):
        assert getattr(same, field) == getattr(reading, field), field
    assert same.trace == reading.trace
    assert same.invalid_reasons == reading.invalid_reasons
    for key in ("max_gap_s", "integration_error_j", "sensor_uncertainty_j", "missing_samples"):
        assert same.details[key] == reading.details[key], key


def _jetson_tree(root: Path) -> None:
    """An Orin Nano (JetPack 6: V x I rails) with one JetPack 4 style rail (power in mW)."""
    d = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    d.mkdir(parents=True)
    (d / "name").write_text("ina3221\n")
    for ch, (label, mv, ma) in {
        1: ("VDD_IN", 5080, 1213),
        2: ("VDD_CPU_GPU_CV", 5000, 401),
        3: ("VDD_SOC", 4990, 299),
    }.items():
        (d / f"in{ch}_label").write_text(f"{label}\n")
        (d / f"in{ch}_input").write_text(f"{mv}\n")
        (d / f"curr{ch}_input").write_text(f"{ma}\n")
    iio = root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    iio.mkdir(parents=True)
    (iio / "rail_name_0").write_text("VDD_EXTRA\n")
    (iio / "in_power0_input").write_text("1777\n")
    model = root / "proc/device-tree/model"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")


@pytest.mark.parametrize("kind", ["hwmon-power", "hwmon-energy", "jetson"])
def test_sampler_process_values_equal_the_threaded_reads(tmp_path: Path, kind: str) -> None:
    """What the sampler process stores converts to exactly what read_sample() returns."""
    if kind == "jetson":
        _jetson_tree(tmp_path)
        reader: HwmonReader | JetsonReader = JetsonReader(
            ReaderOptions(sysfs_root=tmp_path, sample_interval_s=0.005)
        )
    else:
        channel = "power1_input" if kind == "hwmon-power" else "energy1_input"
        hwmon_tree(tmp_path, {channel: "123456789"})
        reader = hwmon(tmp_path, 0.005)
    try:
        reader.start()
        time.sleep(0.1)
        reading = reader.stop()
        expected = reader.read_sample()
        if isinstance(reader, JetsonReader):
            expected_rails = dict(reader._last_read.values)
        kept = [(t, v) for t, v in reader._samples]
    finally:
        reader.close()
    assert reading.details["sampler"] == "process"
    assert len(kept) > 5
    assert expected is not None and math.isfinite(expected)
    assert {v for _, v in kept} == {expected}
    if isinstance(reader, JetsonReader):
        assert expected == 5.080 * 1213 / 1e3
        rails = {
            name: r["energy_j"] / reading.duration_s for name, r in reading.details["rails"].items()
        }
        for name, watts in expected_rails.items():
            assert watts is not None
            assert rails[name] == pytest.approx(watts, rel=1e-9), name


# --- options ---------------------------------------------------------------------------


def test_sampler_option(tmp_path: Path) -> None:
    hwmon_tree(tmp_path, {"power1_input": "5000000"})
    with pytest.raises(ConfigError, match=r"hwmon\.sampler"):
        hwmon(tmp_path, 0.01, sampler="fork")
    with pytest.raises(ConfigError, match=r"hwmon\.sampler_realtime"):
        hwmon(tmp_path, 0.01, sampler_realtime="2")
    with pytest.raises(ConfigError, match=r"shelly\.sampler=process"):
        ShellyReader(
            ReaderOptions(params={"shelly.url": "http://127.0.0.1:9", "shelly.sampler": "process"})
        )
    # auto: a thread at one sample a second or slower, the process below that
    slow = hwmon(tmp_path, 1.0)
    fast = hwmon(tmp_path, 0.01, sampler_realtime="0")
    try:
        for r in (slow, fast):
            r.start()
            time.sleep(0.05)
        slow_reading, fast_reading = slow.stop(), fast.stop()
    finally:
        slow.close()
        fast.close()
    assert slow_reading.details["sampler"] == "thread"
    assert slow_reading.details["sampler_priority"] is None
    assert fast_reading.details["sampler"] == "process"
    assert fast_reading.details["sampler_priority"] == "not asked"


# --- counters need wrap-safe sampling only ---------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.t_s = 10.0

    def __call__(self) -> float:
        return self.t_s


def test_hwmon_counter_reads_further_apart_than_half_a_wrap_are_invalid(tmp_path: Path) -> None:
    d = hwmon_tree(tmp_path, {"energy1_input": "9000000"})
    clock = _Clock()
    opts = ReaderOptions(
        sysfs_root=tmp_path, sample_interval_s=3600.0, params={"hwmon.max_range_uj": "10000000"}
    )
    r = HwmonReader(opts, clock=clock)  # a 10 J counter: at 2 W it wraps every 5 s
    r.start()
    clock.t_s += 2.0
    write(d / "energy1_input", "3000000")  # 4 J later, wrapped once
    r.sample_now()
    clock.t_s += 3.0  # 6 J: a read 3 s later, over half the 5 s wrap period
    write(d / "energy1_input", "9000000")
    reading = r.stop()
    r.close()
    assert reading.energy_j == pytest.approx(10.0)
    assert reading.details["wraps"] == 1
    assert not reading.valid
    assert any("wrap may have been missed" in why for why in reading.invalid_reasons)
