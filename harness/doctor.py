"""``wattbench doctor``: onboard a device and check its power readers before trusting them.

For each reader found here (or named with ``--power``) the doctor checks, with a verdict
(``ok``, ``warn`` or ``fail``) and a one-line remedy where something is wrong:

* **presence**: the reader's own availability probe (``wattbench power list``);
* **permissions**: every sysfs file it reads can be opened by this user (RAPL's
  ``energy_uj`` is root-only since Linux 5.10, CVE-2020-8694); the remedy is a udev rule
  and the ``chgrp``/``chmod`` lines that grant one group;
* **window**: one window over the phases below gives a valid reading;
* **sample rate**: requested (``--sample-interval-s``) against achieved;
* **resolution**: the counter's or sensor's step, and where it has one the counter's wrap
  period (RAPL ``max_energy_range_uj`` at the highest power seen; NVML's 64-bit counter);
* **noise floor**: mean and standard deviation of power over ``--idle-s`` of idle;
* **step**: a known load (a CPU busy loop in child processes for ``--step-s``) must lift
  the reading clearly above the noise floor (by more than ``--sigmas`` σ and at least
  ``--min-step-w``), within a stated delay (the 50 % rise), and the reading must come back
  in the recovery phase that follows.

All readers measure the same window, so where two of them cover the same device (one of
them at the wall, or both at the same scope) the ratio of their energies is a cross-check:
a chip or board figure above the wall figure (beyond both uncertainties) fails.

Exit codes (:data:`EXIT_OK`, :data:`EXIT_FAILED`, :data:`EXIT_ESTIMATE_ONLY`): 0 when every
measured reader passed (warnings allowed), 1 when a reader or cross-check failed (including
a reader named with ``--power`` that is not available, or a permission problem), 3 when no
measured reader is available and only the estimate remains; 2 stays the CLI's usage error.
The doctor never changes the machine; it prints what to run.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from wattbench.core.errors import ConfigError, WattbenchError
from wattbench.core.fingerprint import wattbench_version
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    PowerReader,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.power.hwmon import HwmonReader, find_channel, scan_hwmon
from wattbench.power.jetson import JetsonReader, discover_rails
from wattbench.power.rapl import RaplReader
from wattbench.power.select import METHOD_PREFERENCE, reader_classes

#: every measured reader passed its checks (warnings allowed)
EXIT_OK = 0
#: a reader (or a cross-check between two readers) failed a check
EXIT_FAILED = 1
#: no measured reader here: only the estimate (TDP x CPU utilisation) is available
EXIT_ESTIMATE_ONLY = 3
EXIT_CODES = {
    EXIT_OK: "every measured reader passed",
    EXIT_FAILED: "a reader failed a check",
    EXIT_ESTIMATE_ONLY: "only the estimate is available",
}
OUTCOMES = {EXIT_OK: "validated", EXIT_FAILED: "failed", EXIT_ESTIMATE_ONLY: "estimate_only"}

#: the group the remedies grant read access to
POWER_GROUP = "power"
#: scopes, narrowest first (they nest: chip < module < board < wall)
_SCOPES = ("chip", "module", "board", "wall")

Verdict = Literal["ok", "warn", "fail"]
_SEVERITY = {"ok": 0, "warn": 1, "fail": 2}


class Check(BaseModel):
    """One check of one reader: its verdict, what was found and, when not ok, the remedy."""

    name: str
    verdict: Verdict
    summary: str
    remedy: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ReaderReport(BaseModel):
    """What the doctor found about one reader."""

    name: str
    #: measured (it took part in the window), estimate, unavailable (found or asked for, but
    #: not usable) or absent (nothing of its kind here)
    status: Literal["measured", "estimate", "unavailable", "absent"]
    #: asked for with --power, or configured with --power-opt NAME.…
    named: bool = False
    reason: str = ""
    method: str | None = None
    scope: str | None = None
    component: str | None = None
    update_period_s: float | None = None
    checks: list[Check] = Field(default_factory=list)
    energy_j: float | None = None
    uncertainty_j: float | None = None
    mean_power_w: float | None = None
    idle_mean_w: float | None = None
    idle_std_w: float | None = None
    idle_samples: int | None = None
    requested_rate_hz: float | None = None
    achieved_rate_hz: float | None = None
    step_delta_w: float | None = None
    step_delay_s: float | None = None
    recovered_w: float | None = None

    @property
    def verdict(self) -> Verdict | None:
        """The worst of its checks; None for an absent reader."""
        if not self.checks:
            return None
        return max((c.verdict for c in self.checks), key=lambda v: _SEVERITY[v])


class CrossCheck(BaseModel):
    """Two readers over the same window: the ratio of their energies (and of their steps)."""

    readers: tuple[str, str]
    scopes: tuple[str, str]
    energy_ratio: float | None
    step_ratio: float | None = None
    verdict: Verdict
    summary: str
    remedy: str | None = None


class DoctorReport(BaseModel):
    """``wattbench doctor --json``: the device, every reader, the cross-checks, the outcome."""

    device_name: str
    hostname: str
    wattbench_version: str
    created_at: datetime
    sysfs_root: str
    idle_s: float
    step_s: float
    recover_s: float
    sample_interval_s: float
    min_step_w: float
    sigmas: float
    load: str
    readers: list[ReaderReport]
    cross_checks: list[CrossCheck] = Field(default_factory=list)
    #: the first measured reader that passed (what a run's headline would be)
    headline_reader: str | None = None
    exit_code: int
    outcome: Literal["validated", "failed", "estimate_only"]
    summary: str
    exit_codes: dict[int, str] = Field(default_factory=lambda: dict(EXIT_CODES))

    def reader(self, name: str) -> ReaderReport:
        return next(r for r in self.readers if r.name == name)


@dataclass(frozen=True)
class DoctorSettings:
    """What ``wattbench doctor`` was asked to do."""

    #: readers to check, in order; empty: every reader installed
    power: tuple[str, ...] = ()
    idle_s: float = 5.0
    step_s: float = 5.0
    #: the recovery phase after the load; None: as long as the load
    recover_s: float | None = None
    sample_interval_s: float = 0.1
    #: the least rise the load must cause, whatever the noise
    min_step_w: float = 0.5
    #: ... and it must exceed this many standard deviations of the idle noise
    sigmas: float = 3.0
    device_name: str | None = None
    #: child processes of the CPU load; None: one per logical CPU
    load_workers: int | None = None

    def validate(self) -> None:
        for key in ("idle_s", "step_s", "sample_interval_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"--{key.replace('_', '-')} must be > 0")
        if self.recover_s is not None and not self.recover_s > 0:
            raise ConfigError("the recovery phase must be > 0 s")
        if self.min_step_w < 0 or self.sigmas < 0:
            raise ConfigError("--min-step-w and --sigmas must be >= 0")
        if self.load_workers is not None and self.load_workers < 1:
            raise ConfigError("--load-workers must be at least 1")

    @property
    def recovery_s(self) -> float:
        return self.recover_s if self.recover_s is not None else self.step_s


# -- the known load ---------------------------------------------------------------------------
_BUSY_LOOP = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)


class CpuLoad:
    """A CPU busy loop in ``workers`` child processes (one per logical CPU by default).

    Child processes, not threads: a Python thread holds the GIL and would load one core.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    @property
    def description(self) -> str:
        return f"CPU busy loop in {self.workers} child processes"

    def __call__(self, seconds: float) -> None:
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(self.workers):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-I", "-S", "-c", _BUSY_LOOP, repr(float(seconds))],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            deadline = time.monotonic() + seconds + 30.0
            for p in procs:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass  # killed below; the step check says what the reader saw
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()


