"""The PowerReader contract, checked on every reader registered in ``wattbench.power``.

Each registered name needs a *factory* here that builds an available reader on a
faithful fake (the kernel's/vendors' exact file names, an autospec of pynvml, a
loopback HTTP plug) and an *unavailable* variant. A reader registered without
one fails :func:`test_every_registered_reader_has_a_contract_factory` and every
contract test for it, with "add a contract factory for NAME".

The fakes are driven in real time (a ticker thread moves counters from the
elapsed monotonic time, so a starved ticker delays updates but loses no
energy); windows are a few tenths of a second. Polled readers get a generous
``max_gap_s``: gap detection is tested per reader, and this file checks the
contract, not the machine's scheduling.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest

from wattbench.core.availability import Availability
from wattbench.core.errors import MeasurementError, WattbenchError
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    EnergyScope,
    PowerReader,
    ReaderInfo,
    ReaderOptions,
)

GROUP = "wattbench.power"
REGISTERED = sorted(ep.name for ep in entry_points(group=GROUP))
WINDOW_S = 0.25
TICK_S = 0.005
#: what a reader's own threads are named, or run (the estimate's thread is unnamed)
_FOREIGN_THREADS = ("process_request_thread", "contract-")


# -- fakes ------------------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """Replace a file in one step, as a sysfs read never sees half a value."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_unreadable(path: Path) -> None:
    """Every later read fails with an OSError (a directory where the file was)."""
    path.unlink()
    path.mkdir()


class Ticker:
    """Calls ``fn(elapsed_s)`` every few ms in a thread until stopped.

    ``fn`` computes the fake's state from the elapsed time, never by
    incrementing, so a starved ticker only delays an update.
    """

    def __init__(self, fn: Callable[[float], None]) -> None:
        self.fn = fn
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="contract-ticker", daemon=True)
        self.fn(0.0)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self.fn(time.monotonic() - self.t0)

    def stop(self) -> None:
        """Stop updating (idempotent): the fake keeps its last value."""
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Fake:
    """An available reader on a fake, and how to drive and break its source."""

    options: ReaderOptions
    #: builds a reader (some take injected modules)
    make: Callable[[ReaderOptions], PowerReader]
    is_available: Callable[[ReaderOptions], Availability]
    #: (low, high): the fake's true power stays within these watts
    power_w: tuple[float, float]
    #: every later read of the source fails
    fail: Callable[[], None]
    #: the source stays readable but its value never changes again
    freeze: Callable[[], None]
    #: reader-specific self-consistency of a reading's details; problems found
    check_details: Callable[[EnergyReading], list[str]] = lambda r: []


@dataclass
class Unavailable:
    """A reader's options on a machine without its sensor."""

    options: ReaderOptions
    make: Callable[[ReaderOptions], PowerReader]
    is_available: Callable[[ReaderOptions], Availability]


@dataclass
class Env:
    """What a factory may use: a fresh directory and a place to register cleanups."""

    tmp: Path
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def ticker(self, fn: Callable[[float], None]) -> Ticker:
        t = Ticker(fn)
        self.cleanups.append(t.stop)
        return t


def _opts(root: Path | None = None, interval_s: float = 0.05, **params: str) -> ReaderOptions:
    return ReaderOptions(
        sysfs_root=root or Path("/nonexistent-contract-root"),
        sample_interval_s=interval_s,
        params=params,
    )


