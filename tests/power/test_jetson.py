"""JetsonReader against fake sysfs trees laid out exactly as JetPack 4 and 5/6 expose them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wattbench.core.errors import ConfigError, UnavailableError
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    EnergyScope,
    ReaderOptions,
)
from wattbench.power.jetson import (
    BOARDS,
    DEFAULT_SHUNT_OHM,
    JetsonReader,
    board_for_model,
    ina3221_rail_error,
    read_model,
)
from wattbench.power.select import select_readers

# A sampling interval far longer than any test: the background thread never
# samples, so a window is exactly the start() and stop() samples.
NO_SAMPLING = 3600.0


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class TickClock:
    """Every call advances time by ``step``: samples are evenly spaced whatever the real timing."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.calls += 1
            self.now += self.step
            return self.now

    def wait_calls(self, n: int, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        target = self.calls + n
        while self.calls < target:
            assert time.monotonic() < deadline, "sampler thread stopped sampling"
            time.sleep(0.001)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_model(root: Path, model: str) -> None:
    """Device-tree strings end with a NUL byte."""
    p = root / "proc" / "device-tree" / "model"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(model.encode() + b"\x00")


def move_model_to_firmware(root: Path) -> None:
    """A tree without /proc/device-tree (a copied root, a container): the model is only
    where the link points on the boards, /sys/firmware/devicetree/base/model."""
    src = root / "proc" / "device-tree" / "model"
    dst = root / "sys" / "firmware" / "devicetree" / "base" / "model"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    src.unlink()
    (root / "proc" / "device-tree").rmdir()


def add_hwmon_chip(
    root: Path,
    device: str,
    hwmon: str,
    channels: dict[int, tuple[str, int, int]],
    *,
    update_interval_ms: int | None = None,
) -> Path:
    """JetPack 5/6: ina3221/<device>/hwmon/<hwmon>/in{N}_label, in{N}_input, curr{N}_input.

    Voltages in mV, currents in mA.
    """
    d = root / "sys" / "bus" / "i2c" / "drivers" / "ina3221" / device / "hwmon" / hwmon
    _write(d / "name", "ina3221\n")
    for ch, (label, mv, ma) in channels.items():
        _write(d / f"in{ch}_label", f"{label}\n")
        _write(d / f"in{ch}_input", f"{mv}\n")
        _write(d / f"curr{ch}_input", f"{ma}\n")
        _write(d / f"in{ch}_enable", "1\n")
        _write(d / f"in{ch + 3}_input", "1234\n")  # shunt voltage (uV): never a rail
    if update_interval_ms is not None:
        _write(d / "update_interval", f"{update_interval_ms}\n")
    return d


def add_iio_chip(root: Path, device: str, iio: str, channels: dict[int, tuple[str, int]]) -> Path:
    """JetPack 4: ina3221x/<device>/iio:deviceN/rail_name_{N}, in_power{N}_input (mW)."""
    d = root / "sys" / "bus" / "i2c" / "drivers" / "ina3221x" / device / iio
    for ch, (name, mw) in channels.items():
        _write(d / f"rail_name_{ch}", f"{name}\n")
        _write(d / f"in_power{ch}_input", f"{mw}\n")
        _write(d / f"in_voltage{ch}_input", "5000\n")
        _write(d / f"in_current{ch}_input", f"{mw // 5}\n")
        _write(d / f"warn_current_limit_{ch}", "32760 ma\n")
    return d


@dataclass
class Board:
    """A fake board: its files, the expected total and every rail's power."""

    model: str
    board_name: str
    total_w: float
    total_rails: list[str]
    rail_w: dict[str, float] = field(default_factory=dict)


def orin_nano_jp6(root: Path) -> Board:
    d = add_hwmon_chip(
        root,
        "1-0040",
        "hwmon3",
        {
            1: ("VDD_IN", 5000, 1200),  # 6.0 W
            2: ("VDD_CPU_GPU_CV", 5000, 400),  # 2.0 W
            3: ("VDD_SOC", 5000, 300),  # 1.5 W
        },
        update_interval_ms=1,
    )
    _write(d / "in7_label", "sum of shunt voltages\n")  # never a rail
    _write(d / "in7_input", "3000\n")
    _write(d / "curr4_input", "1900\n")
    write_model(root, "NVIDIA Jetson Orin Nano Developer Kit")
    return Board(
        "NVIDIA Jetson Orin Nano Developer Kit",
        "Jetson Orin Nano",
        6.0,
        ["VDD_IN"],
        {"VDD_IN": 6.0, "VDD_CPU_GPU_CV": 2.0, "VDD_SOC": 1.5},
    )


def agx_orin_jp5(root: Path) -> Board:
    add_hwmon_chip(
        root,
        "1-0040",
        "hwmon3",
        {
            1: ("VDD_GPU_SOC", 19000, 250),  # 4.75 W
            2: ("VDD_CPU_CV", 19000, 150),  # 2.85 W
            3: ("VIN_SYS_5V0", 5000, 600),  # 3.0 W
        },
    )
    add_hwmon_chip(
        root,
        "1-0041",
        "hwmon4",
        {
            1: ("NC", 0, 0),
            2: ("VDDQ_VDD2_1V8AO", 5000, 100),  # 0.5 W, fed by VIN_SYS_5V0: not added
            3: ("NC", 0, 0),
        },
    )
    write_model(root, "Jetson AGX Orin")
    return Board(
        "Jetson AGX Orin",
        "Jetson AGX Orin",
        4.75 + 2.85 + 3.0,
        ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"],
        {"VDD_GPU_SOC": 4.75, "VDD_CPU_CV": 2.85, "VIN_SYS_5V0": 3.0, "VDDQ_VDD2_1V8AO": 0.5},
    )


def xavier_nx_jp5(root: Path) -> Board:
    add_hwmon_chip(
        root,
        "7-0040",
        "hwmon6",
        {1: ("VDD_IN", 5000, 900), 2: ("VDD_CPU_GPU_CV", 5000, 200), 3: ("VDD_SOC", 5000, 250)},
    )
    write_model(root, "NVIDIA Jetson Xavier NX Developer Kit")
    return Board(
        "NVIDIA Jetson Xavier NX Developer Kit",
        "Jetson Xavier NX",
        4.5,
        ["VDD_IN"],
        {"VDD_IN": 4.5, "VDD_CPU_GPU_CV": 1.0, "VDD_SOC": 1.25},
    )


def nano_jp4(root: Path) -> Board:
    add_iio_chip(
        root,
        "6-0040",
        "iio:device0",
        {0: ("POM_5V_IN", 3200), 1: ("POM_5V_GPU", 400), 2: ("POM_5V_CPU", 800)},
    )
    write_model(root, "NVIDIA Jetson Nano Developer Kit")
    return Board(
        "NVIDIA Jetson Nano Developer Kit",
        "Jetson Nano",
        3.2,
        ["POM_5V_IN"],
        {"POM_5V_IN": 3.2, "POM_5V_GPU": 0.4, "POM_5V_CPU": 0.8},
    )


def agx_xavier_jp4(root: Path) -> Board:
    add_iio_chip(
        root, "1-0040", "iio:device0", {0: ("GPU", 1500), 1: ("CPU", 1000), 2: ("SOC", 2000)}
    )
    add_iio_chip(
        root, "1-0041", "iio:device1", {0: ("CV", 300), 1: ("VDDRQ", 700), 2: ("SYS5V", 2500)}
    )
    write_model(root, "Jetson-AGX")
    return Board(
        "Jetson-AGX",
        "Jetson AGX Xavier",
        1.5 + 1.0 + 2.0 + 0.3 + 0.7 + 2.5,
        ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"],
        {"GPU": 1.5, "CPU": 1.0, "SOC": 2.0, "CV": 0.3, "VDDRQ": 0.7, "SYS5V": 2.5},
    )


def tx2_jp4(root: Path) -> Board:
    add_iio_chip(
        root,
        "0-0040",
        "iio:device0",
        {0: ("VDD_SYS_GPU", 600), 1: ("VDD_SYS_SOC", 900), 2: ("VDD_4V0_WIFI", 100)},
    )
    add_iio_chip(
        root,
        "0-0041",
        "iio:device1",
        {0: ("VDD_IN", 4100), 1: ("VDD_SYS_CPU", 700), 2: ("VDD_SYS_DDR", 500)},
    )
    # carrier board monitor: reported, never part of the module total
    add_iio_chip(
        root,
        "0-0042",
        "iio:device2",
        {0: ("VDD_MUX", 6000), 1: ("VDD_5V0_IO_SYS", 1200), 2: ("VDD_3V3_SYS", 800)},
    )
    write_model(root, "quill")
    return Board(
        "quill",
        "Jetson TX2",
        4.1,
        ["VDD_IN"],
        {
            "VDD_SYS_GPU": 0.6,
            "VDD_SYS_SOC": 0.9,
            "VDD_4V0_WIFI": 0.1,
            "VDD_IN": 4.1,
            "VDD_SYS_CPU": 0.7,
            "VDD_SYS_DDR": 0.5,
            "VDD_MUX": 6.0,
            "VDD_5V0_IO_SYS": 1.2,
            "VDD_3V3_SYS": 0.8,
        },
    )


BOARD_BUILDERS: dict[str, Callable[[Path], Board]] = {
    "orin_nano_jp6": orin_nano_jp6,
    "agx_orin_jp5": agx_orin_jp5,
    "xavier_nx_jp5": xavier_nx_jp5,
    "nano_jp4": nano_jp4,
    "agx_xavier_jp4": agx_xavier_jp4,
    "tx2_jp4": tx2_jp4,
}


def options(root: Path, interval: float = NO_SAMPLING, **params: str) -> ReaderOptions:
    return ReaderOptions(
        sysfs_root=root,
        sample_interval_s=interval,
        params={f"jetson.{k}": v for k, v in params.items()},
    )


@pytest.mark.parametrize("model_at", ["proc", "firmware"])
@pytest.mark.parametrize("builder", list(BOARD_BUILDERS))
def test_constant_power_energy_is_p_times_t_with_rails(
    tmp_path: Path, builder: str, model_at: str
) -> None:
    board = BOARD_BUILDERS[builder](tmp_path)
    if model_at == "firmware":
        move_model_to_firmware(tmp_path)
        assert not (tmp_path / "proc").joinpath("device-tree").exists()
    avail = JetsonReader.is_available(options(tmp_path))
    assert avail.available, avail.reason
    clock = ManualClock()
    reader = JetsonReader(options(tmp_path), clock=clock)
    info = reader.info()
    assert info.method is EnergyMethod.POLLED
    assert info.scope is EnergyScope.MODULE
    assert info.details["board"] == board.board_name
    assert info.details["model"] == board.model  # trailing NUL stripped
    assert "carrier board" in info.details["scope_note"]
    assert info.details["total_rails"] == board.total_rails
    assert info.component == " + ".join(board.total_rails)
    assert info.details["warnings"] == []

    reader.start()
    clock.now += 10.0
    reading = reader.stop()
    reader.close()
    # Every measured figure has an uncertainty: the INA3221's, at least 0.5 % (gains).
    assert reading.uncertainty_j is not None
    assert reading.uncertainty_j > 0.005 * reading.energy_j
    assert "INA3221" in reading.details["sensor_accuracy"]["source"]

    assert reading.valid, reading.invalid_reasons
    assert reading.duration_s == pytest.approx(10.0)
    assert reading.energy_j == pytest.approx(board.total_w * 10.0)
    assert reading.mean_power_w == pytest.approx(board.total_w)
    rails = reading.details["rails"]
    assert set(rails) == set(board.rail_w)  # NC channels and the in7 sum are not rails
    for name, watts in board.rail_w.items():
        assert rails[name]["energy_j"] == pytest.approx(watts * 10.0), name
        assert rails[name]["in_total"] is (name in board.total_rails), name
        assert rails[name]["missing_samples"] == 0
    in_total = sum(r["energy_j"] for r in rails.values() if r["in_total"])
    assert in_total == pytest.approx(reading.energy_j)


def test_update_interval_is_the_update_period(tmp_path: Path) -> None:
    orin_nano_jp6(tmp_path)
    assert JetsonReader(options(tmp_path)).info().update_period_s == pytest.approx(0.001)
    root2 = tmp_path / "jp4"
    nano_jp4(root2)
    assert JetsonReader(options(root2)).info().update_period_s is None


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("NVIDIA Jetson Orin Nano Developer Kit", "orin_nano"),
        ("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "orin_nano"),
        ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "orin_nx"),
        ("Jetson AGX Orin", "agx_orin"),
        ("NVIDIA Jetson AGX Orin Developer Kit", "agx_orin"),
        ("NVIDIA Jetson Xavier NX Developer Kit", "xavier_nx"),
        ("Jetson-AGX", "agx_xavier"),
        ("Jetson AGX Xavier Industrial", "agx_xavier"),
        ("NVIDIA Jetson Nano Developer Kit", "nano"),
        ("quill", "tx2"),
        ("lanai-3636", "tx2_nx"),
        ("NVIDIA Jetson TX2 NX Developer Kit", "tx2_nx"),
    ],
)
def test_board_table_matches_device_tree_models(model: str, key: str) -> None:
    board = board_for_model(model)
    assert board is not None and board.key == key
    assert set(board.total_rails) <= set(board.rails)


