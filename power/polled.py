"""Base class for readers that sample a sensor in a background thread.

A subclass implements :meth:`PolledReader.read_power_w` (plus ``info`` and
``is_available``); sampling, time stamps, gaps and integration live here and in
:mod:`~wattbench.power.accounting`.

Settings every polled reader takes through ``--power-opt <name>.<key>=…``:

* ``max_gap_s``: longest tolerated gap between samples (default
  :attr:`PolledReader.MAX_GAP_INTERVALS` x the sampling interval or the
  sensor's update period, whichever is longer);
* ``stuck_after_s``: invalidate a window whose readings repeat a
  bit-identical value for longer than this (off by default);
* ``accuracy_pct``, ``accuracy_w``, ``resolution_w``: the sensor's accuracy,
  from its datasheet; see :func:`accuracy_uncertainty_j`. Each one replaces
  that term of the reader's built-in :class:`SensorAccuracy` (its
  ``DEFAULT_ACCURACY``), so every measured reading carries an uncertainty;
* ``sampler``: ``auto`` (default), ``process`` or ``thread``: what samples a
  reader whose read is a file read (:attr:`PolledReader.READ_KIND` ``"file"``).
  ``auto`` uses a separate sampler process (:mod:`~wattbench.power.sampler`)
  when the interval is below :attr:`PolledReader.PROCESS_BELOW_S`, so the
  sampler does not wait for the workload's GIL; readers whose read is a Python
  call (HTTP plugs) always sample in a thread;
* ``sampler_realtime``: ``1`` (default) lets the sampler process ask for the
  lowest real-time priority (granted to root or with an ``rtprio`` limit), so
  it keeps its rate when every core is busy; ``0`` keeps it an ordinary process.

Every reading records the sampler used, the achieved rate and the largest gap
between samples; an achieved rate more than :attr:`PolledReader.RATE_TOLERANCE`
below the requested one is a warning in ``details["warnings"]``, a gap over the
gap limit makes the reading invalid, and a sampler process that died or stopped
answering during the window makes it invalid too (never a valid 0 J).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from wattbench.core.errors import ConfigError, MeasurementError
from wattbench.core.power import EnergyReading, PowerReader, ReaderOptions
from wattbench.core.validation import missing_uncertainty
from wattbench.power.accounting import Sample, integrate_power, uncertainty_j
from wattbench.power.sampler import (
    DEFAULT_CAPACITY,
    ProcessSampler,
    SamplerError,
    SensorFiles,
)

SAMPLER_MODES = ("auto", "process", "thread")


def float_param(
    options: ReaderOptions,
    reader: str,
    key: str,
    default: float | None = None,
    *,
    minimum: float | None = None,
) -> float | None:
    """``--power-opt reader.key`` as a finite float, else ``default``; ConfigError if garbled
    or below ``minimum``."""
    raw = options.param(reader, key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"--power-opt {reader}.{key}={raw!r} is not a number; pass e.g. 0.5")
    if minimum is not None and value < minimum:
        raise ConfigError(f"--power-opt {reader}.{key}={raw!r} must be >= {minimum:g}")
    return value


@dataclass(frozen=True)
class SensorAccuracy:
    """A power sensor's accuracy, in the terms of :func:`~wattbench.power.accounting.uncertainty_j`.

    ``U_sensor = (rel x |P_mean| + abs_w + resolution_w / 2) x T``.
    """

    #: gain error, a fraction of the reading (0.01 for ±1 %)
    rel: float = 0.0
    #: offset error, ± watts
    abs_w: float = 0.0
    #: the reading's step, in watts (each reading is off by up to half of it)
    resolution_w: float = 0.0
    #: where the figures come from (a datasheet, a convention, the user's options)
    source: str = ""

    def uncertainty_j(
        self, duration_s: float, mean_power_w: float, integration_error_j: float = 0.0
    ) -> float:
        """Half-width in joules over a window, plus ``integration_error_j``."""
        return uncertainty_j(
            duration_s,
            mean_power_w,
            rel_accuracy=self.rel,
            abs_accuracy_w=self.abs_w,
            resolution_w=self.resolution_w,
            integration_error_j=integration_error_j,
        )

    def as_details(self) -> dict[str, Any]:
        """The figures, for a reading's ``details``."""
        return {
            "accuracy_pct": self.rel * 100,
            "accuracy_w": self.abs_w,
            "resolution_w": self.resolution_w,
            "source": self.source,
        }


