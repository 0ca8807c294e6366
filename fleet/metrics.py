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
import threading
from typing import Any

log = logging.getLogger(__name__)


class WorkerMetrics:
    """The worker's metrics in their own registry, served on ``port`` (0: not served)."""

    def __init__(self, device: str, port: int | None, addr: str = "0.0.0.0") -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Info

        self.device = device
        self.registry = CollectorRegistry()
        r = self.registry
        self.up = Gauge("wattbench_worker_up", "1 while the worker runs", ["device"], registry=r)
        self.power = Gauge(
            "wattbench_power_watts",
            "Power of the last sampling window",
            ["device", "reader"],
            registry=r,
        )
        self.energy = Counter(
            "wattbench_energy_joules",
            "Energy seen by the sampler",
            ["device", "reader"],
            registry=r,
        )
        self.inferences = Counter(
            "wattbench_inferences", "Inferences of finished runs", ["device"], registry=r
        )
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
        self.temperature = Gauge(
            "wattbench_device_temperature_celsius",
            "Device temperature",
            ["device", "sensor"],
            registry=r,
        )
        self.up.labels(device).set(1)
        self.phase.labels(device).info({"phase": "idle"})
        self.server: Any = None
        self.port: int | None = None
        if port is not None:
            from prometheus_client import start_http_server

            self.server, _thread = start_http_server(port, addr=addr, registry=r)
            self.port = int(self.server.server_port)
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
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

    # -- live power and temperature --------------------------------------------------------
    def start_sampler(self, power: tuple[str, ...], interval_s: float = 2.0) -> None:
        self._sampler = threading.Thread(
            target=self._sample_loop,
            args=(power, interval_s),
            name="wattbench-metrics",
            daemon=True,
        )
        self._sampler.start()

    def _sample_loop(self, power: tuple[str, ...], interval_s: float) -> None:
        from wattbench.core.power import ReaderOptions
        from wattbench.power.select import select_readers

        try:
            readers, _warnings = select_readers(power, ReaderOptions())
        except Exception as exc:  # the worker runs cells without live power
            log.warning("live power disabled: %s", exc)
            readers = []
        try:
            while not self._stop.is_set():
                self.read_temperatures()
                if not readers:
                    self._stop.wait(interval_s)
                    continue
                for rd in readers:
                    rd.start()
                self._stop.wait(interval_s)
                for rd in readers:
                    try:
                        reading = rd.stop()
                    except Exception as exc:
                        log.warning("power reader %s: %s", rd.name, exc)
                        continue
                    self.power.labels(self.device, rd.name).set(reading.mean_power_w)
                    if reading.energy_j > 0:
                        self.energy.labels(self.device, rd.name).inc(reading.energy_j)
        finally:
            for rd in readers:
                with contextlib.suppress(Exception):
                    rd.close()

    def read_temperatures(self) -> None:
        import psutil

        read = getattr(psutil, "sensors_temperatures", None)
        if read is None:
            return
        try:
            sensors = read()
        except Exception:
            return
        for chip, entries in sensors.items():
            for i, e in enumerate(entries):
                if e.current is not None:
                    self.temperature.labels(self.device, f"{chip}/{e.label or i}").set(e.current)

    def close(self) -> None:
        self.up.labels(self.device).set(0)
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=10)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
