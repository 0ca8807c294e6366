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
from wattbench.power.polled import PolledReader, float_param

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