def _rel_close(a: float, b: float, rel: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


# -- rapl ---------------------------------------------------------------------------

RAPL_RANGE_UJ = 262143328850  # a typical Intel max_energy_range_uj
RAPL_W = 20.0


def rapl_fake(env: Env) -> Fake:
    from wattbench.power.rapl import RaplReader

    zone = env.tmp / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    (env.tmp / "sys/class/powercap/intel-rapl").mkdir()  # the control type, not a zone
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{RAPL_RANGE_UJ}\n")
    start_uj = RAPL_RANGE_UJ - 2_000_000  # 2 J below the top: the first window wraps
    ticker = env.ticker(
        lambda t: write_atomic(
            zone / "energy_uj", f"{int(start_uj + RAPL_W * t * 1e6) % RAPL_RANGE_UJ}\n"
        )
    )

    def check(r: EnergyReading) -> list[str]:
        zones = r.details["zones"]
        total = sum(z["energy_j"] for z in zones)
        return [] if _rel_close(total, r.energy_j) else [f"zones sum {total} != {r.energy_j}"]

    return Fake(
        options=_opts(env.tmp),
        make=RaplReader,
        is_available=RaplReader.is_available,
        power_w=(RAPL_W, RAPL_W),
        fail=lambda: (ticker.stop(), make_unreadable(zone / "energy_uj")),
        freeze=ticker.stop,
        check_details=check,
    )


def rapl_unavailable(env: Env) -> Unavailable:
    from wattbench.power.rapl import RaplReader

    return Unavailable(_opts(env.tmp), RaplReader, RaplReader.is_available)


# -- hwmon --------------------------------------------------------------------------


def _hwmon_device(root: Path, files: dict[str, str]) -> Path:
    d = root / "sys/class/hwmon/hwmon0"
    d.mkdir(parents=True)
    for name, value in files.items():
        (d / name).write_text(value + "\n")
    return d


def hwmon_fake(env: Env) -> Fake:
    """An INA226 power channel (µW), sampled: method ``polled``."""
    from wattbench.power.hwmon import HwmonReader

    d = _hwmon_device(
        env.tmp,
        {"name": "ina226", "power1_input": "7500000", "power1_label": "VDD_IN"},
    )
    return Fake(
        options=_opts(env.tmp, **{"hwmon.max_gap_s": "2"}),
        make=HwmonReader,
        is_available=HwmonReader.is_available,
        power_w=(7.5, 7.5),
        fail=lambda: make_unreadable(d / "power1_input"),
        freeze=lambda: None,  # constant power is a legitimate reading for a power sensor
    )


def hwmon_energy_fake(env: Env) -> Fake:
    """An ``energy1_input`` counter (µJ): the same class reads it as method ``counter``."""
    from wattbench.power.hwmon import HwmonReader

    d = _hwmon_device(
        env.tmp,
        {"name": "amd_energy", "energy1_label": "Esocket0", "update_interval": "1"},
    )
    ticker = env.ticker(
        lambda t: write_atomic(d / "energy1_input", f"{int(5e9 + 12.0 * t * 1e6)}\n")
    )

    def check(r: EnergyReading) -> list[str]:
        counter_j = r.details["counter_uj"] / 1e6
        return [] if _rel_close(counter_j, r.energy_j) else [f"counter {counter_j} != energy"]

    return Fake(
        options=_opts(env.tmp, **{"hwmon.max_gap_s": "2"}),
        make=HwmonReader,
        is_available=HwmonReader.is_available,
        power_w=(12.0, 12.0),
        fail=lambda: (ticker.stop(), make_unreadable(d / "energy1_input")),
        freeze=ticker.stop,
        check_details=check,
    )


def hwmon_unavailable(env: Env) -> Unavailable:
    from wattbench.power.hwmon import HwmonReader

    return Unavailable(_opts(env.tmp), HwmonReader, HwmonReader.is_available)


# -- jetson -------------------------------------------------------------------------


def jetson_fake(env: Env) -> Fake:
    """Jetson Orin Nano on JetPack 5/6: INA3221 through the mainline hwmon driver.

    VDD_IN (the module total) ramps up with time, so per-rail figures integrated
    from other samples than the total's would not add up to it.
    """
    from wattbench.power.jetson import JetsonReader

    d = env.tmp / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    d.mkdir(parents=True)
    (d / "name").write_text("ina3221\n")
    (d / "update_interval").write_text("1\n")
    for ch, (label, mv, ma) in {
        1: ("VDD_IN", 5000, 800),
        2: ("VDD_CPU_GPU_CV", 5000, 400),
        3: ("VDD_SOC", 5000, 300),
    }.items():
        (d / f"in{ch}_label").write_text(f"{label}\n")
        (d / f"in{ch}_input").write_text(f"{mv}\n")
        (d / f"curr{ch}_input").write_text(f"{ma}\n")
        (d / f"in{ch}_enable").write_text("1\n")
    model = env.tmp / "proc/device-tree/model"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    # 4 W + 2 W/s at 5 V, in mA; capped so it stays in range on a slow run.
    ticker = env.ticker(
        lambda t: write_atomic(d / "curr1_input", f"{round(800 + 400 * min(t, 30.0))}\n")
    )

    def check(r: EnergyReading) -> list[str]:
        rails = r.details["rails"]
        problems = [
            f"rail {n} invalid: {v['invalid_reasons']}" for n, v in rails.items() if not v["valid"]
        ]
        total = sum(v["energy_j"] for v in rails.values() if v["in_total"])
        if not _rel_close(total, r.energy_j):
            problems.append(f"rails in the total sum to {total} J, the reading says {r.energy_j}")
        return problems

    return Fake(
        options=_opts(env.tmp, **{"jetson.max_gap_s": "2"}),
        make=JetsonReader,
        is_available=JetsonReader.is_available,
        power_w=(4.0, 64.0),
        fail=lambda: (ticker.stop(), make_unreadable(d / "curr1_input")),
        freeze=lambda: None,  # a constant rail power is a legitimate reading
        check_details=check,
    )


def jetson_jp4_fake(env: Env) -> Fake:
    """Jetson Nano on JetPack 4: NVIDIA's ``ina3221x`` IIO driver (``rail_name_N``,
    ``in_power N_input`` in mW), and no ``/proc/device-tree``: the model is read where
    the link points, ``/sys/firmware/devicetree/base/model``."""
    from wattbench.power.jetson import JetsonReader

    d = env.tmp / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    d.mkdir(parents=True)
    for ch, (name, mw) in enumerate(
        [("POM_5V_IN", 3200), ("POM_5V_GPU", 400), ("POM_5V_CPU", 800)]
    ):
        (d / f"rail_name_{ch}").write_text(f"{name}\n")
        (d / f"in_power{ch}_input").write_text(f"{mw}\n")
        (d / f"in_voltage{ch}_input").write_text("5000\n")
        (d / f"in_current{ch}_input").write_text(f"{mw // 5}\n")
    model = env.tmp / "sys/firmware/devicetree/base/model"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"NVIDIA Jetson Nano Developer Kit\x00")
    # 3.2 W + 1 W/s, in mW; capped so it stays in range on a slow run.
    ticker = env.ticker(
        lambda t: write_atomic(d / "in_power0_input", f"{round(3200 + 1000 * min(t, 30.0))}\n")
    )
    return Fake(
        options=_opts(env.tmp, **{"jetson.max_gap_s": "2"}),
        make=JetsonReader,
        is_available=JetsonReader.is_available,
        power_w=(3.2, 40.0),
        fail=lambda: (ticker.stop(), make_unreadable(d / "in_power0_input")),
        freeze=lambda: None,
    )


