"""Tasmota smart plugs (``GET /cm?cmnd=Status 8``): wall power.

The counter rule and the uncertainty are in :mod:`wattbench.power.smartplug`, the base shared
with Shelly.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from wattbench.core.errors import ConfigError
from wattbench.core.power import (
    ReaderOptions,
)
from wattbench.power.polled import SensorAccuracy
from wattbench.power.smartplug import (
    SmartPlugReader,
    _int_param,
    _number,
)


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
