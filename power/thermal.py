"""Temperatures and throttling during a run: a monitor polled in a background thread.

What is sampled (every source is optional; a machine with none of them gets no thermal
section):

* Linux thermal zones ``<root>/sys/class/thermal/thermal_zone*/`` — ``temp`` (millidegrees
  C) and ``type`` (``x86_pkg_temp``, ``acpitz``; on a Jetson ``CPU-therm``, ``GPU-therm``,
  ``tj-therm``...), with their trip points (``trip_point_<N>_type``/``_temp``);
* hwmon ``<root>/sys/class/hwmon/hwmon*/temp*_input`` (millidegrees C; ``name`` and
  ``temp<N>_label`` name them);
* NVML (``pynvml``, injected): ``nvmlDeviceGetTemperature`` and
  ``nvmlDeviceGetCurrentClocksThrottleReasons`` of every GPU;
* cpufreq ``policy*/scaling_cur_freq`` and the x86 ``thermal_throttle`` counters, for
  throttling only.

A window (one trial) is **throttled** when, while it ran:

* a thermal zone reached its lowest passive trip point (where the kernel starts slowing
  the CPU/GPU down; zones with no passive trip use ``hot``, then ``critical``);
* an NVML throttle reason other than *GPU idle* and *applications clocks setting* was set
  (``sw_power_cap`` too, unless ignored: a sweep that sets the GPU power limit ignores it);
* the CPU's ``thermal_throttle`` counters went up (x86);
* the CPU maximum frequency was set (``expected_cpu_khz``, by a sweep) and the fastest
  cpufreq policy ran more than ``cpu_drop`` (5 %) below it in ``cpu_consecutive`` (2)
  samples in a row. The fastest policy, because idle clusters clock down by design; a
  thermally throttled device slows all of them.

This module reads files and calls NVML only; it imports nothing but ``core``.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattbench.core.results import ThermalSummary, TrialResult, TrialThermal

#: NVML clock throttle reasons (nvml.h ``nvmlClocksThrottleReason*``) that are throttling.
NVML_THROTTLE_REASONS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}
#: GPU idle (0x1) and applications clocks setting (0x2): not throttling.
NVML_BENIGN_REASONS = 0x1 | 0x2
_NVML_TEMPERATURE_GPU = 0
#: Trip point types that mean "the kernel slows the device down here", by preference.
THROTTLE_TRIP_TYPES = ("passive", "hot", "critical")

_THERMAL = "sys/class/thermal"
_HWMON = "sys/class/hwmon"
_CPUFREQ = "sys/devices/system/cpu/cpufreq"
_CPU = "sys/devices/system/cpu"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _read_milli_c(path: Path) -> float | None:
    text = _read_text(path)
    try:
        return int(text.split()[0]) / 1000.0 if text else None
    except (ValueError, IndexError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def _num_key(path: Path) -> tuple[int, str]:
    digits = re.sub(r"\D", "", path.name)
    return (int(digits) if digits else -1, path.name)


@dataclass(frozen=True)
class ZoneSensor:
    """A temperature file; ``trip_c`` is where it throttles (None: no trip point known)."""

    name: str
    path: Path
    trip_c: float | None = None
    trip_type: str | None = None


@dataclass
class Sample:
    """One poll: every sensor's temperature and the throttle reasons seen."""

    temps: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    cpu_low: str | None = None  # the cpufreq comparison, counted over consecutive samples


@dataclass
class ThermalWindow:
    """What one window (a trial) saw."""

    max_temp_c: float | None = None
    sensors: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    samples: int = 0

    @property
    def throttled(self) -> bool:
        return bool(self.reasons)


def _zone_trip(zone: Path) -> tuple[float | None, str | None]:
    """The lowest trip point of the first throttling type a zone has (passive, hot, ...)."""
    trips: dict[str, list[float]] = {}
    for type_file in zone.glob("trip_point_*_type"):
        kind = (_read_text(type_file) or "").lower()
        temp = _read_milli_c(type_file.with_name(type_file.name.replace("_type", "_temp")))
        if temp is not None and temp > 0:  # 0 or below: a disabled trip
            trips.setdefault(kind, []).append(temp)
    for kind in THROTTLE_TRIP_TYPES:
        if kind in trips:
            return min(trips[kind]), kind
    return None, None


