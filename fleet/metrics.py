"""Live Prometheus metrics of a worker (``wattbench worker --metrics-port P``).

Exposed at ``http://<device>:P/metrics``:

========================================== ===================================================
``wattbench_worker_up{device}``            1 while the worker runs (0 while it stops)
``wattbench_power_watts{device,reader}``   mean power of the last sampling interval per reader
``wattbench_energy_joules_total{...}``     energy counted by the sampler since the worker began
``wattbench_inferences_total{device}``     inferences of the runs this worker finished
``wattbench_cells_total{device,status}``   cells finished per status (done, failed, skipped...)
``wattbench_cell_running{device,campaign,cell}``  1 for the cell running now
``wattbench_cell_phase_info{device,phase}`` the run phase of the running cell
``wattbench_device_temperature_celsius``   per sensor, where the OS exposes temperatures
========================================== ===================================================

The power sampler opens its own readers (``--power``, default ``auto``) and reads them in
windows of ``interval_s``, between and during cells, so Grafana shows power live; the
figures of record are still the runs' own windows.
"""

from __future__ import annotations

import contextlib
import logging

from wattbench.harness.metrics import PowerMetrics

log = logging.getLogger(__name__)


class WorkerMetrics(PowerMetrics):
    """The worker's metrics in their own registry, served on ``port`` (None: not served)."""

    def __init__(self, device: str, port: int | None, addr: str = "0.0.0.0") -> None:
        super().__init__(device, port, addr, up_name="wattbench_worker_up")
        from prometheus_client import Counter, Gauge, Info

        r = self.registry
        self.cells = Counter(
            "wattbench_cells", "Cells finished per status", ["device", "status"], registry=r
        )
        self.running = Gauge(
            "wattbench_cell_running",
            "The running cell",
            ["device", "campaign", "cell"],
            registry=r,
        )
        self.phase = Info(
            "wattbench_cell_phase", "Run phase of the running cell", ["device"], registry=r
        )
        self.phase.labels(device).info({"phase": "idle"})
        self._cell: tuple[str, str] | None = None

    # -- cells ----------------------------------------------------------------------------
    def cell_started(self, campaign: str, cell: int) -> None:
        self._cell = (campaign, str(cell))
        self.running.labels(self.device, *self._cell).set(1)

    def cell_phase(self, phase: str) -> None:
        self.phase.labels(self.device).info({"phase": phase})

    def cell_finished(self, status: str, inferences: int = 0) -> None:
        if self._cell is not None:
            with contextlib.suppress(KeyError):
                self.running.remove(self.device, *self._cell)
            self._cell = None
        self.cells.labels(self.device, status).inc()
        if inferences:
            self.inferences.labels(self.device).inc(inferences)
        self.cell_phase("idle")