def read_sysfs(path: Path) -> bytes:
    """Read one sysfs attribute as this user would (the seam the permission check uses)."""
    return path.read_bytes()


# -- presence and permissions -----------------------------------------------------------------
def _needed_files(cls: type[PowerReader], options: ReaderOptions) -> list[Path]:
    """The sysfs files a reader reads its figures from (none for network or library readers)."""
    root = options.sysfs_root
    try:
        if issubclass(cls, RaplReader):
            return [z.energy_path for z in cls.discover(root)]
        if issubclass(cls, HwmonReader):
            try:
                return [find_channel(options).path]
            except WattbenchError:
                return [c.path for d in scan_hwmon(root) for c in d.channels]
        if issubclass(cls, JetsonReader):
            rails, _ = discover_rails(root)
            paths = [
                p
                for r in rails
                for p in (r.power_mw_path, r.voltage_mv_path, r.current_ma_path)
                if p is not None
            ]
            return list(dict.fromkeys(paths))
    except OSError:
        return []
    return []


def _found(cls: type[PowerReader], options: ReaderOptions) -> bool:
    """Whether the hardware of a sysfs reader is here at all (usable or not)."""
    root = options.sysfs_root
    try:
        if issubclass(cls, RaplReader):
            return bool(cls.discover(root))
        if issubclass(cls, HwmonReader):
            return any(d.channels for d in scan_hwmon(root))
        if issubclass(cls, JetsonReader):
            return bool(discover_rails(root)[0])
    except OSError:
        return False
    return False


def _udev_grant(match: str, files: str) -> str:
    return f"{match}, RUN+=\"/bin/sh -c 'chgrp {POWER_GROUP} {files} && chmod g+r {files}'\""


def permission_remedy(cls: type[PowerReader], denied: Sequence[Path]) -> tuple[str, list[str]]:
    """One line saying how to grant read access to ``denied``, and the commands it names."""
    first = denied[0]
    join_group = f"sudo groupadd -f {POWER_GROUP} && sudo usermod -aG {POWER_GROUP} $USER"
    if issubclass(cls, RaplReader):
        pattern = str(first.parent.parent / "intel-rapl:*" / "energy_uj")
        rule = (
            f'SUBSYSTEM=="powercap", ACTION=="add", '
            f'RUN+="/bin/chgrp {POWER_GROUP} /sys/class/powercap/%k/energy_uj", '
            f'RUN+="/bin/chmod g+r /sys/class/powercap/%k/energy_uj"'
        )
        rule_file = "/etc/udev/rules.d/99-wattbench-rapl.rules"
        now = f"sudo chgrp {POWER_GROUP} {pattern} && sudo chmod g+r {pattern}"
        line = (
            f"{first} is readable by root only (Linux >= 5.10, CVE-2020-8694): grant one group, "
            f"not everyone: add the udev rule `{rule}` to {rule_file}, `{join_group}`, and "
            f"until the next boot `{now}` (or run as root)"
        )
        return line, [join_group, f"echo '{rule}' | sudo tee {rule_file}", now]
    files = " ".join(str(p) for p in denied[:4]) + (" …" if len(denied) > 4 else "")
    now = f"sudo chgrp {POWER_GROUP} {files} && sudo chmod g+r {files}"
    if issubclass(cls, JetsonReader):
        if any("ina3221x" in p.parts for p in denied):
            rule = _udev_grant('SUBSYSTEM=="iio", ATTR{name}=="ina3221x"', "/sys%p/in_*_input")
        else:
            rule = _udev_grant(
                'SUBSYSTEM=="hwmon", ATTR{name}=="ina3221"',
                "/sys%p/in*_input /sys%p/curr*_input",
            )
    else:
        try:
            chip = (first.parent / "name").read_text().strip() or "CHIP"
        except OSError:
            chip = "CHIP"
        rule = _udev_grant(f'SUBSYSTEM=="hwmon", ATTR{{name}}=="{chip}"', f"/sys%p/{first.name}")
    rule_file = "/etc/udev/rules.d/99-wattbench-power.rules"
    line = (
        f"cannot read {first}: `{join_group}`, then `{now}` (lasts until the next boot); for "
        f"good, add the udev rule `{rule}` to {rule_file} (or run as root)"
    )
    return line, [join_group, now, f"echo '{rule}' | sudo tee {rule_file}"]