def test_board_table_has_no_unmatched_or_unknown_models() -> None:
    assert board_for_model("Raspberry Pi 5 Model B Rev 1.0") is None
    assert board_for_model(None) is None
    assert len({b.key for b in BOARDS}) == len(BOARDS)


def test_unknown_board_without_an_input_rail_is_unavailable(tmp_path: Path) -> None:
    add_hwmon_chip(
        tmp_path, "1-0040", "hwmon2", {1: ("VDD_CORE", 12000, 500), 2: ("VDD_X", 800, 90)}
    )
    write_model(tmp_path, "Acme Robot Brain v2")
    avail = JetsonReader.is_available(options(tmp_path))
    assert not avail.available
    assert "jetson.total_rail" in avail.reason
    assert "Acme Robot Brain v2" in avail.reason
    assert "VDD_CORE" in avail.reason  # the rails found, so the user can pick one
    assert "VDD_IN" in avail.reason  # the input rails it looked for
    with pytest.raises(UnavailableError, match=r"jetson\.total_rail"):
        JetsonReader(options(tmp_path)).start()


def unknown_jp5_with_vin(root: Path) -> float:
    add_hwmon_chip(root, "1-0040", "hwmon2", {1: ("VIN", 12000, 500), 2: ("VDD_X", 800, 90)})
    write_model(root, "Acme Robot Brain v2")
    return 6.0


