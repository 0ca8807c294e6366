"""HwmonReader on fake sysfs trees that use the kernel's file names."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wattbench.core.errors import ConfigError, MeasurementError, UnavailableError
from wattbench.core.power import EnergyMethod, EnergyScope, ReaderOptions
from wattbench.power.hwmon import HwmonReader, find_channel, scan_hwmon

NO_BACKGROUND = 3600.0  # the sampler thread never fires during a test


class ManualClock:
    def __init__(self, t_s: float = 50.0) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s

    def advance(self, seconds: float) -> None:
        self.t_s += seconds


def write(path: Path, text: str) -> None:
    """Replace a file atomically, as a sysfs read sees one whole value."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def add_device(root: Path, device: str, chip: str, files: dict[str, str]) -> Path:
    d = root / "sys" / "class" / "hwmon" / device
    d.mkdir(parents=True)
    (d / "name").write_text(chip + "\n")
    for name, value in files.items():
        (d / name).write_text(value + "\n")
    return d


def opts(root: Path, interval_s: float = NO_BACKGROUND, **params: str) -> ReaderOptions:
    return ReaderOptions(
        sysfs_root=root,
        sample_interval_s=interval_s,
        params={f"hwmon.{k}": v for k, v in params.items()},
    )


@pytest.fixture
def board(tmp_path: Path) -> Path:
    """A thermal sensor, two INA226 rails and an amdgpu with only power1_average."""
    add_device(tmp_path, "hwmon0", "acpitz", {"temp1_input": "45000"})
    add_device(tmp_path, "hwmon1", "ina226", {"power1_input": "5000000", "power1_label": "VDD_IN"})
    add_device(
        tmp_path,
        "hwmon2",
        "ina226",
        {"power1_input": "1250000", "power1_label": "VDD_SOC", "update_interval": "2"},
    )
    add_device(
        tmp_path,
        "hwmon10",
        "amdgpu",
        {"power1_average": "15000000", "power1_label": "PPT", "power1_cap": "25000000"},
    )
    return tmp_path


# --- discovery ---------------------------------------------------------------


def test_scan_lists_devices_in_numeric_order_with_channels(board: Path) -> None:
    devices = scan_hwmon(board)
    assert [d.device for d in devices] == ["hwmon0", "hwmon1", "hwmon2", "hwmon10"]
    assert devices[0].channels == ()
    amd = devices[3].channels[0]
    assert (amd.chip, amd.channel, amd.label, amd.path.name) == (
        "amdgpu",
        "power1",
        "PPT",
        "power1_average",
    )


def test_no_hwmon_tree_names_the_problem(tmp_path: Path) -> None:
    ok, reason = HwmonReader.is_available(opts(tmp_path))
    assert not ok
    assert "no hwmon devices under" in reason
    assert str(tmp_path) in reason


def test_unknown_name_lists_what_was_found_and_the_fix(board: Path) -> None:
    ok, reason = HwmonReader.is_available(opts(board, name="ina3221"))
    assert not ok
    assert "no hwmon device named 'ina3221'" in reason
    assert "hwmon1=ina226 (power1 'VDD_IN')" in reason
    assert "hwmon0=acpitz" in reason
    assert "--power-opt hwmon.name=" in reason


def test_device_without_power_channels(board: Path) -> None:
    ok, reason = HwmonReader.is_available(opts(board, name="acpitz"))
    assert not ok
    assert "no power*_input or energy*_input" in reason


def test_ambiguous_channels_ask_for_a_choice(board: Path) -> None:
    ok, reason = HwmonReader.is_available(opts(board, name="ina226"))
    assert not ok
    assert "2 hwmon channels match" in reason
    assert "hwmon.label=" in reason


def test_label_and_device_selection(board: Path) -> None:
    assert find_channel(opts(board, label="VDD_SOC")).device == "hwmon2"
    assert find_channel(opts(board, name="hwmon1")).label == "VDD_IN"
    assert find_channel(opts(board, name="amdgpu", channel="power1")).path.name == (
        "power1_average"
    )
    ok, reason = HwmonReader.is_available(opts(board, label="VDD_GPU"))
    assert not ok
    assert "no hwmon channel with label 'VDD_GPU'" in reason
    assert "VDD_SOC" in reason