# -- measuring --------------------------------------------------------------------------------
class _Poller:
    """Calls a counter reader's ``poll()`` at the requested rate while its window is open.

    RAPL polls by itself only every ``min(1 s, wrap period / 4)`` (its energy comes from the
    window's edges); the doctor reads it at ``--sample-interval-s`` too, so that its noise
    floor and its step are seen at the same rate as the polled readers'.
    """

    def __init__(self, poll: Callable[[], object], interval_s: float) -> None:
        self._poll = poll
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="doctor-poll", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._poll()
            except Exception:  # the reader's own reads count failures as gaps
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class _Live:
    report: ReaderReport
    reader: PowerReader
    info: ReaderInfo
    t_start: float = 0.0
    reading: EnergyReading | None = None
    error: str | None = None
    poller: _Poller | None = None


@dataclass(frozen=True)
class _Phases:
    """Phase edges in seconds from one reader's window start."""

    idle_end: float
    load_start: float
    load_end: float
    end: float


@dataclass
class _Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    progress: Callable[[str, float], None] = field(default=lambda _phase, _s: None)


def _measure(
    live: list[_Live], settings: DoctorSettings, load: Callable[[float], object], clock: _Clock
) -> dict[str, _Phases]:
    """Idle, load, recovery in one window of every reader; each reader's phase edges."""
    started: list[_Live] = []
    phases: dict[str, _Phases] = {}
    try:
        for lv in live:
            try:
                lv.reader.start()
            except (WattbenchError, OSError, ValueError) as exc:
                lv.error = f"start() failed: {exc}"
                continue
            lv.t_start = clock.now()
            started.append(lv)
            poll = getattr(lv.reader, "poll", None)
            interval = getattr(lv.reader, "poll_interval", None)
            if (
                callable(poll)
                and isinstance(interval, (int, float))
                and interval > settings.sample_interval_s
            ):
                lv.poller = _Poller(poll, settings.sample_interval_s)
        if not started:
            return phases
        clock.progress("idle", settings.idle_s)
        clock.sleep(settings.idle_s)
        t_load = clock.now()
        clock.progress("load", settings.step_s)
        load(settings.step_s)
        t_loaded = clock.now()
        clock.progress("recovery", settings.recovery_s)
        clock.sleep(settings.recovery_s)
        t_end = clock.now()
        for lv in started:
            if lv.poller is not None:
                lv.poller.stop()
                lv.poller = None
            try:
                lv.reading = lv.reader.stop()
            except (WattbenchError, OSError, ValueError) as exc:
                lv.error = str(exc)
            phases[lv.report.name] = _Phases(
                t_load - lv.t_start, t_load - lv.t_start, t_loaded - lv.t_start, t_end - lv.t_start
            )
    finally:
        for lv in live:
            if lv.poller is not None:
                lv.poller.stop()
            with contextlib.suppress(Exception):  # closing must not hide the report
                lv.reader.close()
    return phases


# -- analysis ---------------------------------------------------------------------------------
def _between(
    trace: Sequence[tuple[float, float]], lo: float, hi: float
) -> list[tuple[float, float]]:
    return [(t, p) for t, p in trace if lo <= t <= hi and math.isfinite(p)]


def _weights(points: Sequence[tuple[float, float]]) -> list[float]:
    """Each point's share of time: half the distance to each neighbour (the end points get
    their inner half twice). A counter's trace is uneven where a read was late, and a late
    read's power covers more time; weighting by time keeps the figures unbiased."""
    t = [x for x, _ in points]
    if len(t) < 2:
        return [1.0] * len(t)
    w = []
    for i in range(len(t)):
        left = t[i] - t[i - 1] if i > 0 else t[1] - t[0]
        right = t[i + 1] - t[i] if i < len(t) - 1 else t[-1] - t[-2]
        w.append(max((left + right) / 2, 0.0))
    return w if sum(w) > 0 else [1.0] * len(t)


def _mean_std(points: Sequence[tuple[float, float]]) -> tuple[float | None, float | None]:
    """Time-weighted mean and standard deviation of power over ``points``."""
    if not points:
        return None, None
    w = _weights(points)
    total = sum(w)
    mean = sum(wi * p for wi, (_, p) in zip(w, points, strict=True)) / total
    if len(points) < 2:
        return mean, 0.0
    var = sum(wi * (p - mean) ** 2 for wi, (_, p) in zip(w, points, strict=True)) / total
    # the unbiased (n - 1) correction, as statistics.stdev has for equal weights
    return mean, math.sqrt(var * len(points) / (len(points) - 1))


def _fmt_w(w: float | None) -> str:
    if w is None:
        return "n/a"
    return f"{w:.3g} W" if abs(w) >= 0.01 else f"{w * 1000:.3g} mW"


def _fmt_s(s: float) -> str:
    if s >= 120:
        return f"{s / 60:.3g} min" if s < 7200 else f"{s / 3600:.3g} h"
    return f"{s:.3g} s"


