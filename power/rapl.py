"""CPU energy from RAPL counters through the Linux powercap interface.

RAPL (Running Average Power Limit) keeps a cumulative energy counter per
*domain*; Linux exposes each as a powercap zone::

    <sysfs_root>/sys/class/powercap/intel-rapl:N/{name,energy_uj,max_energy_range_uj}
    <sysfs_root>/sys/class/powercap/intel-rapl:N:M/...     (subzones of zone N)

Top-level zones are named ``package-N`` (one per socket; ``package-N-die-M`` on
multi-die parts) or ``psys``; subzones are ``core``, ``uncore`` and ``dram``.
AMD processors (Zen and later) are served by the same mainline driver and
appear under the same ``intel-rapl`` names; a tree exposing ``amd-rapl:N`` zones
instead is read the same way (not a mainline name, accepted defensively; when
both are present only ``intel-rapl`` is used, so nothing is counted twice).
``intel-rapl-mmio:N`` zones report the *same* package domain through another
interface and are ignored for the same reason.

Domains are kept apart and chosen with ``--power-opt rapl.domain=…``:

* ``package`` (default): sum of every ``package-*`` zone, i.e. all sockets;
  scope ``chip``.
* ``core``, ``uncore``, ``dram``: sum of that subzone over all sockets; scope
  ``chip`` (``core`` and ``uncore`` are inside the package, ``dram`` is the
  memory attached to it).
* ``psys``: the platform domain (Skylake and later): package plus the platform
  parts the vendor wires into it. It is more than a chip but not necessarily the
  whole board, nor wall power; it is labelled scope ``board`` as the nearest
  level. ``psys`` contains ``package``, so the two are never summed.

Method ``counter``: the counters are read at the window edges, and a
background thread reads them every ``min(1 s, wrap period / 4)``, so every wrap
is seen as a decrease and undone by
:func:`~wattbench.power.accounting.counter_energy`. The wrap period is
``max_energy_range_uj`` over the highest power the window must allow for: the
window starts at :data:`ASSUMED_POWER_W`, and the interval only ever shortens
within a window (when a higher power is measured), never lengthens after a
quiet stretch, since a burst may follow it. A window whose successful reads end
up more than half a wrap period apart (at the highest power measured in it,
over spans of at least :data:`PEAK_SPAN_S`; e.g. the poll thread was starved)
is invalid, as a second wrap could hide there. A read that fails is a missing
value, never 0; a failed edge read makes the window invalid, with the energy up
to the nearest good read. A zone whose counter did not move at all over
:data:`FROZEN_AFTER_UPDATES` updates or more is invalid, not a valid 0 J: a
powered domain always counts, so the counter is stuck (some VMs expose one).

Uncertainty (half-width, summed linearly):

* resolution: ``energy_uj`` counts in µJ, but the hardware's energy unit is
  coarser: typically 2^-16 J ≈ 15.3 µJ (it is model-specific; some parts use
  2^-14 J ≈ 61 µJ, and Sapphire Rapids counts ``psys`` in whole joules). One unit
  per zone for the two edge reads, plus one unit per wrap, because the kernel's
  ``max_energy_range_uj`` is one unit short of the counter's true modulus.
  Override the unit with ``rapl.energy_unit_uj``.
* timing: the counters update about every millisecond (commonly measured as
  ~976 µs), so an edge read can be up to one update stale: mean power x 1 update.
* read jitter: a read round is stamped before its zones are read, so each edge
  can be off by as long as its round took: mean power x (first + last round's
  read time).
* model: RAPL values were produced by an on-chip *model* of power on Sandy Bridge
  and Ivy Bridge (Hähnel et al., "Measuring Energy Consumption for Short Code
  Paths Using RAPL", 2012), and are based on measurement since Haswell
  (Hackenberg et al., "An Energy Efficiency Feature Survey of the Intel Haswell
  Processor", IPDPSW 2015; see also Khan et al., "RAPL in Action", ACM TOMPECS
  2018). AMD does not document how its values are derived. Neither vendor
  publishes an accuracy figure, so the relative term
  :data:`DEFAULT_REL_UNCERTAINTY` is a project convention, not a sourced bound;
  set ``rapl.rel_uncertainty`` from your own calibration against a meter.

Since Linux 5.10 ``energy_uj`` is readable by root only (mode 0400);
:meth:`RaplReader.is_available` says how to grant access.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
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
from wattbench.power.accounting import counter_energy, downsample, uncertainty_j

#: Where powercap lives below ``ReaderOptions.sysfs_root``.
POWERCAP_DIR = Path("sys/class/powercap")
#: RAPL counter update period (≈1 ms; commonly measured as 976 µs).
UPDATE_PERIOD_S = 0.000976
#: Typical hardware energy unit, 2^-16 J, in µJ (model-specific; see module docs).
DEFAULT_ENERGY_UNIT_UJ = 1e6 / 2**16
#: Relative model term of the uncertainty: a project convention, not a vendor figure.
DEFAULT_REL_UNCERTAINTY = 0.05
#: The background poll never waits longer than this ...
MAX_POLL_INTERVAL_S = 1.0
#: ... nor shorter than one counter update.
MIN_POLL_INTERVAL_S = 0.001
#: Power each zone's poll interval allows for until a higher one is measured.
ASSUMED_POWER_W = 1000.0
#: Peak power for the read-interval check is measured over spans at least this long
#: (~100 counter updates), so a read delayed by the scheduler, or one update more or
#: less, does not make a short span look like a burst.
PEAK_SPAN_S = 100 * UPDATE_PERIOD_S
#: A counter that did not move over this many updates (~0.1 s) is stuck, not idle.
FROZEN_AFTER_UPDATES = 100
#: Domain -> (zone level, how zone names are matched, scope).
DOMAINS: dict[str, tuple[str, re.Pattern[str], EnergyScope]] = {
    "package": ("top", re.compile(r"^package-\d+(-die-\d+)?$"), EnergyScope.CHIP),
    "core": ("sub", re.compile(r"^core$"), EnergyScope.CHIP),
    "uncore": ("sub", re.compile(r"^uncore$"), EnergyScope.CHIP),
    "dram": ("sub", re.compile(r"^dram$"), EnergyScope.CHIP),
    "psys": ("top", re.compile(r"^psys$"), EnergyScope.BOARD),
}
_ZONE_RE = re.compile(r"^(?P<ctl>intel-rapl|amd-rapl):(?P<top>\d+)(?::(?P<sub>\d+))?$")
_CONTROL_PREFERENCE = ("intel-rapl", "amd-rapl")
_MAX_TRACE_POINTS = 2000


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone: its directory, its kernel id and its ``name``."""

    path: Path
    zone_id: str  # e.g. "intel-rapl:0:1"
    name: str  # e.g. "dram"
    parent_name: str | None  # the package a subzone belongs to, e.g. "package-0"

    @property
    def is_subzone(self) -> bool:
        return self.zone_id.count(":") == 2

    @property
    def label(self) -> str:
        """``package-0`` for a top zone, ``package-0/dram`` for a subzone."""
        return f"{self.parent_name or '?'}/{self.name}" if self.is_subzone else self.name

    @property
    def energy_path(self) -> Path:
        return self.path / "energy_uj"


