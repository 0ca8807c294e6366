"""ShellyReader and TasmotaReader against real local HTTP servers speaking the plugs' JSON.

The servers emulate Shelly Gen2 ``/rpc/Switch.GetStatus`` and Tasmota
``/cm?cmnd=Status%208`` with the documented answer shapes, a power value the
test sets, and an energy counter that integrates it in real time. Readers
measure real windows of about a second: the "ten update periods" rule lives
in the harness protocol, not in the reader, so it does not apply here.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from wattbench.core.errors import MeasurementError, UnavailableError
from wattbench.core.power import EnergyMethod, EnergyScope, ReaderOptions
from wattbench.power.smartplug import (
    PLUG_UPDATE_PERIOD_S,
    ShellyReader,
    SmartPlugReader,
    TasmotaReader,
)

INTERVAL_S = 0.05
WINDOW_S = 1.2


@dataclass
class PlugState:
    """What the emulated plug reports; the test changes it while a reader polls."""

    power_w: float = 50.0
    #: "ok", "error500" or "garbage"
    mode: str = "ok"
    switch_id: int = 0
    output: bool = True
    with_energy_sensor: bool = True
    user: str | None = None
    password: str | None = None
    counter_wh: float = 1234.5
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _t_last: float = field(default_factory=time.monotonic)

    def _advance(self) -> None:
        now = time.monotonic()
        self.counter_wh += self.power_w * (now - self._t_last) / 3600.0
        self._t_last = now

    def set_power(self, power_w: float) -> None:
        with self.lock:
            self._advance()
            self.power_w = power_w

    def set_mode(self, mode: str) -> None:
        with self.lock:
            self.mode = mode

    def snapshot(self) -> tuple[float, float, str]:
        with self.lock:
            self._advance()
            return self.power_w, self.counter_wh, self.mode


class _PlugServer(ThreadingHTTPServer):
    daemon_threads = True
    state: PlugState


class _Handler(BaseHTTPRequestHandler):
    server: _PlugServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, payload: object) -> None:
        self._send(code, json.dumps(payload).encode())

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            state.paths.append(self.path)
        power_w, counter_wh, mode = state.snapshot()
        if mode == "error500":
            self._send(500, b"Internal Server Error", "text/plain")
            return
        if mode == "garbage":
            self._send(200, b"<html>\x00not json{", "text/html")
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/rpc/Switch.GetStatus":
            self._shelly(state, query, power_w, counter_wh)
        elif url.path == "/cm":
            self._tasmota(state, query, power_w, counter_wh)
        else:
            self._send(404, b"Not Found", "text/plain")

    def _shelly(
        self, state: PlugState, query: dict[str, list[str]], power_w: float, counter_wh: float
    ) -> None:
        sid = query.get("id", ["0"])[0]
        if sid != str(state.switch_id):
            self._json(500, {"code": -105, "message": f"Argument 'id', value {sid} not found!"})
            return
        now = int(time.time())
        self._json(
            200,
            {
                "id": state.switch_id,
                "source": "init",
                "output": state.output,
                "apower": round(power_w, 1),
                "voltage": 229.8,
                "freq": 50.0,
                "current": round(power_w / 229.8, 3),
                "aenergy": {
                    "total": round(counter_wh, 3),
                    "by_minute": [round(power_w * 1000 / 60, 3)] * 3,
                    "minute_ts": now - now % 60,
                },
                "temperature": {"tC": 41.2, "tF": 106.2},
            },
        )

    def _tasmota(
        self, state: PlugState, query: dict[str, list[str]], power_w: float, counter_wh: float
    ) -> None:
        if state.user is not None and (
            query.get("user") != [state.user] or query.get("password") != [state.password]
        ):
            self._json(401, {"WARNING": "Need user=<username>&password=<password>"})
            return
        if [c.lower() for c in query.get("cmnd", [])] != ["status 8"]:
            self._json(200, {"Command": "Unknown"})
            return
        sns: dict[str, object] = {"Time": "2024-05-01T12:00:00"}
        if state.with_energy_sensor:
            sns["ENERGY"] = {
                "TotalStartTime": "2024-01-01T00:00:00",
                "Total": round(counter_wh / 1000, 3),
                "Yesterday": 0.512,
                "Today": 0.123,
                "Power": round(power_w),
                "ApparentPower": round(power_w * 1.05),
                "ReactivePower": round(power_w * 0.3),
                "Factor": 0.95,
                "Voltage": 231,
                "Current": round(power_w / 231, 3),
            }
        self._json(200, {"StatusSNS": sns})


@pytest.fixture
def plug() -> Iterator[tuple[str, PlugState]]:
    """A plug emulator on 127.0.0.1 (a free port); shut down after the test."""
    state = PlugState()
    server = _PlugServer(("127.0.0.1", 0), _Handler)
    server.state = state
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def opts(reader: type[SmartPlugReader], url: str | None, **params: str) -> ReaderOptions:
    p = {f"{reader.name}.{k}": v for k, v in params.items()}
    if url is not None:
        p[f"{reader.name}.url"] = url
    return ReaderOptions(sample_interval_s=INTERVAL_S, params=p)


@dataclass
class Window:
    t_before_start: float
    t_after_start: float
    t_before_stop: float
    t_after_stop: float


def measure(reader: SmartPlugReader, seconds: float, during: object = None):
    """Run one window; ``during`` (a callable) runs half-way through."""
    w = Window(time.monotonic(), 0.0, 0.0, 0.0)
    reader.start()
    w.t_after_start = time.monotonic()
    if callable(during):
        time.sleep(seconds / 2)
        during()
        time.sleep(seconds / 2)
    else:
        time.sleep(seconds)
    w.t_before_stop = time.monotonic()
    reading = reader.stop()
    w.t_after_stop = time.monotonic()
    reader.close()
    return reading, w


READERS = [ShellyReader, TasmotaReader]


@pytest.mark.parametrize("reader_cls", READERS)
def test_constant_power_energy_is_p_times_t(
    plug: tuple[str, PlugState], reader_cls: type[SmartPlugReader]
) -> None:
    url, state = plug
    state.set_power(42.0)
    reader = reader_cls(opts(reader_cls, url))
    info = reader.info()
    assert info.method is EnergyMethod.EXTERNAL
    assert info.scope is EnergyScope.WALL
    assert info.update_period_s == PLUG_UPDATE_PERIOD_S == 1.0

    reading, w = measure(reader, WINDOW_S)

    # A constant source: the reading's mean power is the emulated one, however the
    # scheduler delayed the calls (load moves the window's edges, not the power) ...
    assert reading.mean_power_w == pytest.approx(42.0, rel=1e-6)
    assert reading.energy_j == pytest.approx(42.0 * reading.duration_s, rel=1e-6)
    # ... and the window lies between the calls: the energy is P x t for a t in that bracket.
    assert 42.0 * (w.t_before_stop - w.t_after_start) <= reading.energy_j + 1e-9
    assert reading.energy_j <= 42.0 * (w.t_after_stop - w.t_before_start) + 1e-9
    assert reading.valid, reading.invalid_reasons
    assert reading.samples >= 10  # it polled, at about the requested rate
    assert reading.sample_rate_hz == pytest.approx(1 / INTERVAL_S, rel=0.5)
    assert reading.details["missing_samples"] == 0
    assert reading.details["counter_reads"] >= 10
    assert reading.method is EnergyMethod.EXTERNAL and reading.scope is EnergyScope.WALL


def test_shelly_counter_cross_check_agrees(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.set_power(300.0)
    reading, _ = measure(ShellyReader(opts(ShellyReader, url)), WINDOW_S)
    counter_j = reading.details["counter_energy_j"]
    resolution_j = reading.details["counter_resolution_j"]
    assert resolution_j == pytest.approx(3.6)
    # The counter reads bracket the window by one read each side.
    slack_j = 2 * resolution_j + 300.0 * 2 * INTERVAL_S
    assert abs(counter_j - reading.energy_j) <= slack_j
    assert reading.details["counter_minus_integrated_j"] == pytest.approx(
        counter_j - reading.energy_j
    )


def test_tasmota_counter_is_coarse_and_says_so(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.set_power(42.0)
    reader = TasmotaReader(opts(TasmotaReader, url))
    reading, _ = measure(reader, 0.4)
    assert reading.details["counter_resolution_j"] == 3600.0
    assert "1 Wh" in reading.details["counter_note"]
    # 42 W for 0.4 s is 0.005 Wh: the kWh counter with three decimals cannot see it.
    assert reading.details["counter_energy_j"] in (0.0, 3600.0)
    assert reading.energy_j == pytest.approx(42.0 * reading.duration_s)
    assert any("cmnd=Status%208" in p for p in state.paths)


def test_shelly_follows_a_power_step(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.set_power(20.0)
    switched: list[float] = []

    def step() -> None:
        switched.append(time.monotonic())
        state.set_power(60.0)

    reading, w = measure(ShellyReader(opts(ShellyReader, url)), WINDOW_S, during=step)
    expected_j = 20.0 * (switched[0] - w.t_after_start) + 60.0 * (w.t_before_stop - switched[0])
    assert reading.energy_j == pytest.approx(expected_j, rel=0.05)
    assert reading.peak_power_w == pytest.approx(60.0)


@pytest.mark.parametrize("reader_cls", READERS)
@pytest.mark.parametrize("fault", ["error500", "garbage"])
def test_bad_answers_mid_window_are_gaps_not_zero(
    plug: tuple[str, PlugState], reader_cls: type[SmartPlugReader], fault: str
) -> None:
    url, state = plug
    state.set_power(40.0)

    def outage() -> None:
        state.set_mode(fault)
        time.sleep(0.3)
        state.set_mode("ok")

    reading, w = measure(reader_cls(opts(reader_cls, url)), 0.5, during=outage)
    assert reading.details["missing_samples"] >= 3
    assert reading.details["failed_reads"] >= 3
    # The failed reads are bridged, not counted as 0 W.
    nominal_j = 40.0 * (w.t_before_stop - w.t_after_start)
    assert abs(reading.energy_j - nominal_j) <= 0.02 * nominal_j
    # 0.3 s is well inside the 5 x 1 s gap limit of a 1 s update period.
    assert reading.valid, reading.invalid_reasons
    assert reading.details["max_gap_s"] >= 0.25


def test_no_successful_read_raises_not_zero(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    reader = ShellyReader(opts(ShellyReader, url))
    state.set_mode("error500")
    reader.start()
    time.sleep(0.2)
    with pytest.raises(MeasurementError, match="failed"):
        reader.stop()
    reader.close()


@pytest.mark.parametrize("reader_cls", READERS)
def test_reachable_plug_is_available(
    plug: tuple[str, PlugState], reader_cls: type[SmartPlugReader]
) -> None:
    url, state = plug
    state.set_power(12.0)
    avail = reader_cls.is_available(opts(reader_cls, url))
    assert avail.available, avail.reason
    assert "12.0 W" in avail.reason


@pytest.mark.parametrize(
    ("reader_cls", "label"), [(ShellyReader, "Shelly"), (TasmotaReader, "Tasmota")]
)
def test_plug_down_is_unavailable_with_the_fix(
    reader_cls: type[SmartPlugReader], label: str
) -> None:
    url = _closed_port_url()
    avail = reader_cls.is_available(opts(reader_cls, url))
    assert not avail.available
    assert f"cannot reach {label} at URL: {url}" in avail.reason
    assert "same network" in avail.reason


@pytest.mark.parametrize("reader_cls", READERS)
def test_no_url_is_unavailable_with_the_fix(reader_cls: type[SmartPlugReader]) -> None:
    avail = reader_cls.is_available(opts(reader_cls, None))
    assert not avail.available
    assert f"--power-opt {reader_cls.name}.url=http://PLUG_IP" in avail.reason
    with pytest.raises(UnavailableError, match="PLUG_IP"):
        reader_cls(opts(reader_cls, None)).start()


def test_garbage_answer_is_unavailable(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.set_mode("garbage")
    avail = ShellyReader.is_available(opts(ShellyReader, url))
    assert not avail.available and "did not answer JSON" in avail.reason


def test_shelly_switch_id_selects_the_output(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.switch_id = 1
    assert not ShellyReader.is_available(opts(ShellyReader, url)).available
    avail = ShellyReader.is_available(opts(ShellyReader, url, switch_id="1"))
    assert avail.available, avail.reason
    assert state.paths[-1] == "/rpc/Switch.GetStatus?id=1"


def test_shelly_bad_switch_id_names_the_option(plug: tuple[str, PlugState]) -> None:
    url, _ = plug
    avail = ShellyReader.is_available(opts(ShellyReader, url, switch_id="3"))
    assert not avail.available
    assert "shelly.switch_id" in avail.reason and "not found" in avail.reason
    assert (
        "shelly.switch_id" in ShellyReader.is_available(opts(ShellyReader, url, switch_id="x"))[1]
    )


def test_shelly_gen1_or_other_device_is_unavailable(plug: tuple[str, PlugState]) -> None:
    url, _ = plug
    avail = ShellyReader.is_available(opts(ShellyReader, url + "/not-a-shelly"))
    assert not avail.available and "Gen2" in avail.reason


def test_shelly_switched_off_is_unavailable(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.output = False
    avail = ShellyReader.is_available(opts(ShellyReader, url))
    assert not avail.available and "switched off" in avail.reason


def test_tasmota_credentials_are_sent_and_kept_out_of_results(
    plug: tuple[str, PlugState],
) -> None:
    url, state = plug
    state.user, state.password = "admin", "s3cret pw"
    no_login = TasmotaReader.is_available(opts(TasmotaReader, url))
    assert not no_login.available
    assert "tasmota.user" in no_login.reason and "tasmota.password" in no_login.reason

    o = opts(TasmotaReader, url, user="admin", password="s3cret pw")
    assert TasmotaReader.is_available(o).available
    assert "password=s3cret%20pw" in state.paths[-1]
    reader = TasmotaReader(o)
    assert "s3cret" not in json.dumps(reader.info().model_dump(mode="json"))
    reading, _ = measure(reader, 0.3)
    assert reading.details["missing_samples"] == 0
    assert "s3cret" not in json.dumps(reading.model_dump(mode="json"))


def test_tasmota_without_energy_monitor_is_unavailable(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.with_energy_sensor = False
    avail = TasmotaReader.is_available(opts(TasmotaReader, url))
    assert not avail.available and "no ENERGY sensor" in avail.reason