def unknown_jp4_with_vdd_in(root: Path) -> float:
    """A JetPack 4 tree whose model is in neither place (no device tree exposed)."""
    add_iio_chip(root, "0-0041", "iio:device1", {0: ("VDD_IN", 4100), 1: ("VDD_SYS_CPU", 700)})
    return 4.1


@pytest.mark.parametrize(
    ("builder", "rail", "shown"),
    [
        (unknown_jp5_with_vin, "VIN", "Acme Robot Brain v2"),
        (unknown_jp4_with_vdd_in, "VDD_IN", "(no device-tree model)"),
    ],
)
def test_unknown_board_with_an_input_rail_is_read_as_board_scope_with_a_warning(
    tmp_path: Path, builder: Callable[[Path], float], rail: str, shown: str
) -> None:
    total_w = builder(tmp_path)
    avail = JetsonReader.is_available(options(tmp_path))
    assert avail.available, avail.reason
    assert "warning" in avail.reason and shown in avail.reason
    clock = ManualClock()
    reader = JetsonReader(options(tmp_path), clock=clock)
    info = reader.info()
    assert info.scope is EnergyScope.BOARD
    assert info.component == rail
    (warning,) = reader.setup_warnings()
    assert shown in warning and f"jetson.total_rail={rail}" in warning
    assert info.details["warnings"] == [warning]
    reader.start()
    clock.now += 4.0
    reading = reader.stop()
    reader.close()
    assert reading.scope is EnergyScope.BOARD
    assert reading.valid, reading.invalid_reasons
    assert reading.energy_j == pytest.approx(total_w * 4.0)
    assert reading.details["warnings"] == [warning]
    assert reading.uncertainty_j is not None and reading.uncertainty_j > 0
    # The CLI's reader selection passes the warning on to the user.
    readers, warnings = select_readers(["jetson"], options(tmp_path))
    readers[0].close()
    assert warnings == [f"jetson: {warning}"]