def _cpu_load_reaches(name: str, info: ReaderInfo) -> bool:
    """Whether a CPU load must show in this reader (not in a GPU board, nor in DRAM alone)."""
    if name == "nvml" or info.component.upper().startswith("GPU"):
        return False
    return info.details.get("domain") != "dram"


def _window_check(lv: _Live) -> Check:
    r = lv.reading
    if r is None:
        return Check(
            name="window",
            verdict="fail",
            summary=f"could not measure: {lv.error}",
            remedy="see the reader's section in docs/measurement.md ('Unavailable, and the fix')",
        )
    unc = f" ± {r.uncertainty_j:.3g} J" if r.uncertainty_j is not None else " (uncertainty unknown)"
    figures = (
        f"{r.energy_j:.4g} J{unc} over {r.duration_s:.3g} s, mean {_fmt_w(r.mean_power_w)}, "
        f"{r.samples} samples"
    )
    if not r.valid:
        return Check(
            name="window",
            verdict="fail",
            summary=f"invalid reading ({figures}): {'; '.join(r.invalid_reasons)}",
            remedy="each reason names its fix; see docs/measurement.md for the reader",
            data={"invalid_reasons": list(r.invalid_reasons)},
        )
    if r.uncertainty_j is None:
        return Check(
            name="window",
            verdict="warn",
            summary=figures,
            remedy=f"give the sensor's accuracy: --power-opt {lv.report.name}.accuracy_pct=…",
        )
    return Check(name="window", verdict="ok", summary=figures)


def _rate_check(lv: _Live, settings: DoctorSettings) -> Check:
    r = lv.reading
    assert r is not None
    requested = 1.0 / settings.sample_interval_s
    achieved = r.sample_rate_hz
    period = r.update_period_s or lv.info.update_period_s
    lv.report.requested_rate_hz, lv.report.achieved_rate_hz = requested, achieved
    # Two samples per sensor update are all a slow sensor can use.
    target = min(requested, 2.0 / period) if period else requested
    note = ""
    if period and 1.0 / period < requested:
        note = (
            f"; the sensor updates every {_fmt_s(period)}, so faster samples only see "
            "its changes sooner"
        )
    if achieved is None:
        return Check(
            name="sample rate",
            verdict="warn",
            summary=f"requested {requested:.3g} Hz; the reader did not report its achieved rate",
        )
    summary = f"requested {requested:.3g} Hz, achieved {achieved:.3g} Hz{note}"
    data = {"requested_hz": requested, "achieved_hz": achieved, "update_period_s": period}
    if achieved >= 0.8 * target:
        return Check(name="sample rate", verdict="ok", summary=summary, data=data)
    return Check(
        name="sample rate",
        verdict="warn",
        summary=summary + f" (< 80 % of the {target:.3g} Hz it could use)",
        remedy="the reads are slow (a busy bus, a slow network plug): raise "
        "--sample-interval-s, or check the sensor's link",
        data=data,
    )


def _smallest_step(trace: Sequence[tuple[float, float]]) -> float | None:
    steps = [abs(b - a) for (_, a), (_, b) in pairwise(trace) if abs(b - a) > 1e-12]
    return min(steps) if steps else None


def _resolution_check(lv: _Live) -> Check:
    r = lv.reading
    assert r is not None
    name, details = lv.report.name, r.details
    peak = max([p for _, p in r.trace] + [r.mean_power_w, r.peak_power_w or 0.0])
    parts: list[str] = []
    data: dict[str, Any] = {"peak_power_w": peak}
    verdict: Verdict = "ok"
    remedy = None
    if name == "rapl" or "energy_unit_uj" in details:
        unit_uj = float(details.get("energy_unit_uj") or 0.0)
        parts.append(f"energy unit {unit_uj:.3g} µJ (model-specific: rapl.energy_unit_uj)")
        ranges = [z.get("max_energy_range_uj") for z in details.get("zones", [])]
        data |= {"energy_unit_uj": unit_uj, "max_energy_range_uj": ranges}
        known = [float(x) for x in ranges if x]
        if len(known) < len(ranges) or not known:
            verdict = "warn"
            parts.append("max_energy_range_uj unreadable: a wrap would make the window invalid")
            remedy = "check the powercap driver (sudo modprobe intel_rapl_msr)"
        else:
            wrap_s = min(known) * 1e-6 / peak if peak > 0 else math.inf
            data["wrap_period_s"] = wrap_s
            parts.append(
                f"counter range {min(known) * 1e-6:.6g} J: wraps every {_fmt_s(wrap_s)} "
                f"at the {_fmt_w(peak)} peak seen"
            )
            if wrap_s < 10:
                verdict = "warn"
                remedy = (
                    "the counter wraps within seconds: keep the machine from suspending or "
                    "starving wattbench, or every window with a missed wrap is invalid"
                )
    elif name == "nvml":
        if details.get("mode") == "counter" or lv.info.details.get("has_counter"):
            parts.append(
                "energy counter in 1 mJ steps, 64-bit: never wraps (a driver reload resets it)"
            )
        else:
            field_name = details.get("power_field") or "power field"
            parts.append(f"power in mW ({field_name}), no counter")
    elif details.get("unit") == "uJ":
        rng = details.get("max_range_uj")
        parts.append(
            "µJ energy counter; "
            + (
                f"wraps at {float(rng):.6g} µJ"
                if rng
                else "range unknown (a decrease invalidates the window; hwmon.max_range_uj)"
            )
        )
    else:
        accuracy = details.get("sensor_accuracy") or {}
        res_w = accuracy.get("resolution_w")
        if res_w:
            parts.append(f"power in {_fmt_w(res_w)} steps")
        if details.get("counter_resolution_j"):
            parts.append(
                f"plug counter in {details['counter_resolution_j']:g} J steps "
                f"({details.get('counter_unit', 'its unit')})"
            )
        if name == "jetson":
            parts.append("INA3221 13-bit ADC: 40 µV shunt (÷ R) and 8 mV bus steps")
    step = _smallest_step(r.trace)
    data["smallest_step_w"] = step
    parts.append(f"smallest change seen {_fmt_w(step)}" if step else "the reading never changed")
    return Check(
        name="resolution", verdict=verdict, summary="; ".join(parts), remedy=remedy, data=data
    )


