"""The thermal monitor on fake sysfs trees and a fake NVML: temperatures, trip points,
cpufreq below the value set, NVML throttle reasons, and a throttle injected mid-trial
into a real run of the protocol marking that trial (and only it) throttled."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness.protocol import create_runner
from wattbench.power.thermal import ThermalMonitor, discover_zones, wait_until_cool


def make_tree(root: Path, *, pkg_c: float = 45.0, cur_khz: int = 1800000) -> Path:
    z0 = root / "sys/class/thermal/thermal_zone0"
    z0.mkdir(parents=True)
    (z0 / "type").write_text("x86_pkg_temp\n")
    (z0 / "temp").write_text(f"{int(pkg_c * 1000)}\n")
    (z0 / "trip_point_0_type").write_text("passive\n")
    (z0 / "trip_point_0_temp").write_text("90000\n")
    (z0 / "trip_point_1_type").write_text("critical\n")
    (z0 / "trip_point_1_temp").write_text("105000\n")
    z1 = root / "sys/class/thermal/thermal_zone1"
    z1.mkdir(parents=True)
    (z1 / "type").write_text("acpitz\n")
    (z1 / "temp").write_text("30000\n")
    (z1 / "trip_point_0_type").write_text("active\n")  # a fan: not throttling
    (z1 / "trip_point_0_temp").write_text("25000\n")
    hw = root / "sys/class/hwmon/hwmon2"
    hw.mkdir(parents=True)
    (hw / "name").write_text("nvme\n")
    (hw / "temp1_input").write_text("38850\n")
    (hw / "temp1_label").write_text("Composite\n")
    for name, (lo, hi, cur) in {
        "policy0": (600000, 1800000, cur_khz),
        "policy4": (800000, 2400000, 800000),  # an idle cluster, clocked down by design
    }.items():
        p = root / "sys/devices/system/cpu/cpufreq" / name
        p.mkdir(parents=True)
        (p / "cpuinfo_min_freq").write_text(f"{lo}\n")
        (p / "cpuinfo_max_freq").write_text(f"{hi}\n")
        (p / "scaling_cur_freq").write_text(f"{cur}\n")
    return root


ZONE = "sys/class/thermal/thermal_zone0/temp"
CUR = "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


def test_zones_hwmon_and_trip_points_are_found(tree: Path) -> None:
    zones = {z.name: z for z in discover_zones(tree)}
    assert set(zones) == {"x86_pkg_temp", "acpitz", "nvme/Composite"}
    assert zones["x86_pkg_temp"].trip_c == 90.0 and zones["x86_pkg_temp"].trip_type == "passive"
    assert zones["acpitz"].trip_c is None  # only an active (fan) trip
    mon = ThermalMonitor(tree, use_nvml=False)
    s = mon.read()
    assert s.temps == {"x86_pkg_temp": 45.0, "acpitz": 30.0, "nvme/Composite": 38.85}
    assert s.reasons == [] and s.cpu_low is None
    assert mon.temperature() == 45.0 and mon.temperature("acpi") == 30.0
    assert "thermal zone x86_pkg_temp (trip passive 90 C)" in mon.sources()


def test_an_empty_tree_samples_nothing(tmp_path: Path) -> None:
    mon = ThermalMonitor(tmp_path, use_nvml=False)
    assert mon.sources() == [] and not mon.has_sources()
    mon.start()
    w = mon.stop()
    assert w.max_temp_c is None and not w.throttled and w.samples == 2


def _later(delay_s: float, fn: Any) -> threading.Thread:
    t = threading.Timer(delay_s, fn)
    t.start()
    return t


def test_a_zone_beyond_its_trip_point_mid_window_throttles(tree: Path) -> None:
    mon = ThermalMonitor(tree, use_nvml=False, period_s=0.02)
    mon.start()
    time.sleep(0.06)
    _later(0, lambda: (tree / ZONE).write_text("95500\n")).join()
    time.sleep(0.06)
    (tree / ZONE).write_text("60000\n")  # cooled again before the window ends
    w = mon.stop()
    assert w.throttled and w.max_temp_c == 95.5
    assert w.reasons == ["x86_pkg_temp at 95.5 C >= its passive trip 90 C"]
    mon.start()
    assert not mon.stop().throttled  # the next window is clean


def test_cpufreq_below_the_value_set_throttles_only_when_it_lasts(tree: Path) -> None:
    mon = ThermalMonitor(tree, use_nvml=False, period_s=0.02)
    mon.expected_cpu_khz = 1800000
    mon.start()
    time.sleep(0.06)
    assert not mon.stop().throttled  # the idle policy4 at 800 MHz is not throttling
    mon.start()
    time.sleep(0.04)
    (tree / CUR).write_text("1200000\n")  # a throttling thread of the kernel, say
    time.sleep(0.1)
    w = mon.stop()
    assert w.throttled
    assert w.reasons == ["cpufreq: fastest policy at 1200 MHz, below the 1800 MHz set"]
    (tree / CUR).write_text("1800000\n")
    mon.expected_cpu_khz = None  # no value set: no comparison
    (tree / CUR).write_text("600000\n")
    mon.start()
    time.sleep(0.06)
    assert not mon.stop().throttled


def test_one_low_sample_is_not_throttling(tree: Path) -> None:
    mon = ThermalMonitor(tree, use_nvml=False, period_s=60)  # samples at start and stop only
    mon.expected_cpu_khz = 1800000
    mon.start()
    (tree / CUR).write_text("1000000\n")
    assert not mon.stop().throttled


def test_x86_thermal_throttle_counters(tree: Path) -> None:
    d = tree / "sys/devices/system/cpu/cpu0/thermal_throttle"
    d.mkdir(parents=True)
    (d / "package_throttle_count").write_text("3\n")
    mon = ThermalMonitor(tree, use_nvml=False, period_s=60)
    mon.start()
    (d / "package_throttle_count").write_text("5\n")
    w = mon.stop()
    assert w.reasons == ["cpu0: package_throttle +2"]


class FakeNvml:
    """pynvml's calls the monitor makes, with a temperature and a reasons mask per GPU."""

    def __init__(self, temps: list[float], masks: list[int]) -> None:
        self.temps, self.masks = temps, masks

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.temps)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        assert sensor == 0  # NVML_TEMPERATURE_GPU
        return int(self.temps[h])

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: int) -> int:
        return self.masks[h]