def test_confirmed_input_rail_of_an_unknown_board_is_module_scope(tmp_path: Path) -> None:
    unknown_jp5_with_vin(tmp_path)
    reader = JetsonReader(options(tmp_path, total_rail="VIN"))
    assert reader.info().scope is EnergyScope.MODULE
    assert reader.setup_warnings() == []


def test_model_falls_back_to_the_firmware_device_tree(tmp_path: Path) -> None:
    assert read_model(tmp_path) is None
    write_model(tmp_path, "NVIDIA Jetson Orin Nano Developer Kit")
    move_model_to_firmware(tmp_path)
    assert read_model(tmp_path) == "NVIDIA Jetson Orin Nano Developer Kit"
    # /proc/device-tree wins when both are there.
    write_model(tmp_path, "Jetson AGX Orin")
    assert read_model(tmp_path) == "Jetson AGX Orin"


def test_unknown_board_with_total_rail_measures_it(tmp_path: Path) -> None:
    add_hwmon_chip(tmp_path, "1-0040", "hwmon2", {1: ("VIN", 12000, 500), 2: ("VDD_X", 800, 90)})
    write_model(tmp_path, "Acme Robot Brain v2")
    opts = options(tmp_path, total_rail="VIN")
    assert JetsonReader.is_available(opts).available
    clock = ManualClock()
    reader = JetsonReader(opts, clock=clock)
    reader.start()
    clock.now += 4.0
    reading = reader.stop()
    assert reading.energy_j == pytest.approx(6.0 * 4.0)
    assert reading.details["board"] is None
    assert "user" in reading.details["total_source"]
    assert reading.details["rails"]["VDD_X"]["energy_j"] == pytest.approx(0.072 * 4.0)


