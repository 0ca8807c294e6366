"""`wattbench doctor` on the readers' fake trees and plug emulators.

Each fake sensor is moved by a thread: idle power, and a higher power while the injected
load runs, so the doctor's step test sees a step exactly when it asks for one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from doctor_fakes import FAST, FakeLoad, Sensor, options, read_as_user
from test_hwmon import add_device, write
from test_jetson import move_model_to_firmware, nano_jp4, orin_nano_jp6, xavier_nx_jp5
from test_rapl import FakePowercap
from test_smartplug import PlugState

from wattbench.core.power import PowerReader
from wattbench.harness.doctor import (
    EXIT_ESTIMATE_ONLY,
    EXIT_FAILED,
    EXIT_OK,
    CpuLoad,
    DoctorReport,
    DoctorSettings,
    report_json,
    report_lines,
    report_markdown,
    run_doctor,
)
from wattbench.power.estimated import EstimatedCpuReader
from wattbench.power.hwmon import HwmonReader
from wattbench.power.jetson import JetsonReader
from wattbench.power.rapl import RaplReader
from wattbench.power.shelly import ShellyReader

SensorFactory = Callable[..., Sensor]
#: the sysfs readers and the estimate: hermetic on any machine (no NVML, no network)
SYSFS = {
    "rapl": RaplReader,
    "hwmon": HwmonReader,
    "jetson": JetsonReader,
    "estimate": EstimatedCpuReader,
}
#: counters are differenced every 50 ms (the polled sensors are sampled every 20 ms)
COUNTER_INTERVAL_S = 0.05
ALL_CHECKS = {
    "presence",
    "permissions",
    "window",
    "sample rate",
    "resolution",
    "noise floor",
    "step",
}


def only(*names: str, **kw: object) -> DoctorSettings:
    return dataclasses.replace(FAST, power=names, **kw)  # type: ignore[arg-type]


def doctor(
    root: Path | None,
    settings: DoctorSettings,
    load: FakeLoad,
    classes: dict[str, type[PowerReader]] | None = None,
    **params: str,
) -> DoctorReport:
    return run_doctor(options(root, **params), settings, classes=classes or SYSFS, load=load)


def checks(report: DoctorReport, name: str) -> dict[str, str]:
    return {c.name: c.verdict for c in report.reader(name).checks}


def assert_passed(
    report: DoctorReport, name: str, idle_w: float, delta_w: float, counter: bool = False
) -> None:
    text = "\n".join(report_lines(report))
    assert report.exit_code == EXIT_OK, text
    assert report.outcome == "validated"
    rep = report.reader(name)
    assert rep.status == "measured" and rep.verdict != "fail", text
    verdicts = checks(report, name)
    assert {"window", "sample rate", "resolution", "noise floor", "step"} <= set(verdicts)
    for c in ("window", "step"):
        assert verdicts[c] == "ok", text
    # counters: the fake's writer thread lags on a busy machine, which a short window feels
    tolerance = 0.25 if counter else 0.15
    assert rep.idle_mean_w == pytest.approx(idle_w, rel=tolerance)
    assert rep.idle_std_w is not None
    if counter:
        # A counter that a thread advances every ~1 ms, differenced every 50 ms, is noisier
        # than the hardware (the writer's scheduling jitter on a busy machine): the noise floor
        # may warn, and the step is made large enough to clear 3σ of it.
        assert verdicts["noise floor"] in ("ok", "warn"), text
    else:
        assert verdicts["noise floor"] == "ok", text
        assert rep.idle_std_w < 0.2 * idle_w
    assert rep.step_delta_w == pytest.approx(delta_w, rel=tolerance)
    assert rep.step_delay_s is not None and rep.step_delay_s < 0.5
    assert rep.requested_rate_hz == pytest.approx(1 / report.sample_interval_s)
    assert rep.achieved_rate_hz is not None and rep.achieved_rate_hz > 5
    assert report.headline_reader == name


# -- RAPL -------------------------------------------------------------------------------------


def rapl_tree(root: Path) -> FakePowercap:
    tree = FakePowercap(root)
    tree.zone("intel-rapl:0", "package-0", 1_000_000)
    tree.zone("intel-rapl:0:0", "core", 0)
    return tree


def test_rapl_counter_steps_with_the_load(
    tmp_path: Path, load: FakeLoad, sensors: SensorFactory
) -> None:
    tree = rapl_tree(tmp_path)
    sensors(lambda p, dt: tree.advance("intel-rapl:0", p * dt), load, 6.0, 46.0, 0.001)
    report = doctor(tmp_path, only("rapl", sample_interval_s=COUNTER_INTERVAL_S), load)
    assert_passed(report, "rapl", 6.0, 40.0, counter=True)
    assert load.calls == [FAST.step_s]
    rapl = report.reader("rapl")
    assert set(checks(report, "rapl")) == ALL_CHECKS
    assert (rapl.method, rapl.scope) == ("counter", "chip")
    resolution = next(c for c in rapl.checks if c.name == "resolution")
    assert "energy unit 15.3 µJ" in resolution.summary
    assert "wraps every" in resolution.summary and resolution.data["wrap_period_s"] > 600
    # the JSON carries every reader's verdict; the markdown is a file to attach to a result
    data = report_json(report)
    assert json.loads(json.dumps(data))["readers"][0]["verdict"] == rapl.verdict
    md = report_markdown(report)
    assert md.startswith(f"# wattbench doctor: {report.device_name}")
    assert "| rapl | measured |" in md and "**validated**" in md


def test_a_load_the_reader_does_not_see_fails_the_step(
    tmp_path: Path, sensors: SensorFactory
) -> None:
    tree = rapl_tree(tmp_path)
    blind = FakeLoad(reaches=False)
    sensors(lambda p, dt: tree.advance("intel-rapl:0", p * dt), blind, 6.0, 26.0)
    # a stated minimum step well above what the fake writer's lag can fake on a busy machine
    settings = only("rapl", sample_interval_s=COUNTER_INTERVAL_S, min_step_w=3.0)
    report = doctor(tmp_path, settings, blind)
    assert report.exit_code == EXIT_FAILED
    step = next(c for c in report.reader("rapl").checks if c.name == "step")
    assert step.verdict == "fail"
    assert step.summary.startswith("no clear rise under the load")
    assert step.remedy is not None and "does not see this machine's CPU" in step.remedy
    assert report.outcome == "failed" and "rapl" in report.summary


def test_unreadable_energy_uj_gives_the_udev_rule(tmp_path: Path, load: FakeLoad) -> None:
    tree = rapl_tree(tmp_path)
    energy = tree.dirs["intel-rapl:0"] / "energy_uj"
    energy.chmod(0)  # root-only since Linux 5.10; the test reads as a user would
    report = run_doctor(
        options(tmp_path),
        FAST,  # every reader, as a first `wattbench doctor` does
        classes={"rapl": RaplReader, "estimate": EstimatedCpuReader},
        load=load,
        read_file=read_as_user,
    )
    assert report.exit_code == EXIT_FAILED
    rapl = report.reader("rapl")
    assert rapl.status == "unavailable"
    perm = next(c for c in rapl.checks if c.name == "permissions")
    assert perm.verdict == "fail"
    assert str(energy) in perm.summary
    assert perm.remedy is not None
    assert "CVE-2020-8694" in perm.remedy
    assert (
        'SUBSYSTEM=="powercap", ACTION=="add", '
        'RUN+="/bin/chgrp power /sys/class/powercap/%k/energy_uj", '
        'RUN+="/bin/chmod g+r /sys/class/powercap/%k/energy_uj"'
    ) in perm.remedy
    assert f"sudo chgrp power {tree.base}/intel-rapl:*/energy_uj" in perm.remedy
    assert any("99-wattbench-rapl.rules" in c for c in perm.data["commands"])
    assert load.calls == []  # nothing could be measured
    lines = report_lines(report)
    assert any(line.strip().startswith("remedy: ") and "udev rule" in line for line in lines)


def test_a_named_reader_that_is_absent_fails(tmp_path: Path, load: FakeLoad) -> None:
    report = doctor(tmp_path, only("rapl"), load)
    assert report.exit_code == EXIT_FAILED
    (presence,) = report.reader("rapl").checks
    assert presence.verdict == "fail"
    assert presence.remedy is not None and presence.remedy.startswith("no RAPL here")


def test_unknown_reader_name_is_a_usage_error(tmp_path: Path, load: FakeLoad) -> None:
    from wattbench.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown power reader 'rapl2'"):
        doctor(tmp_path, only("rapl2"), load)


# -- hwmon ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["power", "energy"])
def test_hwmon_sensor_steps_with_the_load(
    tmp_path: Path, load: FakeLoad, sensors: SensorFactory, kind: str
) -> None:
    add_device(tmp_path, "hwmon0", "acpitz", {"temp1_input": "45000"})  # no power: ignored
    d = add_device(tmp_path, "hwmon1", "ina238", {f"{kind}1_input": "0", f"{kind}1_label": "VIN"})
    energy_uj = [0.0]

    def write_sensor(p: float, dt: float) -> None:
        if kind == "power":
            write(d / "power1_input", f"{round(p * 1e6)}\n")
        else:
            energy_uj[0] += p * dt * 1e6
            write(d / "energy1_input", f"{round(energy_uj[0])}\n")

    counter = kind == "energy"
    if counter:
        sensors(write_sensor, load, 4.0, 34.0, 0.001)
        report = doctor(tmp_path, only("hwmon", sample_interval_s=COUNTER_INTERVAL_S), load)
        assert_passed(report, "hwmon", 4.0, 30.0, counter=True)
    else:
        sensors(write_sensor, load, 4.0, 9.0)
        report = doctor(tmp_path, only("hwmon"), load)
        assert_passed(report, "hwmon", 4.0, 5.0)
    hw = report.reader("hwmon")
    assert hw.method == ("polled" if kind == "power" else "counter")
    assert hw.component == "ina238 VIN (hwmon1)"


def test_unreadable_hwmon_channel_gives_the_chgrp_line(tmp_path: Path, load: FakeLoad) -> None:
    d = add_device(tmp_path, "hwmon1", "ina226", {"power1_input": "5000000"})
    (d / "power1_input").chmod(0)
    report = run_doctor(
        options(tmp_path), only("hwmon"), classes=SYSFS, load=load, read_file=read_as_user
    )
    assert report.exit_code == EXIT_FAILED
    perm = next(c for c in report.reader("hwmon").checks if c.name == "permissions")
    assert perm.verdict == "fail" and perm.remedy is not None
    path = d / "power1_input"
    assert f"sudo chgrp power {path} && sudo chmod g+r {path}" in perm.remedy
    assert 'SUBSYSTEM=="hwmon", ATTR{name}=="ina226"' in perm.remedy


def test_a_sensor_found_but_ambiguous_is_a_warning_not_a_failure(
    tmp_path: Path, load: FakeLoad
) -> None:
    add_device(tmp_path, "hwmon1", "ina226", {"power1_input": "5000000"})
    add_device(tmp_path, "hwmon2", "ina226", {"power1_input": "2000000"})
    report = doctor(tmp_path, DoctorSettings(), load)
    hw = report.reader("hwmon")
    assert hw.status == "unavailable" and hw.verdict == "warn"
    assert "hwmon channels match" in (hw.checks[0].remedy or "")
    # nothing measured: only the estimate remains
    assert report.exit_code == EXIT_ESTIMATE_ONLY


# -- Jetson -----------------------------------------------------------------------------------

JETSONS = {
    # JetPack 5/6 (hwmon ina3221): the total rail's current file moves (5 V bus)
    "orin_nano_jp6": (orin_nano_jp6, "ina3221/1-0040/hwmon/hwmon3", "curr1_input", 6.0),
    "xavier_nx_jp5": (xavier_nx_jp5, "ina3221/7-0040/hwmon/hwmon6", "curr1_input", 4.5),
    # JetPack 4 (iio ina3221x): the total rail's power file moves (mW)
    "nano_jp4": (nano_jp4, "ina3221x/6-0040/iio:device0", "in_power0_input", 3.2),
}


@pytest.mark.parametrize("model_at", ["proc", "firmware"])
@pytest.mark.parametrize("board", list(JETSONS))
def test_jetson_module_steps_with_the_load(
    tmp_path: Path, load: FakeLoad, sensors: SensorFactory, board: str, model_at: str
) -> None:
    build, sub, name, idle_w = JETSONS[board]
    build(tmp_path)
    if model_at == "firmware":  # no /proc/device-tree: the model from /sys/firmware
        move_model_to_firmware(tmp_path)
    path = tmp_path / "sys/bus/i2c/drivers" / sub / name
    per_w = 200.0 if name.startswith("curr") else 1000.0  # mA at 5 V, or mW

    sensors(lambda p, dt: write(path, f"{round(p * per_w)}\n"), load, idle_w, idle_w + 4.0)
    report = doctor(tmp_path, only("jetson"), load)
    assert_passed(report, "jetson", idle_w, 4.0)
    js = report.reader("jetson")
    assert (js.method, js.scope) == ("polled", "module")
    resolution = next(c for c in js.checks if c.name == "resolution")
    assert "INA3221" in resolution.summary


# -- smart plugs ------------------------------------------------------------------------------


@pytest.mark.parametrize("gen", [1, 2])
def test_shelly_plug_steps_with_the_load(
    plug: tuple[str, PlugState], load: FakeLoad, gen: int
) -> None:
    url, state = plug
    state.set(gen=gen, power_w=21.0)
    load.on_start.append(lambda: state.set_power(33.0))
    load.on_end.append(lambda: state.set_power(21.0))
    report = doctor(
        None, only("shelly"), load, classes={"shelly": ShellyReader}, **{"shelly.url": url}
    )
    rep = report.reader("shelly")
    assert (rep.method, rep.scope) == ("external", "wall")
    text = "\n".join(report_lines(report))
    assert report.exit_code == EXIT_OK, text
    verdicts = checks(report, "shelly")
    assert verdicts["step"] == "ok" and verdicts["window"] == "ok", text
    assert rep.idle_mean_w == pytest.approx(21.0, abs=0.1)
    assert rep.step_delta_w == pytest.approx(12.0, rel=0.2)
    rate = next(c for c in rep.checks if c.name == "sample rate")
    assert "the sensor updates every 1 s" in rate.summary
    resolution = next(c for c in rep.checks if c.name == "resolution")
    assert ("60 J steps" if gen == 1 else "3.6 J steps") in resolution.summary


def test_rapl_and_a_wall_plug_over_the_same_window(
    tmp_path: Path, plug: tuple[str, PlugState], load: FakeLoad, sensors: SensorFactory
) -> None:
    url, state = plug
    state.set_power(20.0)
    load.on_start.append(lambda: state.set_power(70.0))
    load.on_end.append(lambda: state.set_power(20.0))
    tree = rapl_tree(tmp_path)
    sensors(lambda p, dt: tree.advance("intel-rapl:0", p * dt), load, 6.0, 46.0, 0.001)
    classes = {"rapl": RaplReader, "shelly": ShellyReader}
    settings = only("rapl", "shelly", sample_interval_s=COUNTER_INTERVAL_S)
    report = doctor(tmp_path, settings, load, classes, **{"shelly.url": url})
    assert report.exit_code == EXIT_OK, "\n".join(report_lines(report))
    (cc,) = report.cross_checks
    assert cc.readers == ("rapl", "shelly") and cc.scopes == ("chip", "wall")
    assert cc.verdict == "ok"
    # (6 W x 1.2 s + 46 W x 0.6 s) / (20 W x 1.2 s + 70 W x 0.6 s) = 0.53
    assert cc.energy_ratio == pytest.approx(0.53, abs=0.15)
    # 40 W / 50 W when the plug answers in time; a starved loopback server smears its step
    assert cc.step_ratio is not None and cc.step_ratio > 0.5


def test_a_chip_figure_above_the_wall_figure_fails(
    tmp_path: Path, plug: tuple[str, PlugState], load: FakeLoad, sensors: SensorFactory
) -> None:
    url, state = plug  # a plug that feeds something else: a 3 W lamp and its 5 W step
    state.set_power(3.0)
    load.on_start.append(lambda: state.set_power(8.0))
    load.on_end.append(lambda: state.set_power(3.0))
    tree = rapl_tree(tmp_path)
    sensors(lambda p, dt: tree.advance("intel-rapl:0", p * dt), load, 6.0, 26.0, 0.001)
    classes = {"rapl": RaplReader, "shelly": ShellyReader}
    report = doctor(tmp_path, only("rapl", "shelly"), load, classes, **{"shelly.url": url})
    (cc,) = report.cross_checks
    assert cc.verdict == "fail" and cc.energy_ratio is not None and cc.energy_ratio > 2
    assert "does not feed this device" in (cc.remedy or "")
    assert report.exit_code == EXIT_FAILED and "rapl/shelly" in report.summary


# -- the estimate and the load ----------------------------------------------------------------


def test_only_the_estimate_exits_3_without_measuring(tmp_path: Path, load: FakeLoad) -> None:
    report = doctor(tmp_path, DoctorSettings(), load)
    assert report.exit_code == EXIT_ESTIMATE_ONLY and report.outcome == "estimate_only"
    assert load.calls == []  # nothing to measure: no phases
    est = report.reader("estimate")
    assert est.status == "estimate" and est.verdict == "warn"
    assert {r.name: r.status for r in report.readers if r.name != "estimate"} == {
        "rapl": "absent",
        "hwmon": "absent",
        "jetson": "absent",
    }
    assert report.summary.startswith("only the ESTIMATE is available here")
    assert report.headline_reader is None


def test_cpu_load_runs_child_processes_for_the_time_asked() -> None:
    load = CpuLoad(2)
    assert load.description == "CPU busy loop in 2 child processes"
    t0 = time.monotonic()
    load(0.3)
    assert 0.25 <= time.monotonic() - t0 < 15