def test_nvml_temperature_and_throttle_reasons(tmp_path: Path) -> None:
    nvml = FakeNvml([41, 77], [0x1 | 0x2, 0])  # idle + applications clocks: not throttling
    mon = ThermalMonitor(tmp_path, nvml=nvml, period_s=60)
    assert mon.sources() == ["nvml gpu0", "nvml gpu1"]
    mon.start()
    w = mon.stop()
    assert w.sensors == {"gpu0": 41.0, "gpu1": 77.0} and not w.throttled
    nvml.masks[1] = 0x20 | 0x4  # sw thermal slowdown + power cap
    mon.start()
    w = mon.stop()
    assert w.reasons == ["gpu1: sw_power_cap", "gpu1: sw_thermal_slowdown"]
    mon.ignore_reasons = {"sw_power_cap"}  # a sweep point that set the power limit
    mon.start()
    assert mon.stop().reasons == ["gpu1: sw_thermal_slowdown"]


def test_real_pynvml_without_a_driver_is_no_gpu(tmp_path: Path) -> None:
    pytest.importorskip("pynvml")
    mon = ThermalMonitor(tmp_path)
    assert isinstance(mon.gpus(), list)  # [] here (no driver), the GPUs on a GPU machine


def test_wait_until_cool(tree: Path) -> None:
    mon = ThermalMonitor(tree, use_nvml=False)
    (tree / ZONE).write_text("80000\n")
    now = [0.0]

    def sleep(s: float) -> None:  # the device cools 5 C per 10 s
        now[0] += s
        (tree / ZONE).write_text(f"{int((80 - now[0] / 2) * 1000)}\n")

    ok, temp, waited = wait_until_cool(
        mon, 60, timeout_s=300, sleep=sleep, clock=lambda: now[0], poll_s=10
    )
    assert ok and temp == 60.0 and waited == 40
    (tree / ZONE).write_text("80000\n")
    now[0] = 0.0
    ok, temp, waited = wait_until_cool(
        mon, 40, timeout_s=20, sleep=sleep, clock=lambda: now[0], poll_s=10, sensor="pkg"
    )
    assert not ok and waited == 20 and temp == 70.0
    ok, temp, _ = wait_until_cool(ThermalMonitor(tree / "none", use_nvml=False), 40, timeout_s=1)
    assert ok and temp is None  # no sensor: nothing to wait for