def test_total_rail_naming_a_missing_rail_is_unavailable(tmp_path: Path) -> None:
    orin_nano_jp6(tmp_path)
    avail = JetsonReader.is_available(options(tmp_path, total_rail="VDD_TYPO"))
    assert not avail.available
    assert "VDD_TYPO" in avail.reason and "VDD_IN" in avail.reason


def test_total_rail_overrides_the_board_table(tmp_path: Path) -> None:
    orin_nano_jp6(tmp_path)
    clock = ManualClock()
    reader = JetsonReader(options(tmp_path, total_rail="VDD_CPU_GPU_CV,VDD_SOC"), clock=clock)
    reader.start()
    clock.now += 2.0
    assert reader.stop().energy_j == pytest.approx((2.0 + 1.5) * 2.0)


def test_known_board_missing_its_total_rail_is_unavailable(tmp_path: Path) -> None:
    # An Orin Nano model string but rails that are not the Orin Nano's.
    add_hwmon_chip(tmp_path, "1-0040", "hwmon3", {1: ("VDD_CPU_GPU_CV", 5000, 100)})
    write_model(tmp_path, "NVIDIA Jetson Orin Nano Developer Kit")
    avail = JetsonReader.is_available(options(tmp_path))
    assert not avail.available
    assert "VDD_IN" in avail.reason and "jetson.total_rail" in avail.reason


def test_no_power_monitor_is_unavailable(tmp_path: Path) -> None:
    write_model(tmp_path, "NVIDIA Jetson Nano 2GB Developer Kit")
    avail = JetsonReader.is_available(options(tmp_path))
    assert not avail.available
    assert "no INA3221" in avail.reason


def test_unreadable_total_rail_is_unavailable(tmp_path: Path) -> None:
    orin_nano_jp6(tmp_path)
    hwmon = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    (hwmon / "curr1_input").unlink()
    (hwmon / "curr1_input").mkdir()  # reading it fails with IsADirectoryError
    avail = JetsonReader.is_available(options(tmp_path))
    assert not avail.available
    assert "cannot read rail VDD_IN" in avail.reason


def _run_with_fault(
    reader: JetsonReader, clock: TickClock, break_rail: Callable[[], None], fix: Callable[[], None]
) -> EnergyReading:
    reader.start()
    clock.wait_calls(20)
    break_rail()
    clock.wait_calls(40)  # ~20 failed samples (two clock reads per sample)
    fix()
    clock.wait_calls(20)
    return reader.stop()


