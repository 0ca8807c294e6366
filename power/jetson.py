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
total depends on the board, read from ``<root>/proc/device-tree/model`` and
looked up in :data:`BOARDS` (never guessed from rail-name substrings):

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

An unknown board (or a board whose monitors do not match the table) is
unavailable unless ``--power-opt jetson.total_rail=RAIL[,RAIL…]`` names the
rail(s) to sum. Every rail is also integrated on its own and reported in
``reading.details["rails"]``.

The driver caches conversions (hwmon ``update_interval``, recorded as the
update period when present); the reader polls every ``sample_interval_s`` and
the reading carries the achieved rate. jtop (jetson-stats) is not used; note
that its per-rail ``avg`` is a running ``(new + previous) / 2`` value, not a
time average, and must never be used for energy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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
from wattbench.power.polled import PolledReader

HWMON_DRIVER_DIR = "sys/bus/i2c/drivers/ina3221"
IIO_DRIVER_DIR = "sys/bus/i2c/drivers/ina3221x"
MODEL_FILE = "proc/device-tree/model"
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
    """``/proc/device-tree/model`` without its trailing NUL, or None when absent."""
    try:
        raw = (sysfs_root / MODEL_FILE).read_bytes()
    except OSError:
        return None
    return raw.replace(b"\x00", b"").decode("utf-8", errors="replace").strip() or None


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

    def read_power_w(self) -> float:
        """Power now, in watts. Raises OSError/ValueError when the files cannot be read."""
        if self.power_mw_path is not None:
            return _read_number(self.power_mw_path) / 1e3
        assert self.voltage_mv_path is not None and self.current_ma_path is not None
        return _read_number(self.voltage_mv_path) * _read_number(self.current_ma_path) / 1e6


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
                rails.append(Rail(label, dev.name, ch, "hwmon", None, volt, curr))
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
                if power.exists():
                    rails.append(Rail(label, dev.name, ch, "iio", power_mw_path=power))
                elif volt.exists() and curr.exists():
                    rails.append(Rail(label, dev.name, ch, "iio", None, volt, curr))
    return rails


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
        return (
            f"unknown Jetson board {model or '(no /proc/device-tree/model)'!r} with rails "
            f"{', '.join(found)}: {_FIX_TOTAL}"
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
    return _Plan(tuple(rails), total, source, board, model, update_period_s)


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
        self._rail_samples: list[tuple[float, dict[str, float | None]]] = []
        # read_power_w() leaves the per-rail values of the read in progress here;
        # sample_now() pairs them with the base class's time stamp (one per thread,
        # as stop() samples while the background thread may be sampling too).
        self._last_read = threading.local()

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
        return Availability.yes(
            f"{board} ({plan.model or 'no device-tree model'}): module total = "
            f"{' + '.join(plan.total)}; rails: {', '.join(r.name for r in plan.rails)}"
        )

    def _get_plan(self) -> _Plan:
        if self._plan is None:
            plan = _resolve(self.options)
            if isinstance(plan, str):
                raise UnavailableError(f"jetson: {plan}")
            self._plan = plan
        return self._plan

    def info(self) -> ReaderInfo:
        plan = self._get_plan()
        return ReaderInfo(
            name=self.name,
            method=self.method,
            scope=EnergyScope.MODULE,
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
        }

    def details(self) -> dict[str, Any]:
        return self._static_details(self._get_plan())

    def read_power_w(self) -> float | None:
        """Read every rail once; the module total in watts, or None when a total rail failed."""
        plan = self._get_plan()
        values: dict[str, float | None] = {}
        for rail in plan.rails:
            try:
                values[rail.name] = rail.read_power_w()
            except (OSError, ValueError, IndexError):
                values[rail.name] = None
        self._last_read.values = values
        parts = [values[name] for name in plan.total]
        if any(p is None for p in parts):
            return None
        return sum(p for p in parts if p is not None)

    def sample_now(self) -> Sample:
        """Take one sample (the total) and keep every rail's value under the same time stamp."""
        self._last_read.values = None
        t_s, value = super().sample_now()
        values = self._last_read.values or {}
        with self._rail_lock:
            self._rail_samples.append((t_s, values))
        return t_s, value

    def start(self) -> None:
        if self._thread is not None:
            super().start()  # raises: a window is open, and its rail samples are kept
        self._get_plan()
        with self._rail_lock:
            self._rail_samples = []
        super().start()

    def make_reading(self, samples: list[Sample], t_start: float, t_end: float) -> EnergyReading:
        """The total's reading, with each rail integrated over the same window in ``details``."""
        reading = super().make_reading(samples, t_start, t_end)
        plan = self._get_plan()
        with self._rail_lock:
            rail_samples = list(self._rail_samples)
        max_gap_s = reading.details.get("max_gap_limit_s") or self.MAX_GAP_INTERVALS * max(
            self.options.sample_interval_s, plan.update_period_s or 0.0
        )
        rails: dict[str, dict[str, Any]] = {}
        for rail in plan.rails:
            series = [(t, values.get(rail.name)) for t, values in rail_samples]
            integ = integrate_power(series, t_start, t_end, max_gap_s=max_gap_s)
            rails[rail.name] = {
                "energy_j": max(integ.energy_j, 0.0) if integ.has_energy else None,
                "mean_power_w": integ.mean_power_w if integ.has_energy else None,
                "in_total": rail.name in plan.total,
                "device": rail.device,
                "channel": rail.channel,
                "missing_samples": integ.missing,
                "valid": integ.valid,
                "invalid_reasons": list(integ.reasons),
            }
        details = dict(reading.details)
        details["rails"] = rails
        return reading.model_copy(update={"details": details})