def jetson_unavailable(env: Env) -> Unavailable:
    from wattbench.power.jetson import JetsonReader

    return Unavailable(_opts(env.tmp), JetsonReader, JetsonReader.is_available)


# -- nvml ---------------------------------------------------------------------------


@functools.cache
def _autospec(pynvml: Any) -> Any:
    """One autospec of the real module (building it is slow), reset by each SimGpu."""
    return mock.create_autospec(pynvml, instance=False)


class SimGpu:
    """An autospec of the real pynvml whose counter and power follow real time."""

    def __init__(self, pynvml: Any, *, power_w: float, counter: bool) -> None:
        self.pynvml = pynvml
        self.power_w = power_w
        self.t0 = time.monotonic()
        self.failing = False
        self.frozen_mj: int | None = None
        self.handle = object()
        m = _autospec(pynvml)
        m.reset_mock(return_value=True, side_effect=True)
        m.NVMLError = pynvml.NVMLError
        for c in (
            "NVML_SUCCESS",
            "NVML_ERROR_NOT_SUPPORTED",
            "NVML_FI_DEV_POWER_INSTANT",
            "NVML_FI_DEV_POWER_AVERAGE",
        ):
            setattr(m, c, getattr(pynvml, c))
        m.nvmlDeviceGetCount.return_value = 1
        m.nvmlDeviceGetHandleByIndex.return_value = self.handle
        m.nvmlDeviceGetName.return_value = "NVIDIA L4"
        m.nvmlDeviceGetFieldValues.side_effect = self._fields
        m.nvmlDeviceGetPowerUsage.side_effect = lambda h: self._check(h) or self.mw
        if counter:
            m.nvmlDeviceGetTotalEnergyConsumption.side_effect = self._counter
        else:
            m.nvmlDeviceGetTotalEnergyConsumption.side_effect = pynvml.NVMLError(
                pynvml.NVML_ERROR_NOT_SUPPORTED
            )
        self.nvml = m

    @property
    def mw(self) -> int:
        return round(self.power_w * 1000)

    def _check(self, handle: Any) -> None:
        assert handle is self.handle
        if self.failing:
            raise self.pynvml.NVMLError(self.pynvml.NVML_ERROR_UNKNOWN)

    def _counter(self, handle: Any) -> int:
        self._check(handle)
        if self.frozen_mj is not None:
            return self.frozen_mj
        return int(7_500_000 + self.power_w * (time.monotonic() - self.t0) * 1000)

    def _fields(self, handle: Any, field_ids: list[int]) -> Any:
        self._check(handle)
        p = self.pynvml
        values = (p.c_nvmlFieldValue_t * len(field_ids))()
        for i, fid in enumerate(field_ids):
            values[i].fieldId = fid
            values[i].valueType = p.NVML_VALUE_TYPE_UNSIGNED_INT
            values[i].nvmlReturn = p.NVML_SUCCESS
            values[i].value.uiVal = self.mw
        return values

    def freeze(self) -> None:
        self.frozen_mj = self._counter(self.handle)