def poll_interval_s(max_range_uj: float | None, power_w: float | None) -> float:
    """Background poll interval: ``min(1 s, wrap period / 4)``, at least 1 ms.

    The wrap period is ``max_range_uj`` over ``power_w``; before any power is
    known :data:`ASSUMED_POWER_W` stands in. An unknown range gives 1 s.
    """
    if max_range_uj is None or max_range_uj <= 0:
        return MAX_POLL_INTERVAL_S
    if power_w is None or not math.isfinite(power_w) or power_w <= 0:
        power_w = ASSUMED_POWER_W
    wrap_period_s = max_range_uj * 1e-6 / power_w
    return max(MIN_POLL_INTERVAL_S, min(MAX_POLL_INTERVAL_S, wrap_period_s / 4))


def _read_default(path: Path) -> str:
    return path.read_text()


def _zone_sort_key(zone_id: str) -> tuple[int, ...]:
    return tuple(int(x) for x in zone_id.split(":")[1:])


class RaplReader(PowerReader):
    """CPU energy from RAPL counters (method ``counter``); see the module docs."""

    name: ClassVar[str] = "rapl"
    method: ClassVar[EnergyMethod] = EnergyMethod.COUNTER

    def __init__(
        self,
        options: ReaderOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        background_poll: bool = True,
    ) -> None:
        """``background_poll=False`` leaves polling to whoever calls :meth:`poll`."""
        super().__init__(options)
        self._clock = clock
        self._background_poll = background_poll
        self.domain = self._domain(self.options)
        self.energy_unit_uj = self._float_param("energy_unit_uj", DEFAULT_ENERGY_UNIT_UJ)
        self.rel_uncertainty = self._float_param("rel_uncertainty", DEFAULT_REL_UNCERTAINTY)
        zones, why = self._find(self.options, self.domain)
        if not zones:
            raise UnavailableError(f"rapl reader: {why}")
        self.zones: list[RaplZone] = zones
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._max_range_uj: list[float | None] = []
        self._rounds: list[tuple[float, list[float | None]]] = []
        #: how long each round's reads took (the stamp is taken before them)
        self._round_read_s: list[float] = []
        self._interval_s = MAX_POLL_INTERVAL_S

    # -- discovery --------------------------------------------------------------

    @classmethod
    def _read_text(cls, path: Path) -> str:
        """Read one sysfs attribute (a seam for tests: subclasses may override)."""
        return _read_default(path)

    @staticmethod
    def _domain(options: ReaderOptions) -> str:
        domain = (options.param("rapl", "domain", "package") or "package").strip().lower()
        if domain not in DOMAINS:
            raise ConfigError(
                f"unknown rapl.domain {domain!r}: use one of {', '.join(DOMAINS)} "
                "(--power-opt rapl.domain=package)"
            )
        return domain

    def _float_param(self, key: str, default: float) -> float:
        raw = self.options.param("rapl", key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"rapl.{key} must be a number >= 0, got {raw!r}")
        return value

    @classmethod
    def discover(cls, sysfs_root: Path) -> list[RaplZone]:
        """Every RAPL zone under ``sysfs_root``, top zones before their subzones."""
        base = sysfs_root / POWERCAP_DIR
        dirs: dict[str, Path] = {}
        try:
            entries = list(base.iterdir())
        except OSError:
            return []
        for entry in entries:
            if _ZONE_RE.match(entry.name) and entry.is_dir():
                dirs.setdefault(entry.name, entry)
                # Subzones are also nested inside their parent's directory.
                try:
                    nested = list(entry.iterdir())
                except OSError:
                    nested = []
                for sub in nested:
                    if _ZONE_RE.match(sub.name) and sub.is_dir():
                        dirs.setdefault(sub.name, sub)
        names: dict[str, str] = {}
        for zone_id, path in dirs.items():
            try:
                names[zone_id] = cls._read_text(path / "name").strip()
            except OSError:
                continue
        zones = []
        for zone_id in sorted(names, key=lambda z: (z.split(":")[0], _zone_sort_key(z))):
            parts = zone_id.split(":")
            parent_name = names.get(":".join(parts[:2])) if len(parts) == 3 else None
            zones.append(RaplZone(dirs[zone_id], zone_id, names[zone_id], parent_name))
        return zones

    @classmethod
    def _find(cls, options: ReaderOptions, domain: str) -> tuple[list[RaplZone], str]:
        """Zones of ``domain``, or ([], why not)."""
        base = options.sysfs_root / POWERCAP_DIR
        if not base.is_dir():
            return [], (
                f"no RAPL here ({base} missing): load the driver "
                "(`sudo modprobe intel_rapl_msr`, Intel/AMD x86 Linux only; VMs rarely expose it), "
                "point --sysfs-root at a recorded tree, or use --power estimate / a wall meter"
            )
        zones = cls.discover(options.sysfs_root)
        if not zones:
            return [], (
                f"no RAPL zones under {base}: load the driver (sudo modprobe intel_rapl_msr); "
                "VMs rarely expose it"
            )
        # One control type only, so one package is never counted twice.
        ctl = next(
            c for c in _CONTROL_PREFERENCE if any(z.zone_id.startswith(c + ":") for z in zones)
        )
        zones = [z for z in zones if z.zone_id.startswith(ctl + ":")]
        level, pattern, _ = DOMAINS[domain]
        chosen = [z for z in zones if pattern.match(z.name) and z.is_subzone == (level == "sub")]
        if not chosen:
            found = ", ".join(z.label for z in zones)
            others = sorted(
                {
                    d
                    for d, (lv, p, _) in DOMAINS.items()
                    if any(p.match(z.name) and z.is_subzone == (lv == "sub") for z in zones)
                }
            )
            return [], (
                f"no RAPL {domain!r} zone here (found: {found}): "
                f"choose --power-opt rapl.domain={'|'.join(others) or 'package'}"
            )
        return chosen, ""

    @classmethod
    def is_available(cls, options: ReaderOptions) -> Availability:
        try:
            domain = cls._domain(options)
        except ConfigError as exc:
            return Availability.no(str(exc))
        zones, why = cls._find(options, domain)
        if not zones:
            return Availability.no(why)
        for zone in zones:
            path = zone.energy_path
            try:
                int(cls._read_text(path).strip())
            except PermissionError:
                pattern = path.parent.parent / "intel-rapl:*" / "energy_uj"
                return Availability.no(
                    f"RAPL needs read access to {path}: run as root or add a udev rule "
                    '(e.g. `SUBSYSTEM=="powercap", ACTION=="add", '
                    'RUN+="/bin/chmod a+r /sys/class/powercap/%k/energy_uj"`) '
                    f"or `sudo chmod a+r {pattern}`"
                )
            except OSError as exc:
                return Availability.no(
                    f"cannot read {path} ({exc.strerror or exc}): check the powercap "
                    "driver (sudo modprobe intel_rapl_msr)"
                )
            except ValueError:
                return Availability.no(
                    f"{path} does not hold an integer: not a RAPL counter, check sysfs_root"
                )
        return Availability.yes(f"{domain}: {', '.join(z.label for z in zones)}")

    # -- description --------------------------------------------------------------

    @property
    def scope(self) -> EnergyScope:
        return DOMAINS[self.domain][2]

    @property
    def component(self) -> str:
        labels = " + ".join(z.label for z in self.zones)
        return f"cpu {self.domain} ({labels})"

    def info(self) -> ReaderInfo:
        return ReaderInfo(
            name=self.name,
            method=self.method,
            scope=self.scope,
            component=self.component,
            update_period_s=UPDATE_PERIOD_S,
            details={
                "domain": self.domain,
                "zones": [z.zone_id for z in self.zones],
                "energy_unit_uj": self.energy_unit_uj,
                "relative_uncertainty": self.rel_uncertainty,
            },
        )

    # -- measuring --------------------------------------------------------------

    def _read_counter_uj(self, zone: RaplZone) -> float | None:
        try:
            return float(int(self._read_text(zone.energy_path).strip()))
        except (OSError, ValueError):
            return None  # a gap, never 0

    def _read_range_uj(self, zone: RaplZone) -> float | None:
        try:
            value = float(int(self._read_text(zone.path / "max_energy_range_uj").strip()))
        except (OSError, ValueError):
            return None
        return value if value > 0 else None

    def poll(self) -> None:
        """Read every zone's counter once (the background thread calls this)."""
        t = self._clock()
        values = [self._read_counter_uj(z) for z in self.zones]
        read_s = self._clock() - t
        with self._lock:
            prev = self._rounds[-1] if self._rounds else None
            self._rounds.append((t, values))
            self._round_read_s.append(read_s)
        if prev is not None:
            # Never lengthened within a window: a quiet stretch says nothing about
            # the burst that may follow it (see the module docs).
            self._interval_s = min(self._interval_s, self._next_interval(prev, (t, values)))

    def _next_interval(
        self, prev: tuple[float, list[float | None]], cur: tuple[float, list[float | None]]
    ) -> float:
        """The interval the power between two read rounds allows (the shortest over zones)."""
        dt = cur[0] - prev[0]
        interval = MAX_POLL_INTERVAL_S
        for i, rng in enumerate(self._max_range_uj):
            a, b = prev[1][i], cur[1][i]
            power_w: float | None = None
            if dt > 0 and a is not None and b is not None:
                d = b - a
                if d < 0 and rng is not None:
                    d += rng
                power_w = d * 1e-6 / dt if d >= 0 else None
            interval = min(interval, poll_interval_s(rng, power_w))
        return interval

    def _loop(self) -> None:
        while not self._stop_evt.wait(self._interval_s):
            self.poll()

    @property
    def poll_interval(self) -> float:
        """The interval the background poll currently waits, in seconds."""
        return self._interval_s

    def start(self) -> None:
        if self._running:
            raise MeasurementError(
                "rapl reader: start() called twice; call stop() before the next window"
            )
        self._max_range_uj = [self._read_range_uj(z) for z in self.zones]
        self._interval_s = min(poll_interval_s(r, None) for r in self._max_range_uj)
        with self._lock:
            self._rounds = []
            self._round_read_s = []
        self.poll()
        self._running = True
        if self._background_poll:
            self._stop_evt.clear()
            self._thread = threading.Thread(target=self._loop, name="rapl-poll", daemon=True)
            self._thread.start()

    def _join(self) -> None:
        if self._thread is not None:
            self._stop_evt.set()
            self._thread.join()
            self._thread = None

    def stop(self) -> EnergyReading:
        if not self._running:
            raise MeasurementError("rapl reader: stop() called without start()")
        # Thread first, so no background read lands after the closing one.
        self._join()
        self.poll()
        self._running = False
        with self._lock:
            rounds = list(self._rounds)
            edge_read_s = self._round_read_s[0] + self._round_read_s[-1]
        t0, t1 = rounds[0][0], rounds[-1][0]
        duration_s = t1 - t0
        if duration_s <= 0:
            raise MeasurementError(
                "rapl reader: the window has no duration; the clock did not advance"
            )
        reasons: list[str] = []
        per_zone: list[dict[str, Any]] = []
        total_uj = 0.0
        total_wraps = 0
        for i, zone in enumerate(self.zones):
            reads = [(t, vals[i]) for t, vals in rounds]
            rng = self._max_range_uj[i]
            energy_uj, wraps, zone_reasons = counter_energy(reads, rng)
            if math.isnan(energy_uj):
                raise MeasurementError(
                    f"rapl reader: {zone.energy_path} could not be read in this window "
                    f"({'; '.join(zone_reasons)}); check permissions and the powercap driver"
                )
            zone_peak_w = max(energy_uj * 1e-6 / duration_s, self._peak_power_w(reads, rng))
            limit_s = self._max_read_interval_s(rng, zone_peak_w)
            if limit_s is not None:
                # Again with the limit: reads further apart than half the wrap period
                # (at the highest power seen in this window) could hide a second wrap.
                _, _, zone_reasons = counter_energy(reads, rng, max_interval_s=limit_s)
            if (
                energy_uj == 0
                and wraps == 0
                and duration_s >= FROZEN_AFTER_UPDATES * UPDATE_PERIOD_S
            ):
                zone_reasons.append(
                    f"{zone.energy_path} did not change in {duration_s:.3g} s "
                    f"({duration_s / UPDATE_PERIOD_S:.0f} counter updates): a powered domain "
                    "always counts, so the counter is stuck (some VMs expose a frozen one); "
                    "use --power estimate or a wall meter"
                )
            reasons += [f"{zone.label}: {r}" for r in zone_reasons]
            total_uj += energy_uj
            total_wraps += wraps
            per_zone.append(
                {
                    "zone": zone.zone_id,
                    "name": zone.label,
                    "energy_j": energy_uj * 1e-6,
                    "wraps": wraps,
                    "max_energy_range_uj": rng,
                    "max_read_interval_s": limit_s,
                    "peak_power_w": zone_peak_w,
                    "missing_reads": sum(1 for _, v in reads if v is None),
                }
            )
        energy_j = total_uj * 1e-6
        mean_power_w = energy_j / duration_s
        trace = self._trace(rounds)
        peak = max((p for _, p in trace), default=mean_power_w)
        trace = downsample(trace, _MAX_TRACE_POINTS)
        unit_j = self.energy_unit_uj * 1e-6
        resolution_j = unit_j * (len(self.zones) + total_wraps)
        timing_j = mean_power_w * UPDATE_PERIOD_S
        jitter_j = mean_power_w * edge_read_s
        return EnergyReading(
            reader=self.name,
            method=self.method,
            scope=self.scope,
            component=self.component,
            energy_j=energy_j,
            duration_s=duration_s,
            samples=len(rounds),
            sample_rate_hz=len(rounds) / duration_s,
            update_period_s=UPDATE_PERIOD_S,
            mean_power_w=mean_power_w,
            peak_power_w=max(peak, mean_power_w),
            uncertainty_j=uncertainty_j(
                duration_s,
                mean_power_w,
                rel_accuracy=self.rel_uncertainty,
                integration_error_j=resolution_j + timing_j + jitter_j,
            ),
            valid=not reasons,
            invalid_reasons=reasons,
            trace=trace,
            details={
                "domain": self.domain,
                "zones": per_zone,
                "wraps": total_wraps,
                "reads": len(rounds),
                "poll_interval_s": self._interval_s,
                "energy_unit_uj": self.energy_unit_uj,
                "relative_uncertainty": self.rel_uncertainty,
                "uncertainty_terms_j": {
                    "model": self.rel_uncertainty * energy_j,
                    "resolution": resolution_j,
                    "timing": timing_j,
                    "read_jitter": jitter_j,
                },
            },
        )

    @staticmethod
    def _max_read_interval_s(rng: float | None, peak_power_w: float) -> float | None:
        """Half the wrap period at ``peak_power_w``; None when it is unbounded."""
        if rng is None or not peak_power_w > 0:
            return None
        return rng * 1e-6 / peak_power_w / 2

    @staticmethod
    def _peak_power_w(reads: Sequence[tuple[float, float | None]], rng: float | None) -> float:
        """Highest power of one zone over consecutive spans of at least :data:`PEAK_SPAN_S`.

        Spans are built from consecutive good reads (a failed read ends one); a
        decrease counts as one wrap when the range is known. 0 when no span is long
        enough.
        """
        peak = 0.0
        span_t0: float | None = None
        span_uj = 0.0
        prev: tuple[float, float] | None = None
        for t, v in reads:
            if v is None or not math.isfinite(v):
                prev, span_t0, span_uj = None, None, 0.0
                continue
            if prev is None:
                prev, span_t0, span_uj = (t, v), t, 0.0
                continue
            d = v - prev[1]
            if d < 0:
                if rng is None:
                    prev, span_t0, span_uj = (t, v), t, 0.0
                    continue
                d += rng
            span_uj += d
            prev = (t, v)
            assert span_t0 is not None
            if t - span_t0 >= PEAK_SPAN_S:
                peak = max(peak, span_uj * 1e-6 / (t - span_t0))
                span_t0, span_uj = t, 0.0
        return peak

    def _trace(
        self, rounds: Sequence[tuple[float, list[float | None]]]
    ) -> list[tuple[float, float]]:
        """Power between consecutive complete read rounds, at their midpoints."""
        t0 = rounds[0][0]
        out: list[tuple[float, float]] = []
        for (ta, va), (tb, vb) in itertools.pairwise(rounds):
            if tb <= ta:
                continue
            total = 0.0
            for i, rng in enumerate(self._max_range_uj):
                a, b = va[i], vb[i]
                if a is None or b is None:
                    break
                d = b - a
                if d < 0:
                    if rng is None:
                        break
                    d += rng
                total += d
            else:
                out.append(((ta + tb) / 2 - t0, total * 1e-6 / (tb - ta)))
        return out

    def close(self) -> None:
        self._join()
        self._running = False