def test_available_reason_says_what_is_used(board: Path) -> None:
    ok, reason = HwmonReader.is_available(opts(board, label="VDD_IN"))
    assert ok
    assert reason == "hwmon1 'ina226' power1 'VDD_IN' (power1_input, µW)"


def test_unreadable_value_is_unavailable(board: Path) -> None:
    # A directory in place of the file fails for root too (EISDIR).
    value = board / "sys/class/hwmon/hwmon1/power1_input"
    value.unlink()
    value.mkdir()
    ok, reason = HwmonReader.is_available(opts(board, label="VDD_IN"))
    assert not ok
    assert "power1_input failed (IsADirectoryError" in reason


def test_bad_scope_is_a_config_error(board: Path) -> None:
    ok, reason = HwmonReader.is_available(opts(board, label="VDD_IN", scope="rack"))
    assert not ok
    assert "hwmon.scope='rack'" in reason
    with pytest.raises(ConfigError):
        HwmonReader(opts(board, label="VDD_IN", scope="rack"))


def test_constructor_raises_the_same_reason(board: Path) -> None:
    with pytest.raises(UnavailableError, match=r"3 hwmon channels match .*amdgpu"):
        HwmonReader(opts(board))


# --- power channels ----------------------------------------------------------


def test_power_channel_integrates_microwatts(board: Path) -> None:
    clock = ManualClock()
    r = HwmonReader(opts(board, label="VDD_SOC", scope="module"), clock=clock)
    info = r.info()
    assert info.method is EnergyMethod.POLLED
    assert info.scope is EnergyScope.MODULE
    assert info.component == "ina226 VDD_SOC (hwmon2)"
    assert info.update_period_s == pytest.approx(0.002)
    r.start()
    clock.advance(0.5)
    write(board / "sys/class/hwmon/hwmon2/power1_input", "3250000")
    r.sample_now()
    clock.advance(0.5)
    reading = r.stop()
    # 1.25 W at 50.0 s, 3.25 W at 50.5 s and 51.0 s: trapezoid = 1.125 + 1.625
    assert reading.energy_j == pytest.approx(2.75)
    assert reading.peak_power_w == pytest.approx(3.25)
    assert reading.details["unit"] == "uW"
    assert reading.details["label"] == "VDD_SOC"


def test_failed_reads_are_gaps_not_zero(board: Path) -> None:
    clock = ManualClock()
    value = board / "sys/class/hwmon/hwmon1/power1_input"
    r = HwmonReader(opts(board, label="VDD_IN"), clock=clock)
    r.start()
    for _ in range(3):
        clock.advance(0.1)
        value.unlink()  # the driver went away for a moment
        r.sample_now()
        value.write_text("5000000\n")
    clock.advance(0.1)
    reading = r.stop()
    assert reading.energy_j == pytest.approx(5.0 * 0.4)
    assert reading.details["missing_samples"] == 3
    assert "FileNotFoundError" in reading.details["first_failure"]


def test_unreadable_for_the_whole_window_raises(board: Path) -> None:
    clock = ManualClock()
    value = board / "sys/class/hwmon/hwmon1/power1_input"
    r = HwmonReader(opts(board, label="VDD_IN"), clock=clock)
    value.write_text("")  # a driver that returns nothing
    r.start()
    clock.advance(1.0)
    with pytest.raises(MeasurementError, match="ValueError"):
        r.stop()


@pytest.fixture
def dynamic(tmp_path: Path) -> Iterator[tuple[Path, float]]:
    """An INA226 whose power1_input a thread rewrites: 5 W + 10 W/s x (t - t_ref)."""
    d = add_device(tmp_path, "hwmon0", "ina226", {"power1_input": "5000000"})
    t_ref = time.monotonic()
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            uw = round((5.0 + 10.0 * (time.monotonic() - t_ref)) * 1e6)
            write(d / "power1_input", f"{uw}\n")
            time.sleep(0.001)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    yield tmp_path, t_ref
    stop.set()
    thread.join()