def _nvml_fake(env: Env, *, counter: bool) -> Fake:
    pynvml = pytest.importorskip("pynvml", reason="the nvml contract needs nvidia-ml-py")
    from wattbench.power.nvml import NvmlReader

    gpu = SimGpu(pynvml, power_w=70.0, counter=counter)

    def check(r: EnergyReading) -> list[str]:
        d = r.details
        problems = list(d["warnings"])
        if counter and not _rel_close(d["counter_j"], r.energy_j):
            problems.append(f"counter_j {d['counter_j']} != energy {r.energy_j}")
        return problems

    def fail() -> None:
        gpu.failing = True

    return Fake(
        # 0.1 s: NVML's polled gap limit (5 intervals) is fixed; a 0.25 s window fits.
        options=_opts(interval_s=0.1),
        make=lambda o: NvmlReader(o, nvml=gpu.nvml),
        is_available=lambda o: NvmlReader.is_available(o, nvml=gpu.nvml),
        power_w=(70.0, 70.0),
        fail=fail,
        freeze=gpu.freeze if counter else (lambda: None),
        check_details=check,
    )


def nvml_fake(env: Env) -> Fake:
    """A GPU with the energy counter (Volta and newer): method ``counter``."""
    return _nvml_fake(env, counter=True)


def nvml_polled_fake(env: Env) -> Fake:
    """A GPU without the counter: the same class measures ``polled``."""
    return _nvml_fake(env, counter=False)


def nvml_unavailable(env: Env) -> Unavailable:
    from wattbench.power.nvml import NvmlReader

    # pynvml not installed: importing it fails.
    patcher = mock.patch.dict(sys.modules, {"pynvml": None})
    patcher.start()
    env.cleanups.append(patcher.stop)
    return Unavailable(_opts(), NvmlReader, NvmlReader.is_available)


# -- smart plugs --------------------------------------------------------------------


@dataclass
class PlugState:
    power_w: float = 50.0
    failing: bool = False
    #: Shelly generation answered on /shelly: 1 (``/status``) or 2 (RPC)
    gen: int = 2
    t0: float = field(default_factory=time.monotonic)

    def counter_wh(self) -> float:
        return 1234.5 + self.power_w * (time.monotonic() - self.t0) / 3600.0


class _PlugServer(ThreadingHTTPServer):
    daemon_threads = True
    state: PlugState


class _PlugHandler(BaseHTTPRequestHandler):
    """Shelly ``/shelly``, Gen2 ``/rpc/Switch.GetStatus``, Gen1 ``/status`` and Tasmota
    ``/cm?cmnd=Status 8``."""

    server: _PlugServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, code: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.server.state
        if state.failing:
            self._json(500, {"code": -1, "message": "internal error"})
            return
        url = urlsplit(self.path)
        wh = state.counter_wh()
        if url.path == "/shelly":
            ident = {"type": "SHPLG-S", "fw": "20230913-114008/v1.14.0-gcb84623"}
            self._json(200, ident if state.gen == 1 else {"gen": 2, "app": "PlugS"})
        elif url.path == "/status" and state.gen == 1:
            meter = {"power": round(state.power_w, 2), "is_valid": True, "total": int(wh * 60)}
            self._json(200, {"relays": [{"ison": True}], "meters": [meter]})
        elif (
            url.path == "/rpc/Switch.GetStatus"
            and state.gen == 2
            and parse_qs(url.query).get("id") == ["0"]
        ):
            self._json(
                200,
                {
                    "id": 0,
                    "source": "init",
                    "output": True,
                    "apower": round(state.power_w, 1),
                    "voltage": 229.8,
                    "current": round(state.power_w / 229.8, 3),
                    "aenergy": {"total": round(wh, 3), "by_minute": [0.0, 0.0, 0.0]},
                },
            )
        elif url.path == "/cm" and parse_qs(url.query).get("cmnd") == ["Status 8"]:
            energy = {"Total": round(wh / 1000, 3), "Power": round(state.power_w)}
            self._json(200, {"StatusSNS": {"Time": "2024-05-01T12:00:00", "ENERGY": energy}})
        else:
            self._json(404, {"code": 404, "message": "Not Found"})


def plug_server(env: Env) -> tuple[str, PlugState]:
    state = PlugState()
    server = _PlugServer(("127.0.0.1", 0), _PlugHandler)
    server.state = state
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="contract-plug"
    )
    thread.start()

    def shutdown() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    env.cleanups.append(shutdown)
    return f"http://127.0.0.1:{server.server_address[1]}", state


