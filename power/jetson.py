"""NVIDIA Jetson module power from the on-module TI INA3221 power monitors.

The INA3221 measures bus voltage and shunt current on up to three rails per
chip; the kernel exposes them in sysfs under one of two layouts:

* JetPack 5/6 (L4T r34+, mainline ``hwmon`` driver), channels numbered 1-3::

    <root>/sys/bus/i2c/drivers/ina3221/<bus-addr>/hwmon/hwmon*/in{N}_label
    <root>/sys/bus/i2c/drivers/ina3221/<bus-addr>/hwmon/hwmon*/in{N}_input    (mV)
    <root>/sys/bus/i2c/drivers/ina3221/<bus-addr>/hwmon/hwmon*/curr{N}_input  (mA)

  P = V x I. Channel 7 / ``curr4`` (sum of shunt voltages) and channels
  labelled ``NC`` (not connected) are skipped.

* JetPack 4 (L4T r32, NVIDIA's ``ina3221x`` IIO driver), channels numbered 0-2::

    <root>/sys/bus/i2c/drivers/ina3221x/<bus-addr>/iio:device*/rail_name_{N}
    <root>/sys/bus/i2c/drivers/ina3221x/<bus-addr>/iio:device*/in_power{N}_input (mW)

  (``in_voltage{N}_input`` mV x ``in_current{N}_input`` mA when the power file
  is missing.)

**Scope is the module** (:attr:`EnergyScope.MODULE`): the monitors sit on the
Jetson module's input rails. The carrier board (USB devices, fan, NVMe, the
board's own regulators) and the power supply are outside it; use a wall
meter (``shelly``/``tasmota``) for those. Which rails make up the module
total depends on the board, read from ``<root>/proc/device-tree/model`` (or
``<root>/sys/firmware/devicetree/base/model``, where ``/proc/device-tree``
links to on the boards) and looked up in :data:`BOARDS` (never guessed from
rail-name substrings):

==================  =================================================  ===========================
board               rails                                              module total
==================  =================================================  ===========================
Orin Nano, Orin NX  VDD_IN, VDD_CPU_GPU_CV, VDD_SOC                    VDD_IN
AGX Orin            VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0,              the first three, summed
                    VDDQ_VDD2_1V8AO                                    (VDDQ is fed by VIN_SYS_5V0)
Xavier NX           VDD_IN, VDD_CPU_GPU_CV, VDD_SOC                    VDD_IN
AGX Xavier          GPU, CPU, SOC, CV, VDDRQ, SYS5V                    all six, summed (parallel;
                                                                       no input rail is monitored)
Nano (4 GB)         POM_5V_IN, POM_5V_GPU, POM_5V_CPU                  POM_5V_IN
TX2, TX2i, TX2 4GB  VDD_IN, VDD_SYS_{GPU,SOC,CPU,DDR}, VDD_4V0_WIFI    VDD_IN (carrier rails such
                    (+ carrier board: VDD_MUX, VDD_5V0_IO_SYS, ...)    as VDD_MUX: reported only)
TX2 NX              VDD_IN, VDD_CPU_GPU, VDD_SOC                       VDD_IN
==================  =================================================  ===========================

Sources: NVIDIA Jetson Linux developer guide (L4T 32.6.1 "Clock Frequency and
Power Management", 34.1+ "Platform Power and Performance"), the L4T and
upstream device trees, and the AGX Xavier/AGX Orin design guides as collected
in energymon's ``jetson/JetsonPowerRails.md``.

An unknown board with one of the input rails of :data:`INPUT_RAILS`
(``VDD_IN``, ``POM_5V_IN``, ``VIN``) is read with that rail as its total, with
a warning naming the board, and labelled scope ``board``: without the board in
the table, nothing says whether the rail feeds the module only or the whole
carrier board. ``--power-opt jetson.total_rail=RAIL[,RAIL…]`` names the
rail(s) to sum and confirms them as the module input (scope ``module``). A
board without such a rail, or a known board whose monitors do not match the
table, is unavailable until that option is given. Every rail is also
integrated on its own and reported in ``reading.details["rails"]``.

**Uncertainty** (:meth:`JetsonReader.default_accuracy`), per rail of the total,
from the TI INA3221 datasheet (SBOS576, electrical characteristics at 25 °C,
maximum values): shunt-voltage offset ±80 µV and bus-voltage offset ±16 mV,
gain error 0.25 % on each, and half of the ADC's 1-LSB steps (40 µV shunt,
8 mV bus); plus the shunt resistor's tolerance (1 %, a project convention,
``jetson.shunt_tolerance_pct``). With the rail's mean bus voltage V, power P and
shunt resistance R (the driver's ``shunt{N}_resistor``, else the device tree's
``ti,shunt-resistor-mohm``, else 5 mΩ, the smallest of the 5, 10 and 20 mΩ
shunts in the upstream Tegra device trees, which gives the largest current
error)::

    dP = P x (0.25 % + 0.25 % + tolerance + (16 mV + 4 mV) / V) + V x (80 µV + 20 µV) / R

The rails' terms are added; the polled accounting then adds the trapezoid's
bound for the sampling. Temperature drift (to 0.5 µV/°C, 80 µV/°C, 50 ppm/°C)
is not included.

The driver caches conversions (hwmon ``update_interval``, recorded as the
update period when present); the reader polls every ``sample_interval_s`` and
the reading carries the achieved rate. jtop (jetson-stats) is not used; note
that its per-rail ``avg`` is a running ``(new + previous) / 2`` value, not a
time average, and must never be used for energy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from wattbench.core.availability import Availability
from wattbench.core.errors import UnavailableError
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    EnergyScope,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.power.accounting import Sample, integrate_power
from wattbench.power.polled import PolledReader, SensorAccuracy, float_param

HWMON_DRIVER_DIR = "sys/bus/i2c/drivers/ina3221"
IIO_DRIVER_DIR = "sys/bus/i2c/drivers/ina3221x"
MODEL_FILE = "proc/device-tree/model"
#: where /proc/device-tree links to on the boards; read when the link is missing
FIRMWARE_MODEL_FILE = "sys/firmware/devicetree/base/model"
#: A board missing from :data:`BOARDS` is read with the first of these it has as its
#: total: the module input rails named in the table, and the generic ``VIN``.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")

# TI INA3221 datasheet (SBOS576), electrical characteristics, TA = 25 °C, maxima.
#: shunt-voltage offset, referred to input
INA3221_SHUNT_OFFSET_V = 80e-6
#: bus-voltage offset
INA3221_BUS_OFFSET_V = 16e-3
#: shunt- and bus-voltage gain error
INA3221_SHUNT_GAIN_ERROR = 0.0025
INA3221_BUS_GAIN_ERROR = 0.0025
#: 1-LSB steps of the 13-bit ADC
INA3221_SHUNT_LSB_V = 40e-6
INA3221_BUS_LSB_V = 8e-3
#: shunt assumed when neither the driver nor the device tree says (the smallest of the
#: 5, 10 and 20 mΩ shunts in the upstream Tegra device trees: the largest current error)
DEFAULT_SHUNT_OHM = 0.005
#: shunt resistor tolerance: a project convention (NVIDIA does not list the part)
DEFAULT_SHUNT_TOLERANCE_PCT = 1.0
#: bus voltage assumed for a rail whose voltage cannot be read
ASSUMED_BUS_V = 5.0
#: Labels of channels that are wired to nothing.
_NOT_CONNECTED = frozenset({"NC"})
_SCOPE_NOTE = (
    "module only: the INA3221 monitors sit on the Jetson module's input rails; the carrier "
    "board (USB, fan, NVMe, its regulators) and the power supply are outside this figure"
)
_FIX_TOTAL = "pass --power-opt jetson.total_rail=RAIL naming the module input rail"


@dataclass(frozen=True)
class JetsonBoard:
    """One Jetson model: how to recognise it and which rails are its module total."""

    key: str
    name: str
    #: matched against /proc/device-tree/model
    model_pattern: re.Pattern[str]
    #: rails the module's monitors carry, as documented
    rails: tuple[str, ...]
    #: rails summed into the module total (they must not overlap)
    total_rails: tuple[str, ...]
    #: why the total is what it is
    total_note: str


_VDD_IN_NOTE = "VDD_IN is the module's input rail; the other rails are downstream of it"

#: Ordered: the first pattern that matches the device-tree model wins.
BOARDS: tuple[JetsonBoard, ...] = (
    JetsonBoard(
        "orin_nano",
        "Jetson Orin Nano",
        re.compile(r"\bOrin Nano\b", re.IGNORECASE),
        ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"),
        ("VDD_IN",),
        _VDD_IN_NOTE,
    ),
    JetsonBoard(
        "orin_nx",
        "Jetson Orin NX",
        re.compile(r"\bOrin NX\b", re.IGNORECASE),
        ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"),
        ("VDD_IN",),
        _VDD_IN_NOTE,
    ),
    JetsonBoard(
        "agx_orin",
        "Jetson AGX Orin",
        re.compile(r"\bAGX[ -]Orin\b", re.IGNORECASE),
        ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"),
        ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"),
        "no input rail is monitored: VDD_GPU_SOC and VDD_CPU_CV (from SYS_VIN_HV) plus "
        "VIN_SYS_5V0 (SYS_VIN_MV) are summed; VDDQ_VDD2_1V8AO is fed by VIN_SYS_5V0 and "
        "is reported but not added",
    ),
    JetsonBoard(
        "xavier_nx",
        "Jetson Xavier NX",
        re.compile(r"\bXavier NX\b", re.IGNORECASE),
        ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"),
        ("VDD_IN",),
        _VDD_IN_NOTE,
    ),
    JetsonBoard(
        "agx_xavier",
        "Jetson AGX Xavier",
        re.compile(r"\bAGX Xavier\b|^Jetson-AGX$", re.IGNORECASE),
        ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"),
        ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"),
        "no input rail is monitored: the six rails are in parallel (GPU/CPU/SOC/CV/VDDRQ "
        "from SYS_VIN_HV, SYS5V from SYS_VIN_MV) and are summed",
    ),
    JetsonBoard(
        "tx2_nx",
        "Jetson TX2 NX",
        re.compile(r"^lanai\b|\bTX2 NX\b", re.IGNORECASE),
        ("VDD_IN", "VDD_CPU_GPU", "VDD_SOC"),
        ("VDD_IN",),
        _VDD_IN_NOTE,
    ),
    JetsonBoard(
        "tx2",
        "Jetson TX2",
        re.compile(r"^quill\b|\bJetson TX2\b(?! NX)", re.IGNORECASE),
        ("VDD_IN", "VDD_SYS_GPU", "VDD_SYS_SOC", "VDD_SYS_CPU", "VDD_SYS_DDR", "VDD_4V0_WIFI"),
        ("VDD_IN",),
        "VDD_IN is the module's input rail; VDD_MUX and the other 0x42/0x43 rails belong "
        "to the carrier board and are reported but not added",
    ),
    JetsonBoard(
        "nano",
        "Jetson Nano",
        re.compile(r"\bJetson Nano\b", re.IGNORECASE),
        ("POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"),
        ("POM_5V_IN",),
        "POM_5V_IN is the module's 5 V input rail (the Nano 2GB has no INA3221)",
    ),
)


def board_for_model(model: str | None) -> JetsonBoard | None:
    """The :class:`JetsonBoard` whose pattern matches a device-tree model string."""
    if not model:
        return None
    for board in BOARDS:
        if board.model_pattern.search(model):
            return board
    return None


def read_model(sysfs_root: Path) -> str | None:
    """The device-tree model without its trailing NUL, or None when absent.

    ``/proc/device-tree/model`` first, then ``/sys/firmware/devicetree/base/model``
    (the link's target, for a root that lacks the link, e.g. a copied tree).
    """
    for name in (MODEL_FILE, FIRMWARE_MODEL_FILE):
        try:
            raw = (sysfs_root / name).read_bytes()
        except OSError:
            continue
        model = raw.replace(b"\x00", b"").decode("utf-8", errors="replace").strip()
        if model:
            return model
    return None


def _read_number(path: Path) -> int:
    # sysfs values are integers, sometimes followed by a unit ("12 ms")
    return int(path.read_text().split()[0])


@dataclass(frozen=True)
class Rail:
    """One INA3221 channel and the files that give its power."""

    name: str
    device: str  # I2C bus-address directory, e.g. "1-0040"
    channel: int
    layout: str  # "hwmon" (JetPack 5/6) or "iio" (JetPack 4)
    power_mw_path: Path | None = None
    voltage_mv_path: Path | None = None
    current_ma_path: Path | None = None
    #: the shunt, from the driver or the device tree; None when neither says
    shunt_ohm: float | None = None
    shunt_source: str | None = None

    def read(self) -> tuple[float, float | None]:
        """``(power_w, bus_voltage_v)`` now; the voltage is None when the power came
        from a power file. Raises OSError/ValueError when the files cannot be read."""
        if self.power_mw_path is not None:
            return _read_number(self.power_mw_path) / 1e3, None
        assert self.voltage_mv_path is not None and self.current_ma_path is not None
        volts = _read_number(self.voltage_mv_path) / 1e3
        return volts * _read_number(self.current_ma_path) / 1e3, volts

    def read_power_w(self) -> float:
        """Power now, in watts. Raises OSError/ValueError when the files cannot be read."""
        return self.read()[0]

    def read_voltage_v(self) -> float | None:
        """The bus voltage now, in volts; None when there is no voltage file or it fails."""
        if self.voltage_mv_path is None:
            return None
        try:
            return _read_number(self.voltage_mv_path) / 1e3
        except (OSError, ValueError, IndexError):
            return None


def _hwmon_rails(sysfs_root: Path) -> tuple[list[Rail], list[float]]:
    rails: list[Rail] = []
    update_periods_s: list[float] = []
    for dev in sorted((sysfs_root / HWMON_DRIVER_DIR).glob("*-*")):
        for hwmon in sorted(dev.glob("hwmon/hwmon*")):
            with contextlib.suppress(OSError, ValueError, IndexError):
                update_periods_s.append(_read_number(hwmon / "update_interval") / 1e3)
            for ch in (1, 2, 3):  # in4-6 are shunt voltages, in7 their sum
                volt, curr = hwmon / f"in{ch}_input", hwmon / f"curr{ch}_input"
                if not (volt.exists() and curr.exists()):
                    continue
                try:
                    if (hwmon / f"in{ch}_enable").read_text().strip() == "0":
                        continue
                except OSError:
                    pass
                try:
                    label = (hwmon / f"in{ch}_label").read_text().strip()
                except OSError:
                    label = f"{dev.name}/in{ch}"
                if label.upper() in _NOT_CONNECTED:
                    continue
                shunt_ohm, shunt_source = None, None
                with contextlib.suppress(OSError, ValueError, IndexError):
                    shunt_ohm = _read_number(hwmon / f"shunt{ch}_resistor") / 1e6  # µΩ
                    shunt_source = f"shunt{ch}_resistor"
                rails.append(
                    Rail(label, dev.name, ch, "hwmon", None, volt, curr, shunt_ohm, shunt_source)
                )
    return rails, update_periods_s


def _iio_rails(sysfs_root: Path) -> list[Rail]:
    rails: list[Rail] = []
    for dev in sorted((sysfs_root / IIO_DRIVER_DIR).glob("*-*")):
        for iio in sorted(dev.glob("iio:device*")):
            for name_file in sorted(iio.glob("rail_name_*")):
                suffix = name_file.name.removeprefix("rail_name_")
                if not suffix.isdigit():
                    continue
                ch = int(suffix)
                try:
                    label = name_file.read_text().strip()
                except OSError:
                    continue
                if not label or label.upper() in _NOT_CONNECTED:
                    continue
                power = iio / f"in_power{ch}_input"
                volt, curr = iio / f"in_voltage{ch}_input", iio / f"in_current{ch}_input"
                shunt_ohm, shunt_source = _dt_shunt_ohm(dev, ch)
                if power.exists():
                    rails.append(
                        Rail(
                            label,
                            dev.name,
                            ch,
                            "iio",
                            power_mw_path=power,
                            voltage_mv_path=volt if volt.exists() else None,
                            shunt_ohm=shunt_ohm,
                            shunt_source=shunt_source,
                        )
                    )
                elif volt.exists() and curr.exists():
                    rails.append(
                        Rail(label, dev.name, ch, "iio", None, volt, curr, shunt_ohm, shunt_source)
                    )
    return rails


def _dt_shunt_ohm(dev: Path, channel: int) -> tuple[float | None, str | None]:
    """The ``ti,shunt-resistor-mohm`` of a JetPack 4 channel, from the I2C device's
    ``of_node`` (a big-endian 32-bit cell); (None, None) when absent."""
    path = dev / "of_node" / f"channel@{channel}" / "ti,shunt-resistor-mohm"
    try:
        raw = path.read_bytes()
    except OSError:
        return None, None
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") <= 0:
        return None, None
    return int.from_bytes(raw[:4], "big") / 1e3, "device tree ti,shunt-resistor-mohm"


def discover_rails(sysfs_root: Path) -> tuple[list[Rail], float | None]:
    """Every readable-looking INA3221 rail under ``sysfs_root`` and the sensor update period.

    Names are unique: a repeated label gets ``@<bus-addr>`` appended.
    """
    hw, periods = _hwmon_rails(sysfs_root)
    rails: list[Rail] = []
    seen: set[str] = set()
    for rail in hw + _iio_rails(sysfs_root):
        name = rail.name if rail.name not in seen else f"{rail.name}@{rail.device}"
        seen.add(name)
        rails.append(rail if name == rail.name else dataclasses.replace(rail, name=name))
    return rails, (max(periods) if periods else None)


@dataclass(frozen=True)
class _Plan:
    rails: tuple[Rail, ...]
    total: tuple[str, ...]
    total_source: str
    board: JetsonBoard | None
    model: str | None
    update_period_s: float | None
    scope: EnergyScope = EnergyScope.MODULE
    warnings: tuple[str, ...] = ()

    @property
    def layout(self) -> str:
        layouts = sorted({r.layout for r in self.rails})
        names = {"hwmon": "hwmon (JetPack 5/6)", "iio": "iio ina3221x (JetPack 4)"}
        return ", ".join(names[x] for x in layouts)


def _resolve(options: ReaderOptions) -> _Plan | str:
    """The rails to read and sum, or the reason (naming the fix) why that is impossible."""
    root = options.sysfs_root
    rails, update_period_s = discover_rails(root)
    if not rails:
        return (
            f"no INA3221 power monitor under {root / HWMON_DRIVER_DIR} or "
            f"{root / IIO_DRIVER_DIR}: not a Jetson with on-module monitors (the Nano 2GB has "
            "none); use a wall meter (--power shelly or tasmota) instead"
        )
    found = [r.name for r in rails]
    model = read_model(root)
    board = board_for_model(model)
    user = options.param("jetson", "total_rail")
    scope = EnergyScope.MODULE
    warnings: tuple[str, ...] = ()
    if user:
        total = tuple(x.strip() for x in user.split(",") if x.strip())
        missing = [x for x in total if x not in found]
        if not total or missing:
            return (
                f"jetson.total_rail names rail(s) {', '.join(missing) or repr(user)} that do "
                f"not exist; rails found: {', '.join(found)}"
            )
        source = "user (--power-opt jetson.total_rail)"
    elif board is None:
        shown = model or "(no device-tree model)"
        rail = next((x for x in INPUT_RAILS if x in found), None)
        if rail is None:
            return (
                f"unknown Jetson board {shown!r} with rails {', '.join(found)} and none of the "
                f"input rails {', '.join(INPUT_RAILS)}: {_FIX_TOTAL}"
            )
        total = (rail,)
        # Not in the table: the rail is an input, but of the module or of the whole
        # carrier board is not known, so it is labelled with the wider scope.
        scope = EnergyScope.BOARD
        source = f"unknown board: {rail} taken as the input rail"
        warnings = (
            f"unknown Jetson board {shown!r}: reading its {rail} rail as the total input, "
            f"labelled scope 'board' because the table cannot say whether it feeds the module "
            f"or the whole board; pass --power-opt jetson.total_rail={rail} to confirm it is "
            "the module input (scope 'module'), or name the right rail(s)",
        )
    else:
        missing = [x for x in board.total_rails if x not in found]
        if missing:
            return (
                f"{board.name} ({model}) should have rail(s) {', '.join(missing)} but only "
                f"{', '.join(found)} were found: {_FIX_TOTAL}"
            )
        total = board.total_rails
        source = f"board table ({board.name}): {board.total_note}"
    return _Plan(tuple(rails), total, source, board, model, update_period_s, scope, warnings)


def ina3221_rail_error(
    bus_v: float, shunt_ohm: float, shunt_tolerance: float
) -> tuple[float, float]:
    """``(relative, absolute_w)`` power error of one INA3221 channel (see the module docs):
    the error at power P is ``relative x |P| + absolute_w``.

    ``P = V x I`` with ``I = V_shunt / R``: the current carries the shunt-voltage
    offset, half a shunt LSB, the shunt gain error and the resistor's tolerance;
    the voltage carries the bus offset, half a bus LSB and the bus gain error.
    To first order ``dP = V x dI + I x dV``.
    """
    bus_v = max(bus_v, INA3221_BUS_LSB_V)  # a 0 V reading: no division by zero
    rel = (
        INA3221_SHUNT_GAIN_ERROR
        + INA3221_BUS_GAIN_ERROR
        + shunt_tolerance
        + (INA3221_BUS_OFFSET_V + INA3221_BUS_LSB_V / 2) / bus_v
    )
    abs_w = bus_v * (INA3221_SHUNT_OFFSET_V + INA3221_SHUNT_LSB_V / 2) / shunt_ohm
    return rel, abs_w


class JetsonReader(PolledReader):
    """Jetson module power from the INA3221 monitors (method ``polled``, scope ``module``).

    The total is the board's module input rail (or the documented sum of
    parallel rails, see :data:`BOARDS`), or the rails named by
    ``--power-opt jetson.total_rail=…``. Each rail is also integrated on its
    own into ``reading.details["rails"]``. A rail that cannot be read is a
    gap for that rail (and for the total when it is part of it), never 0 W.
    """

    name: ClassVar[str] = "jetson"
    method: ClassVar[EnergyMethod] = EnergyMethod.POLLED

    def __init__(
        self, options: ReaderOptions | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(options, clock=clock)
        self._plan: _Plan | None = None
        self._rail_lock = threading.Lock()
        self._rail_samples: list[
            tuple[float, dict[str, float | None], dict[str, float | None]]
        ] = []
        # read_power_w() leaves the per-rail values of the read in progress here;
        # sample_now() pairs them with the base class's time stamp (one per thread,
        # as stop() samples while the background thread may be sampling too).
        self._last_read = threading.local()
        tolerance_pct = float_param(
            self.options, self.name, "shunt_tolerance_pct", DEFAULT_SHUNT_TOLERANCE_PCT, minimum=0
        )
        assert tolerance_pct is not None
        self.shunt_tolerance = tolerance_pct / 100
        #: the INA3221 accuracy of the window being closed (it depends on what was measured)
        self._window_accuracy: SensorAccuracy | None = None

    @classmethod
    def is_available(cls, options: ReaderOptions) -> Availability:
        plan = _resolve(options)
        if isinstance(plan, str):
            return Availability.no(plan)
        for rail in plan.rails:
            if rail.name not in plan.total:
                continue
            try:
                rail.read_power_w()
            except (OSError, ValueError, IndexError) as exc:
                path = rail.power_mw_path or rail.voltage_mv_path
                return Availability.no(
                    f"cannot read rail {rail.name} ({path}): {exc}; run as a user that can "
                    "read the INA3221 sysfs files (e.g. root)"
                )
        board = plan.board.name if plan.board else "unknown board"
        warning = f" (warning: {plan.warnings[0]})" if plan.warnings else ""
        return Availability.yes(
            f"{board} ({plan.model or 'no device-tree model'}): {plan.scope.value} total = "
            f"{' + '.join(plan.total)}; rails: {', '.join(r.name for r in plan.rails)}{warning}"
        )

    def _get_plan(self) -> _Plan:
        if self._plan is None:
            plan = _resolve(self.options)
            if isinstance(plan, str):
                raise UnavailableError(f"jetson: {plan}")
            self._plan = plan
        return self._plan

    def setup_warnings(self) -> list[str]:
        """What the user must hear before trusting the figures (e.g. an unknown board)."""
        return list(self._get_plan().warnings)

    def info(self) -> ReaderInfo:
        plan = self._get_plan()
        return ReaderInfo(
            name=self.name,
            method=self.method,
            scope=plan.scope,
            component=" + ".join(plan.total),
            update_period_s=plan.update_period_s,
            details=self._static_details(plan),
        )

    def _static_details(self, plan: _Plan) -> dict[str, Any]:
        return {
            "board": plan.board.name if plan.board else None,
            "model": plan.model,
            "layout": plan.layout,
            "total_rails": list(plan.total),
            "total_source": plan.total_source,
            "rail_names": [r.name for r in plan.rails],
            "scope_note": _SCOPE_NOTE,
            "warnings": list(plan.warnings),
        }

    def details(self) -> dict[str, Any]:
        return self._static_details(self._get_plan())

    #: the rails' sysfs files: read by the sampler process (see PolledReader)
    READ_KIND: ClassVar[Literal["call", "file"]] = "file"

    def _file_layout(self) -> list[tuple[Rail, int, int | None]]:
        """Per rail: the index of its power (mW) or voltage (mV) file in
        :meth:`sample_files`, and of its current (mA) file (None with a power file)."""
        layout: list[tuple[Rail, int, int | None]] = []
        k = 0
        for rail in self._get_plan().rails:
            if rail.power_mw_path is not None:
                layout.append((rail, k, None))
                k += 1
            else:
                layout.append((rail, k, k + 1))
                k += 2
        return layout

    def sample_files(self) -> list[Path]:
        files: list[Path] = []
        for rail in self._get_plan().rails:
            if rail.power_mw_path is not None:
                files.append(rail.power_mw_path)
            else:
                assert rail.voltage_mv_path is not None and rail.current_ma_path is not None
                files += [rail.voltage_mv_path, rail.current_ma_path]
        return files

    def sample_from_files(self, raw: Sequence[float]) -> float | None:
        """Every rail from one read of its files (as :meth:`Rail.read` computes it); the
        module total in watts, or None when a total rail failed. The rails' values are
        left for :meth:`sample_now` / :meth:`record_file_sample`."""
        plan = self._get_plan()
        values: dict[str, float | None] = {}
        volts: dict[str, float | None] = {}
        for rail, i, j in self._file_layout():
            if j is None:
                ok = math.isfinite(raw[i])
                values[rail.name] = raw[i] / 1e3 if ok else None
                volts[rail.name] = None
            elif math.isfinite(raw[i]) and math.isfinite(raw[j]):
                bus_v = raw[i] / 1e3
                values[rail.name], volts[rail.name] = bus_v * raw[j] / 1e3, bus_v
            else:
                values[rail.name], volts[rail.name] = None, None
        self._last_read.values = values
        self._last_read.volts = volts
        parts = [values[name] for name in plan.total]
        if any(p is None for p in parts):
            return None
        return sum(p for p in parts if p is not None)

    def read_power_w(self) -> float | None:
        """Read every rail once; the module total in watts, or None when a total rail failed."""
        return self.sample_from_files(self.read_files())

    def record_file_sample(self, t_s: float, raw: Sequence[float]) -> None:
        """Keep one sample of the sampler process, with every rail under its time stamp."""
        self._last_read.values = None
        self._last_read.volts = None
        super().record_file_sample(t_s, raw)
        with self._rail_lock:
            self._rail_samples.append(
                (t_s, self._last_read.values or {}, self._last_read.volts or {})
            )

    def sample_now(self) -> Sample:
        """Take one sample (the total) and keep every rail's value under the same time stamp."""
        self._last_read.values = None
        self._last_read.volts = None
        t_s, value = super().sample_now()
        values = self._last_read.values or {}
        volts = self._last_read.volts or {}
        with self._rail_lock:
            self._rail_samples.append((t_s, values, volts))
        return t_s, value

    def start(self) -> None:
        if self._thread is not None:
            super().start()  # raises: a window is open, and its rail samples are kept
        self._get_plan()
        with self._rail_lock:
            self._rail_samples = []
        super().start()

    def default_accuracy(self) -> SensorAccuracy | None:
        """The INA3221 accuracy over the total's rails in the window being closed."""
        return self._window_accuracy

    def make_reading(self, samples: list[Sample], t_start: float, t_end: float) -> EnergyReading:
        """The total's reading, with each rail integrated over the same window in ``details``."""
        plan = self._get_plan()
        with self._rail_lock:
            rail_samples = list(self._rail_samples)
        # The same limit the base class applies to the total.
        max_gap_s = self._max_gap_s or self.MAX_GAP_INTERVALS * max(
            self.options.sample_interval_s, plan.update_period_s or 0.0
        )
        rails: dict[str, dict[str, Any]] = {}
        rel_w = 0.0  # sum over the total's rails of relative error x |P|
        abs_w = 0.0
        assumed: list[str] = []
        for rail in plan.rails:
            series = [(t, values.get(rail.name)) for t, values, _ in rail_samples]
            integ = integrate_power(series, t_start, t_end, max_gap_s=max_gap_s)
            measured_v = [v for _, _, vs in rail_samples if (v := vs.get(rail.name)) is not None]
            if measured_v:
                bus_v, v_source = sum(measured_v) / len(measured_v), "mean of the window's reads"
            elif (v_now := rail.read_voltage_v()) is not None:
                bus_v, v_source = v_now, "read at the window's end"
            else:
                bus_v, v_source = ASSUMED_BUS_V, "assumed (no voltage file)"
            shunt_ohm = rail.shunt_ohm or DEFAULT_SHUNT_OHM
            rel, offset_w = ina3221_rail_error(bus_v, shunt_ohm, self.shunt_tolerance)
            mean_w = integ.mean_power_w if integ.has_energy else None
            error_w = None if mean_w is None else rel * abs(mean_w) + offset_w
            if rail.name in plan.total and mean_w is not None:
                rel_w += rel * abs(mean_w)
                abs_w += offset_w
                if rail.shunt_ohm is None or not measured_v:
                    assumed.append(rail.name)
            rails[rail.name] = {
                "energy_j": max(integ.energy_j, 0.0) if integ.has_energy else None,
                "mean_power_w": mean_w,
                "in_total": rail.name in plan.total,
                "device": rail.device,
                "channel": rail.channel,
                "missing_samples": integ.missing,
                "valid": integ.valid,
                "invalid_reasons": list(integ.reasons),
                "bus_voltage_v": bus_v,
                "bus_voltage_source": v_source,
                "shunt_ohm": shunt_ohm,
                "shunt_source": rail.shunt_source
                or f"assumed {DEFAULT_SHUNT_OHM * 1e3:g} mΩ (neither the driver nor the "
                "device tree says)",
                "sensor_error_w": error_w,
            }
        total_w = sum(
            abs(r["mean_power_w"])
            for n, r in rails.items()
            if r["in_total"] and r["mean_power_w"] is not None
        )
        self._window_accuracy = SensorAccuracy(
            rel=rel_w / total_w if total_w > 0 else 0.0,
            abs_w=abs_w,
            source=(
                "TI INA3221 datasheet (SBOS576) maxima at 25 °C: offsets ±80 µV shunt, "
                "±16 mV bus; gain error 0.25 % each; half an LSB (40 µV, 8 mV); shunt "
                f"tolerance {self.shunt_tolerance * 100:g} % (convention); per rail "
                "dP = P (gain + tolerance + bus offset / V) + V x shunt offset / R"
                + (f"; assumed shunt or bus voltage for {', '.join(assumed)}" if assumed else "")
            ),
        )
        reading = super().make_reading(samples, t_start, t_end)
        details = dict(reading.details)
        details["rails"] = rails
        return reading.model_copy(update={"details": details})