def discover_zones(root: Path) -> list[ZoneSensor]:
    """Thermal zones (with their trip points) and hwmon temperature inputs under ``root``."""
    found: list[ZoneSensor] = []
    zones = sorted((root / _THERMAL).glob("thermal_zone*"), key=_num_key)
    types = [(_read_text(z / "type") or z.name) for z in zones]
    for zone, kind in zip(zones, types, strict=True):
        if not (zone / "temp").exists():
            continue
        name = kind if types.count(kind) == 1 else f"{kind}:{zone.name}"
        trip, trip_type = _zone_trip(zone)
        found.append(ZoneSensor(name, zone / "temp", trip, trip_type))
    for hw in sorted((root / _HWMON).glob("hwmon*"), key=_num_key):
        driver = _read_text(hw / "name") or hw.name
        for temp in sorted(hw.glob("temp*_input"), key=_num_key):
            channel = temp.name.removesuffix("_input")
            label = _read_text(hw / f"{channel}_label") or channel
            found.append(ZoneSensor(f"{driver}/{label}", temp))
    return found


def _import_nvml() -> Any | None:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


class ThermalMonitor:
    """Samples temperatures and throttle flags every ``period_s`` while a window runs.

    ``start()`` / ``stop() -> ThermalWindow`` bracket a window (the runner brackets every
    trial); ``temperature()`` reads the hottest sensor now (``--cooldown-until-temp``).
    ``nvml`` is the ``pynvml`` module, or a fake; ``use_nvml=False`` leaves GPUs out.
    """

    def __init__(
        self,
        sysfs_root: Path | None = None,
        *,
        nvml: Any = None,
        use_nvml: bool = True,
        period_s: float = 0.5,
        cpu_drop: float = 0.05,
        cpu_consecutive: int = 2,
        ignore_reasons: Iterable[str] = (),
    ) -> None:
        self.root = Path(sysfs_root) if sysfs_root is not None else Path("/")
        self.period_s = period_s
        self.cpu_drop = cpu_drop
        self.cpu_consecutive = max(1, cpu_consecutive)
        #: The CPU maximum frequency set (kHz), by a sweep; None: no cpufreq comparison.
        self.expected_cpu_khz: int | None = None
        #: Throttle reasons not counted (e.g. ``sw_power_cap`` while a power limit is swept).
        self.ignore_reasons: set[str] = set(ignore_reasons)
        self._nvml_given = nvml
        self._use_nvml = use_nvml
        self._nvml: Any = None
        self._gpus: list[tuple[int, Any]] | None = None
        self._nvml_temp_ok = True
        self._nvml_reasons_ok = True
        self._zones: list[ZoneSensor] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._window: ThermalWindow | None = None
        self._cpu_run = 0
        self._throttle_counts: dict[str, int] = {}
        self.windows: list[ThermalWindow] = []

    # -- sources ---------------------------------------------------------------------------
    def zones(self) -> list[ZoneSensor]:
        if self._zones is None:
            self._zones = discover_zones(self.root)
        return self._zones

    def gpus(self) -> list[tuple[int, Any]]:
        """(index, handle) of every GPU NVML sees; [] without NVML."""
        if self._gpus is not None:
            return self._gpus
        self._gpus = []
        if not self._use_nvml:
            return self._gpus
        nvml = self._nvml_given if self._nvml_given is not None else _import_nvml()
        if nvml is None:
            return self._gpus
        try:
            nvml.nvmlInit()
            n = int(nvml.nvmlDeviceGetCount())
            self._gpus = [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(n)]
            self._nvml = nvml
        except Exception:  # no driver, no GPU: no GPU sensors
            self._gpus = []
        return self._gpus

    def sources(self) -> list[str]:
        """What this monitor samples, for the result (``thermal zone x86_pkg_temp``, ...)."""
        out = []
        for z in self.zones():
            kind = "hwmon" if _HWMON in str(z.path) else "thermal zone"
            trip = f" (trip {z.trip_type} {z.trip_c:g} C)" if z.trip_c is not None else ""
            out.append(f"{kind} {z.name}{trip}")
        out += [f"nvml gpu{i}" for i, _h in self.gpus()]
        if self._policies():
            out.append("cpufreq scaling_cur_freq")
        if self._throttle_files():
            out.append("cpu thermal_throttle counters")
        return out

    def _policies(self) -> list[Path]:
        base = self.root / _CPUFREQ
        return sorted(
            (p for p in base.glob("policy*") if (p / "scaling_cur_freq").exists()), key=_num_key
        )

    def _throttle_files(self) -> list[Path]:
        return sorted((self.root / _CPU).glob("cpu[0-9]*/thermal_throttle/*_throttle_count"))

    # -- one poll --------------------------------------------------------------------------
    def read(self) -> Sample:
        """Every sensor now, and the throttle reasons it shows."""
        s = Sample()
        for z in self.zones():
            t = _read_milli_c(z.path)
            if t is None:
                continue
            s.temps[z.name] = t
            if z.trip_c is not None and t >= z.trip_c:
                s.reasons.append(f"{z.name} at {t:g} C >= its {z.trip_type} trip {z.trip_c:g} C")
        for i, h in self.gpus():
            self._read_gpu(i, h, s)
        s.cpu_low = self._cpu_below_set()
        return s

    def _read_gpu(self, index: int, handle: Any, s: Sample) -> None:
        nvml = self._nvml
        if self._nvml_temp_ok:
            try:
                s.temps[f"gpu{index}"] = float(
                    nvml.nvmlDeviceGetTemperature(handle, _NVML_TEMPERATURE_GPU)
                )
            except Exception:
                self._nvml_temp_ok = False
        if self._nvml_reasons_ok:
            try:
                get = getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None) or (
                    nvml.nvmlDeviceGetCurrentClocksEventReasons
                )
                mask = int(get(handle)) & ~NVML_BENIGN_REASONS
            except Exception:
                self._nvml_reasons_ok = False
                return
            for bit, name in NVML_THROTTLE_REASONS.items():
                if mask & bit and name not in self.ignore_reasons:
                    s.reasons.append(f"gpu{index}: {name}")

    def _cpu_below_set(self) -> str | None:
        """A reason when the fastest cpufreq policy runs clearly below the frequency set."""
        if self.expected_cpu_khz is None:
            return None
        ratios = []
        for p in self._policies():
            cur = _read_int(p / "scaling_cur_freq")
            if cur is None:
                continue
            lo = _read_int(p / "cpuinfo_min_freq") or 0
            hi = _read_int(p / "cpuinfo_max_freq") or 2**31
            expected = min(max(self.expected_cpu_khz, lo), hi)
            if expected > 0:
                ratios.append((cur / expected, cur, expected))
        if not ratios:
            return None
        ratio, cur, expected = max(ratios)
        if ratio >= 1.0 - self.cpu_drop:
            return None
        return (
            f"cpufreq: fastest policy at {cur / 1000:g} MHz, below the {expected / 1000:g} MHz set"
        )

    def _counts(self) -> dict[str, int]:
        out = {}
        for f in self._throttle_files():
            v = _read_int(f)
            if v is not None:
                out[str(f)] = v
        return out

    def temperature(self, match: str | None = None) -> float | None:
        """The hottest sensor now (those whose name contains ``match``, when given)."""
        temps = self.read().temps
        picked = [t for n, t in temps.items() if match is None or match.lower() in n.lower()]
        return max(picked) if picked else None

    # -- windows ---------------------------------------------------------------------------
    def _take(self) -> None:
        s = self.read()
        with self._lock:
            w = self._window
            if w is None:
                return
            w.samples += 1
            for name, t in s.temps.items():
                w.sensors[name] = max(t, w.sensors.get(name, t))
            for r in s.reasons:
                if r not in w.reasons:
                    w.reasons.append(r)
            if s.cpu_low is None:
                self._cpu_run = 0
            else:
                self._cpu_run += 1
                if self._cpu_run >= self.cpu_consecutive and s.cpu_low not in w.reasons:
                    w.reasons.append(s.cpu_low)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self._take()
            except Exception:  # a sensor vanished mid-run: keep the others going
                continue

    def start(self) -> None:
        """Begin a window: one sample now, then one every ``period_s`` until :meth:`stop`."""
        if self._thread is not None:
            self.stop()
        with self._lock:
            self._window = ThermalWindow()
            self._cpu_run = 0
        self._throttle_counts = self._counts()
        self._take()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="wattbench-thermal", daemon=True)
        self._thread.start()

    def stop(self) -> ThermalWindow:
        """End the window (one last sample) and return what it saw."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=max(5.0, 4 * self.period_s))
            self._thread = None
        self._take()
        with self._lock:
            w = self._window or ThermalWindow()
            self._window = None
        after = self._counts()
        for f, before in self._throttle_counts.items():
            if after.get(f, before) > before:
                cpu = Path(f).parent.parent.name
                w.reasons.append(
                    f"{cpu}: {Path(f).name.removesuffix('_count')} +{after[f] - before}"
                )
        w.max_temp_c = max(w.sensors.values()) if w.sensors else None
        self.windows.append(w)
        return w

    def close(self) -> None:
        if self._thread is not None:
            self.stop()

    def has_sources(self) -> bool:
        return bool(self.sources())


def trial_with(trial: TrialResult, window: ThermalWindow | None) -> TrialResult:
    """``trial`` with the window's throttle flag, hottest temperature and reasons."""
    if window is None:
        return trial
    return trial.model_copy(
        update={
            "throttled": window.throttled,
            "max_temp_c": window.max_temp_c,
            "throttle_reasons": list(window.reasons),
        }
    )


