"""Shelly smart plugs, Gen1 (``GET /status``) and Gen2+ (RPC over HTTP): wall power.

The protocol details, the counter rule and the uncertainty are in :mod:`wattbench.power.smartplug`,
the base shared with Tasmota.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, ClassVar

from wattbench.core.errors import ConfigError
from wattbench.core.power import (
    ReaderOptions,
)
from wattbench.power.polled import SensorAccuracy
from wattbench.power.smartplug import (
    CounterSpec,
    SmartPlugReader,
    _int_param,
    _number,
    get_json,
)

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
