"""Replay a power trace recorded by an external meter (``--power trace``).

A bench meter (SPEC PTDaemon log converted to CSV, a Joulescope export, a
logging wall-plug meter) records ``(Unix time, watts)`` on its own. This
reader notes the wall-clock time (``time.time``) at :meth:`start` and
:meth:`stop` and integrates the trace over that window with
:func:`~wattbench.power.accounting.integrate_power`.

File formats (``--power-opt trace.path=…``):

* CSV with a header row, columns ``timestamp,watts`` or ``time_s,power_w``
  (other columns are ignored; lines starting with ``#`` are comments; a last
  line without a newline is taken to be still in writing and skipped);
* JSON: a list of ``{"t": …, "w": …}`` or ``{"timestamp": …, "watts": …}``.

Timestamps are Unix epoch seconds (float). ``trace.offset_s`` is *added* to
them, for a meter whose clock is behind the host's (or a trace whose
timestamps start at 0: pass the Unix time of its first sample). An empty,
``nan`` or unreadable power value is a gap, never 0 W.

The file is read at the end of every window (and re-read only when it
changed), so it may be written while the benchmark runs. For live use the
meter's logger must flush each line as it is written; since the sample
after the window's end arrives up to one meter period later,
``trace.wait_s`` makes :meth:`stop` wait (re-reading the file) until the
trace covers the window. A trace that does not cover the window gives an
invalid reading saying how to fix it; a trace that does not reach the
window at all raises MeasurementError. Other settings: ``trace.scope``
(default ``wall``), ``trace.max_gap_s`` (default 5 x the trace's median
sample interval around the window), ``trace.update_period_s`` (the meter's
period, if known) and ``trace.accuracy_pct`` / ``accuracy_w`` /
``resolution_w``.

Uncertainty: the meter's accuracy plus the trapezoid's bound
(:attr:`~wattbench.power.accounting.Integral.integration_error_j`). The
meter is unknown to wattbench, so without ``trace.accuracy_*``
:data:`DEFAULT_ACCURACY` (±5 %, a project convention) stands in, and the
reading's details say so; pass the meter's datasheet figures.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, MeasurementError
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    EnergyScope,
    PowerReader,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.power.accounting import Sample, integrate_power
from wattbench.power.polled import SensorAccuracy, float_param, sensor_accuracy

TIME_KEYS = ("timestamp", "time_s", "t")
POWER_KEYS = ("watts", "power_w", "w")
#: wall and monotonic durations of a window may differ by this much plus 0.1 %
#: (NTP slewing) before the wall clock is said to have jumped
CLOCK_SLACK_S = 0.05
_NO_PATH = "no trace file given; pass --power-opt trace.path=/path/to/trace.csv"
#: The meter's accuracy when ``trace.accuracy_*`` is not given: a project convention.
DEFAULT_ACCURACY = SensorAccuracy(
    rel=0.05,
    source="project convention (±5 %): the meter that wrote the trace is unknown; "
    "pass trace.accuracy_pct/accuracy_w/resolution_w from its datasheet",
)


def _power(raw: Any) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None  # meters log "OL", "----"… when they have no reading: a gap
    return value if math.isfinite(value) else None


def _time(raw: Any, where: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise MeasurementError(f"{where}: timestamp {raw!r} is not a number of Unix seconds")
    return value


def _pick(keys: list[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {k.strip().lower(): k for k in keys}
    return next((lowered[w] for w in wanted if w in lowered), None)


def _parse_csv(path: Path, text: str) -> list[Sample]:
    lines = text.splitlines(keepends=True)
    rows = [(n, line) for n, line in enumerate(lines, 1) if line.strip() and line[0] != "#"]
    if not rows:
        return []
    header = next(csv.reader(io.StringIO(rows[0][1])))
    t_key, p_key = _pick(header, TIME_KEYS), _pick(header, POWER_KEYS)
    if t_key is None or p_key is None:
        raise MeasurementError(
            f"{path}: header {rows[0][1].strip()!r} has no timestamp/watts columns; "
            "write 'timestamp,watts' (or 'time_s,power_w') as the first line"
        )
    ti, pi = header.index(t_key), header.index(p_key)
    out: list[Sample] = []
    for n, line in rows[1:]:
        if not line.endswith("\n"):
            break  # the last line, maybe still being written (and cut mid-number): skip it
        fields = next(csv.reader(io.StringIO(line)), [])
        t_s = _time(fields[ti] if ti < len(fields) else None, f"{path}:{n}")
        out.append((t_s, _power(fields[pi]) if pi < len(fields) else None))
    return out


def _parse_json(path: Path, text: str) -> list[Sample]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MeasurementError(f"{path}: not valid JSON ({exc}); fix or re-export it") from None
    if not isinstance(data, list):
        raise MeasurementError(f"{path}: expected a JSON list of {{'t': …, 'w': …}} objects")
    out: list[Sample] = []
    for i, item in enumerate(data):
        keys = list(item) if isinstance(item, dict) else []
        t_key, p_key = _pick(keys, TIME_KEYS), _pick(keys, POWER_KEYS)
        if t_key is None or p_key is None:
            raise MeasurementError(
                f"{path}: item {i} is not a {{'t': …, 'w': …}} or "
                "{'timestamp': …, 'watts': …} object"
            )
        out.append((_time(item[t_key], f"{path}: item {i}"), _power(item[p_key])))
    return out


def load_trace(path: Path) -> list[Sample]:
    """``(unix_t_s, power_w or None)`` samples of a CSV or JSON trace, sorted by time.

    Raises FileNotFoundError when the file is missing and MeasurementError
    when it is not a trace.
    """
    text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet exports add a BOM
    is_json = path.suffix.lower() == ".json" or text.lstrip().startswith("[")
    samples = _parse_json(path, text) if is_json else _parse_csv(path, text)
    return sorted(samples, key=lambda s: s[0])


def _scope(options: ReaderOptions) -> EnergyScope:
    raw = options.param("trace", "scope", EnergyScope.WALL.value) or EnergyScope.WALL.value
    try:
        return EnergyScope(raw.lower())
    except ValueError:
        choices = ", ".join(s.value for s in EnergyScope)
        raise ConfigError(f"--power-opt trace.scope={raw!r} is not one of {choices}") from None


def _median_interval_s(times: list[float]) -> float | None:
    steps = [b - a for a, b in pairwise(times) if b > a]
    return statistics.median(steps) if steps else None


class TraceReplayReader(PowerReader):
    """Energy from an external meter's ``(Unix time, watts)`` trace file."""

    name: ClassVar[str] = "trace"
    method: ClassVar[EnergyMethod] = EnergyMethod.EXTERNAL
    #: default max gap, in the trace's median sample intervals
    MAX_GAP_INTERVALS: ClassVar[float] = 5.0

    def __init__(
        self,
        options: ReaderOptions | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(options)
        path = self.options.param("trace", "path")
        if not path:
            raise ConfigError(_NO_PATH)
        self.path = Path(path).expanduser()
        self.offset_s = float_param(self.options, "trace", "offset_s", 0.0) or 0.0
        self.max_gap_s = float_param(self.options, "trace", "max_gap_s")
        self.wait_s = float_param(self.options, "trace", "wait_s", 0.0) or 0.0
        self.update_period_s = float_param(self.options, "trace", "update_period_s")
        self.scope = _scope(self.options)
        accuracy = sensor_accuracy(self.options, "trace", DEFAULT_ACCURACY)
        assert accuracy is not None  # there is a default
        self.accuracy: SensorAccuracy = accuracy
        self._wall_clock = wall_clock
        self._clock = clock
        self._sleep = sleep
        self._window: tuple[float, float] | None = None  # (wall, monotonic) at start
        self._cache: tuple[tuple[int, int], list[Sample]] | None = None

    @classmethod
    def is_available(cls, options: ReaderOptions) -> Availability:
        try:
            reader = cls(options)
        except ConfigError as exc:
            return Availability.no(str(exc))
        if reader.path.is_file():
            return Availability.yes(f"trace {reader.path}")
        return Availability.yes(
            f"trace {reader.path} (not there yet: it is read at the end of each window)"
        )

    def info(self) -> ReaderInfo:
        return ReaderInfo(
            name=self.name,
            method=self.method,
            scope=self.scope,
            component=f"external meter ({self.path.name})",
            update_period_s=self.update_period_s,
            details={"path": str(self.path), "offset_s": self.offset_s},
        )

    def start(self) -> None:
        """Note the wall-clock (and monotonic) time the window opens."""
        if self._window is not None:
            raise MeasurementError(
                "trace reader: start() called twice; call stop() before the next window"
            )
        self._window = (self._wall_clock(), self._clock())

    def _load(self) -> list[Sample]:
        stat = self.path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, load_trace(self.path))
        return self._cache[1]

    def _load_covering(self, wall_end: float) -> list[Sample]:
        """The trace, re-read for up to ``wait_s`` until it reaches ``wall_end``."""
        deadline = self._clock() + self.wait_s
        while True:
            try:
                samples = self._load()
            except FileNotFoundError:
                samples = None
            last = max((t for t, p in samples or [] if p is not None), default=-math.inf)
            remaining_s = deadline - self._clock()
            if (samples is not None and last + self.offset_s >= wall_end) or remaining_s <= 0:
                break
            self._sleep(min(0.1, remaining_s))
        if samples is None:
            raise MeasurementError(
                f"trace file {self.path} does not exist; record it there, or fix "
                "--power-opt trace.path"
            )
        return samples

    def _coverage(self, good_t: list[float], w0: float, w1: float) -> str:
        first, last = good_t[0], good_t[-1]
        if first - self.offset_s < 1e9 and first < w0:
            hint = (
                "its timestamps look relative, not Unix time: pass --power-opt "
                "trace.offset_s=<Unix time of the trace's t=0>"
            )
        elif w0 <= last < w1:
            hint = (
                "the meter's log ends inside the window: flush it sooner or raise "
                "--power-opt trace.wait_s"
            )
        else:
            hint = "align the meter's clock with the host's, or pass --power-opt trace.offset_s"
        return (
            f"trace {self.path} spans {first:.3f}-{last:.3f} (Unix s, offset "
            f"{self.offset_s:+g} s applied) but the window is {w0:.3f}-{w1:.3f}; {hint}"
        )

    def stop(self) -> EnergyReading:
        """Read the trace and integrate it over the window's wall-clock span."""
        if self._window is None:
            raise MeasurementError("trace reader: stop() called without start()")
        w1, m1 = self._wall_clock(), self._clock()
        (w0, m0), self._window = self._window, None
        if w1 <= w0:
            raise MeasurementError(
                "trace reader: the wall clock did not advance over the window; check the host clock"
            )
        samples = [(t + self.offset_s, p) for t, p in self._load_covering(w1)]
        good_t = [t for t, p in samples if p is not None and math.isfinite(p)]
        if not good_t:
            raise MeasurementError(f"trace {self.path} has no power readings; check the export")
        inside = any(w0 <= t <= w1 for t in good_t)
        bracketed = good_t[0] < w0 and good_t[-1] > w1
        if not inside and not bracketed:
            raise MeasurementError(self._coverage(good_t, w0, w1))

        # Only the stretch from the last reading at/before the window to the first
        # at/after it matters; an hour of 1 kHz trace need not be re-integrated.
        lo = good_t[max(bisect_right(good_t, w0) - 1, 0)]
        hi = good_t[min(bisect_left(good_t, w1), len(good_t) - 1)]
        times = [t for t, _ in samples]
        local = samples[bisect_left(times, min(lo, w0)) : bisect_right(times, max(hi, w1))]
        local_t = [t for t, p in local if p is not None and math.isfinite(p)]
        max_gap_s = self.max_gap_s or (
            self.MAX_GAP_INTERVALS
            * (_median_interval_s(local_t) or _median_interval_s(good_t) or (w1 - w0))
        )
        integ = integrate_power(local, w0, w1, max_gap_s=max_gap_s)
        reasons = list(integ.reasons)
        if good_t[0] > w0 or good_t[-1] < w1:
            reasons.insert(0, self._coverage(good_t, w0, w1))
        mono_s = m1 - m0
        if abs((w1 - w0) - mono_s) > CLOCK_SLACK_S + 1e-3 * mono_s:
            reasons.append(
                f"the wall clock moved {(w1 - w0) - mono_s:+.3f} s against the monotonic clock "
                "during the window (a clock step?); let NTP slew rather than step, and rerun"
            )
        energy_j = max(integ.energy_j, 0.0)
        return EnergyReading(
            reader=self.name,
            method=self.method,
            scope=self.scope,
            component=f"external meter ({self.path.name})",
            energy_j=energy_j,
            duration_s=integ.duration_s,
            samples=integ.samples_in_window,
            sample_rate_hz=integ.sample_rate_hz,
            update_period_s=self.update_period_s,
            mean_power_w=energy_j / integ.duration_s,
            peak_power_w=integ.peak_power_w,
            uncertainty_j=self.accuracy.uncertainty_j(
                integ.duration_s,
                energy_j / integ.duration_s,
                integration_error_j=integ.integration_error_j,
            ),
            valid=not reasons,
            invalid_reasons=reasons,
            trace=integ.trace,
            details={
                "path": str(self.path),
                "offset_s": self.offset_s,
                "wall_start_s": w0,
                "wall_end_s": w1,
                "monotonic_duration_s": mono_s,
                "trace_span_s": [good_t[0], good_t[-1]],
                "missing_samples": integ.missing,
                "max_gap_s": integ.max_gap_s,
                "max_gap_limit_s": max_gap_s,
                "integration_error_j": integ.integration_error_j,
                "sensor_accuracy": self.accuracy.as_details(),
            },
        )
