"""Generic Linux hwmon power and energy reader (``--power hwmon``).

The kernel's hwmon class exposes sensors as ``/sys/class/hwmon/hwmon*/``
with a ``name`` file (the driver, e.g. ``ina226``, ``amdgpu``) and per-channel
attributes (Documentation/hwmon/sysfs-interface.rst):

* ``energy<N>_input``: cumulative energy in µJ. Read at both window edges
  and by the background sampler (for the trace and to see wraps); the
  difference is the energy. Preferred when present (method ``counter``).
* ``power<N>_input`` (or ``power<N>_average``): power in µW, sampled and
  integrated (method ``polled``).
* ``<channel>_label``: what the channel measures, e.g. ``VDD_IN``.

Pick the device and channel with ``--power-opt hwmon.name=<driver or hwmonN>``,
``hwmon.label=<label>`` or ``hwmon.channel=<power1|energy1…>``; without them
the reader takes the only energy channel, else the only power channel, and
says which ones there are when it cannot choose. ``hwmon.scope`` (default
``board``) says what the rail covers; ``hwmon.max_range_uj`` is the energy
counter's modulus if it wraps (unknown by default: a decrease is then a
reason, not a guess). A failed read is a gap, never 0 W. An energy counter
that did not advance at all over a window of 10 or more of its update periods
(1 s or more when the period is unknown) makes the reading invalid, never a
valid 0 J; ``hwmon.stuck_after_s`` also flags shorter stretches within a window.

Uncertainty: hwmon does not say which sensor (or shunt) is behind a channel, so
the accuracy is ±5 % (:data:`DEFAULT_REL_ACCURACY`, a project convention)
until ``hwmon.accuracy_pct|accuracy_w|resolution_w`` give the datasheet's
figures. A power channel adds the trapezoid's bound; an energy counter adds one
update period's energy per edge, the period being ``update_interval`` or, when
the driver has none, the longest time the counter was seen holding a value plus
one read interval (:func:`~wattbench.power.accounting.counter_staleness_s`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar, Literal

from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, MeasurementError, UnavailableError
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    EnergyScope,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.power.accounting import (
    Sample,
    counter_energy,
    counter_staleness_s,
    downsample,
    longest_constant_run_s,
)
from wattbench.power.polled import PolledReader, SensorAccuracy, float_param

HWMON_CLASS_DIR = Path("sys/class/hwmon")
_CHANNEL_FILE = re.compile(r"^(power|energy)(\d+)_(input|average)$")
_MAX_TRACE_POINTS = 2000
#: An energy counter that did not advance at all over a window of this many of its
#: update periods (or :data:`FROZEN_AFTER_S` when the period is unknown) is stuck.
FROZEN_AFTER_UPDATES = 10
FROZEN_AFTER_S = 1.0
#: Relative accuracy assumed when ``hwmon.accuracy_*`` is not given: hwmon does not
#: report which sensor (or shunt) sits behind a channel, so this is a project
#: convention, like RAPL's and NVML's, not a datasheet figure.
DEFAULT_REL_ACCURACY = 0.05


@dataclass(frozen=True)
class HwmonChannel:
    """One power or energy channel of one hwmon device."""

    device: str  # the sysfs directory, e.g. "hwmon2"
    chip: str  # the driver's name file, e.g. "ina226"
    kind: str  # "energy" (µJ counter) or "power" (µW)
    index: int
    label: str | None
    path: Path  # the value file, e.g. .../hwmon2/power1_input

    @property
    def channel(self) -> str:
        """``power1``, ``energy2``…"""
        return f"{self.kind}{self.index}"

    def describe(self) -> str:
        label = f" {self.label!r}" if self.label else ""
        return f"{self.device} {self.chip!r} {self.channel}{label}"


@dataclass(frozen=True)
class HwmonDevice:
    """A hwmon device directory with its power/energy channels."""

    device: str
    chip: str
    attr_dir: Path
    channels: tuple[HwmonChannel, ...]

    def describe(self) -> str:
        chans = ", ".join(c.channel + (f" {c.label!r}" if c.label else "") for c in self.channels)
        return f"{self.device}={self.chip}" + (f" ({chans})" if chans else "")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def read_int(path: Path) -> int:
    """An integer sysfs attribute; OSError/ValueError when it cannot be read."""
    return int(path.read_text().strip())


def _device_number(path: Path) -> int:
    m = re.search(r"(\d+)$", path.name)
    return int(m.group(1)) if m else -1


def scan_hwmon(sysfs_root: Path) -> list[HwmonDevice]:
    """Every ``hwmon*`` device under ``sysfs_root``, in numeric order, with its channels."""
    base = sysfs_root / HWMON_CLASS_DIR
    if not base.is_dir():
        return []
    devices = []
    for dev_dir in sorted(base.glob("hwmon*"), key=_device_number):
        # Old drivers keep their attributes under device/ (sysfs-interface.rst).
        attr_dir = dev_dir if (dev_dir / "name").exists() else dev_dir / "device"
        chip = _read_text(attr_dir / "name") or "?"
        found: dict[tuple[str, int], Path] = {}
        try:
            entries = sorted(attr_dir.iterdir())
        except OSError:
            entries = []
        for entry in entries:
            m = _CHANNEL_FILE.match(entry.name)
            if not m:
                continue
            kind, index, suffix = m.group(1), int(m.group(2)), m.group(3)
            if kind == "energy" and suffix != "input":
                continue
            # powerN_input (instantaneous) beats powerN_average when a driver has both.
            if suffix == "input" or (kind, index) not in found:
                found[(kind, index)] = entry
        channels = tuple(
            HwmonChannel(
                device=dev_dir.name,
                chip=chip,
                kind=kind,
                index=index,
                label=_read_text(attr_dir / f"{kind}{index}_label"),
                path=path,
            )
            for (kind, index), path in sorted(found.items())
        )
        devices.append(HwmonDevice(dev_dir.name, chip, attr_dir, channels))
    return devices


def _listing(devices: list[HwmonDevice]) -> str:
    return "; ".join(d.describe() for d in devices) or "none"


def find_channel(options: ReaderOptions) -> HwmonChannel:
    """The channel the options select; UnavailableError naming the fix when there is none."""
    base = options.sysfs_root / HWMON_CLASS_DIR
    devices = scan_hwmon(options.sysfs_root)
    if not devices:
        raise UnavailableError(
            f"no hwmon devices under {base}; load the sensor's hwmon driver "
            "(or point --sysfs-root at a tree that has one)"
        )
    name = options.param("hwmon", "name")
    label = options.param("hwmon", "label")
    channel = options.param("hwmon", "channel")
    if name is not None:
        devices_named = [d for d in devices if name in (d.chip, d.device)]
        if not devices_named:
            raise UnavailableError(
                f"no hwmon device named {name!r} under {base} (found: {_listing(devices)}); "
                "pass --power-opt hwmon.name=<one of those names or hwmonN>"
            )
        devices = devices_named
    candidates = [c for d in devices for c in d.channels]
    if not candidates:
        raise UnavailableError(
            f"no power*_input or energy*_input files in the hwmon devices under {base} "
            f"(found: {_listing(devices)}); these sensors need another power reader"
        )
    if channel is not None:
        candidates = [c for c in candidates if c.channel == channel.lower()]
    if label is not None:
        candidates = [c for c in candidates if c.label == label]
    if not candidates:
        wanted = " and ".join(
            f"{k} {v!r}" for k, v in (("channel", channel), ("label", label)) if v is not None
        )
        raise UnavailableError(
            f"no hwmon channel with {wanted} (found: {_listing(devices)}); "
            "pass --power-opt hwmon.label=<label> or hwmon.channel=<powerN|energyN> from that list"
        )
    # A counter beats sampled power for the same rail, unless a power channel was named.
    energy = [c for c in candidates if c.kind == "energy"]
    if energy and channel is None:
        candidates = energy
    if len(candidates) > 1:
        raise UnavailableError(
            f"{len(candidates)} hwmon channels match "
            f"({', '.join(c.describe() for c in candidates)}); "
            "pick one with --power-opt hwmon.name=hwmonN, hwmon.label=… or hwmon.channel=…"
        )
    return candidates[0]


def _scope(options: ReaderOptions) -> EnergyScope:
    raw = options.param("hwmon", "scope", EnergyScope.BOARD.value) or EnergyScope.BOARD.value
    try:
        return EnergyScope(raw.lower())
    except ValueError:
        choices = ", ".join(s.value for s in EnergyScope)
        raise ConfigError(f"--power-opt hwmon.scope={raw!r} is not one of {choices}") from None


def _update_period_s(ch: HwmonChannel) -> float | None:
    """The sensor's update period, from ``powerN_average_interval`` or ``update_interval`` (ms)."""
    attr_dir = ch.path.parent
    for name in (f"{ch.channel}_average_interval", "update_interval"):
        raw = _read_text(attr_dir / name)
        if raw is None:
            continue
        try:
            ms = float(raw)
        except ValueError:
            continue
        if ms > 0:
            return ms / 1000
    return None