def _noise_check(
    lv: _Live, ph: _Phases, settings: DoctorSettings
) -> tuple[Check, float | None, float | None]:
    r = lv.reading
    assert r is not None
    # A guard before the load: a sample is stamped at the middle of its read, so a slow read
    # (a network plug) stamped just before the load may already hold its first watts.
    guard = min(ph.idle_end / 4, max(2 * settings.sample_interval_s, 0.1))
    idle = _between(r.trace, 0.0, ph.idle_end - guard)
    mean, std = _mean_std(idle)
    lv.report.idle_mean_w, lv.report.idle_std_w, lv.report.idle_samples = mean, std, len(idle)
    if mean is None or std is None or len(idle) < 3:
        return (
            Check(
                name="noise floor",
                verdict="fail",
                summary=f"only {len(idle)} samples in the idle phase",
                remedy="lengthen --idle-s or lower --sample-interval-s",
            ),
            None,
            None,
        )
    summary = f"idle {_fmt_w(mean)} ± {_fmt_w(std)} (σ over {len(idle)} samples)"
    data = {"mean_w": mean, "std_w": std, "samples": len(idle)}
    if mean <= 0:
        return (
            Check(
                name="noise floor",
                verdict="fail",
                summary=summary + ": a powered device never draws 0 W",
                remedy="the sensor reads nothing: check the channel or rail it is set to",
                data=data,
            ),
            mean,
            std,
        )
    if std > 0.2 * mean:
        return (
            Check(
                name="noise floor",
                verdict="warn",
                summary=summary + f" (σ is {std / mean:.0%} of the mean)",
                remedy="something else is busy: stop it, or lengthen --idle-s",
                data=data,
            ),
            mean,
            std,
        )
    return Check(name="noise floor", verdict="ok", summary=summary, data=data), mean, std


def _step_check(lv: _Live, ph: _Phases, settings: DoctorSettings, mean: float, std: float) -> Check:
    r = lv.reading
    assert r is not None
    trace = r.trace
    loaded = _between(trace, ph.load_start + (ph.load_end - ph.load_start) / 2, ph.load_end)
    loaded = loaded or _between(trace, ph.load_start, ph.load_end)
    after = _between(trace, ph.load_end + (ph.end - ph.load_end) / 2, ph.end)
    threshold = max(settings.sigmas * std, settings.min_step_w)
    data: dict[str, Any] = {"threshold_w": threshold, "noise_std_w": std}
    if not loaded or not after:
        return Check(
            name="step",
            verdict="fail",
            summary="too few samples in the load or recovery phase",
            remedy="lengthen --step-s or lower --sample-interval-s",
            data=data,
        )
    level = _mean_std(loaded)[0]
    back = _mean_std(after)[0]
    assert level is not None and back is not None
    delta = level - mean
    lv.report.step_delta_w, lv.report.recovered_w = delta, back
    data |= {"delta_w": delta, "load_level_w": level, "recovered_w": back}
    why = (
        f"{settings.sigmas:g}σ = {_fmt_w(settings.sigmas * std)}, "
        f"minimum {_fmt_w(settings.min_step_w)}"
    )
    if not delta > threshold:
        if not _cpu_load_reaches(lv.report.name, lv.info):
            return Check(
                name="step",
                verdict="warn",
                summary=f"{delta:+.3g} W under a CPU load ({why}): a CPU load need not reach "
                f"{lv.info.component}",
                remedy="check this reader with a load on its own device (e.g. a `wattbench run` "
                "on that accelerator)",
                data=data,
            )
        return Check(
            name="step",
            verdict="fail",
            summary=f"no clear rise under the load: {delta:+.3g} W "
            f"(needs > {_fmt_w(threshold)}: {why})",
            remedy="the reader does not see this machine's CPU: check that it measures this "
            "device (the plug feeds it, the right hwmon channel or Jetson rail), or load more "
            "cores (--load-workers)",
            data=data,
        )
    # The 50 % rise: the first sample past half the step (a slow sensor may cross after the
    # load ended; it is still found).
    half = mean + delta / 2
    crossing = next((t for t, p in trace if t >= ph.load_start and p >= half), None)
    delay = None if crossing is None else max(0.0, crossing - ph.load_start)
    lv.report.step_delay_s = delay
    data["delay_s"] = delay
    period = r.update_period_s or 0.0
    lag_limit = max(1.0, 3 * period, 3 * settings.sample_interval_s)
    summary = (
        f"{delta:+.3g} W under the load (> {_fmt_w(threshold)}: {why}), "
        f"50 % rise after {_fmt_s(delay) if delay is not None else 'n/a'}, back to {_fmt_w(back)}"
    )
    if back - mean >= max(threshold, delta / 2):
        return Check(
            name="step",
            verdict="warn",
            summary=summary + f": still {back - mean:+.3g} W above idle after the load",
            remedy="a fan or another load kept power up: lengthen --step-s (the recovery "
            "phase is as long) and run again",
            data=data,
        )
    if delay is not None and delay > lag_limit:
        return Check(
            name="step",
            verdict="warn",
            summary=summary + f" (more than {_fmt_s(lag_limit)})",
            remedy="the reading lags the load: use windows much longer than the lag "
            "(--duration), or a faster sensor",
            data=data,
        )
    return Check(name="step", verdict="ok", summary=summary, data=data)


