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
  ``DEFAULT_ACCURACY``), so every measured reading carries an uncertainty.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from wattbench.core.errors import ConfigError, MeasurementError
from wattbench.core.power import EnergyReading, PowerReader, ReaderOptions
from wattbench.power.accounting import Sample, integrate_power, uncertainty_j


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

    The window runs from the end of :meth:`start` to the beginning of
    :meth:`stop`. Each of them takes one sample just outside the window, so
    both edges are interpolated between real samples. Samples are stamped at
    the midpoint of the read with the injected monotonic ``clock``; the
    background thread schedules itself on ``time.monotonic`` whatever the
    clock, so tests may pass a manual clock and call :meth:`sample_now`.
    """

    #: a gap longer than this many sample intervals (or update periods) invalidates
    MAX_GAP_INTERVALS: ClassVar[float] = 5.0
    #: default for ``stuck_after_s``; None: a sensor that never changes is not flagged
    STUCK_AFTER_S: ClassVar[float | None] = None
    #: the sensor's accuracy when no ``accuracy_*`` option is given; a registered
    #: reader must have one (a measured figure always carries an uncertainty)
    DEFAULT_ACCURACY: ClassVar[SensorAccuracy | None] = None

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

    @abstractmethod
    def read_power_w(self) -> float | None:
        """One power reading in watts; None when the sensor could not be read."""

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

    def read_sample(self) -> float | None:
        """The value the sampler records: :meth:`read_power_w` unless overridden.

        A reader of a cumulative energy counter overrides this and
        :meth:`make_reading` to keep the same thread and time stamps.
        """
        return self.read_power_w()

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
        with self._lock:
            self._samples.append((t_s, value))
            if value is None or not math.isfinite(value):
                self._failed_reads += 1
                if self._first_failure is None:
                    self._first_failure = failure or f"read returned {value!r}"
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
        self._t_first_sample = self.sample_now()[0]
        self._t_start = self._clock()
        self._stop_evt.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-sampler", daemon=True)
        self._thread.start()

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
        if self._thread_error is not None:
            error, self._thread_error = self._thread_error, None
            raise error
        if t_end <= self._t_start:
            raise MeasurementError(
                f"{self.name} reader: the window has no duration; the clock did not advance"
            )
        with self._lock:
            samples = list(self._samples)
        return self.make_reading(samples, self._t_start, t_end)

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
            valid=integ.valid,
            invalid_reasons=list(integ.reasons),
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
        }

    def close(self) -> None:
        """Stop the sampler thread if a window is still open."""
        if self._thread is not None:
            self._stop_evt.set()
            self._thread.join()
            self._thread = None