def test_tick_clock_run_without_faults_is_valid(tmp_path: Path) -> None:
    board = orin_nano_jp6(tmp_path)
    clock = TickClock(0.001)
    reader = JetsonReader(options(tmp_path, interval=0.002), clock=clock)
    reader.start()
    clock.wait_calls(60)
    reading = reader.stop()
    assert reading.valid, reading.invalid_reasons
    assert reading.samples >= 20
    assert reading.energy_j == pytest.approx(board.total_w * reading.duration_s)
    # Achieved, in the injected clock's time: two clock reads (0.002 s) per sample.
    assert reading.sample_rate_hz == pytest.approx(500.0, rel=0.1)


def test_total_rail_unreadable_mid_run_is_a_gap_not_zero(tmp_path: Path) -> None:
    board = orin_nano_jp6(tmp_path)
    curr = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/curr1_input"
    clock = TickClock(0.001)
    reader = JetsonReader(options(tmp_path, interval=0.002), clock=clock)
    reading = _run_with_fault(
        reader, clock, lambda: curr.unlink(), lambda: curr.write_text("1200\n")
    )
    assert not reading.valid
    assert any("gap" in r for r in reading.invalid_reasons)
    assert reading.details["missing_samples"] >= 10
    # The gap is bridged, not counted as 0 W: energy still equals P x t.
    assert reading.energy_j == pytest.approx(board.total_w * reading.duration_s)
    rails = reading.details["rails"]
    assert rails["VDD_IN"]["missing_samples"] >= 10 and not rails["VDD_IN"]["valid"]
    assert rails["VDD_SOC"]["missing_samples"] == 0 and rails["VDD_SOC"]["valid"]


def test_jp4_garbage_in_a_non_total_rail_is_a_gap_for_that_rail_only(tmp_path: Path) -> None:
    board = nano_jp4(tmp_path)
    gpu = tmp_path / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power1_input"
    clock = TickClock(0.001)
    reader = JetsonReader(options(tmp_path, interval=0.002), clock=clock)
    reading = _run_with_fault(
        reader, clock, lambda: gpu.write_text("garbage\n"), lambda: gpu.write_text("400\n")
    )
    assert reading.valid, reading.invalid_reasons  # the total (POM_5V_IN) was never missing
    assert reading.energy_j == pytest.approx(board.total_w * reading.duration_s)
    rails = reading.details["rails"]
    assert rails["POM_5V_GPU"]["missing_samples"] >= 10
    assert not rails["POM_5V_GPU"]["valid"]
    assert rails["POM_5V_GPU"]["energy_j"] == pytest.approx(0.4 * reading.duration_s)
    assert rails["POM_5V_IN"]["missing_samples"] == 0


# -- uncertainty: TI INA3221 datasheet maxima plus the sampling bound -------------


def _expected_u(
    rails: list[tuple[float, float, float]], seconds: float, tolerance: float = 0.01
) -> float:
    """``(watts, volts, shunt ohms)`` per rail of the total -> the sensor's half-width, J."""
    error_w = 0.0
    for watts, volts, ohms in rails:
        rel = 0.0025 + 0.0025 + tolerance + (0.016 + 0.004) / volts
        error_w += rel * watts + volts * (80e-6 + 20e-6) / ohms
    return error_w * seconds


def test_jp5_uncertainty_uses_the_drivers_shunt_and_the_measured_bus_voltage(
    tmp_path: Path,
) -> None:
    orin_nano_jp6(tmp_path)
    hwmon = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    _write(hwmon / "shunt1_resistor", "10000\n")  # µΩ, as the mainline driver has it
    clock = ManualClock()
    reader = JetsonReader(options(tmp_path), clock=clock)
    reader.start()
    clock.now += 10.0
    reading = reader.stop()
    # 6 W at 5 V through 10 mΩ; constant, so the trapezoid adds nothing.
    assert reading.uncertainty_j == pytest.approx(_expected_u([(6.0, 5.0, 0.010)], 10.0))
    rail = reading.details["rails"]["VDD_IN"]
    assert rail["shunt_ohm"] == pytest.approx(0.010)
    assert rail["shunt_source"] == "shunt1_resistor"
    assert rail["bus_voltage_v"] == pytest.approx(5.0)
    assert reading.details["integration_error_j"] == pytest.approx(0.0)
    # ~2.6 % of 60 J: the offsets weigh on a 6 W rail.
    assert 0.01 < reading.uncertainty_j / reading.energy_j < 0.05


