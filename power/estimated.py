"""Estimated CPU power: TDP × measured CPU utilisation.

This is a *model*, not a measurement, and every figure it produces is labelled
``estimated``. Power over an interval is ``P = TDP × u`` where ``u`` is the
system-wide busy fraction of all logical CPUs (user + system + irq + …; idle,
iowait and hypervisor steal count as not busy) from the kernel's CPU time
counters. Energy over a window uses the counters at the window edges, so it is
exact for the model whatever the sampling rate; the background samples only
give the trace and the peak.

TDP comes from ``--tdp-w``, else codecarbon's table (exact name match), else a
labelled fallback of :data:`FALLBACK_W_PER_LOGICAL_CPU` per logical CPU, which
is announced as a warning and recorded in the reading.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import psutil

from wattbench.core.availability import Availability
from wattbench.core.errors import MeasurementError
from wattbench.core.fingerprint import cpu_model_name
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    EnergyScope,
    PowerReader,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.power.tdp import lookup_tdp

#: Used only when neither ``--tdp-w`` nor the TDP table knows the CPU; said aloud.
FALLBACK_W_PER_LOGICAL_CPU = 5.0
#: Nominal relative uncertainty of the TDP × utilisation model with a known TDP.
MODEL_REL_UNCERTAINTY = 0.5
#: ... and with the per-CPU fallback figure, which can be off by 2x either way.
FALLBACK_REL_UNCERTAINTY = 1.0
_NOT_BUSY = ("idle", "iowait", "steal")
_MAX_TRACE_POINTS = 2000

CpuTimesFn = Callable[[], Any]


def busy_and_total(times: Any) -> tuple[float, float]:
    """Busy and total CPU seconds from a psutil ``cpu_times()`` tuple."""
    fields = times._asdict()
    # guest time is already included in user time on Linux; don't count it twice.
    total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
    busy = total - sum(fields.get(k, 0.0) for k in _NOT_BUSY)
    return busy, total


class EstimatedCpuReader(PowerReader):
    """CPU package power estimated from TDP and utilisation (method ``estimated``)."""

    name: ClassVar[str] = "estimate"
    method: ClassVar[EnergyMethod] = EnergyMethod.ESTIMATED

    def __init__(
        self,
        options: ReaderOptions | None = None,
        *,
        cpu_times: CpuTimesFn = psutil.cpu_times,
        clock: Callable[[], float] = time.monotonic,
        cpu_model: str | None = None,
        logical_cpus: int | None = None,
    ) -> None:
        super().__init__(options)
        self._cpu_times = cpu_times
        self._clock = clock
        self._cpu_model = cpu_model if cpu_model is not None else cpu_model_name()
        self._logical_cpus = logical_cpus or psutil.cpu_count(logical=True) or 1
        self.tdp_w, self.tdp_source, self.rel_uncertainty = self._resolve_tdp()
        self._thread: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self._trace: list[tuple[float, float]] = []
        self._t0 = 0.0
        self._c0: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def is_available(cls, options: ReaderOptions) -> Availability:
        return Availability.yes("always (an estimate, not a measurement)")

    @property
    def uses_fallback(self) -> bool:
        return self.tdp_source.startswith("fallback")

    def _resolve_tdp(self) -> tuple[float, str, float]:
        if self.options.tdp_w is not None:
            return self.options.tdp_w, "user (--tdp-w)", MODEL_REL_UNCERTAINTY
        match = lookup_tdp(self._cpu_model)
        if match is not None:
            return match.tdp_w, match.source, MODEL_REL_UNCERTAINTY
        tdp = FALLBACK_W_PER_LOGICAL_CPU * self._logical_cpus
        return (
            tdp,
            f"fallback {FALLBACK_W_PER_LOGICAL_CPU:g} W x {self._logical_cpus} logical CPUs "
            f"(CPU {self._cpu_model!r} not in the TDP table; pass --tdp-w)",
            FALLBACK_REL_UNCERTAINTY,
        )

    def info(self) -> ReaderInfo:
        return ReaderInfo(
            name=self.name,
            method=self.method,
            scope=EnergyScope.CHIP,
            component=f"cpu ({self._cpu_model})",
            update_period_s=None,
            details={
                "model": "P = TDP x cpu_utilisation",
                "tdp_w": self.tdp_w,
                "tdp_source": self.tdp_source,
                "relative_uncertainty": self.rel_uncertainty,
            },
        )

    def _busy_total(self) -> tuple[float, float]:
        return busy_and_total(self._cpu_times())

    def _sample_loop(self) -> None:
        prev = self._c0
        while not self._stop_evt.wait(self.options.sample_interval_s):
            now, cur = self._clock(), self._busy_total()
            d_total = cur[1] - prev[1]
            if d_total > 0:
                util = min(1.0, max(0.0, (cur[0] - prev[0]) / d_total))
                self._trace.append((now - self._t0, self.tdp_w * util))
            prev = cur

    def start(self) -> None:
        if self._thread is not None:
            raise MeasurementError("estimate reader: start() called twice without stop()")
        self._trace = []
        self._stop_evt.clear()
        self._t0, self._c0 = self._clock(), self._busy_total()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)
        self._thread.start()

    def stop(self) -> EnergyReading:
        if self._thread is None:
            raise MeasurementError("estimate reader: stop() called without start()")
        t1, c1 = self._clock(), self._busy_total()
        self._stop_evt.set()
        self._thread.join()
        self._thread = None
        duration_s = t1 - self._t0
        d_busy, d_total = c1[0] - self._c0[0], c1[1] - self._c0[1]
        reasons: list[str] = []
        if duration_s <= 0:
            raise MeasurementError("estimate reader: window has no duration")
        if d_total <= 0:
            # The kernel counters did not move: the window is shorter than a
            # clock tick. Unknown is not zero.
            reasons.append("CPU time counters did not advance; window too short to estimate")
            util = 0.0
        else:
            util = min(1.0, max(0.0, d_busy / d_total))
        mean_w = self.tdp_w * util
        energy_j = mean_w * duration_s
        peak = max((w for _, w in self._trace), default=mean_w)
        trace = self._trace
        if len(trace) > _MAX_TRACE_POINTS:
            step = len(trace) / _MAX_TRACE_POINTS
            trace = [trace[int(i * step)] for i in range(_MAX_TRACE_POINTS)]
        return EnergyReading(
            reader=self.name,
            method=self.method,
            scope=EnergyScope.CHIP,
            component=f"cpu ({self._cpu_model})",
            energy_j=energy_j,
            duration_s=duration_s,
            samples=len(self._trace),
            sample_rate_hz=len(self._trace) / duration_s,
            update_period_s=None,
            mean_power_w=mean_w,
            peak_power_w=max(peak, mean_w),
            uncertainty_j=energy_j * self.rel_uncertainty,
            valid=not reasons,
            invalid_reasons=reasons,
            trace=trace,
            details={
                "cpu_utilisation": util,
                "tdp_w": self.tdp_w,
                "tdp_source": self.tdp_source,
                "model": "P = TDP x cpu_utilisation",
            },
        )

    def close(self) -> None:
        if self._thread is not None:
            self._stop_evt.set()
            self._thread.join()
            self._thread = None
