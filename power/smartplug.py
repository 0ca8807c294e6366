"""Wall power from smart plugs on the local network: Shelly (Gen1 and Gen2+) and Tasmota.

Both readers poll the plug's instantaneous active power over HTTP and
integrate it (method ``external``, scope ``wall``: everything plugged into
the plug, power-supply losses included). The plugs refresh their power figure
about once a second, so :attr:`ReaderInfo.update_period_s` is 1.0 and the
harness lengthens windows to at least ten update periods; polling faster
than that only finds transitions sooner. The sampling interval is
:attr:`ReaderOptions.sample_interval_s` (default 0.1 s; not exposed on the
command line yet); 0.1-0.5 s is sensible, and a small ESP8266 plug may not
keep up with much faster polling.

A failed or garbled HTTP answer is a gap (None), never 0 W. The plug's own
cumulative energy counter is read in the same answers. It is coarse
(``counter_resolution_j``), so it is the window's energy only where it
advanced, did not reset (a decrease: a reboot) and its uncertainty (one
counter step, plus the energy of its update period at each edge, bounded by
the longest time it was seen holding one value plus one read interval) is
below the integral's (the trapezoid's bound); the
accuracy terms are the same meter's either way. Otherwise the integrated power
is the energy and the counter a cross-check. ``details["energy_source"]`` says
which; both figures are in ``details``.

Uncertainty: the plug's accuracy (:attr:`SmartPlugReader.DEFAULT_ACCURACY`,
or ``<name>.accuracy_pct|accuracy_w|resolution_w``) plus the integration or
counter terms above. Neither Shelly nor Tasmota publishes a metering accuracy
for its plugs (Tasmota asks you to calibrate each device), so the defaults are
project conventions; calibrate against a reference meter and pass your own.

Shelly Gen2+ (Plus/Pro/Gen3/Gen4), RPC over HTTP::

    GET http://<host>/rpc/Switch.GetStatus?id=<switch_id>
    -> {"id": 0, "output": true, "apower": 8.9, "voltage": 229.8, "current": 0.07,
        "aenergy": {"total": 1234.567, "by_minute": [145.2, 148.0, 146.9],
                    "minute_ts": 1700000040}, ...}

``apower`` is in W, ``aenergy.total`` in Wh (three decimals: 1 mWh = 3.6 J)
and ``by_minute`` holds whole past minutes in mWh (not used: a benchmark
window is not aligned to minutes). Authentication (digest, SHA-256) is not
supported; disable it for local access.

Shelly Gen1 (Plug, Plug S, 1PM, 2.5), HTTP API::

    GET http://<host>/status
    -> {"relays": [{"ison": true, ...}],
        "meters": [{"power": 42.17, "is_valid": true, "timestamp": 1700000040,
                    "counters": [702.5, 701.0, 699.8], "total": 123456}], ...}

``meters[i].power`` is in W and ``meters[i].total`` in watt-minutes (a whole
number: 1 Wmin = 60 J). ``is_valid: false`` is a gap. ``shelly.gen=1|2|auto``
(default ``auto``) picks the API; ``auto`` asks ``GET /shelly`` once, which
answers ``"gen": 2`` (or 3, 4) on Gen2 and later and ``{"type": ..., "fw":
...}`` without ``gen`` on Gen1. When ``/shelly`` does not answer, the Gen2 API
is tried. The Shelly EM and 3EM (``emeters``) are not supported.

Tasmota, HTTP command API::

    GET http://<host>/cm?[user=<u>&password=<p>&]cmnd=Status%208
    -> {"StatusSNS": {"Time": "...", "ENERGY": {"Total": 12.345, "Yesterday": 0.5,
        "Today": 0.1, "Power": 42, "ApparentPower": 45, "ReactivePower": 15,
        "Factor": 0.93, "Voltage": 231, "Current": 0.196}}}

``Power`` is in W (whole watts by default), ``Total`` in kWh with three
decimals by default (``EnergyRes 3``): a resolution of 1 Wh = 3600 J, which a
benchmark window rarely reaches, so the counter only checks long runs. A
multi-channel device reports arrays; ``tasmota.channel`` (1-based) picks one.

Settings (``--power-opt``): ``shelly.url``, ``shelly.switch_id`` (default 0;
the relay and meter index on Gen1), ``shelly.gen`` (default ``auto``),
``tasmota.url``, ``tasmota.user``, ``tasmota.password``, ``tasmota.channel``
(default 1), and for both ``<name>.timeout_s`` (default 1.0) and the polled
settings.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import json
import math
import threading
import time
import urllib.error
import urllib.request
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, UnavailableError
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    EnergyScope,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.power.accounting import (
    Sample,
    counter_energy,
    counter_staleness_s,
    integrate_power,
)
from wattbench.power.polled import PolledReader, SensorAccuracy, float_param

#: The plugs refresh their power reading about once a second.
PLUG_UPDATE_PERIOD_S = 1.0
DEFAULT_TIMEOUT_S = 1.0
_MAX_BODY_BYTES = 1 << 20
_SCOPE_NOTE = (
    "wall: everything plugged into the smart plug, power supply losses included, "
    "as the plug's own meter sees it"
)


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    # A plug is on the local network: never route it through an HTTP proxy.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_json(url: str, timeout_s: float) -> Any:
    """GET ``url`` and decode its JSON body.

    Raises OSError (including urllib's URLError/HTTPError and timeouts) when
    the plug cannot be reached or answers an HTTP error, ValueError when the
    body is not JSON.
    """
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "wattbench"}
    )
    try:
        with _opener().open(request, timeout=timeout_s) as response:
            body = response.read(_MAX_BODY_BYTES)
    except http.client.HTTPException as exc:  # a broken answer, not an OSError
        raise OSError(f"bad HTTP answer: {type(exc).__name__}: {exc}") from exc
    return json.loads(body.decode("utf-8"))


def _base_url(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    url = raw.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url


def _int_param(options: ReaderOptions, reader: str, key: str, default: int) -> int:
    raw = options.param(reader, key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            f"--power-opt {reader}.{key}={raw!r} is not a whole number; pass e.g. {default}"
        ) from None


def _http_error_message(exc: urllib.error.HTTPError) -> str:
    """The plug's own explanation from an error body, if it sent one."""
    try:
        payload = json.loads(exc.read(4096).decode("utf-8"))
    except (OSError, ValueError):
        return ""
    if isinstance(payload, dict):
        for key in ("message", "WARNING", "Command"):
            if key in payload:
                return str(payload[key])
    return ""


@dataclass(frozen=True)
class CounterSpec:
    """A plug's cumulative energy counter: its unit in joules and its step."""

    unit: str
    unit_j: float
    resolution_j: float
    note: str


class SmartPlugReader(PolledReader):
    """Polls a smart plug's power over local HTTP; subclasses know one plug's API."""

    method: ClassVar[EnergyMethod] = EnergyMethod.EXTERNAL
    #: name in messages, e.g. "Shelly"
    label: ClassVar[str]
    #: joules per unit of the plug's cumulative energy counter
    counter_unit_j: ClassVar[float]
    counter_unit: ClassVar[str]
    #: the counter's step, in joules
    counter_resolution_j: ClassVar[float]
    counter_note: ClassVar[str]

    def __init__(
        self, options: ReaderOptions | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(options, clock=clock)
        self._timeout_s = float_param(self.options, self.name, "timeout_s", DEFAULT_TIMEOUT_S)
        self._counter_lock = threading.Lock()
        self._counter_samples: list[Sample] = []
        # read_power_w() leaves the counter value of the read in progress here;
        # sample_now() stores it under the base class's time stamp.
        self._last_read = threading.local()
        #: True once resolve_options() settled what the plug is (e.g. a Shelly's generation)
        self._resolved = False

    # -- what a subclass provides ------------------------------------------------

    @classmethod
    @abstractmethod
    def status_url(cls, base_url: str, options: ReaderOptions) -> str:
        """The URL that returns power and the energy counter."""

    @classmethod
    @abstractmethod
    def public_url(cls, base_url: str, options: ReaderOptions) -> str:
        """:meth:`status_url` without credentials, for messages and results."""

    @classmethod
    @abstractmethod
    def parse(cls, payload: Any, options: ReaderOptions) -> tuple[float, float | None]:
        """``(power_w, counter)`` from an answer; KeyError/TypeError/ValueError if malformed."""

    @classmethod
    def resolve_options(
        cls, base_url: str, options: ReaderOptions, timeout_s: float
    ) -> tuple[ReaderOptions, bool]:
        """``options`` with whatever must be asked of the plug filled in, and whether that
        answer is final (False: ask again next time, e.g. the plug did not answer)."""
        return options, True

    @classmethod
    def describe_shape_error(cls, payload: Any, exc: Exception) -> str:
        """Why an answer could not be parsed, naming the fix."""
        return f"unexpected answer ({type(exc).__name__}: {exc}); is this a {cls.label} plug?"

    @classmethod
    def describe_http_error(cls, code: int, message: str, url: str) -> str:
        """Why an HTTP error answer means the plug cannot be used, naming the fix."""
        extra = f" ({message})" if message else ""
        return f"{cls.label} at {url} answered HTTP {code}{extra}; check --power-opt {cls.name}.*"

    @classmethod
    def check_status(cls, payload: Any, options: ReaderOptions) -> str | None:
        """A reason the plug, though readable, cannot measure; None when it can."""
        return None

    def counter_spec(self) -> CounterSpec:
        """This plug's energy counter (a Shelly's depends on its generation)."""
        return CounterSpec(
            self.counter_unit, self.counter_unit_j, self.counter_resolution_j, self.counter_note
        )

    # -- shared ------------------------------------------------------------------

    @classmethod
    def base_url(cls, options: ReaderOptions) -> str | None:
        """The plug's ``--power-opt <name>.url`` with a scheme and no trailing slash."""
        return _base_url(options.param(cls.name, "url"))

    @classmethod
    def _no_url_reason(cls) -> str:
        return f"no URL: pass --power-opt {cls.name}.url=http://PLUG_IP"

    @classmethod
    def is_available(cls, options: ReaderOptions) -> Availability:
        base = cls.base_url(options)
        if base is None:
            return Availability.no(cls._no_url_reason())
        try:
            timeout_s = float_param(options, cls.name, "timeout_s", DEFAULT_TIMEOUT_S)
            assert timeout_s is not None
            options, _ = cls.resolve_options(base, options, timeout_s)
            url = cls.status_url(base, options)
            public = cls.public_url(base, options)
        except ConfigError as exc:
            return Availability.no(str(exc))
        try:
            payload = get_json(url, timeout_s)
        except urllib.error.HTTPError as exc:
            return Availability.no(
                cls.describe_http_error(exc.code, _http_error_message(exc), public)
            )
        except OSError as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return Availability.no(
                f"cannot reach {cls.label} at URL: {public} ({reason}); check the plug's IP "
                "and that it is on the same network"
            )
        except ValueError:
            return Availability.no(
                f"{cls.label} at {public} did not answer JSON; check that "
                f"--power-opt {cls.name}.url points at a {cls.label} plug"
            )
        try:
            power_w, _ = cls.parse(payload, options)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            return Availability.no(
                f"{cls.label} at {public}: {cls.describe_shape_error(payload, exc)}"
            )
        problem = cls.check_status(payload, options)
        if problem:
            return Availability.no(problem)
        return Availability.yes(f"{cls.label} at {public} reads {power_w:.1f} W")

    def plug_options(self) -> ReaderOptions:
        """The options with what the plug said about itself (asked once, when first needed)."""
        base = self.base_url(self.options)
        if self._resolved or base is None:
            return self.options
        assert self._timeout_s is not None
        options, final = self.resolve_options(base, self.options, self._timeout_s)
        if final:
            self.options, self._resolved = options, True
        return options

    def _urls(self) -> tuple[str, str]:
        base = self.base_url(self.options)
        if base is None:
            raise UnavailableError(f"{self.name}: {self._no_url_reason()}")
        options = self.plug_options()
        return self.status_url(base, options), self.public_url(base, options)

    def info(self) -> ReaderInfo:
        base = self.base_url(self.options)
        public = self.public_url(base, self.plug_options()) if base else "(no URL)"
        return ReaderInfo(
            name=self.name,
            method=self.method,
            scope=EnergyScope.WALL,
            component=f"{self.label} plug at {public}",
            update_period_s=PLUG_UPDATE_PERIOD_S,
            details=self.details(),
        )

    def details(self) -> dict[str, Any]:
        base = self.base_url(self.options)
        spec = self.counter_spec()
        return {
            "url": self.public_url(base, self.plug_options()) if base else None,
            "timeout_s": self._timeout_s,
            "scope_note": _SCOPE_NOTE,
            "counter_unit": spec.unit,
            "counter_resolution_j": spec.resolution_j,
            "counter_note": spec.note,
        }

    def read_power_w(self) -> float | None:
        """One HTTP read: the plug's active power in watts.

        Raises OSError/ValueError for a failed or malformed answer (a gap).
        """
        url, _ = self._urls()
        assert self._timeout_s is not None
        payload = get_json(url, self._timeout_s)
        try:
            power_w, counter = self.parse(payload, self.plug_options())
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(self.describe_shape_error(payload, exc)) from exc
        self._last_read.counter = counter
        return power_w

    def sample_now(self) -> Sample:
        """Take one power sample and keep the energy counter from the same answer."""
        self._last_read.counter = None
        t_s, value = super().sample_now()
        counter = self._last_read.counter
        with self._counter_lock:
            self._counter_samples.append((t_s, counter))
        return t_s, value

    def start(self) -> None:
        if self._thread is not None:
            super().start()  # raises: a window is open, and its counter reads are kept
        self._urls()  # no URL: say so before the window, not as a run of gaps
        with self._counter_lock:
            self._counter_samples = []
        super().start()

    def make_reading(self, samples: list[Sample], t_start: float, t_end: float) -> EnergyReading:
        """Integrated power, or the plug's own counter where that is the better figure.

        Both are computed from the same answers; ``details`` carries both and
        ``energy_source`` says which one the reading's energy is.
        """
        reading = super().make_reading(samples, t_start, t_end)
        with self._counter_lock:
            # Reads the sampler finished after stop()'s closing one belong to no window.
            counter_samples = [
                s
                for s in self._counter_samples
                if self._t_first_sample <= s[0] <= self._t_last_sample
            ]
        spec = self.counter_spec()
        units, _, reasons = counter_energy(counter_samples, max_range=None)
        counter_j = units * spec.unit_j if math.isfinite(units) else None
        details = dict(reading.details)
        details.update(
            counter_energy_j=counter_j,
            counter_reads=sum(1 for _, v in counter_samples if v is not None),
            counter_reasons=reasons,
            counter_minus_integrated_j=(
                None if counter_j is None else counter_j - reading.energy_j
            ),
            energy_source="integrated",
            integrated_energy_j=reading.energy_j,
            integrated_uncertainty_j=reading.uncertainty_j,
        )
        update: dict[str, Any] = {"details": details}
        if counter_j is not None and units > 0 and not reasons and reading.valid:
            update |= self._counter_figures(
                reading, details, samples, counter_samples, counter_j, spec
            )
        return reading.model_copy(update=update)

    def _counter_figures(
        self,
        reading: EnergyReading,
        details: dict[str, Any],
        samples: list[Sample],
        counter_samples: list[Sample],
        counter_j: float,
        spec: CounterSpec,
    ) -> dict[str, Any]:
        """Adds the counter's window energy and uncertainty to ``details``; returns the
        reading's fields to replace when that beats the integral, else nothing."""
        # The counter reads bracket the window by one read each side: take off the
        # integrated power of those slivers.
        t0, t1 = counter_samples[0][0], counter_samples[-1][0]
        t_start = details["t_start_s"]
        t_end = details["t_end_s"]
        outside_j = _sliver_j(samples, t0, t_start) + _sliver_j(samples, t_end, t1)
        if not math.isfinite(outside_j):
            return {}
        energy_j = max(counter_j - outside_j, 0.0)
        mean_w = energy_j / reading.duration_s
        good = [(t, v) for t, v in counter_samples if v is not None]
        # An edge read may be as stale as the counter's update period (bounded from the
        # reads); the quantisation of the two reads is under one step.
        stale_s = counter_staleness_s(good)
        accuracy = self.accuracy()
        sensor_j = accuracy.uncertainty_j(reading.duration_s, mean_w) if accuracy else 0.0
        counter_u = sensor_j + spec.resolution_j + 2 * mean_w * stale_s
        details.update(
            counter_window_energy_j=energy_j,
            counter_uncertainty_j=counter_u,
            counter_staleness_s=stale_s,
        )
        integrated_u = reading.uncertainty_j
        if integrated_u is not None and counter_u >= integrated_u:
            return {}
        details["energy_source"] = "counter"
        return {
            "energy_j": energy_j,
            "mean_power_w": mean_w,
            "uncertainty_j": counter_u,
            "peak_power_w": max(reading.peak_power_w or mean_w, mean_w),
        }


def _sliver_j(samples: list[Sample], a: float, b: float) -> float:
    """Integrated power over ``[a, b]`` (0 when empty); NaN when no sample covers it."""
    if b <= a:
        return 0.0
    return integrate_power(samples, a, b, max_gap_s=math.inf).energy_j


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} is {value!r}, not a number")
    return float(value)


#: ``shelly.gen`` values: which API the plug speaks
SHELLY_GENS = ("auto", "1", "2")


class ShellyReader(SmartPlugReader):
    """Shelly plug or relay with power metering: Gen1 ``/status`` or the Gen2+ RPC API."""

    name: ClassVar[str] = "shelly"
    label: ClassVar[str] = "Shelly"
    # The Gen2+ counter; a Gen1 plug's is in counter_spec().
    counter_unit_j: ClassVar[float] = 3600.0  # Wh
    counter_unit: ClassVar[str] = "Wh"
    counter_resolution_j: ClassVar[float] = 3.6  # 0.001 Wh as reported
    counter_note: ClassVar[str] = (
        "aenergy.total in Wh with three decimals (1 mWh = 3.6 J); it may refresh less often "
        "than apower, so short windows can differ by a few steps"
    )
    GEN1_COUNTER: ClassVar[CounterSpec] = CounterSpec(
        "Wmin",
        60.0,
        60.0,
        "meters[i].total in whole watt-minutes (1 Wmin = 60 J): it decides only windows of many kJ",
    )
    DEFAULT_ACCURACY: ClassVar[SensorAccuracy | None] = SensorAccuracy(
        rel=0.02,
        abs_w=0.5,
        resolution_w=0.1,  # apower has one decimal
        source="project convention (±2 % ± 0.5 W): Shelly publishes no metering accuracy "
        "for its plugs; calibrate against a reference meter and pass shelly.accuracy_pct "
        "and shelly.accuracy_w",
    )

    def __init__(
        self, options: ReaderOptions | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(options, clock=clock)
        self.generation(self.options)  # a typo fails now, not at the first read

    @classmethod
    def switch_id(cls, options: ReaderOptions) -> int:
        """``--power-opt shelly.switch_id`` (default 0): which output of the device."""
        return _int_param(options, cls.name, "switch_id", 0)

    @classmethod
    def generation(cls, options: ReaderOptions) -> str:
        """``--power-opt shelly.gen``: ``"1"``, ``"2"`` (Gen2 and later) or ``"auto"``."""
        raw = (options.param(cls.name, "gen", "auto") or "auto").strip().lower()
        if raw not in SHELLY_GENS:
            raise ConfigError(
                f"--power-opt shelly.gen={raw!r} is not 1, 2 or auto; pass shelly.gen=1 for a "
                "Gen1 plug (Plug S, 1PM), shelly.gen=2 for Plus, Pro and Gen3 or later"
            )
        return raw

    @classmethod
    def identify(cls, base_url: str, timeout_s: float) -> tuple[str | None, str]:
        """The generation ``GET /shelly`` reports (``"1"`` or ``"2"``) and how it was told.

        Gen2 and later answer ``"gen": 2`` (3, 4, ...); Gen1 answers ``type`` and
        ``fw`` without ``gen``. A device that answers something else is taken to be
        Gen2 (the RPC request then says what is wrong); None when it did not answer
        at all, so the question is asked again later.
        """
        url = f"{base_url}/shelly"
        try:
            payload = get_json(url, timeout_s)
        except urllib.error.HTTPError as exc:
            return "2", f"{url} answered HTTP {exc.code}; trying the Gen2 RPC API"
        except OSError as exc:
            return None, f"{url} did not answer ({exc}); trying the Gen2 RPC API"
        except ValueError:
            return "2", f"{url} did not answer JSON; trying the Gen2 RPC API"
        if isinstance(payload, dict):
            gen = payload.get("gen")
            if isinstance(gen, int) and not isinstance(gen, bool) and gen >= 2:
                return "2", f"{url} reports gen {gen}"
            if "gen" not in payload and "type" in payload:
                return "1", f"{url} reports type {payload['type']!r} and no gen: Gen1"
        return "2", f"{url} did not say its generation; trying the Gen2 RPC API"

    @classmethod
    def resolve_options(
        cls, base_url: str, options: ReaderOptions, timeout_s: float
    ) -> tuple[ReaderOptions, bool]:
        """With ``shelly.gen=auto``, ask ``/shelly`` and fill in ``shelly.gen``."""
        if cls.generation(options) != "auto":
            return options, True
        gen, how = cls.identify(base_url, timeout_s)
        params = dict(options.params)
        params[f"{cls.name}.gen"] = gen or "2"
        params[f"{cls.name}.gen_source"] = how
        return options.model_copy(update={"params": params}), gen is not None

    @classmethod
    def _is_gen1(cls, options: ReaderOptions) -> bool:
        return cls.generation(options) == "1"

    @classmethod
    def status_url(cls, base_url: str, options: ReaderOptions) -> str:
        if cls._is_gen1(options):
            return f"{base_url}/status"
        return f"{base_url}/rpc/Switch.GetStatus?id={cls.switch_id(options)}"

    @classmethod
    def public_url(cls, base_url: str, options: ReaderOptions) -> str:
        return cls.status_url(base_url, options)

    @classmethod
    def parse(cls, payload: Any, options: ReaderOptions) -> tuple[float, float | None]:
        if not isinstance(payload, dict):
            raise TypeError(f"answer is a {type(payload).__name__}, not an object")
        if cls._is_gen1(options):
            return cls._parse_gen1(payload, cls.switch_id(options))
        power_w = _number(payload["apower"], "apower")
        energy = payload.get("aenergy")
        total = energy.get("total") if isinstance(energy, dict) else None
        counter = _number(total, "aenergy.total") if total is not None else None
        return power_w, counter

    @staticmethod
    def _parse_gen1(payload: dict[str, Any], index: int) -> tuple[float, float | None]:
        meter = payload["meters"][index]
        if not isinstance(meter, dict):
            raise TypeError(f"meters[{index}] is {meter!r}, not an object")
        if meter.get("is_valid") is False:
            # The plug says its own reading is not valid: a gap, never a number.
            raise ValueError(f"meters[{index}].is_valid is false: the plug has no valid reading")
        power_w = _number(meter["power"], f"meters[{index}].power")
        total = meter.get("total")
        counter = _number(total, f"meters[{index}].total") if total is not None else None
        return power_w, counter

    @classmethod
    def describe_shape_error(cls, payload: Any, exc: Exception) -> str:
        if isinstance(payload, dict) and ("meters" in payload or "emeters" in payload):
            return (
                f"Gen1 /status has no usable meters[] entry ({type(exc).__name__}: {exc}); pick "
                "a metering output with --power-opt shelly.switch_id (the EM and 3EM, whose "
                "meters are 'emeters', are not supported)"
            )
        sid = cls.switch_id_from(payload)
        return (
            f"switch:{sid} reports no power ('apower': {type(exc).__name__}: {exc}); pick a "
            f"metering output with --power-opt shelly.switch_id"
        )

    @staticmethod
    def switch_id_from(payload: Any) -> str:
        return str(payload.get("id", "?")) if isinstance(payload, dict) else "?"

    @classmethod
    def describe_http_error(cls, code: int, message: str, url: str) -> str:
        if code == 401:
            return (
                f"Shelly at {url} requires authentication, which wattbench does not support; "
                "disable the device's password for local access"
            )
        if code == 404 and url.endswith("/status"):
            return (
                f"Shelly at {url} has no Gen1 /status; for a Plus, Pro or Gen3+ device pass "
                "--power-opt shelly.gen=2 (or auto)"
            )
        if code == 404:
            return (
                f"Shelly at {url} has no Gen2 RPC API and its /shelly did not report a Gen1 "
                "device: is it a Shelly? Check --power-opt shelly.url, or pass shelly.gen=1 "
                "for a Gen1 plug"
            )
        extra = f" ({message})" if message else ""
        return (
            f"Shelly at {url} answered HTTP {code}{extra}; check --power-opt shelly.switch_id "
            "names a switch of this device"
        )

    @classmethod
    def check_status(cls, payload: Any, options: ReaderOptions) -> str | None:
        sid = cls.switch_id(options)
        if not isinstance(payload, dict):
            return None
        if cls._is_gen1(options):
            relays = payload.get("relays")
            relay = relays[sid] if isinstance(relays, list) and sid < len(relays) else None
            off = isinstance(relay, dict) and relay.get("ison") is False
            where = f"relay {sid}"
        else:
            off = payload.get("output") is False
            where = f"switch:{sid}"
        if off:
            return (
                f"Shelly {where} is switched off, so nothing it feeds is running; switch it "
                "on or point --power-opt shelly.url at the right plug"
            )
        return None

    def counter_spec(self) -> CounterSpec:
        if self._is_gen1(self.plug_options()):
            return self.GEN1_COUNTER
        return super().counter_spec()

    def default_accuracy(self) -> SensorAccuracy | None:
        accuracy = self.DEFAULT_ACCURACY
        if accuracy is not None and self._is_gen1(self.plug_options()):
            return dataclasses.replace(accuracy, resolution_w=0.01)  # power has two decimals
        return accuracy

    def details(self) -> dict[str, Any]:
        options = self.plug_options()
        gen = self.generation(options)
        return super().details() | {
            "generation": None if gen == "auto" else gen,
            "generation_source": options.param(self.name, "gen_source")
            or ("--power-opt shelly.gen" if gen != "auto" else None),
        }


class TasmotaReader(SmartPlugReader):
    """Tasmota plug with an energy monitor, read with the ``Status 8`` HTTP command."""

    name: ClassVar[str] = "tasmota"
    label: ClassVar[str] = "Tasmota"
    counter_unit_j: ClassVar[float] = 3.6e6  # kWh
    counter_unit: ClassVar[str] = "kWh"
    counter_resolution_j: ClassVar[float] = 3600.0  # 0.001 kWh at the default EnergyRes 3
    counter_note: ClassVar[str] = (
        "ENERGY.Total in kWh with three decimals by default (EnergyRes 3): a step of 1 Wh = "
        "3600 J, so the counter only checks windows of many watt-hours"
    )
    COMMAND: ClassVar[str] = "Status 8"
    DEFAULT_ACCURACY: ClassVar[SensorAccuracy | None] = SensorAccuracy(
        rel=0.05,
        abs_w=0.5,
        resolution_w=1.0,  # ENERGY.Power is in whole watts by default (WattRes 0)
        source="project convention (±5 % ± 0.5 W, 1 W steps): Tasmota asks you to calibrate "
        "each device and states no accuracy; after calibrating, pass tasmota.accuracy_pct "
        "(and tasmota.resolution_w if you changed WattRes)",
    )

    @classmethod
    def _query(cls, options: ReaderOptions, *, credentials: bool) -> str:
        params: dict[str, str] = {}
        user = options.param(cls.name, "user")
        password = options.param(cls.name, "password")
        if credentials and (user or password):
            params["user"] = user or "admin"
            params["password"] = password or ""
        params["cmnd"] = cls.COMMAND
        return urlencode(params, quote_via=quote)

    @classmethod
    def status_url(cls, base_url: str, options: ReaderOptions) -> str:
        return f"{base_url}/cm?{cls._query(options, credentials=True)}"

    @classmethod
    def public_url(cls, base_url: str, options: ReaderOptions) -> str:
        return f"{base_url}/cm?{cls._query(options, credentials=False)}"

    @classmethod
    def channel(cls, options: ReaderOptions) -> int:
        """``--power-opt tasmota.channel`` (1-based, default 1) for multi-channel devices."""
        channel = _int_param(options, cls.name, "channel", 1)
        if channel < 1:
            raise ConfigError(f"--power-opt tasmota.channel={channel} must be 1 or more")
        return channel

    @classmethod
    def _pick(cls, value: Any, options: ReaderOptions, what: str) -> float:
        if isinstance(value, list):
            return _number(value[cls.channel(options) - 1], f"{what}[{cls.channel(options)}]")
        return _number(value, what)

    @classmethod
    def parse(cls, payload: Any, options: ReaderOptions) -> tuple[float, float | None]:
        if not isinstance(payload, dict):
            raise TypeError(f"answer is a {type(payload).__name__}, not an object")
        if "WARNING" in payload:
            raise ValueError(f"Tasmota refused the command: {payload['WARNING']}")
        energy = payload["StatusSNS"]["ENERGY"]
        power_w = cls._pick(energy["Power"], options, "ENERGY.Power")
        total = energy.get("Total")
        counter = cls._pick(total, options, "ENERGY.Total") if total is not None else None
        return power_w, counter

    @classmethod
    def describe_shape_error(cls, payload: Any, exc: Exception) -> str:
        if isinstance(payload, dict) and "WARNING" in payload:
            return cls._login_reason()
        sns = payload.get("StatusSNS") if isinstance(payload, dict) else None
        if isinstance(sns, dict) and "ENERGY" not in sns:
            return (
                "Status 8 reports no ENERGY sensor: this device has no power monitor; use a "
                "plug with one"
            )
        return (
            f"unexpected Status 8 answer ({type(exc).__name__}: {exc}); check "
            "--power-opt tasmota.url and tasmota.channel"
        )

    @classmethod
    def _login_reason(cls) -> str:
        return (
            "Tasmota asks for a login: pass --power-opt tasmota.user=USER and "
            "--power-opt tasmota.password=PASSWORD (the web admin password)"
        )

    @classmethod
    def describe_http_error(cls, code: int, message: str, url: str) -> str:
        if code == 401:
            return f"Tasmota at {url}: {cls._login_reason()}"
        return super().describe_http_error(code, message, url)