def _analyse(lv: _Live, ph: _Phases | None, settings: DoctorSettings) -> None:
    rep = lv.report
    window = _window_check(lv)
    rep.checks.append(window)
    r = lv.reading
    if r is None or ph is None:
        return
    rep.energy_j, rep.uncertainty_j, rep.mean_power_w = r.energy_j, r.uncertainty_j, r.mean_power_w
    rep.checks.append(_rate_check(lv, settings))
    rep.checks.append(_resolution_check(lv))
    noise, mean, std = _noise_check(lv, ph, settings)
    rep.checks.append(noise)
    if mean is not None and std is not None:
        rep.checks.append(_step_check(lv, ph, settings, mean, std))


def _cross_checks(live: list[_Live]) -> list[CrossCheck]:
    ok = [lv for lv in live if lv.reading is not None and lv.reading.valid]
    out: list[CrossCheck] = []
    for i, a in enumerate(ok):
        for b in ok[i + 1 :]:
            assert a.reading is not None and b.reading is not None
            sa, sb = a.reading.scope.value, b.reading.scope.value
            if not (sa == sb or "wall" in (sa, sb)):
                continue  # e.g. a CPU chip and a GPU board: neither contains the other
            # narrow first
            n, w = (a, b) if _SCOPES.index(sa) <= _SCOPES.index(sb) else (b, a)
            assert n.reading is not None and w.reading is not None
            en, ew = n.reading.energy_j, w.reading.energy_j
            un, uw = n.reading.uncertainty_j or 0.0, w.reading.uncertainty_j or 0.0
            ratio = en / ew if ew > 0 else None
            dn, dw = n.report.step_delta_w, w.report.step_delta_w
            step_ratio = dn / dw if dn is not None and dw is not None and dw > 0 else None
            names = (n.report.name, w.report.name)
            scopes = (n.reading.scope.value, w.reading.scope.value)
            ratio_s = f"{ratio:.3g}" if ratio is not None else "n/a"
            step_s = f", step ratio {step_ratio:.3g}" if step_ratio is not None else ""
            if scopes[0] == scopes[1]:
                agree = abs(en - ew) <= un + uw
                out.append(
                    CrossCheck(
                        readers=names,
                        scopes=scopes,
                        energy_ratio=ratio,
                        step_ratio=step_ratio,
                        verdict="ok" if agree else "warn",
                        summary=f"{names[0]}/{names[1]} energy ratio {ratio_s}{step_s} "
                        f"(both {scopes[0]}: they should agree within ±{un + uw:.3g} J)",
                        remedy=None
                        if agree
                        else "two meters of one scope disagree beyond their uncertainties: "
                        "calibrate one against the other (NAME.accuracy_pct) or check that both "
                        "measure this device",
                    )
                )
                continue
            fits = en <= ew + un + uw
            out.append(
                CrossCheck(
                    readers=names,
                    scopes=scopes,
                    energy_ratio=ratio,
                    step_ratio=step_ratio,
                    verdict="ok" if fits else "fail",
                    summary=f"{names[0]}/{names[1]} energy ratio {ratio_s}{step_s} "
                    f"({scopes[0]} within {scopes[1]}: at most 1)",
                    remedy=None
                    if fits
                    else f"the {scopes[0]} figure exceeds the {scopes[1]} figure: the plug does "
                    "not feed this device, or a reader is misconfigured",
                )
            )
    return out


# -- the doctor -------------------------------------------------------------------------------
def _order(classes: dict[str, type[PowerReader]], power: Sequence[str]) -> list[str]:
    names = [n for n in dict.fromkeys(power) if n != "auto"]
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise ConfigError(
            f"unknown power reader {unknown[0]!r} in --power: use one of {', '.join(classes)}"
        )
    if names and "auto" not in power:
        return names
    # Every reader, most direct method first (as --power auto ranks them), the estimate last.
    rest = sorted(
        (n for n in classes if n not in names),
        key=lambda n: (
            METHOD_PREFERENCE.index(classes[n].method)
            if classes[n].method in METHOD_PREFERENCE
            else len(METHOD_PREFERENCE),
            n,
        ),
    )
    return names + rest