def sensor_accuracy(
    options: ReaderOptions, reader: str, default: SensorAccuracy | None = None
) -> SensorAccuracy | None:
    """``default`` with each ``reader.accuracy_pct|accuracy_w|resolution_w`` option replacing
    its term; None when there is neither a default nor an option (ConfigError if garbled)."""
    pct = float_param(options, reader, "accuracy_pct", minimum=0)
    abs_w = float_param(options, reader, "accuracy_w", minimum=0)
    res_w = float_param(options, reader, "resolution_w", minimum=0)
    given = {
        k: v
        for k, v in (
            ("rel", None if pct is None else pct / 100),
            ("abs_w", abs_w),
            ("resolution_w", res_w),
        )
        if v is not None
    }
    if not given:
        return default
    keys = ", ".join(
        f"{reader}.{k}"
        for k, v in (("accuracy_pct", pct), ("accuracy_w", abs_w), ("resolution_w", res_w))
        if v is not None
    )
    base = default or SensorAccuracy()
    source = f"--power-opt {keys}" + (f"; other terms: {base.source}" if default else "")
    return dataclasses.replace(base, **given, source=source)


def accuracy_uncertainty_j(
    options: ReaderOptions,
    reader: str,
    duration_s: float,
    mean_power_w: float,
    integration_error_j: float = 0.0,
    default: SensorAccuracy | None = None,
) -> float | None:
    """Uncertainty from :func:`sensor_accuracy` (the options over ``default``).

    None when there is neither: an unknown sensor accuracy is not zero. The
    formula is :func:`~wattbench.power.accounting.uncertainty_j`.
    """
    accuracy = sensor_accuracy(options, reader, default)
    if accuracy is None:
        return None
    return accuracy.uncertainty_j(duration_s, mean_power_w, integration_error_j)