def test_a_throttle_injected_mid_trial_marks_that_trial(tree: Path, tmp_path: Path) -> None:
    """A real run of the protocol (fake adapter and reader on fake time): during trial 2 a
    zone goes past its trip point and the CPU clocks down; trial 2 alone is throttled."""
    mon = ThermalMonitor(tree, use_nvml=False, period_s=0.01)
    mon.expected_cpu_khz = 1800000
    state = {"done": False}

    def outputs(x: np.ndarray) -> np.ndarray:
        # windows: 0 idle baseline, 1 trial 1, 2 trial 2 (the thermal window in progress)
        if mon._window is not None and len(mon.windows) == 2 and not state["done"]:
            state["done"] = True
            (tree / ZONE).write_text("92000\n")
            (tree / CUR).write_text("1100000\n")
            time.sleep(0.1)  # the sampler sees it (real time) ...
            (tree / ZONE).write_text("50000\n")  # ... then it passes, within trial 2
            (tree / CUR).write_text("1800000\n")
        return np.asarray(x, dtype=np.float32) * 2.0

    clock = FakeClock()
    cfg = RunConfig(
        suite="fake", adapter="fake", duration_s=0.2, min_queries=5, repeats=3,
        warmup_s=0.01, idle_s=0.1, cooldown_s=0,
    )  # fmt: skip
    runner = create_runner(
        cfg,
        FakeSuite(),
        FakeAdapter(clock, 0.01, outputs_fn=outputs),
        [FakePowerReader(clock)],
        ModelCache(tmp_path / "cache"),
        thermal=mon,
    )
    runner.clock_ns, runner.sleep = clock, clock.advance
    result = runner.execute()
    assert [t.throttled for t in result.trials] == [False, True, False]
    t2 = result.trials[1]
    assert t2.max_temp_c == 92.0
    assert "x86_pkg_temp at 92 C >= its passive trip 90 C" in t2.throttle_reasons
    assert any(r.startswith("cpufreq: fastest policy at 1100 MHz") for r in t2.throttle_reasons)
    assert result.thermal is not None and result.thermal.throttled_trials == [1]
    assert result.thermal.max_temp_c == 92.0 and result.thermal.sensors["acpitz"] == 30.0
    assert any(w.startswith("trial 2 throttled: ") for w in result.warnings)
    assert result.valid  # throttling is marked, not a reason to discard the run


def test_no_monitor_no_thermal_section(tmp_path: Path) -> None:
    clock = FakeClock()
    cfg = RunConfig(suite="fake", adapter="fake", duration_s=0.1, min_queries=5, repeats=1,
                    warmup_s=0.01, idle_s=0.1, cooldown_s=0)  # fmt: skip
    runner = create_runner(
        cfg, FakeSuite(), FakeAdapter(clock, 0.01), [FakePowerReader(clock)],
        ModelCache(tmp_path / "cache"),
    )  # fmt: skip
    runner.clock_ns, runner.sleep = clock, clock.advance
    result = runner.execute()
    assert result.thermal is None and not result.trials[0].throttled