def _probe(
    name: str,
    cls: type[PowerReader],
    options: ReaderOptions,
    named: bool,
    read_file: Callable[[Path], bytes],
) -> tuple[ReaderReport, PowerReader | None]:
    """Presence and permissions of one reader; the reader when it can measure."""
    configured = named or any(k.startswith(f"{name}.") for k in options.params)
    rep = ReaderReport(name=name, status="absent", named=configured, method=cls.method.value)
    files = _needed_files(cls, options)
    denied: list[Path] = []
    for path in files:
        try:
            read_file(path)
        except PermissionError:
            denied.append(path)
        except OSError:
            pass  # not a permission problem: the availability probe names it
    try:
        ok, reason = cls.is_available(options)
    except WattbenchError as exc:
        ok, reason = False, str(exc)
    rep.reason = reason
    if denied:
        line, commands = permission_remedy(cls, denied)
        rep.status = "unavailable"
        rep.checks += [
            Check(name="presence", verdict="ok", summary=f"found {len(files)} sensor files"),
            Check(
                name="permissions",
                verdict="fail",
                summary=f"{len(denied)} of {len(files)} files unreadable by this user: "
                + ", ".join(str(p) for p in denied[:3])
                + (" …" if len(denied) > 3 else ""),
                remedy=line,
                data={"denied": [str(p) for p in denied], "commands": commands},
            ),
        ]
        return rep, None
    if not ok:
        if configured:
            rep.status = "unavailable"
            rep.checks.append(
                Check(name="presence", verdict="fail", summary="not available", remedy=reason)
            )
        elif _found(cls, options):
            rep.status = "unavailable"
            rep.checks.append(
                Check(
                    name="presence",
                    verdict="warn",
                    summary="found, but not usable as it is",
                    remedy=reason,
                )
            )
        return rep, None
    try:
        reader = cls(options)
        info = reader.info()
    except (WattbenchError, OSError, ValueError) as exc:
        rep.status = "unavailable"
        rep.checks.append(
            Check(name="presence", verdict="fail", summary="could not be set up", remedy=str(exc))
        )
        return rep, None
    rep.method, rep.scope = info.method.value, info.scope.value
    rep.component, rep.update_period_s = info.component, info.update_period_s
    rep.checks.append(Check(name="presence", verdict="ok", summary=reason or "available"))
    if files:
        rep.checks.append(
            Check(name="permissions", verdict="ok", summary=f"{len(files)} sensor files readable")
        )
    hook = getattr(reader, "setup_warnings", None)
    warnings = list(hook()) if callable(hook) else []
    if warnings:
        rep.checks.append(
            Check(
                name="setup",
                verdict="warn",
                summary="; ".join(warnings),
                remedy="see the reader's --power-opt settings in docs/measurement.md",
            )
        )
    if info.method is EnergyMethod.ESTIMATED:
        rep.status = "estimate"
        rep.checks.append(
            Check(
                name="method",
                verdict="warn",
                summary=f"an ESTIMATE (TDP x CPU utilisation, ±{_pct(info)}), not a "
                f"measurement; {info.details.get('tdp_source', '')}".rstrip("; "),
                remedy="measure instead: RAPL (x86), a Jetson's INA3221, NVML, an hwmon sensor "
                "or a wall plug (--power-opt shelly.url=http://PLUG_IP); "
                "docs/hardware-validation.md",
            )
        )
        reader.close()
        return rep, None
    rep.status = "measured"
    return rep, reader


def _pct(info: ReaderInfo) -> str:
    rel = info.details.get("relative_uncertainty")
    return f"{float(rel) * 100:.0f} %" if isinstance(rel, (int, float)) else "50 %"


def _outcome(readers: list[ReaderReport], cross: list[CrossCheck]) -> tuple[int, str, str | None]:
    failed = [r.name for r in readers if r.verdict == "fail"]
    failed += ["/".join(c.readers) for c in cross if c.verdict == "fail"]
    measured = [r for r in readers if r.status == "measured"]
    head = next((r.name for r in measured if r.verdict != "fail"), None)
    warned = [r.name for r in readers if r.verdict == "warn" and r.status == "measured"]
    if failed:
        return (
            EXIT_FAILED,
            f"FAILED: {', '.join(failed)} failed a check; apply the remedies above and run "
            "`wattbench doctor` again (or leave a reader out with --power)",
            head,
        )
    if not measured:
        tried = [r.name for r in readers if r.status != "estimate"]
        return (
            EXIT_ESTIMATE_ONLY,
            "only the ESTIMATE is available here: no measured power reader was found "
            f"(looked for {', '.join(tried) or 'none'}); runs on this device will be ranked "
            "as ESTIMATED (TDP x CPU utilisation). To measure, add a wall plug "
            "(--power-opt shelly.url=http://PLUG_IP) or run where RAPL, NVML, a Jetson's "
            "INA3221 or an hwmon power sensor is readable (docs/hardware-validation.md)",
            None,
        )
    names = ", ".join(r.name for r in measured)
    extra = f" (warnings: {', '.join(warned)})" if warned else ""
    return EXIT_OK, f"validated: {names} passed every check{extra}", head


def run_doctor(
    options: ReaderOptions,
    settings: DoctorSettings,
    *,
    classes: dict[str, type[PowerReader]] | None = None,
    load: Callable[[float], object] | None = None,
    read_file: Callable[[Path], bytes] = read_sysfs,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str, float], None] | None = None,
) -> DoctorReport:
    """Check every reader (or those in ``settings.power``) and return the report.

    ``load(seconds)`` is the known load (default :class:`CpuLoad`); ``read_file`` reads a
    sysfs file as this user (tests inject a permission error there); ``classes`` replaces
    the installed readers.
    """
    settings.validate()
    classes = reader_classes() if classes is None else classes
    options = options.model_copy(update={"sample_interval_s": settings.sample_interval_s})
    load_fn = load if load is not None else CpuLoad(settings.load_workers)
    order = _order(classes, settings.power)
    named = {n for n in settings.power if n != "auto"}
    reports: list[ReaderReport] = []
    live: list[_Live] = []
    for name in order:
        rep, reader = _probe(name, classes[name], options, name in named, read_file)
        reports.append(rep)
        if reader is not None:
            live.append(_Live(rep, reader, reader.info()))
    clock = _Clock(now, sleep, progress or (lambda _phase, _s: None))
    phases = _measure(live, settings, load_fn, clock) if live else {}
    for lv in live:
        _analyse(lv, phases.get(lv.report.name), settings)
    cross = _cross_checks(live)
    code, summary, head = _outcome(reports, cross)
    hostname = socket.gethostname()
    return DoctorReport(
        device_name=settings.device_name or hostname,
        hostname=hostname,
        wattbench_version=wattbench_version(),
        created_at=datetime.now(timezone.utc),
        sysfs_root=str(options.sysfs_root),
        idle_s=settings.idle_s,
        step_s=settings.step_s,
        recover_s=settings.recovery_s,
        sample_interval_s=settings.sample_interval_s,
        min_step_w=settings.min_step_w,
        sigmas=settings.sigmas,
        load=str(getattr(load_fn, "description", "injected load"))
        if live
        else "none (nothing to measure)",
        readers=reports,
        cross_checks=cross,
        headline_reader=head,
        exit_code=code,
        outcome=OUTCOMES[code],  # type: ignore[arg-type]
        summary=summary,
    )