class PolledReader(PowerReader):
    """Samples :meth:`read_power_w` every ``options.sample_interval_s`` and integrates.

    Subclasses implement :meth:`read_power_w` (None when a read fails: a gap,
    never 0 W; OSError and ValueError are caught and count as failed reads
    too), :meth:`info`, :meth:`is_available`, set :attr:`DEFAULT_ACCURACY`
    (or override :meth:`default_accuracy`), and may override
    :meth:`uncertainty_j` and :meth:`details`.

    A reader whose sample is a read of sensor files sets :attr:`READ_KIND` to
    ``"file"`` and implements :meth:`sample_files` and :meth:`sample_from_files`:
    a sampler process (:mod:`~wattbench.power.sampler`) then reads the files in
    the background, and the window's samples are converted with
    :meth:`sample_from_files` at :meth:`stop` (:meth:`record_file_sample`, which
    a reader that keeps more than the value per sample extends).

    The window runs from the end of :meth:`start` to the beginning of
    :meth:`stop`. Each of them takes one sample in this process just outside
    the window, so both edges are interpolated between real samples. Samples
    are stamped at the midpoint of the read with the injected monotonic
    ``clock``; the background sampler schedules itself on ``time.monotonic``
    whatever the clock, so tests may pass a manual clock and call
    :meth:`sample_now` (an injected clock keeps the sampler in a thread, as
    the sampler process stamps with ``time.monotonic``).
    """

    #: a gap longer than this many sample intervals (or update periods) invalidates
    MAX_GAP_INTERVALS: ClassVar[float] = 5.0
    #: default for ``stuck_after_s``; None: a sensor that never changes is not flagged
    STUCK_AFTER_S: ClassVar[float | None] = None
    #: the sensor's accuracy when no ``accuracy_*`` option is given; a reader must have
    #: one: without it (and without ``accuracy_*`` options) a reading has no uncertainty
    #: and is invalid, with the remedy as its reason (a measured figure nobody vouches for
    #: is never stored; the base class cannot know the sensor, so it stays None here)
    DEFAULT_ACCURACY: ClassVar[SensorAccuracy | None] = None
    #: ``"call"``: a sample is a Python call (:meth:`read_sample`), made by a thread;
    #: ``"file"``: a read of :meth:`sample_files`, made by a sampler process
    READ_KIND: ClassVar[Literal["call", "file"]] = "call"
    #: ``sampler=auto`` samples a file reader in a thread at this interval or longer:
    #: one wakeup a second costs the workload nothing measurable
    PROCESS_BELOW_S: ClassVar[float] = 1.0
    #: an achieved rate more than this fraction below the requested one is a warning
    RATE_TOLERANCE: ClassVar[float] = 0.10
    #: slots of the sampler process's ring buffer (drained every quarter of it)
    SAMPLER_CAPACITY: ClassVar[int] = DEFAULT_CAPACITY
    #: the newest slots a drain leaves for the next one, while the child writes
    DRAIN_LAG: ClassVar[int] = 2

    def __init__(
        self, options: ReaderOptions | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(options)
        self._clock = clock
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_error: Exception | None = None
        self._failed_reads = 0
        self._first_failure: str | None = None
        self._t_start = 0.0
        #: time stamps of the samples taken by start() and stop()
        self._t_first_sample = 0.0
        self._t_last_sample = 0.0
        # Parsed now so a typo fails before the run, not after it.
        self._max_gap_s = float_param(self.options, self.name, "max_gap_s", minimum=0)
        self._stuck_after_s = float_param(
            self.options, self.name, "stuck_after_s", self.STUCK_AFTER_S
        )
        if self._max_gap_s is not None and self._max_gap_s <= 0:
            raise ConfigError(f"--power-opt {self.name}.max_gap_s must be positive")
        sensor_accuracy(self.options, self.name)  # validates the accuracy options
        mode = (self.options.param(self.name, "sampler", "auto") or "auto").lower()
        if mode not in SAMPLER_MODES:
            raise ConfigError(
                f"--power-opt {self.name}.sampler={mode!r} is not one of {', '.join(SAMPLER_MODES)}"
            )
        if mode == "process" and self.READ_KIND != "file":
            raise ConfigError(
                f"--power-opt {self.name}.sampler=process: the {self.name} reader's read is a "
                "Python call, not a file read, and samples in a thread; drop the option"
            )
        self.sampler_mode = mode
        realtime = float_param(self.options, self.name, "sampler_realtime", 1.0)
        if realtime not in (0.0, 1.0):
            raise ConfigError(f"--power-opt {self.name}.sampler_realtime must be 0 or 1")
        self.sampler_realtime = realtime == 1.0
        # The sampler process (file readers), kept from window to window.
        self._files: SensorFiles | None = None
        self._files_lock = threading.Lock()
        self._proc: ProcessSampler | None = None
        #: why the sampler process is not used (None: it is, or was never needed)
        self._proc_unavailable: str | None = None
        self._window_sampler = "thread"
        self._raw_chunks: list[bytes] = []
        self._lost_samples = 0
        self._child_failure: str | None = None
        self._sampler_cpu_s: float | None = None
        #: reasons that make this window invalid (the sampler process failed in it)
        self._sampler_problems: list[str] = []
        self._sampler_notes: list[str] = []

    @abstractmethod
    def read_power_w(self) -> float | None:
        """One power reading in watts; None when the sensor could not be read."""

    # -- file readers -------------------------------------------------------------

    def sample_files(self) -> Sequence[Path]:
        """The files one sample reads (``READ_KIND = "file"``), in a fixed order."""
        raise NotImplementedError(f"{type(self).__name__} does not read files")

    def sample_from_files(self, raw: Sequence[float]) -> float | None:
        """The sample value from the numbers :meth:`sample_files` held at one read
        (NaN where a read failed), as :meth:`read_sample` would return it."""
        raise NotImplementedError(f"{type(self).__name__} does not read files")

    def record_file_sample(self, t_s: float, raw: Sequence[float]) -> None:
        """Keep one sample of the sampler process (called at :meth:`stop`, in time order)."""
        self._keep(t_s, self.sample_from_files(raw), self._child_failure)

    def read_file(self, index: int) -> float:
        """File ``index`` of :meth:`sample_files` read now, in this process, as the sampler
        process reads it (opened once, ``os.pread``); OSError/ValueError when it fails."""
        with self._files_lock:
            if self._files is None:
                self._files = SensorFiles([str(p) for p in self.sample_files()])
            return self._files.read(index)

    def read_files(self) -> list[float]:
        """Every file of :meth:`sample_files` read now; NaN where a read failed."""
        out = []
        for i in range(len(self.sample_files())):
            try:
                out.append(self.read_file(i))
            except (OSError, ValueError):
                out.append(math.nan)
        return out

    # -- accuracy -------------------------------------------------------------------

    def default_accuracy(self) -> SensorAccuracy | None:
        """The sensor's accuracy for this window: :attr:`DEFAULT_ACCURACY` unless overridden
        (a reader whose accuracy depends on what it measured computes it here)."""
        return self.DEFAULT_ACCURACY

    def accuracy(self) -> SensorAccuracy | None:
        """:meth:`default_accuracy` with the ``accuracy_*`` options replacing its terms."""
        return sensor_accuracy(self.options, self.name, self.default_accuracy())

    def uncertainty_j(self, energy_j: float, duration_s: float, samples: int) -> float | None:
        """The sensor's share of the energy uncertainty (half-width, J); None when unknown.

        The base class adds the integration error bound of the window to it.
        The default applies :meth:`accuracy` to the window's mean power.
        """
        accuracy = self.accuracy()
        if accuracy is None:
            return None
        mean_w = energy_j / duration_s if duration_s > 0 else 0.0
        return accuracy.uncertainty_j(duration_s, mean_w)

    def details(self) -> dict[str, Any]:
        """Reader-specific facts recorded with every reading (e.g. the sensor path)."""
        return {}

    # -- sampling -------------------------------------------------------------------

    def read_sample(self) -> float | None:
        """The value the sampler records: :meth:`read_power_w` unless overridden.

        A reader of a cumulative energy counter overrides this and
        :meth:`make_reading` to keep the same thread and time stamps.
        """
        return self.read_power_w()

    def _keep(self, t_s: float, value: float | None, failure: str | None) -> None:
        with self._lock:
            self._samples.append((t_s, value))
            if value is None or not math.isfinite(value):
                self._failed_reads += 1
                if self._first_failure is None:
                    self._first_failure = failure or f"read returned {value!r}"

    def sample_now(self) -> Sample:
        """Take one sample now and keep it; a failed read is kept as a gap (None)."""
        t_before = self._clock()
        failure: str | None = None
        try:
            value = self.read_sample()
        except (OSError, ValueError) as exc:
            value, failure = None, f"{type(exc).__name__}: {exc}"
        # The midpoint: a slow read (a network meter) says most about its middle.
        t_s = (t_before + self._clock()) / 2
        self._keep(t_s, value, failure)
        return t_s, value

    def _loop(self) -> None:
        interval_s = self.options.sample_interval_s
        next_t = time.monotonic() + interval_s
        try:
            while not self._stop_evt.wait(max(0.0, next_t - time.monotonic())):
                self.sample_now()
                next_t += interval_s
                now = time.monotonic()
                if next_t <= now:
                    # Fell behind (slow read, busy GIL): skip missed ticks rather
                    # than burst; the achieved rate is reported, not the requested one.
                    next_t = now + interval_s
        except Exception as exc:  # a bug in a subclass: surface it at stop(), not never
            self._thread_error = exc

    def _wants_process(self) -> bool:
        if self.READ_KIND != "file" or self.sampler_mode == "thread":
            return False
        if self._clock is not time.monotonic:
            return False  # the child stamps with time.monotonic; tests' clocks stay here
        if self.sampler_mode == "auto":
            return self.options.sample_interval_s < self.PROCESS_BELOW_S
        return True

    def _sampler_process(self) -> ProcessSampler | None:
        """The sampler process, started (or restarted) when needed; None to sample in a
        thread, with the reason in the window's notes."""
        if self._proc is not None and not self._proc.alive():
            self._sampler_notes.append(
                f"{self._proc.exit_reason()} between windows; a new one was started"
            )
            self._drop_process()
        if self._proc is None and self._proc_unavailable is None:
            try:
                self._proc = ProcessSampler(
                    [str(p) for p in self.sample_files()],
                    capacity=self.SAMPLER_CAPACITY,
                    realtime=self.sampler_realtime,
                )
            except (SamplerError, OSError) as exc:
                self._proc_unavailable = f"no sampler process ({exc}); sampled in a thread"
        if self._proc is None and self._proc_unavailable:
            self._sampler_notes.append(self._proc_unavailable)
        return self._proc

    def _drop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.close()

    def _drain_loop(self, proc: ProcessSampler, period_s: float) -> None:
        try:
            while not self._stop_evt.wait(period_s):
                data, lost = proc.take(lag=self.DRAIN_LAG)
                if data:
                    self._raw_chunks.append(data)
                self._lost_samples += lost
        except Exception as exc:  # surface it at stop()
            self._thread_error = exc

    def start(self) -> None:
        """Take the opening sample, start the background sampler, open the window."""
        if self._thread is not None:
            raise MeasurementError(
                f"{self.name} reader: start() called twice; call stop() before the next window"
            )
        with self._lock:
            self._samples = []
            self._failed_reads = 0
            self._first_failure = None
        self._thread_error = None
        self._raw_chunks = []
        self._lost_samples = 0
        self._child_failure = None
        self._sampler_cpu_s = None
        self._sampler_problems = []
        self._sampler_notes = []
        proc = self._sampler_process() if self._wants_process() else None
        self._window_sampler = "process" if proc is not None else "thread"
        self._t_first_sample = self.sample_now()[0]
        self._t_start = self._clock()
        self._stop_evt.clear()
        interval_s = self.options.sample_interval_s
        if proc is not None:
            try:
                proc.resume(interval_s)
            except SamplerError as exc:
                self._sampler_problems.append(f"the sampler process could not start: {exc}")
            # A quarter of the ring's time: the drain copies raw bytes, seldom.
            period_s = proc.capacity * interval_s / 4
            self._thread = threading.Thread(
                target=self._drain_loop,
                args=(proc, period_s),
                name=f"{self.name}-sampler-drain",
                daemon=True,
            )
        else:
            self._thread = threading.Thread(
                target=self._loop, name=f"{self.name}-sampler", daemon=True
            )
        self._thread.start()

    def _finish_process_window(self) -> None:
        """Pause the sampler process, collect the window's samples and keep them."""
        proc = self._proc
        if proc is None:
            return
        timeout_s = max(2.0, 5 * self.options.sample_interval_s)
        try:
            paused = proc.pause(timeout_s)
            self._sampler_cpu_s = paused.cpu_s
            self._child_failure = paused.first_failure
        except SamplerError as exc:
            # Dead, or alive but not answering (stopped): kill it, so that what it wrote
            # is all there is; the samples it never wrote are a gap, never zero.
            alive = proc.alive()
            if alive:
                proc.proc.kill()
                proc.proc.wait()
            self._sampler_problems.append(
                f"the sampler process failed during the window ({exc}"
                f"{'; it was killed' if alive else ''}): the samples it did not take are "
                "missing; if this repeats, pass --power-opt "
                f"{self.name}.sampler=thread"
            )
        data, lost = proc.take(lag=0)
        if data:
            self._raw_chunks.append(data)
        self._lost_samples += lost
        rows, torn = proc.rows(b"".join(self._raw_chunks))
        self._raw_chunks = []
        self._lost_samples += torn
        for row in rows:
            self.record_file_sample(row[0], row[1:])
        if self._sampler_problems:
            self._drop_process()  # a new one for the next window

    def stop(self) -> EnergyReading:
        """Close the window, take the closing sample, and integrate."""
        if self._thread is None:
            raise MeasurementError(f"{self.name} reader: stop() called without start()")
        t_end = self._clock()
        try:
            self._t_last_sample = self.sample_now()[0]
        finally:
            self._stop_evt.set()
            self._thread.join()
            self._thread = None
            if self._window_sampler == "process":
                self._finish_process_window()
        if self._thread_error is not None:
            error, self._thread_error = self._thread_error, None
            raise error
        if t_end <= self._t_start:
            raise MeasurementError(
                f"{self.name} reader: the window has no duration; the clock did not advance"
            )
        with self._lock:
            samples = list(self._samples)
        reading = self.make_reading(samples, self._t_start, t_end)
        return self._with_sampler_checks(reading, samples)

    def _with_sampler_checks(self, reading: EnergyReading, samples: list[Sample]) -> EnergyReading:
        """The reading with the sampler's warnings, and invalid when the sampler failed."""
        requested_hz = 1.0 / self.options.sample_interval_s
        times = sorted(
            t
            for t, v in samples
            if v is not None and math.isfinite(v) and self._t_first_sample <= t
            if t <= self._t_last_sample
        )
        gap_s = max((b - a for a, b in itertools.pairwise(times)), default=None)
        details = dict(reading.details)
        details["sampler_max_gap_s"] = gap_s
        warnings = list(details.get("warnings") or [])
        rate = reading.sample_rate_hz
        if rate is not None and rate < (1 - self.RATE_TOLERANCE) * requested_hz:
            gap = f"; the largest gap between samples was {gap_s * 1e3:.3g} ms" if gap_s else ""
            warnings.append(
                f"the {self._window_sampler} sampler achieved {rate:.4g} Hz of the "
                f"{requested_hz:.4g} Hz requested (more than "
                f"{self.RATE_TOLERANCE * 100:g} % short){gap}: the figures hold for the "
                "achieved rate"
            )
        if self._lost_samples:
            warnings.append(
                f"{self._lost_samples} samples of the sampler process were lost (the ring "
                "buffer came round before it was drained): they count as gaps"
            )
        warnings += self._sampler_notes
        details["warnings"] = warnings
        update: dict[str, Any] = {"details": details}
        if self._sampler_problems:
            update["valid"] = False
            update["invalid_reasons"] = [*reading.invalid_reasons, *self._sampler_problems]
        return reading.model_copy(update=update)

    def make_reading(self, samples: list[Sample], t_start: float, t_end: float) -> EnergyReading:
        """Turn the window's samples into a reading: integrate power over ``[t_start, t_end]``."""
        info = self.info()
        period_s = max(self.options.sample_interval_s, info.update_period_s or 0.0)
        max_gap_s = self._max_gap_s or self.MAX_GAP_INTERVALS * period_s
        integ = integrate_power(
            samples, t_start, t_end, max_gap_s=max_gap_s, stuck_after_s=self._stuck_after_s
        )
        if not integ.has_energy:
            raise MeasurementError(
                f"{self.name} reader: {integ.reasons[0]} for {info.component} "
                f"({self.failure_summary()}); check that the sensor is readable"
            )
        energy_j = max(integ.energy_j, 0.0)  # negative: already a reason, and ge=0 is the model
        sensor_u = self.uncertainty_j(energy_j, integ.duration_s, integ.samples_in_window)
        accuracy = self.accuracy()
        reasons = list(integ.reasons)
        if sensor_u is None:
            reasons.append(missing_uncertainty(self.name))
        return EnergyReading(
            reader=self.name,
            method=info.method,
            scope=info.scope,
            component=info.component,
            energy_j=energy_j,
            duration_s=integ.duration_s,
            samples=integ.samples_in_window,
            sample_rate_hz=integ.sample_rate_hz,
            update_period_s=info.update_period_s,
            mean_power_w=energy_j / integ.duration_s,
            peak_power_w=integ.peak_power_w,
            uncertainty_j=None if sensor_u is None else sensor_u + integ.integration_error_j,
            valid=integ.valid and sensor_u is not None,
            invalid_reasons=reasons,
            trace=integ.trace,
            details=self.details()
            | self.sampling_details(t_start, t_end)
            | {
                "missing_samples": integ.missing,
                "max_gap_s": integ.max_gap_s,
                "max_gap_limit_s": max_gap_s,
                "stuck_s": integ.stuck_s,
                "integration_error_j": integ.integration_error_j,
                "sensor_uncertainty_j": sensor_u,
                "sensor_accuracy": accuracy.as_details() if accuracy else None,
            },
        )

    def failure_summary(self) -> str:
        """``"N failed reads, first: …"`` for the current window, or ``"no failed reads"``."""
        with self._lock:
            n, first = self._failed_reads, self._first_failure
        return f"{n} failed reads, first: {first}" if n else "no failed reads"

    def sampling_details(self, t_start: float, t_end: float) -> dict[str, Any]:
        """What the sampler did in this window, for :attr:`EnergyReading.details`."""
        with self._lock:
            failed, first = self._failed_reads, self._first_failure
        return {
            "t_start_s": t_start,
            "t_end_s": t_end,
            "requested_sample_rate_hz": 1.0 / self.options.sample_interval_s,
            "failed_reads": failed,
            "first_failure": first,
            "sampler": self._window_sampler,
            "sampler_read": self.READ_KIND,
            "sampler_cpu_s": self._sampler_cpu_s,
            "sampler_priority": (
                self._proc.priority if self._window_sampler == "process" and self._proc else None
            ),
            "sampler_lost_samples": self._lost_samples,
        }

    def close(self) -> None:
        """Stop the sampler (thread or process) and close the sensor files."""
        if self._thread is not None:
            self._stop_evt.set()
            self._thread.join()
            self._thread = None
        self._drop_process()
        with self._files_lock:
            files, self._files = self._files, None
        if files is not None:
            files.close()
