"""Live Prometheus power metrics, shared by `wattbench run --metrics-port P` and the lab
worker (``wattbench.fleet.metrics`` adds its cell metrics on top).

Exposed at ``http://<host>:P/metrics``: ``<up_name>{device}`` (1 while running),
``wattbench_power_watts{device,reader}`` (mean power of the last sampling window),
``wattbench_energy_joules_total{device,reader}``, ``wattbench_inferences_total{device}`` and
``wattbench_device_temperature_celsius{device,sensor}`` where the OS exposes temperatures.
The sampler opens its own readers; the figures of record are still the run's own windows.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from wattbench.core.errors import ConfigError

log = logging.getLogger(__name__)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            "--metrics-port needs prometheus-client: pip install 'wattbench[fleet]'"
        ) from None
    return prometheus_client


class PowerMetrics:
    """Power, energy, inferences and temperature in their own registry, served on ``port``
    (None: not served; 0: any free port, see :attr:`port`)."""

    def __init__(
        self, device: str, port: int | None, addr: str = "0.0.0.0", up_name: str = "wattbench_up"
    ) -> None:
        pc = _prometheus()
        self.device = device
        self.registry = pc.CollectorRegistry()
        r = self.registry
        self.up = pc.Gauge(up_name, "1 while running", ["device"], registry=r)
        self.power = pc.Gauge(
            "wattbench_power_watts",
            "Power of the last sampling window",
            ["device", "reader"],
            registry=r,
        )
        self.energy = pc.Counter(
            "wattbench_energy_joules",
            "Energy seen by the sampler",
            ["device", "reader"],
            registry=r,
        )
        self.inferences = pc.Counter(
            "wattbench_inferences", "Inferences of finished runs", ["device"], registry=r
        )
        self.temperature = pc.Gauge(
            "wattbench_device_temperature_celsius",
            "Device temperature",
            ["device", "sensor"],
            registry=r,
        )
        self.up.labels(device).set(1)
        self.server: Any = None
        self.port: int | None = None
        if port is not None:
            try:
                self.server, _thread = pc.start_http_server(port, addr=addr, registry=r)
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on port {port}: {exc.strerror}; choose another port"
                ) from None
            self.port = int(self.server.server_port)
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def start_sampler(self, power: tuple[str, ...], interval_s: float = 2.0) -> None:
        """Read ``power`` readers in windows of ``interval_s`` in a background thread."""
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
        except Exception as exc:  # the work goes on without live power
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
        """Set the temperature gauges from psutil, where the OS exposes sensors."""
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
        """Mark down, stop the sampler and the HTTP server."""
        self.up.labels(self.device).set(0)
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=10)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