def summarize(
    trials: Iterable[TrialResult],
    windows: Iterable[ThermalWindow],
    *,
    period_s: float | None,
    sources: list[str],
) -> ThermalSummary | None:
    """The run's thermal section from its trials (and every window's sensors); None when
    nothing was sampled."""
    trials = list(trials)
    if not sources:
        return None
    sensors: dict[str, float] = {}
    for w in windows:
        for name, t in w.sensors.items():
            sensors[name] = max(t, sensors.get(name, t))
    temps = [t.max_temp_c for t in trials if t.max_temp_c is not None]
    return ThermalSummary(
        max_temp_c=max(temps) if temps else (max(sensors.values()) if sensors else None),
        sensors=sensors,
        throttled_trials=[t.index for t in trials if t.throttled],
        trials=[
            TrialThermal(
                index=t.index,
                throttled=t.throttled,
                max_temp_c=t.max_temp_c,
                throttle_reasons=list(t.throttle_reasons),
            )
            for t in trials
        ],
        period_s=period_s,
        sources=sources,
    )


def wait_until_cool(
    monitor: ThermalMonitor,
    target_c: float,
    *,
    timeout_s: float,
    sensor: str | None = None,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, float | None, float]:
    """Wait until the hottest sensor (matching ``sensor``) is at or below ``target_c``.

    Returns (cooled, last temperature, seconds waited); (True, None, 0) when there is no
    sensor to read, (False, t, timeout) when it did not cool down in time.
    """
    t0 = clock()
    while True:
        temp = monitor.temperature(sensor)
        waited = clock() - t0
        if temp is None:
            return True, None, waited
        if temp <= target_c:
            return True, temp, waited
        if waited >= timeout_s:
            return False, temp, waited
        sleep(min(poll_s, max(0.0, timeout_s - waited)) or poll_s)