def test_jp4_uncertainty_reads_the_shunt_from_the_device_tree(tmp_path: Path) -> None:
    nano_jp4(tmp_path)
    move_model_to_firmware(tmp_path)
    dev = tmp_path / "sys/bus/i2c/drivers/ina3221x/6-0040"
    prop = dev / "of_node" / "channel@0" / "ti,shunt-resistor-mohm"
    prop.parent.mkdir(parents=True)
    prop.write_bytes((20).to_bytes(4, "big"))  # a device-tree cell: big-endian u32
    clock = ManualClock()
    reader = JetsonReader(options(tmp_path), clock=clock)
    reader.start()
    clock.now += 10.0
    reading = reader.stop()
    rail = reading.details["rails"]["POM_5V_IN"]
    assert rail["shunt_ohm"] == pytest.approx(0.020)
    # in_power gives no voltage; in_voltage is read once at the window's end.
    assert rail["bus_voltage_v"] == pytest.approx(5.0)
    assert "end" in rail["bus_voltage_source"]
    assert reading.uncertainty_j == pytest.approx(_expected_u([(3.2, 5.0, 0.020)], 10.0))


def test_summed_rails_add_their_errors_and_an_unknown_shunt_is_the_smallest(
    tmp_path: Path,
) -> None:
    board = agx_orin_jp5(tmp_path)
    clock = ManualClock()
    reader = JetsonReader(options(tmp_path, shunt_tolerance_pct="0.5"), clock=clock)
    reader.start()
    clock.now += 2.0
    reading = reader.stop()
    expected = _expected_u(
        [
            (4.75, 19.0, DEFAULT_SHUNT_OHM),
            (2.85, 19.0, DEFAULT_SHUNT_OHM),
            (3.0, 5.0, DEFAULT_SHUNT_OHM),
        ],
        2.0,
        tolerance=0.005,
    )
    assert reading.energy_j == pytest.approx(board.total_w * 2.0)
    assert reading.uncertainty_j == pytest.approx(expected)
    assert "assumed" in reading.details["rails"]["VDD_GPU_SOC"]["shunt_source"]
    assert "VDD_GPU_SOC" in reading.details["sensor_accuracy"]["source"]


def test_uncertainty_adds_the_sampling_bound_and_options_override(tmp_path: Path) -> None:
    orin_nano_jp6(tmp_path)
    curr = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/curr1_input"
    clock = ManualClock()
    reader = JetsonReader(options(tmp_path, accuracy_pct="1", accuracy_w="0"), clock=clock)
    reader.start()
    clock.now += 1.0
    curr.write_text("2000\n")  # 6 W -> 10 W
    reader.sample_now()
    clock.now += 1.0
    reading = reader.stop()
    # 8 J + 10 J; the trapezoid's bound |10 - 6| x 1 s / 2 = 2 J; the options replace the
    # INA3221 terms: 1 % of the 9 W mean for 2 s = 0.18 J.
    assert reading.energy_j == pytest.approx(18.0)
    assert reading.details["integration_error_j"] == pytest.approx(2.0)
    assert reading.uncertainty_j == pytest.approx(0.18 + 2.0)
    with pytest.raises(ConfigError, match=r"jetson\.shunt_tolerance_pct"):
        JetsonReader(options(tmp_path, shunt_tolerance_pct="-1"))


def test_rail_error_model_matches_the_datasheet_terms() -> None:
    rel, abs_w = ina3221_rail_error(5.0, 0.005, 0.01)
    assert rel == pytest.approx(0.0025 + 0.0025 + 0.01 + 0.020 / 5.0)
    assert abs_w == pytest.approx(5.0 * 100e-6 / 0.005)  # 20 mA of offset at 5 V
