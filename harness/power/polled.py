"""Base class for readers that sample power in a background thread."""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

from wattbench.harness.errors import MeasurementError
from wattbench.harness.power.accounting import integrate_power
from wattbench.harness.power.base import EnergyReading, PowerReader, ReaderOptions


class PolledReader(PowerReader):
    """Samples :meth:`read_power_w` every ``options.sample_interval_s`` and integrates.

    Subclasses implement :meth:`read_power_w` (None when a read fails — a gap,
    never 0 W), :meth:`info`, :meth:`is_available`, and may override
    :meth:`uncertainty_j`. The sample taken when :meth:`start` and
    :meth:`stop` are called brackets the window.
    """

    #: a gap longer than this many sample intervals (or update periods) invalidates
    MAX_GAP_INTERVALS = 5.0

    def __init__(
        self, options: ReaderOptions | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(options)
        self._clock = clock
        self._samples: list[tuple[float, float | None]] = []
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    @abstractmethod
    def read_power_w(self) -> float | None:
        """One power reading in watts; None when the sensor could not be read."""

    def uncertainty_j(self, energy_j: float, duration_s: float, samples: int) -> float | None:
        """Half-width of the energy uncertainty; None when not known."""
        return None

    def details(self) -> dict[str, Any]:
        return {}

    def _sample(self) -> None:
        t = self._clock()
        try:
            p = self.read_power_w()
        except OSError:
            p = None
        with self._lock:
            self._samples.append((t, p))

    def _loop(self) -> None:
        while not self._stop_evt.wait(self.options.sample_interval_s):
            self._sample()

    def start(self) -> None:
        if self._thread is not None:
            raise MeasurementError(f"{self.name}: start() called twice without stop()")
        with self._lock:
            self._samples = []
        self._sample()
        self._t0 = self._samples[-1][0]
        self._stop_evt.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-sampler",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> EnergyReading:
        if self._thread is None:
            raise MeasurementError(f"{self.name}: stop() called without start()")
        self._sample()
        t1 = self._samples[-1][0]
        self._stop_evt.set()
        self._thread.join()
        self._thread = None
        info = self.info()
        period = max(self.options.sample_interval_s, info.update_period_s or 0.0)
        with self._lock:
            samples = list(self._samples)
        integ = integrate_power(
            samples, self._t0, t1, max_gap_s=self.MAX_GAP_INTERVALS * period
        )
        if not integ.valid and not (integ.energy_j == integ.energy_j):  # NaN: no data at all
            raise MeasurementError(f"{self.name}: {'; '.join(integ.reasons)}")
        return EnergyReading(
            reader=self.name,
            method=info.method,
            scope=info.scope,
            component=info.component,
            energy_j=max(integ.energy_j, 0.0),
            duration_s=integ.duration_s,
            samples=integ.samples_in_window,
            sample_rate_hz=integ.sample_rate_hz,
            update_period_s=info.update_period_s,
            mean_power_w=integ.mean_power_w,
            peak_power_w=integ.peak_power_w,
            uncertainty_j=self.uncertainty_j(
                integ.energy_j, integ.duration_s, integ.samples_in_window
            ),
            valid=integ.valid,
            invalid_reasons=list(integ.reasons),
            trace=integ.trace,
            details=self.details() | {"missing_samples": integ.missing,
                                      "max_gap_s": integ.max_gap_s},
        )

    def close(self) -> None:
        if self._thread is not None:
            self._stop_evt.set()
            self._thread.join()
            self._thread = None