def test_dynamic_tree_is_sampled_while_it_changes(dynamic: tuple[Path, float]) -> None:
    root, t_ref = dynamic
    # 200 Hz; the gap limit is relaxed from 25 ms so a busy CI box does not fail it.
    r = HwmonReader(opts(root, interval_s=0.005, max_gap_s="0.1"))
    r.start()
    time.sleep(0.25)
    reading = r.stop()
    r.close()
    t0 = reading.details["t_start_s"] - t_ref
    t1 = reading.details["t_end_s"] - t_ref
    expected_j = 5.0 * (t1 - t0) + 5.0 * (t1 * t1 - t0 * t0)
    # The writer lags by ~1 ms (0.01 W of ~6 W): well inside 5 %.
    assert reading.energy_j == pytest.approx(expected_j, rel=0.05)
    assert reading.samples >= 10  # ~50 expected at 200 Hz; a loaded CI box gets fewer
    assert len({p for _, p in reading.trace}) > 5  # it saw the value move
    assert reading.valid, reading.invalid_reasons


# --- energy counters ---------------------------------------------------------


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    """An INA238-style device with both energy1_input (µJ) and power1_input (µW)."""
    add_device(
        tmp_path,
        "hwmon3",
        "ina238",
        {"energy1_input": "1000000", "power1_input": "2000000", "update_interval": "1"},
    )
    return tmp_path


def test_energy_counter_is_preferred_and_differenced(counter: Path) -> None:
    clock = ManualClock()
    r = HwmonReader(opts(counter), clock=clock)
    assert r.info().method is EnergyMethod.COUNTER
    r.start()
    clock.advance(0.5)
    write(counter / "sys/class/hwmon/hwmon3/energy1_input", "1900000")
    r.sample_now()
    clock.advance(0.5)
    write(counter / "sys/class/hwmon/hwmon3/energy1_input", "3500000")
    reading = r.stop()
    assert reading.method is EnergyMethod.COUNTER
    assert reading.energy_j == pytest.approx(2.5)
    assert reading.duration_s == pytest.approx(1.0)
    assert reading.mean_power_w == pytest.approx(2.5)
    assert reading.peak_power_w == pytest.approx(3.2)  # 1.6 J in the second 0.5 s
    assert reading.samples == 3
    assert reading.valid
    assert reading.details["wraps"] == 0
    # No hwmon.accuracy_*: the ±5 % convention, plus one 1 ms update of 2.5 W per edge.
    assert reading.uncertainty_j == pytest.approx(0.05 * 2.5 + 2 * 2.5 * 0.001)
    assert "convention" in reading.details["sensor_accuracy"]["source"]


def test_power_channel_can_be_forced_next_to_a_counter(counter: Path) -> None:
    r = HwmonReader(opts(counter, channel="power1"))
    assert r.info().method is EnergyMethod.POLLED


def test_energy_counter_wrap_with_known_range(counter: Path) -> None:
    clock = ManualClock()
    path = counter / "sys/class/hwmon/hwmon3/energy1_input"
    write(path, "999000000")
    r = HwmonReader(opts(counter, max_range_uj="1000000000", accuracy_pct="1"), clock=clock)
    r.start()
    clock.advance(2.0)
    write(path, "3000000")
    reading = r.stop()
    assert reading.energy_j == pytest.approx(4.0)
    assert reading.details["wraps"] == 1
    assert reading.valid
    # 1 % of 2 W x 2 s + two edges x 2 W x 1 ms update interval
    assert reading.uncertainty_j == pytest.approx(0.04 + 0.004)


def test_energy_counter_decrease_without_range_is_invalid(counter: Path) -> None:
    clock = ManualClock()
    path = counter / "sys/class/hwmon/hwmon3/energy1_input"
    r = HwmonReader(opts(counter), clock=clock)
    r.start()
    clock.advance(1.0)
    write(path, "400000")
    reading = r.stop()
    assert not reading.valid
    assert "decreased" in reading.invalid_reasons[0]


def test_energy_counter_stuck_is_invalid_when_enabled(counter: Path) -> None:
    clock = ManualClock()
    r = HwmonReader(opts(counter, stuck_after_s="0.5"), clock=clock)
    r.start()
    clock.advance(1.0)
    reading = r.stop()
    assert reading.energy_j == 0.0
    assert not reading.valid
    assert "did not advance" in reading.invalid_reasons[0]