def _plug_fake(env: Env, name: str, gen: int = 2) -> Fake:
    from wattbench.power.shelly import ShellyReader
    from wattbench.power.tasmota import TasmotaReader

    cls = {"shelly": ShellyReader, "tasmota": TasmotaReader}[name]
    url, state = plug_server(env)
    state.gen = gen

    def check(r: EnergyReading) -> list[str]:
        d = r.details
        problems = list(d["counter_reasons"])
        # Every answer carries the counter: the reads bracketing the window plus
        # every sample inside it.
        if d["counter_reads"] < r.samples + 2:
            problems.append(f"{d['counter_reads']} counter reads for {r.samples} samples")
        if name == "shelly" and d["counter_energy_j"] is not None:
            slack = 2 * d["counter_resolution_j"] + 0.1 * r.energy_j
            if abs(d["counter_minus_integrated_j"]) > slack:
                problems.append(f"counter and integral differ by {d['counter_minus_integrated_j']}")
        return problems

    def fail() -> None:
        state.failing = True

    return Fake(
        options=_opts(**{f"{name}.url": url}),
        make=cls,
        is_available=cls.is_available,
        power_w=(state.power_w, state.power_w),
        fail=fail,
        freeze=lambda: None,
        check_details=check,
    )


def shelly_fake(env: Env) -> Fake:
    return _plug_fake(env, "shelly")


def shelly_gen1_fake(env: Env) -> Fake:
    """A Shelly Gen1 plug (``/status``, watt-minute counter), found by ``/shelly``."""
    return _plug_fake(env, "shelly", gen=1)


def tasmota_fake(env: Env) -> Fake:
    return _plug_fake(env, "tasmota")


def shelly_unavailable(env: Env) -> Unavailable:
    from wattbench.power.shelly import ShellyReader

    return Unavailable(_opts(), ShellyReader, ShellyReader.is_available)


def tasmota_unavailable(env: Env) -> Unavailable:
    from wattbench.power.tasmota import TasmotaReader

    return Unavailable(_opts(), TasmotaReader, TasmotaReader.is_available)


# -- trace --------------------------------------------------------------------------


def trace_fake(env: Env) -> Fake:
    """A bench meter's CSV at 20 Hz, 30 W, covering a minute around now."""
    from wattbench.power.trace import TraceReplayReader

    path = env.tmp / "meter.csv"
    now = time.time()
    rows = [f"{now + k / 20:.3f},{30.0}" for k in range(-600, 600)]
    path.write_text("timestamp,watts\n" + "\n".join(rows) + "\n")

    def fail() -> None:
        # the meter logged "OL" (no reading) throughout
        path.write_text(
            "timestamp,watts\n" + "\n".join(r.split(",")[0] + ",OL" for r in rows) + "\n"
        )

    return Fake(
        options=_opts(**{"trace.path": str(path)}),
        make=TraceReplayReader,
        is_available=TraceReplayReader.is_available,
        power_w=(30.0, 30.0),
        fail=fail,
        freeze=lambda: None,
    )


def trace_unavailable(env: Env) -> Unavailable:
    from wattbench.power.trace import TraceReplayReader

    return Unavailable(_opts(), TraceReplayReader, TraceReplayReader.is_available)


# -- estimate -----------------------------------------------------------------------

CpuTimes = namedtuple(
    "CpuTimes",
    "user nice system idle iowait irq softirq steal guest guest_nice",
)


