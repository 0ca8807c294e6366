"""ShellyReader and TasmotaReader against real local HTTP servers speaking the plugs' JSON.

The servers emulate Shelly Gen2 ``/rpc/Switch.GetStatus``, Shelly Gen1
``/status``, the ``/shelly`` identification both generations answer, and
Tasmota ``/cm?cmnd=Status%208`` with the documented answer shapes, a power
value the test sets, and an energy counter that integrates it in real time
(or that only the test moves, ``frozen``). Readers
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

from wattbench.core.errors import ConfigError, MeasurementError, UnavailableError
from wattbench.core.power import EnergyMethod, EnergyScope, ReaderOptions
from wattbench.power.shelly import ShellyReader
from wattbench.power.smartplug import PLUG_UPDATE_PERIOD_S, SmartPlugReader
from wattbench.power.tasmota import TasmotaReader

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
    #: Shelly generation emulated: 1 (``/status``) or 2 (RPC)
    gen: int = 2
    #: whether ``GET /shelly`` answers (old firmware, or not a Shelly, when False)
    shelly_endpoint: bool = True
    #: Gen1 ``meters[0].is_valid``
    is_valid: bool = True
    #: the counter moves only when the test sets it
    frozen: bool = False
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _t_last: float = field(default_factory=time.monotonic)

    def _advance(self) -> None:
        now = time.monotonic()
        if not self.frozen:
            self.counter_wh += self.power_w * (now - self._t_last) / 3600.0
        self._t_last = now

    def set(self, **values: object) -> None:
        """Change several fields at once, as one update of the plug."""
        with self.lock:
            self._advance()
            for key, value in values.items():
                setattr(self, key, value)

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
        if url.path == "/shelly" and state.shelly_endpoint:
            self._identify(state)
        elif url.path == "/rpc/Switch.GetStatus" and state.gen >= 2:
            self._shelly(state, query, power_w, counter_wh)
        elif url.path == "/status" and state.gen == 1:
            self._shelly_gen1(state, power_w, counter_wh)
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

    def _identify(self, state: PlugState) -> None:
        if state.gen == 1:  # Shelly Plug S, firmware 1.14
            payload: dict[str, object] = {
                "type": "SHPLG-S",
                "mac": "C45BBE7928B9",
                "auth": False,
                "fw": "20230913-114008/v1.14.0-gcb84623",
                "num_outputs": 1,
                "num_meters": 1,
            }
        else:  # Shelly Plus Plug S
            payload = {
                "name": None,
                "id": "shellyplusplugs-e86beae1a2b4",
                "mac": "E86BEAE1A2B4",
                "model": "SNPL-00112EU",
                "gen": state.gen,
                "fw_id": "20231107-164738/1.0.8-g",
                "ver": "1.0.8",
                "app": "PlugS",
                "auth_en": False,
                "auth_domain": None,
            }
        self._json(200, payload)

    def _shelly_gen1(self, state: PlugState, power_w: float, counter_wh: float) -> None:
        now = int(time.time())
        self._json(
            200,
            {
                "wifi_sta": {"connected": True, "ssid": "lab", "ip": "127.0.0.1", "rssi": -55},
                "relays": [
                    {
                        "ison": state.output,
                        "has_timer": False,
                        "overpower": False,
                        "source": "http",
                    }
                ],
                "meters": [
                    {
                        "power": round(power_w, 2),
                        "overpower": 0.0,
                        "is_valid": state.is_valid,
                        "timestamp": now,
                        "counters": [round(power_w, 3)] * 3,
                        "total": int(counter_wh * 60),  # whole watt-minutes
                    }
                ],
                "temperature": 41.2,
                "uptime": 86400,
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


# -- uncertainty --------------------------------------------------------------


@pytest.mark.parametrize(
    ("reader_cls", "sensor_w"),
    [
        (ShellyReader, 0.02 * 42.0 + 0.5 + 0.1 / 2),  # ±2 % ± 0.5 W, apower in 0.1 W
        (TasmotaReader, 0.05 * 42.0 + 0.5 + 1.0 / 2),  # ±5 % ± 0.5 W, whole watts
    ],
)
def test_plug_readings_carry_the_plugs_accuracy(
    plug: tuple[str, PlugState], reader_cls: type[SmartPlugReader], sensor_w: float
) -> None:
    url, state = plug
    state.set_power(42.0)
    reading, _ = measure(reader_cls(opts(reader_cls, url)), 0.5)
    # Constant power: the trapezoid's bound is 0, so this is the plug's accuracy alone.
    assert reading.uncertainty_j == pytest.approx(sensor_w * reading.duration_s)
    assert "convention" in reading.details["sensor_accuracy"]["source"]
    override = reader_cls(opts(reader_cls, url, accuracy_pct="1", accuracy_w="0"))
    reading, _ = measure(override, 0.5)
    resolution_w = reading.details["sensor_accuracy"]["resolution_w"]
    assert reading.uncertainty_j == pytest.approx(
        (0.01 * 42.0 + resolution_w / 2) * reading.duration_s
    )


# -- Shelly generations ---------------------------------------------------------


def test_shelly_gen2_is_identified_by_its_shelly_endpoint(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    reader = ShellyReader(opts(ShellyReader, url))
    details = reader.info().details
    assert details["generation"] == "2"
    assert "gen 2" in details["generation_source"]
    assert details["url"] == f"{url}/rpc/Switch.GetStatus?id=0"
    assert state.paths[0] == "/shelly"


def test_shelly_without_shelly_endpoint_falls_back_to_rpc(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.shelly_endpoint = False
    state.set_power(30.0)
    assert ShellyReader.is_available(opts(ShellyReader, url)).available
    reading, _ = measure(ShellyReader(opts(ShellyReader, url)), 0.3)
    assert reading.valid and reading.mean_power_w == pytest.approx(30.0)
    assert reading.details["generation"] == "2"
    assert "HTTP 404" in reading.details["generation_source"]


def test_shelly_gen1_is_identified_and_read_from_status(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.gen = 1
    state.set_power(42.0)
    avail = ShellyReader.is_available(opts(ShellyReader, url))
    assert avail.available, avail.reason
    assert f"{url}/status" in avail.reason
    reader = ShellyReader(opts(ShellyReader, url))
    assert reader.info().component == f"Shelly plug at {url}/status"
    reading, _ = measure(reader, WINDOW_S)
    assert reading.valid, reading.invalid_reasons
    assert reading.energy_j == pytest.approx(42.0 * reading.duration_s, rel=1e-6)
    d = reading.details
    assert (d["generation"], d["counter_unit"], d["counter_resolution_j"]) == ("1", "Wmin", 60.0)
    # 42 W for 1.2 s is under one watt-minute: the integral is the energy.
    assert d["energy_source"] == "integrated"
    assert d["counter_reads"] >= 10 and d["counter_reasons"] == []
    assert reading.uncertainty_j is not None and reading.uncertainty_j > 0
    assert reading.details["sensor_accuracy"]["resolution_w"] == pytest.approx(0.01)
    assert "/status" in state.paths and not any("/rpc/" in p for p in state.paths)


def test_shelly_gen_option_skips_the_probe_and_is_checked(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.gen = 1
    assert ShellyReader.is_available(opts(ShellyReader, url, gen="1")).available
    assert "/shelly" not in state.paths
    wrong = ShellyReader.is_available(opts(ShellyReader, url, gen="2"))
    assert not wrong.available and "shelly.gen=1" in wrong.reason
    bad = ShellyReader.is_available(opts(ShellyReader, url, gen="3"))
    assert not bad.available and "shelly.gen" in bad.reason
    with pytest.raises(ConfigError, match=r"shelly\.gen"):
        ShellyReader(opts(ShellyReader, url, gen="gen1"))
    state.gen = 2
    wrong = ShellyReader.is_available(opts(ShellyReader, url, gen="1"))
    assert not wrong.available and "shelly.gen=2" in wrong.reason


def test_shelly_gen1_relay_off_is_unavailable(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.gen, state.output = 1, False
    avail = ShellyReader.is_available(opts(ShellyReader, url))
    assert not avail.available and "relay 0 is switched off" in avail.reason


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gen1_manual(url: str) -> tuple[ShellyReader, ManualClock]:
    """A Gen1 reader whose samples are taken by the test, on a clock it moves."""
    clock = ManualClock()
    options = ReaderOptions(sample_interval_s=3600.0, params={"shelly.url": url, "shelly.gen": "1"})
    return ShellyReader(options, clock=clock), clock


def test_shelly_gen1_counter_is_the_energy_where_it_advances(
    plug: tuple[str, PlugState],
) -> None:
    """Power that swings between samples makes the integral's bound large; the plug's
    own counter integrated it all along, so where it advanced it is the better figure."""
    url, state = plug
    state.gen = 1
    state.set(frozen=True, counter_wh=1000 / 60, power_w=0.0)
    reader, clock = gen1_manual(url)
    reader.start()
    for k in range(1, 12):
        clock.now += 1.0
        # 720 W on average (12 Wmin a second); the samples see 1200 W and 0 W in turn.
        state.set(counter_wh=(1000 + 12 * k) / 60, power_w=1200.0 if k % 2 else 0.0)
        if k < 11:
            reader.sample_now()
    reading = reader.stop()
    reader.close()
    d = reading.details
    assert d["energy_source"] == "counter"
    assert reading.energy_j == pytest.approx(11 * 12 * 60.0)  # 132 Wmin
    assert reading.mean_power_w == pytest.approx(720.0)
    assert d["integrated_energy_j"] == pytest.approx(11 * 600.0)
    assert d["integrated_uncertainty_j"] > 6000.0  # 11 swings of 1200 W x 1 s / 2
    # The counter: the plug's accuracy, one 60 J step, and its update period at each edge:
    # it moved between every two reads 1 s apart, so up to 1 s.
    sensor_j = (0.02 * 720.0 + 0.5 + 0.01 / 2) * 11.0
    assert d["counter_staleness_s"] == pytest.approx(1.0)
    assert reading.uncertainty_j == pytest.approx(sensor_j + 60.0 + 2 * 720.0 * 1.0)
    assert reading.uncertainty_j < d["integrated_uncertainty_j"]
    assert reading.valid and reading.peak_power_w >= reading.mean_power_w


@pytest.mark.parametrize("fault", ["reset", "still"])
def test_shelly_gen1_counter_that_resets_or_stands_still_leaves_the_integral(
    plug: tuple[str, PlugState], fault: str
) -> None:
    url, state = plug
    state.gen = 1
    state.set(frozen=True, counter_wh=5000 / 60, power_w=1200.0)
    reader, clock = gen1_manual(url)
    reader.start()
    for k in range(1, 6):
        clock.now += 1.0
        if fault == "reset":  # the plug rebooted at k = 3: its total starts again at 0
            wmin = 5000 + 20 * k if k < 3 else 20 * (k - 3)
            state.set(counter_wh=wmin / 60, power_w=1200.0 if k % 2 else 0.0)
        else:
            state.set(power_w=1200.0 if k % 2 else 0.0)
        reader.sample_now()
    clock.now += 1.0
    reading = reader.stop()
    reader.close()
    d = reading.details
    assert d["energy_source"] == "integrated"
    assert reading.energy_j == pytest.approx(d["integrated_energy_j"])
    if fault == "reset":
        assert any("decreased" in r for r in d["counter_reasons"])
    else:
        assert d["counter_energy_j"] == 0.0
    assert reading.valid  # the integral itself is sound; the counter just cannot help


def test_shelly_gen1_invalid_meter_is_a_gap_not_zero(plug: tuple[str, PlugState]) -> None:
    url, state = plug
    state.gen = 1
    state.set(power_w=100.0)
    reader, clock = gen1_manual(url)
    reader.start()
    clock.now += 1.0
    state.set(is_valid=False, power_w=0.0)  # "not valid": the 0 W must not be used
    reader.sample_now()
    state.set(is_valid=True, power_w=100.0)
    clock.now += 1.0
    reading = reader.stop()
    reader.close()
    assert reading.energy_j == pytest.approx(200.0)
    assert reading.details["missing_samples"] == 1
    assert "is_valid" in reading.details["first_failure"]
