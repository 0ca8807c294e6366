"""NVIDIA GPU energy through NVML (the library behind ``nvidia-smi``).

Needs ``nvidia-ml-py`` (imported as ``pynvml``; ``pip install 'wattbench[nvml]'``),
imported lazily so wattbench installs and runs without it.

Two ways to measure, chosen with ``--power-opt nvml.mode=auto|counter|polled``:

* ``counter`` (``auto`` picks it when the GPU has it): the cumulative energy
  counter ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver was
  loaded; Volta and newer), differenced across the window.
* ``polled``: power sampled every ``sample_interval_s`` by a background thread
  and integrated with :func:`~wattbench.power.accounting.integrate_power`.
  The power field is chosen with ``nvml.power_field=auto|instant|average|usage``;
  ``auto`` takes the first that works of

  - ``instant``: ``nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)`` (newer
    drivers),
  - ``average``: ``NVML_FI_DEV_POWER_AVERAGE``, a 1-second average,
  - ``usage``: ``nvmlDeviceGetPowerUsage``. NVML documents it as instantaneous
    power up to GA100 (A100) but a 1-second average on Ampere (except GA100)
    and newer GPUs. Integrating a 1-s average shifts power changes by about
    half a second, which matters for short windows.

  The field used is recorded in the reading's details (``power_field``).

When the GPU has both the counter and a power field, both are measured whatever
the mode and compared: ``details`` carries ``counter_j``, ``polled_j`` and
``disagreement_pct`` (relative to the counter); a disagreement above
``nvml.crosscheck_pct`` (default 10) is a warning in ``details["warnings"]``,
not an invalid reading. A counter that did not advance at all while the
polled power integrates to a positive energy is stuck: a warning, and in
``counter`` mode an invalid reading (never a valid 0 J).

A read that fails (``NVMLError``) is a missing sample, never 0 W.

Scope is ``board``: NVML describes its power figure as the GPU "and its
associated circuitry (e.g. memory)", i.e. the whole board including memory and
voltage regulators, not the GPU die alone. On MIG-partitioned GPUs the figures
are for the whole GPU.

Uncertainty: a relative term (``nvml.rel_uncertainty``, default
:data:`DEFAULT_REL_UNCERTAINTY`) plus, for the counter, its 1 mJ resolution and
the energy of :func:`~wattbench.power.accounting.counter_staleness_s` at each
edge (NVML publishes no update period; an edge read can be that stale: the
longest time the counter was seen holding one value plus one read interval), or,
when polled, the trapezoid's bound. NVML
documents ±5 % of current power draw only for Fermi and Kepler; it publishes no
figure for newer GPUs, so the default carries that figure forward as a project
convention. Yang et al. ("Accurate and Convenient Energy Measurements for GPUs:
A Detailed Study of NVIDIA GPU's Built-in Power Sensor", SC24) found that on
A100 and H100 the power sensor samples only about 25 % of the runtime, so
bursty work can be over- or under-estimated beyond that term; readings on those
GPUs say so in ``details["notes"]``.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, MeasurementError, UnavailableError
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    EnergyScope,
    PowerReader,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.power.accounting import (
    counter_energy,
    counter_staleness_s,
    downsample,
    integrate_power,
    uncertainty_j,
)

INSTALL_HINT = "nvidia-ml-py not installed: pip install 'wattbench[nvml]'"
#: Relative uncertainty term (NVML's documented ±5 % for Fermi/Kepler, carried forward).
DEFAULT_REL_UNCERTAINTY = 0.05
#: Cross-check disagreement (percent) above which a warning is recorded.
DEFAULT_CROSSCHECK_PCT = 10.0
#: Energy counter resolution: 1 mJ.
COUNTER_RESOLUTION_J = 0.001
#: A counter that stayed at 0 J while the polled power integrates to more than this
#: (a few counter units) is stuck.
FROZEN_COUNTER_MIN_J = 5 * COUNTER_RESOLUTION_J
#: A gap longer than this many sample intervals invalidates a polled integral.
MAX_GAP_INTERVALS = 5.0
MODES = ("auto", "counter", "polled")
POWER_FIELDS = ("auto", "instant", "average", "usage")
#: GPUs on which Yang et al. (SC24) found the power sensor samples ~25 % of runtime.
PART_TIME_SENSOR_GPUS = ("A100", "H100")

# NVML ABI values (nvml.h); used when the module given is a stand-in without them.
_NVML_SUCCESS = 0
_NVML_ERROR_NOT_SUPPORTED = 3
_FIELD_CONSTANTS = {"instant": "NVML_FI_DEV_POWER_INSTANT", "average": "NVML_FI_DEV_POWER_AVERAGE"}
#: nvmlValueType_t -> member of the nvmlValue_t union.
_VALUE_MEMBERS = {
    0: "dVal",
    1: "uiVal",
    2: "ulVal",
    3: "ullVal",
    4: "sllVal",
    5: "siVal",
    6: "usVal",
}
_MAX_TRACE_POINTS = 2000


def _import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise UnavailableError(INSTALL_HINT) from exc


def _const(nvml: Any, name: str, default: int | None = None) -> int | None:
    value = getattr(nvml, name, None)
    # type(), not isinstance(): a spec'd mock of an int passes isinstance(…, int).
    return value if type(value) is int else default


@dataclass(frozen=True)
class _Settings:
    index: int
    mode: str
    power_field: str
    crosscheck_pct: float
    rel_uncertainty: float


def _settings(options: ReaderOptions) -> _Settings:
    raw_index = options.param("nvml", "index", "0") or "0"
    try:
        index = int(raw_index)
    except ValueError:
        index = -1
    if index < 0:
        raise ConfigError(
            f"nvml.index must be a GPU index >= 0 (as nvidia-smi lists), got {raw_index!r}"
        )
    mode = (options.param("nvml", "mode", "auto") or "auto").strip().lower()
    if mode not in MODES:
        raise ConfigError(f"unknown nvml.mode {mode!r}: use one of {', '.join(MODES)}")
    field = (options.param("nvml", "power_field", "auto") or "auto").strip().lower()
    if field not in POWER_FIELDS:
        raise ConfigError(
            f"unknown nvml.power_field {field!r}: use one of {', '.join(POWER_FIELDS)}"
        )

    def number(key: str, default: float) -> float:
        raw = options.param("nvml", key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"nvml.{key} must be a number >= 0, got {raw!r}")
        return value

    return _Settings(
        index=index,
        mode=mode,
        power_field=field,
        crosscheck_pct=number("crosscheck_pct", DEFAULT_CROSSCHECK_PCT),
        rel_uncertainty=number("rel_uncertainty", DEFAULT_REL_UNCERTAINTY),
    )


class _Device:
    """One GPU behind an initialised NVML: handle, name and what it can report."""

    def __init__(self, nvml: Any, settings: _Settings) -> None:
        self.nvml = nvml
        self.error_cls: type[BaseException] = nvml.NVMLError
        index = settings.index
        count = int(nvml.nvmlDeviceGetCount())
        if index >= count:
            raise UnavailableError(
                "NVML finds no NVIDIA GPU: check `nvidia-smi`"
                if count == 0
                else f"no NVIDIA GPU with index {index} ({count} found): "
                f"set --power-opt nvml.index=0..{count - 1}"
            )
        self.index = index
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(self.handle)
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        self.counter_why = ""
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.has_counter = True
        except self.error_cls as exc:
            self.has_counter = False
            self.counter_why = str(exc)
        self.field_id: int | None = None
        self.power_field: str | None = None
        self.power_why = ""
        wanted = (
            ("instant", "average", "usage")
            if settings.power_field == "auto"
            else (settings.power_field,)
        )
        for field in wanted:
            if field != "usage":
                fid = _const(nvml, _FIELD_CONSTANTS[field])
                if fid is None or not hasattr(nvml, "nvmlDeviceGetFieldValues"):
                    self.power_why = f"this nvidia-ml-py has no {_FIELD_CONSTANTS[field]}"
                    continue
                self.field_id, self.power_field = fid, field
            else:
                self.field_id, self.power_field = None, "usage"
            if self.read_power_w(strict=True) is not None:
                break
            self.field_id, self.power_field = None, None

    @property
    def component(self) -> str:
        return f"GPU {self.index} ({self.name})"

    def read_power_w(self, *, strict: bool = False) -> float | None:
        """Board power in watts from the chosen field; None when the read fails."""
        nvml = self.nvml
        try:
            if self.power_field == "usage":
                return float(nvml.nvmlDeviceGetPowerUsage(self.handle)) / 1000.0
            if self.field_id is None:
                return None
            values = nvml.nvmlDeviceGetFieldValues(self.handle, [self.field_id])
            fv = values[0]
            if int(fv.nvmlReturn) != _NVML_SUCCESS:
                if strict:
                    self.power_why = (
                        f"field {self.power_field} returned NVML error {int(fv.nvmlReturn)}"
                    )
                return None
            member = _VALUE_MEMBERS.get(int(fv.valueType))
            if member is None:
                return None
            milliwatts = float(getattr(fv.value, member))
            return milliwatts / 1000.0 if math.isfinite(milliwatts) else None
        except self.error_cls as exc:
            if strict:
                self.power_why = f"{self.power_field}: {exc}"
            return None

    def read_energy_mj(self) -> float | None:
        """The cumulative energy counter in mJ; None when the read fails."""
        try:
            return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except self.error_cls:
            return None


def _open(nvml: Any, settings: _Settings) -> _Device:
    """Probe the GPU of an initialised NVML; UnavailableError when it cannot measure."""
    try:
        dev = _Device(nvml, settings)
    except nvml.NVMLError as exc:
        raise UnavailableError(
            f"NVML could not query GPU {settings.index} ({exc}): check `nvidia-smi`"
        ) from exc
    if not dev.has_counter and dev.power_field is None:
        raise UnavailableError(
            f"{dev.component} reports neither an energy counter ({dev.counter_why}) nor "
            f"power ({dev.power_why}): it has no power sensor NVML can read"
        )
    if settings.mode == "counter" and not dev.has_counter:
        raise UnavailableError(
            f"{dev.component} has no energy counter ({dev.counter_why}; Volta and newer "
            "only): use --power-opt nvml.mode=polled"
        )
    if settings.mode == "polled" and dev.power_field is None:
        raise UnavailableError(
            f"{dev.component} reports no power ({dev.power_why}): "
            "use --power-opt nvml.mode=counter or nvml.power_field=auto"
        )
    return dev


def _init(nvml: Any) -> None:
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise UnavailableError(
            f"NVML could not start ({exc}): install or load the NVIDIA driver "
            "(`nvidia-smi` must work)"
        ) from exc


def _shutdown(nvml: Any) -> None:
    with contextlib.suppress(nvml.NVMLError):  # nothing useful to do while releasing
        nvml.nvmlShutdown()


class NvmlReader(PowerReader):
    """NVIDIA GPU board energy via NVML (method ``counter`` or ``polled``); see module docs.

    ``method`` is ``counter`` for ``--power auto`` ranking: every GPU since
    Volta has the counter. A GPU without it is read in ``polled`` mode, which
    :meth:`info` and each reading state.
    """

    name: ClassVar[str] = "nvml"
    method: ClassVar[EnergyMethod] = EnergyMethod.COUNTER

    def __init__(
        self,
        options: ReaderOptions | None = None,
        *,
        nvml: Any = None,
        clock: Callable[[], float] = time.monotonic,
        background_poll: bool = True,
    ) -> None:
        """Initialise NVML and probe the GPU; :meth:`close` shuts NVML down.

        ``nvml`` replaces the ``pynvml`` module (tests); ``background_poll=False``
        leaves sampling to whoever calls :meth:`poll`.
        """
        super().__init__(options)
        self.settings = _settings(self.options)
        self._nvml = nvml if nvml is not None else _import_pynvml()
        self._clock = clock
        self._background_poll = background_poll
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._t0 = 0.0
        self._power: list[tuple[float, float | None]] = []
        self._energy: list[tuple[float, float | None]] = []
        self._initialised = False
        _init(self._nvml)
        self._initialised = True
        try:
            self._dev = _open(self._nvml, self.settings)
        except BaseException:
            self.close()
            raise
        if self.settings.mode == "auto":
            self.mode = "counter" if self._dev.has_counter else "polled"
        else:
            self.mode = self.settings.mode

    @classmethod
    def is_available(cls, options: ReaderOptions, *, nvml: Any = None) -> Availability:
        try:
            settings = _settings(options)
            module = nvml if nvml is not None else _import_pynvml()
            _init(module)
        except (ConfigError, UnavailableError) as exc:
            return Availability.no(str(exc))
        try:
            dev = _open(module, settings)
        except UnavailableError as exc:
            return Availability.no(str(exc))
        finally:
            _shutdown(module)
        what = []
        if dev.has_counter:
            what.append("energy counter")
        if dev.power_field is not None:
            what.append(f"{dev.power_field} power")
        return Availability.yes(f"{dev.component}: {' + '.join(what)}")

    # -- description --------------------------------------------------------------

    @property
    def component(self) -> str:
        return self._dev.component

    @property
    def power_field(self) -> str | None:
        """The power source polled: ``instant``, ``average``, ``usage`` or None."""
        return self._dev.power_field

    @property
    def has_counter(self) -> bool:
        return self._dev.has_counter

    def _notes(self) -> list[str]:
        notes = []
        if any(g in self._dev.name for g in PART_TIME_SENSOR_GPUS):
            notes.append(
                "Yang et al. (SC24): on A100/H100 the power sensor samples only ~25 % of "
                "runtime; short or bursty windows can be misestimated"
            )
        if self._dev.power_field in ("average", "usage"):
            notes.append(
                f"power field {self._dev.power_field!r} may be a 1-s average on this GPU; "
                "integrated power lags changes by ~0.5 s"
            )
        return notes

    def info(self) -> ReaderInfo:
        return ReaderInfo(
            name=self.name,
            method=EnergyMethod.COUNTER if self.mode == "counter" else EnergyMethod.POLLED,
            scope=EnergyScope.BOARD,
            component=self.component,
            update_period_s=None,  # NVML does not publish the sensor's update period
            details={
                "mode": self.mode,
                "has_counter": self._dev.has_counter,
                "power_field": self._dev.power_field,
                "relative_uncertainty": self.settings.rel_uncertainty,
                "notes": self._notes(),
            },
        )

    # -- measuring --------------------------------------------------------------

    def poll(self) -> None:
        """Take one sample of every available source (the background thread calls this)."""
        t = self._clock()
        power = self._dev.read_power_w() if self._dev.power_field is not None else None
        energy = self._dev.read_energy_mj() if self._dev.has_counter else None
        with self._lock:
            if self._dev.power_field is not None:
                self._power.append((t, power))
            if self._dev.has_counter:
                self._energy.append((t, energy))

    def _loop(self) -> None:
        while not self._stop_evt.wait(self.options.sample_interval_s):
            self.poll()

    def start(self) -> None:
        if self._running:
            raise MeasurementError(
                "nvml reader: start() called twice; call stop() before the next window"
            )
        with self._lock:
            self._power, self._energy = [], []
        self._t0 = self._clock()
        self.poll()
        self._running = True
        if self._background_poll:
            self._stop_evt.clear()
            self._thread = threading.Thread(target=self._loop, name="nvml-poll", daemon=True)
            self._thread.start()

    def _join(self) -> None:
        if self._thread is not None:
            self._stop_evt.set()
            self._thread.join()
            self._thread = None

    def stop(self) -> EnergyReading:
        if not self._running:
            raise MeasurementError("nvml reader: stop() called without start()")
        t_stop = self._clock()
        # Thread first, so no background read lands after the closing one.
        self._join()
        self.poll()
        self._running = False
        with self._lock:
            power, energy = list(self._power), list(self._energy)
        # The edge samples are the first and last taken; their times bound the window.
        edges = [s[0] for s in (power or energy)]
        t0, t1 = (edges[0], edges[-1]) if edges else (self._t0, t_stop)
        duration_s = t1 - t0
        if duration_s <= 0:
            raise MeasurementError(
                "nvml reader: the window has no duration; the clock did not advance"
            )

        counter_j, counter_reasons = self._counter(energy)
        integ = None
        polled_j: float | None = None
        if self._dev.power_field is not None:
            max_gap_s = MAX_GAP_INTERVALS * self.options.sample_interval_s
            integ = integrate_power(power, t0, t1, max_gap_s=max_gap_s)
            if math.isfinite(integ.energy_j):
                polled_j = max(integ.energy_j, 0.0)

        details: dict[str, Any] = {
            "mode": self.mode,
            "power_field": self._dev.power_field,
            "counter_j": counter_j,
            "polled_j": polled_j,
            "disagreement_pct": None,
            "crosscheck_pct": self.settings.crosscheck_pct,
            "warnings": [],
            "notes": self._notes(),
            "relative_uncertainty": self.settings.rel_uncertainty,
        }
        if integ is not None:
            details |= {
                "polled_samples": integ.samples_in_window,
                "polled_sample_rate_hz": integ.sample_rate_hz,
                "missing_samples": integ.missing,
                "max_gap_s": integ.max_gap_s,
                "polled_reasons": list(integ.reasons),
            }
        if counter_j is not None:
            details["counter_reads"] = sum(1 for _, v in energy if v is not None)
        if (
            counter_j is not None
            and polled_j is not None
            and (counter_reasons or (integ is not None and not integ.valid))
        ):
            # Comparing against a figure that is itself untrustworthy says nothing.
            details["crosscheck_skipped"] = "; ".join(
                counter_reasons + (list(integ.reasons) if integ is not None else [])
            )
        elif counter_j == 0 and polled_j is not None and polled_j > FROZEN_COUNTER_MIN_J:
            # No disagreement in percent of nothing: a counter that did not move while
            # the board drew power is stuck, and its 0 J is not a measurement.
            counter_reasons.append(
                f"the energy counter of {self.component} did not advance while the "
                f"integrated {self._dev.power_field} power came to {polled_j:.3f} J: the "
                "counter is stuck; use --power-opt nvml.mode=polled"
            )
            details["warnings"].append(counter_reasons[-1])
        elif counter_j is not None and polled_j is not None and counter_j > 0:
            pct = abs(counter_j - polled_j) / counter_j * 100.0
            details["disagreement_pct"] = pct
            if pct > self.settings.crosscheck_pct:
                details["warnings"].append(
                    f"counter ({counter_j:.3f} J) and integrated {self._dev.power_field} power "
                    f"({polled_j:.3f} J) disagree by {pct:.1f} % "
                    f"(> nvml.crosscheck_pct={self.settings.crosscheck_pct:g})"
                )

        if self.mode == "counter":
            if counter_j is None:
                raise MeasurementError(
                    f"nvml reader: the energy counter of {self.component} could not be read "
                    f"in this window ({'; '.join(counter_reasons)}); "
                    "try --power-opt nvml.mode=polled"
                )
            energy_j = counter_j
            reasons = counter_reasons
            method = EnergyMethod.COUNTER
            good = [(t, v) for t, v in energy if v is not None]
            samples = len(good)
            sample_rate_hz = samples / duration_s
            trace = (
                integ.trace if integ is not None and integ.valid else self._counter_trace(good, t0)
            )
            # NVML publishes no update period for the counter (the bound came to 0.10-0.16 s
            # on an H200): each edge read may be that stale, and miss that energy.
            stale_s = counter_staleness_s(good)
            details["counter_staleness_s"] = stale_s
            integration_error_j = COUNTER_RESOLUTION_J + 2 * (energy_j / duration_s) * stale_s
        else:
            assert integ is not None  # polled mode requires a power field (_open checks)
            if polled_j is None:
                raise MeasurementError(
                    f"nvml reader: no power reading of {self.component} covers the window "
                    f"({'; '.join(integ.reasons)}); check `nvidia-smi -q -d POWER`"
                )
            energy_j = polled_j
            reasons = list(integ.reasons)
            method = EnergyMethod.POLLED
            samples = integ.samples_in_window
            sample_rate_hz = integ.sample_rate_hz
            trace = integ.trace
            integration_error_j = integ.integration_error_j
        mean_power_w = energy_j / duration_s
        peak = max((p for _, p in trace), default=mean_power_w)
        trace = downsample(trace, _MAX_TRACE_POINTS)
        return EnergyReading(
            reader=self.name,
            method=method,
            scope=EnergyScope.BOARD,
            component=self.component,
            energy_j=energy_j,
            duration_s=duration_s,
            samples=samples,
            sample_rate_hz=sample_rate_hz,
            update_period_s=None,
            mean_power_w=mean_power_w,
            peak_power_w=max(peak, mean_power_w),
            uncertainty_j=uncertainty_j(
                duration_s,
                mean_power_w,
                rel_accuracy=self.settings.rel_uncertainty,
                integration_error_j=integration_error_j,
            ),
            valid=not reasons,
            invalid_reasons=reasons,
            trace=trace,
            details=details,
        )

    def _counter(self, energy: list[tuple[float, float | None]]) -> tuple[float | None, list[str]]:
        """Counter energy in J (None when unusable) and reasons it is not trustworthy."""
        if not self._dev.has_counter:
            return None, ["this GPU has no energy counter"]
        # The counter is 64-bit mJ and does not wrap; a decrease is a driver reload.
        energy_mj, _, reasons = counter_energy(energy, None)
        if math.isnan(energy_mj):
            return None, reasons
        return energy_mj / 1000.0, list(reasons)

    @staticmethod
    def _counter_trace(good: list[tuple[float, float]], t0: float) -> list[tuple[float, float]]:
        out = []
        for (ta, a), (tb, b) in itertools.pairwise(good):
            if tb > ta and b >= a:
                out.append(((ta + tb) / 2 - t0, (b - a) / 1000.0 / (tb - ta)))
        return out

    def close(self) -> None:
        """Stop sampling and shut NVML down (once)."""
        self._join()
        self._running = False
        if self._initialised:
            self._initialised = False
            _shutdown(self._nvml)