def estimate_fake(env: Env) -> Fake:
    """Two logical CPUs half busy, TDP 40 W: 20 W."""
    from wattbench.power.estimated import EstimatedCpuReader

    t0 = time.monotonic()
    frozen: list[CpuTimes] = []

    def cpu_times() -> CpuTimes:
        if frozen:
            return frozen[0]  # the kernel's counters stopped moving
        total = 2 * (100.0 + time.monotonic() - t0)
        return CpuTimes(total * 0.4, 0.0, total * 0.1, total * 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def fail() -> None:
        frozen.append(cpu_times())

    options = ReaderOptions(tdp_w=40.0, sample_interval_s=0.05)
    return Fake(
        options=options,
        make=lambda o: EstimatedCpuReader(
            o, cpu_times=cpu_times, cpu_model="Contract CPU", logical_cpus=2
        ),
        is_available=EstimatedCpuReader.is_available,
        power_w=(20.0, 20.0),
        fail=fail,
        freeze=fail,
    )


# -- registry -----------------------------------------------------------------------

#: entry-point name -> factory of an available reader on its fake
FACTORIES: dict[str, Callable[[Env], Fake]] = {
    "estimate": estimate_fake,
    "hwmon": hwmon_fake,
    "jetson": jetson_fake,
    "nvml": nvml_fake,
    "rapl": rapl_fake,
    "shelly": shelly_fake,
    "tasmota": tasmota_fake,
    "trace": trace_fake,
}
#: further configurations of a registered reader: another method than the class
#: attribute (hwmon counter, NVML without the counter) or another sensor layout
VARIANTS: dict[str, tuple[str, Callable[[Env], Fake]]] = {
    "hwmon-energy": ("hwmon", hwmon_energy_fake),
    "jetson-jp4": ("jetson", jetson_jp4_fake),
    "nvml-polled": ("nvml", nvml_polled_fake),
    "shelly-gen1": ("shelly", shelly_gen1_fake),
}
#: entry-point name -> factory of the same reader where it cannot measure (None: it always can)
UNAVAILABLE: dict[str, Callable[[Env], Unavailable] | None] = {
    "estimate": None,
    "hwmon": hwmon_unavailable,
    "jetson": jetson_unavailable,
    "nvml": nvml_unavailable,
    "rapl": rapl_unavailable,
    "shelly": shelly_unavailable,
    "tasmota": tasmota_unavailable,
    "trace": trace_unavailable,
}
CASES = REGISTERED + sorted(VARIANTS)


def reader_class(name: str) -> type[PowerReader]:
    (ep,) = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    cls: type[PowerReader] = ep.load()
    return cls


def case_factory(case: str) -> tuple[str, Callable[[Env], Fake]]:
    if case in VARIANTS:
        return VARIANTS[case]
    if case not in FACTORIES:
        pytest.fail(f"add a contract factory for {case} to tests/power/test_contract.py")
    return case, FACTORIES[case]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        yield e
    finally:
        for fn in reversed(e.cleanups):
            fn()


@dataclass
class Built:
    name: str
    cls: type[PowerReader]
    fake: Fake
    reader: PowerReader


@pytest.fixture(params=CASES)
def built(request: pytest.FixtureRequest, env: Env) -> Iterator[Built]:
    name, factory = case_factory(request.param)
    fake = factory(env)
    reader = fake.make(fake.options)
    try:
        yield Built(name, reader_class(name), fake, reader)
    finally:
        reader.close()


def measure(reader: PowerReader, seconds: float = WINDOW_S) -> tuple[EnergyReading, float, float]:
    """One window; also the shortest and longest it can have lasted, by our clock."""
    t0 = time.monotonic()
    reader.start()
    t1 = time.monotonic()
    time.sleep(seconds)
    t2 = time.monotonic()
    reading = reader.stop()
    t3 = time.monotonic()
    return reading, t2 - t1, t3 - t0


def assert_sound(b: Built, reading: EnergyReading, shortest_s: float, longest_s: float) -> None:
    """What every reading of a healthy source must satisfy."""
    info = b.reader.info()
    assert reading.reader == b.name
    assert isinstance(reading.method, EnergyMethod) and reading.method is info.method
    assert isinstance(reading.scope, EnergyScope) and reading.scope is info.scope
    assert reading.component == info.component
    assert reading.update_period_s == info.update_period_s
    assert reading.valid, reading.invalid_reasons
    assert reading.invalid_reasons == []
    assert math.isfinite(reading.energy_j) and reading.energy_j > 0, reading.energy_j
    # seconds, not ms or µs: within what our own clock saw around start()..stop()
    assert shortest_s * 0.9 <= reading.duration_s <= longest_s + 0.05, (
        shortest_s,
        reading.duration_s,
        longest_s,
    )
    assert reading.samples >= 0
    assert reading.mean_power_w == pytest.approx(reading.energy_j / reading.duration_s, rel=1e-9)
    lo, hi = b.fake.power_w
    # loose on purpose (timing), tight enough to catch a unit slip (mW for W, µJ for J)
    assert lo / 2 <= reading.mean_power_w <= hi * 2, (reading.mean_power_w, b.fake.power_w)
    if reading.peak_power_w is not None:
        assert reading.peak_power_w >= reading.mean_power_w * (1 - 1e-9)
    if reading.sample_rate_hz is not None:
        assert math.isfinite(reading.sample_rate_hz) and reading.sample_rate_hz >= 0
    if reading.uncertainty_j is not None:
        assert math.isfinite(reading.uncertainty_j) and reading.uncertainty_j >= 0
    for t_s, w in reading.trace:
        assert math.isfinite(t_s) and math.isfinite(w)
    json.dumps(reading.model_dump(mode="json"))  # results must be storable as JSON
    assert b.fake.check_details(reading) == []


def reader_threads() -> set[threading.Thread]:
    return {
        t
        for t in threading.enumerate()
        if t is not threading.current_thread()
        and not any(tag in t.name for tag in _FOREIGN_THREADS)
    }


# -- the contract -------------------------------------------------------------------


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_reader_has_a_contract_factory(name: str) -> None:
    assert name in FACTORIES, f"add a contract factory for {name} to tests/power/test_contract.py"
    assert name in UNAVAILABLE, f"add a contract unavailable variant for {name} (None if none)"


def test_no_factory_for_an_unregistered_reader() -> None:
    stale = (set(FACTORIES) | set(UNAVAILABLE) | {v[0] for v in VARIANTS.values()}) - set(
        REGISTERED
    )
    assert not stale, f"contract factories for readers no longer registered: {sorted(stale)}"


@pytest.mark.parametrize("name", REGISTERED)
def test_class_is_a_power_reader_named_like_its_entry_point(name: str) -> None:
    cls = reader_class(name)
    assert issubclass(cls, PowerReader)
    assert cls.name == name
    assert isinstance(cls.method, EnergyMethod)


def test_available_reader_describes_itself(built: Built) -> None:
    avail = built.fake.is_available(built.fake.options)
    assert isinstance(avail, Availability)
    assert isinstance(avail.available, bool) and avail.available, avail.reason
    assert isinstance(avail.reason, str) and avail.reason.strip()
    info = built.reader.info()
    assert isinstance(info, ReaderInfo)
    assert info.name == built.name
    assert isinstance(info.method, EnergyMethod)
    assert isinstance(info.scope, EnergyScope)
    assert info.component.strip()
    assert info.update_period_s is None or info.update_period_s > 0
    json.dumps(info.model_dump(mode="json"))


def test_class_method_matches_the_instance(built: Built, request: pytest.FixtureRequest) -> None:
    """``method`` ranks readers for ``--power auto``; an instance measures that way.

    Two readers legitimately differ per instance, as their docs say: hwmon
    reads an ``energy*_input`` counter as ``counter`` (class: ``polled``), and
    NVML reads a GPU without the counter as ``polled`` (class: ``counter``).
    """
    method = built.reader.info().method
    case = request.node.callspec.params["built"]
    if case == "hwmon-energy":
        assert (built.cls.method, method) == (EnergyMethod.POLLED, EnergyMethod.COUNTER)
    elif case == "nvml-polled":
        assert (built.cls.method, method) == (EnergyMethod.COUNTER, EnergyMethod.POLLED)
    else:
        assert method is built.cls.method


def test_windows_measure_positive_energy_and_can_repeat(built: Built) -> None:
    """Two windows on one reader (the harness measures idle, then trials)."""
    for _ in range(2):
        reading, shortest_s, longest_s = measure(built.reader)
        assert_sound(built, reading, shortest_s, longest_s)


def test_measured_reading_has_an_uncertainty(built: Built) -> None:
    """Every measured figure says how far it can be trusted: a valid reading that is not
    an estimate has a finite, non-negative ``uncertainty_j`` (an estimate has one too)."""
    reading, _, _ = measure(built.reader)
    assert reading.valid, reading.invalid_reasons
    u = reading.uncertainty_j
    assert u is not None, f"{built.name} ({reading.method.value}) returned no uncertainty"
    assert isinstance(u, float) and math.isfinite(u) and u >= 0, u
    if reading.method is not EnergyMethod.ESTIMATED:
        # A measurement is never exact: a 0 J half-width would claim it is.
        assert u > 0, f"{built.name} claims an exact measurement"


def test_every_registered_reader_is_checked_for_uncertainty() -> None:
    """The test above runs on every entry point of ``wattbench.power`` (CASES holds
    them all), so a new reader cannot skip it."""
    assert set(REGISTERED) <= {case_factory(c)[0] for c in CASES}


def test_stop_without_start_raises(built: Built) -> None:
    with pytest.raises(MeasurementError):
        built.reader.stop()


def test_stop_twice_raises(built: Built) -> None:
    measure(built.reader, 0.05)
    with pytest.raises(MeasurementError):
        built.reader.stop()


def test_start_twice_raises_and_keeps_the_open_window(built: Built) -> None:
    """A rejected second start() must not reset anything of the open window (the
    samples, nor a reader's own per-window state such as Jetson rails or a plug's
    counter reads)."""
    t0 = time.monotonic()
    built.reader.start()
    t1 = time.monotonic()
    time.sleep(WINDOW_S / 2)
    with pytest.raises(MeasurementError):
        built.reader.start()
    time.sleep(WINDOW_S / 2)
    t2 = time.monotonic()
    reading = built.reader.stop()
    # the rejected start() neither reset nor reopened the window
    assert_sound(built, reading, t2 - t1, time.monotonic() - t0)


def test_close_is_safe_twice_and_stops_threads(built: Built) -> None:
    before = reader_threads()
    measure(built.reader, 0.05)
    built.reader.close()
    built.reader.close()
    built.reader.start()  # a window left open is closed too
    time.sleep(0.05)
    built.reader.close()
    built.reader.close()
    deadline = time.monotonic() + 2.0
    while (left := reader_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left, f"threads still running after close(): {[t.name for t in left]}"


def test_failed_source_is_never_a_valid_reading(built: Built) -> None:
    """The source fails for the whole window: MeasurementError or an invalid reading."""
    built.fake.fail()
    try:
        built.reader.start()
        time.sleep(WINDOW_S / 2)
        reading = built.reader.stop()
    except MeasurementError as exc:
        assert str(exc).strip()
        return
    assert not reading.valid, f"valid reading of {reading.energy_j} J from a failed source"
    assert reading.invalid_reasons and all(r.strip() for r in reading.invalid_reasons)


#: readers of a cumulative energy counter whose frozen counter must not read as valid 0 J
FROZEN_COUNTER_CASES = ("rapl", "hwmon-energy", "nvml")


@pytest.mark.parametrize("case", FROZEN_COUNTER_CASES)
def test_frozen_counter_is_never_a_valid_zero(case: str, env: Env) -> None:
    """A cumulative energy counter that stops for a whole window (hundreds of its
    update periods) is a broken sensor: the reading must not be a valid 0 J."""
    _, factory = case_factory(case)
    fake = factory(env)
    reader = fake.make(fake.options)
    try:
        assert reader.info().method is EnergyMethod.COUNTER
        fake.freeze()
        try:
            reading, _, _ = measure(reader)
        except MeasurementError:
            return
        assert not (reading.valid and reading.energy_j == 0), reading.details
    finally:
        reader.close()


#: words a reason uses when it tells the user what to do
_ACTIONABLE = (
    "--power-opt",
    "--power ",
    "--sysfs-root",
    "pip install",
    "modprobe",
    "chmod",
    "run as",
    "pass ",
    "use ",
    "load ",
)


@pytest.mark.parametrize("name", REGISTERED)
def test_unavailable_reason_names_the_fix(name: str, env: Env) -> None:
    if name not in UNAVAILABLE:
        pytest.fail(f"add a contract unavailable variant for {name} (None if none)")
    factory = UNAVAILABLE[name]
    if factory is None:
        # Only a model may claim to work everywhere (it is --power auto's fallback).
        cls = reader_class(name)
        assert cls.method is EnergyMethod.ESTIMATED
        assert cls.is_available(_opts(env.tmp)).available
        return
    u = factory(env)
    avail = u.is_available(u.options)
    assert isinstance(avail, Availability)
    assert avail.available is False
    assert isinstance(avail.reason, str) and avail.reason.strip()
    assert "\n" not in avail.reason.strip(), "one line: the CLI prints it after 'error:'"
    assert any(word in avail.reason for word in _ACTIONABLE), avail.reason


@pytest.mark.parametrize("name", REGISTERED)
def test_unavailable_reader_refuses_with_a_user_error(name: str, env: Env) -> None:
    """Building or starting a reader that cannot measure is a one-line user error,
    never an OSError, AttributeError or a silent window."""
    factory = UNAVAILABLE.get(name)
    if factory is None:
        assert reader_class(name).method is EnergyMethod.ESTIMATED
        return
    u = factory(env)
    reader = None
    with pytest.raises(WattbenchError) as exc_info:
        reader = u.make(u.options)
        reader.start()
    if reader is not None:
        reader.close()
    assert str(exc_info.value).strip()


# -- found while building the CLI acceptance test ------------------------------------


def test_rapl_burst_after_idle_is_never_a_valid_undercount(tmp_path: Path) -> None:
    """Idle at 2 W, then 40 W on a 10 J counter: the module docs promise every wrap is
    seen ("reads them every min(1 s, wrap period / 4)"), else the window is invalid.

    Driven through RaplReader's test seams (manual clock, no background thread),
    polling exactly when the background thread would.
    """
    from wattbench.power.rapl import RaplReader

    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("10000000\n")  # 10 J
    counter = {"uj": 0.0, "t": 0.0, "true_j": 0.0}

    def run(seconds: float, watts: float) -> None:
        counter["t"] += seconds
        counter["true_j"] += watts * seconds
        counter["uj"] = (counter["uj"] + watts * seconds * 1e6) % 10_000_000
        write_atomic(zone / "energy_uj", f"{int(counter['uj'])}\n")

    run(0.0, 0.0)
    reader = RaplReader(_opts(tmp_path), clock=lambda: 100.0 + counter["t"], background_poll=False)
    reader.start()
    while counter["t"] < 1.0:  # idle
        run(reader.poll_interval, 2.0)
        reader.poll()
    run(reader.poll_interval, 40.0)  # the burst, during the interval the reader chose
    reading = reader.stop()
    reader.close()
    if reading.valid:
        assert reading.energy_j == pytest.approx(counter["true_j"], rel=0.01)