# -- reports ----------------------------------------------------------------------------------
def _label(rep: ReaderReport) -> str:
    if rep.status == "absent":
        return f"{rep.name} · absent: {rep.reason}"
    method = "ESTIMATED" if rep.status == "estimate" else (rep.method or "?")
    what = f"{method}/{rep.scope}" if rep.scope else method
    comp = f" · {rep.component}" if rep.component else ""
    return f"{rep.name} · {what}{comp} · {rep.status} · {(rep.verdict or '').upper()}"


def report_lines(report: DoctorReport) -> list[str]:
    """The report as plain text lines (what ``wattbench doctor`` prints)."""
    lines = [
        f"wattbench doctor · device {report.device_name} · wattbench {report.wattbench_version} · "
        f"{report.created_at:%Y-%m-%d %H:%M} UTC",
    ]
    if report.load.startswith("none"):
        lines.append("nothing to measure: no measured reader is available")
    else:
        lines.append(
            f"one window: idle {report.idle_s:g} s, load {report.step_s:g} s "
            f"({report.load}), recovery {report.recover_s:g} s; sampling every "
            f"{report.sample_interval_s:g} s"
        )
    present = [r for r in report.readers if r.status != "absent"]
    absent = [r for r in report.readers if r.status == "absent"]
    for rep in present:
        lines.append("")
        lines.append(_label(rep))
        for c in rep.checks:
            lines.append(f"  {c.verdict.upper():<5} {c.name:<12} {c.summary}")
            if c.remedy and c.verdict != "ok":
                lines.append(f"        remedy: {c.remedy}")
    if absent:
        lines.append("")
        lines.append("absent (nothing of their kind here):")
        lines += [f"  {r.name}: {r.reason}" for r in absent]
    if report.cross_checks:
        lines.append("")
        lines.append("cross-checks over the same window:")
        for cc in report.cross_checks:
            lines.append(f"  {cc.verdict.upper():<5} {cc.summary}")
            if cc.remedy:
                lines.append(f"        remedy: {cc.remedy}")
    lines.append("")
    lines.append(f"exit {report.exit_code}: {report.summary}")
    return lines


def _md_num(v: float | None, unit: str = "", digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}g}{unit}"


def report_markdown(report: DoctorReport) -> str:
    """The report as a markdown file to attach to a result."""
    out = [
        f"# wattbench doctor: {report.device_name}",
        "",
        f"* date: {report.created_at:%Y-%m-%d %H:%M} UTC; wattbench {report.wattbench_version}; "
        f"host {report.hostname}",
        f"* outcome: **{report.outcome}** (exit {report.exit_code}): {report.summary}",
        (
            "* nothing measured: no measured reader was available"
            if report.load.startswith("none")
            else f"* window: idle {report.idle_s:g} s, load {report.step_s:g} s ({report.load}), "
            f"recovery {report.recover_s:g} s, sampling every {report.sample_interval_s:g} s; "
            f"a step must exceed {report.sigmas:g}σ and {report.min_step_w:g} W"
        ),
        "",
        "| reader | status | verdict | method/scope | idle W (σ) | rate Hz (asked) | step ΔW "
        "| rise s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report.readers:
        if r.status == "absent":
            continue
        idle = (
            f"{_md_num(r.idle_mean_w)} ({_md_num(r.idle_std_w, digits=2)})"
            if r.idle_mean_w is not None
            else "—"
        )
        out.append(
            f"| {r.name} | {r.status} | {r.verdict or '—'} | {r.method}/{r.scope or '?'} "
            f"| {idle} | "
            f"{_md_num(r.achieved_rate_hz)} ({_md_num(r.requested_rate_hz)}) | "
            f"{_md_num(r.step_delta_w)} | {_md_num(r.step_delay_s, digits=2)} |"
        )
    for r in report.readers:
        if r.status == "absent":
            continue
        out += ["", f"## {r.name}", ""]
        if r.component:
            out.append(f"{r.component} ({r.method}/{r.scope})")
            out.append("")
        for c in r.checks:
            out.append(f"* **{c.verdict}** {c.name}: {c.summary}")
            if c.remedy and c.verdict != "ok":
                out.append(f"  * remedy: {c.remedy}")
    if report.cross_checks:
        out += ["", "## Cross-checks", ""]
        for cc in report.cross_checks:
            out.append(f"* **{cc.verdict}** {cc.summary}")
            if cc.remedy:
                out.append(f"  * remedy: {cc.remedy}")
    absent = [r for r in report.readers if r.status == "absent"]
    if absent:
        out += ["", "## Absent", ""]
        out += [f"* {r.name}: {r.reason}" for r in absent]
    return "\n".join(out) + "\n"


def report_json(report: DoctorReport) -> dict[str, Any]:
    """The JSON form (``--json``; what ``--save`` stores), each reader with its verdict."""
    data = report.model_dump(mode="json")
    for r, rep in zip(data["readers"], report.readers, strict=True):
        r["verdict"] = rep.verdict
    return data