def _read_failure(path: Path, exc: Exception) -> str:
    if isinstance(exc, PermissionError):
        return f"cannot read {path}: permission denied; run as root or `chmod a+r {path}`"
    return f"reading {path} failed ({type(exc).__name__}: {exc}); check the sensor's driver"


class HwmonReader(PolledReader):
    """A Linux hwmon ``energy*_input`` counter or ``power*_input`` sensor."""

    name: ClassVar[str] = "hwmon"
    #: per instance, :meth:`info` says ``counter`` when an energy channel is used
    method: ClassVar[EnergyMethod] = EnergyMethod.POLLED
    DEFAULT_ACCURACY: ClassVar[SensorAccuracy | None] = SensorAccuracy(
        rel=DEFAULT_REL_ACCURACY,
        source="project convention (±5 %): hwmon does not say which sensor it reads; "
        "pass hwmon.accuracy_pct/accuracy_w from its datasheet",
    )

    def __init__(
        self, options: ReaderOptions | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(options, clock=clock)
        self.channel = find_channel(self.options)
        self.scope = _scope(self.options)
        self.max_range_uj = float_param(self.options, "hwmon", "max_range_uj")
        self.update_period_s = _update_period_s(self.channel)

    @property
    def frozen_after_s(self) -> float:
        """An energy counter that does not move over a window this long is stuck."""
        if self.update_period_s:
            return FROZEN_AFTER_UPDATES * self.update_period_s
        return FROZEN_AFTER_S

    @property
    def is_counter(self) -> bool:
        return self.channel.kind == "energy"

    @classmethod
    def is_available(cls, options: ReaderOptions) -> Availability:
        try:
            ch = find_channel(options)
            _scope(options)
        except (UnavailableError, ConfigError) as exc:
            return Availability.no(str(exc))
        try:
            read_int(ch.path)
        except (OSError, ValueError) as exc:
            return Availability.no(_read_failure(ch.path, exc))
        unit = "µJ counter" if ch.kind == "energy" else "µW"
        return Availability.yes(f"{ch.describe()} ({ch.path.name}, {unit})")

    def info(self) -> ReaderInfo:
        ch = self.channel
        return ReaderInfo(
            name=self.name,
            method=EnergyMethod.COUNTER if self.is_counter else EnergyMethod.POLLED,
            scope=self.scope,
            component=f"{ch.chip} {ch.label or ch.channel} ({ch.device})",
            update_period_s=self.update_period_s,
            details=self.details(),
        )

    def details(self) -> dict[str, Any]:
        ch = self.channel
        return {
            "path": str(ch.path),
            "chip": ch.chip,
            "channel": ch.channel,
            "label": ch.label,
            "unit": "uJ" if self.is_counter else "uW",
        }

    #: one sysfs file per sample: read by the sampler process (see PolledReader)
    READ_KIND: ClassVar[Literal["call", "file"]] = "file"

    def sample_files(self) -> tuple[Path, ...]:
        return (self.channel.path,)

    def sample_from_files(self, raw: Sequence[float]) -> float | None:
        """µJ from the energy counter, or W from the power channel (µW / 1e6)."""
        value = raw[0]
        if not math.isfinite(value):
            return None
        return value if self.is_counter else value / 1e6

    def read_power_w(self) -> float | None:
        """Power in W from ``power*_input``; None for an energy channel (no instant power)."""
        if self.is_counter:
            return None
        return self.read_file(0) / 1e6

    def read_sample(self) -> float | None:
        """µJ from the energy counter, or W from the power channel."""
        return self.sample_from_files((self.read_file(0),))

    def make_reading(self, samples: list[Sample], t_start: float, t_end: float) -> EnergyReading:
        if not self.is_counter:
            return super().make_reading(samples, t_start, t_end)
        return self._counter_reading(samples, t_start, t_end)

    def _counter_reading(
        self, samples: list[Sample], t_start: float, t_end: float
    ) -> EnergyReading:
        # The counter's energy spans the reads taken by start() and stop(); reads
        # the sampler finished after stop()'s belong to no window.
        t0, t1 = self._t_first_sample, self._t_last_sample
        reads = sorted((s for s in samples if t0 <= s[0] <= t1), key=lambda s: s[0])
        energy_uj, wraps, reasons = counter_energy(reads, self.max_range_uj)
        info = self.info()
        if not math.isfinite(energy_uj):
            raise MeasurementError(
                f"hwmon reader: {'; '.join(reasons)} from {self.channel.path} "
                f"({self.failure_summary()}); check that the sensor is readable"
            )
        duration_s = t1 - t0
        energy_j = energy_uj / 1e6
        good = [(t, v) for t, v in reads if v is not None and math.isfinite(v)]
        trace = []
        for (ta, a), (tb, b) in pairwise(good):
            d = b - a
            if d < 0 and self.max_range_uj:
                d += self.max_range_uj
            if d >= 0 and tb > ta:
                trace.append(((ta + tb) / 2 - t0, d / 1e6 / (tb - ta)))
        if self.max_range_uj and trace:
            # Wrap-safe sampling: reads more than half a wrap period apart (at the highest
            # power seen) could hide a second wrap between them.
            limit_s = self.max_range_uj * 1e-6 / max(max(p for _, p in trace), 1e-9) / 2
            longest_s = max(b[0] - a[0] for a, b in pairwise(good))
            if longest_s > limit_s:
                reasons.append(
                    f"energy counter reads {longest_s:.3g} s apart, over half its wrap period "
                    f"({limit_s:.3g} s at the highest power seen): a wrap may have been missed; "
                    "lower sample_interval_s"
                )
        stuck_s, _ = longest_constant_run_s(good)
        if self._stuck_after_s is not None and stuck_s > self._stuck_after_s:
            reasons.append(
                f"energy counter {self.channel.path} did not advance for {stuck_s:.3g} s "
                f"(limit {self._stuck_after_s:.3g} s): check that the sensor updates"
            )
        elif energy_uj == 0 and wraps == 0 and duration_s >= self.frozen_after_s:
            # Whatever stuck_after_s says: a powered rail always counts, so a counter
            # that did not move over many of its updates is stuck, never a valid 0 J.
            reasons.append(
                f"energy counter {self.channel.path} did not advance in {duration_s:.3g} s "
                f"(>= {self.frozen_after_s:.3g} s, {FROZEN_AFTER_UPDATES} update periods or "
                f"{FROZEN_AFTER_S:g} s when the period is unknown): the sensor is stuck; "
                "check its driver, or use --power-opt hwmon.channel=power<N> if it has a "
                "power channel"
            )
        mean_w = energy_j / duration_s
        # Each edge read may miss up to one counter update's worth of energy. Without a
        # published period, the bound from the reads stands in for it.
        staleness_s = self.update_period_s or counter_staleness_s(good)
        edge_j = 2 * mean_w * staleness_s
        span_s = good[-1][0] - good[0][0]
        accuracy = self.accuracy()
        assert accuracy is not None  # DEFAULT_ACCURACY is set
        sensor_j = accuracy.uncertainty_j(duration_s, mean_w)
        return EnergyReading(
            reader=self.name,
            method=info.method,
            scope=info.scope,
            component=info.component,
            energy_j=energy_j,
            duration_s=duration_s,
            samples=len(good),
            sample_rate_hz=(len(good) - 1) / span_s if span_s > 0 else None,
            update_period_s=info.update_period_s,
            mean_power_w=mean_w,
            peak_power_w=max((p for _, p in trace), default=mean_w),
            uncertainty_j=sensor_j + edge_j,
            valid=not reasons,
            invalid_reasons=reasons,
            trace=downsample(trace, _MAX_TRACE_POINTS),
            details=self.details()
            | self.sampling_details(t_start, t_end)
            | {
                "counter_uj": energy_uj,
                "wraps": wraps,
                "stuck_s": stuck_s,
                "sensor_uncertainty_j": sensor_j,
                "edge_staleness_s": staleness_s,
                "edge_uncertainty_j": edge_j,
                "sensor_accuracy": accuracy.as_details(),
            },
        )