def test_energy_counter_unreadable_at_start_is_invalid(counter: Path) -> None:
    clock = ManualClock()
    path = counter / "sys/class/hwmon/hwmon3/energy1_input"
    r = HwmonReader(opts(counter), clock=clock)
    path.unlink()
    r.start()
    clock.advance(0.5)
    path.write_text("2000000\n")
    r.sample_now()
    clock.advance(0.5)
    write(path, "2500000")
    reading = r.stop()
    assert not reading.valid
    assert "window start" in reading.invalid_reasons[0]
    assert reading.energy_j == pytest.approx(0.5)  # what it saw, flagged


def test_energy_counter_never_readable_raises(counter: Path) -> None:
    clock = ManualClock()
    path = counter / "sys/class/hwmon/hwmon3/energy1_input"
    r = HwmonReader(opts(counter), clock=clock)
    path.unlink()
    r.start()
    clock.advance(1.0)
    with pytest.raises(MeasurementError, match="fewer than two"):
        r.stop()


def test_old_drivers_with_attributes_under_device(tmp_path: Path) -> None:
    d = tmp_path / "sys" / "class" / "hwmon" / "hwmon0" / "device"
    d.mkdir(parents=True)
    (d / "name").write_text("power_meter\n")
    (d / "power1_average").write_text("42000000\n")
    (d / "power1_average_interval").write_text("1000\n")
    r = HwmonReader(opts(tmp_path))
    assert r.info().component == "power_meter power1 (hwmon0)"
    assert r.info().update_period_s == pytest.approx(1.0)
    assert r.read_power_w() == pytest.approx(42.0)


# --- uncertainty -------------------------------------------------------------


def test_power_channel_uncertainty_defaults_to_the_convention(board: Path) -> None:
    clock = ManualClock()
    r = HwmonReader(opts(board, label="VDD_IN"), clock=clock)
    r.start()
    clock.advance(2.0)
    reading = r.stop()
    # 5 W constant for 2 s: 10 J; ±5 % and no integration error (nothing moved).
    assert reading.energy_j == pytest.approx(10.0)
    assert reading.uncertainty_j == pytest.approx(0.5)
    assert reading.details["sensor_accuracy"]["accuracy_pct"] == pytest.approx(5.0)


def test_accuracy_option_replaces_only_its_own_term(board: Path) -> None:
    clock = ManualClock()
    r = HwmonReader(opts(board, label="VDD_IN", accuracy_w="0.01"), clock=clock)
    r.start()
    clock.advance(2.0)
    reading = r.stop()
    # ±5 % of 5 W (the convention, not overridden) + 0.01 W, for 2 s.
    assert reading.uncertainty_j == pytest.approx((0.25 + 0.01) * 2.0)
    assert "hwmon.accuracy_w" in reading.details["sensor_accuracy"]["source"]
    with pytest.raises(ConfigError, match=r"hwmon\.accuracy_pct"):
        HwmonReader(opts(board, label="VDD_IN", accuracy_pct="-1"))


def test_counter_without_update_interval_uses_the_observed_staleness(tmp_path: Path) -> None:
    """No published period: the longest time the counter held one value, plus one read
    interval, bounds each edge."""
    d = add_device(tmp_path, "hwmon0", "amd_energy", {"energy1_input": "1000000"})
    clock = ManualClock()
    r = HwmonReader(opts(tmp_path, accuracy_pct="0"), clock=clock)
    assert r.info().update_period_s is None
    r.start()
    for uj in ("1000000", "1000000", "3000000", "5000000"):  # held for 0.2 s, then moves
        clock.advance(0.1)
        write(d / "energy1_input", uj)
        r.sample_now()
    clock.advance(0.1)
    write(d / "energy1_input", "6000000")
    reading = r.stop()
    assert reading.energy_j == pytest.approx(5.0)
    assert reading.details["edge_staleness_s"] == pytest.approx(0.2 + 0.1)
    # 5 J over 0.5 s = 10 W; two edges of 0.3 s each.
    assert reading.uncertainty_j == pytest.approx(2 * 10.0 * 0.3)
