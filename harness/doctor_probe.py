"""`wattbench doctor`'s probes: the known CPU load, presence and permissions of each reader's
files (with the remedy), and the one measuring window all readers share.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wattbench.core.errors import WattbenchError
from wattbench.core.power import (
    EnergyReading,
    PowerReader,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.harness.doctor_models import POWER_GROUP, DoctorSettings, ReaderReport
from wattbench.power.hwmon import HwmonReader, find_channel, scan_hwmon
from wattbench.power.jetson import JetsonReader, discover_rails
from wattbench.power.rapl import RaplReader

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
