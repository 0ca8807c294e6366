"""The network energy model: measured bytes → *modelled* joules.

Energy for ``n`` bytes crossing the network over access link ``L`` is

    E = n × (access[L] + core) × 3.6e6 J/kWh / 1e9 B/GB

an *attributional average intensity* (the network's yearly energy divided by its
yearly traffic), not the marginal energy of those bytes: network power hardly
changes with load in the short term. Every coefficient carries its source, the
year its data describe and a low/high range; docs/network.md explains the choices
and the derivation. Users override any coefficient with a JSON file
(:func:`load_model`); the result records the model's name, version and every
coefficient it used, so a figure can always be recomputed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from wattbench.core.errors import ConfigError

#: Bump whenever a default coefficient or the formula changes.
MODEL_VERSION = "1.0"
MODEL_NAME = "wattbench-network"
#: 1 kWh/GB in J per byte (GB = 1e9 bytes).
J_PER_BYTE_PER_KWH_PER_GB = 3.6e6 / 1e9

_TRAFICOM = (
    "Traficom (Finnish Transport and Communications Agency), pilot study of the energy "
    "consumption of communications networks in Finland, 2021 data (published 2022): 0.05 kWh/GB "
    "fixed, 0.12 kWh/GB mobile; radio networks ~60 %, fixed access ~20 %, other sections ~20 % "
    "of the energy. https://traficom.fi/en/news/first-study-energy-consumption-communications-"
    "networks"
)
_SCHIEN = (
    "Schien, Coroama, Hilty, Preist (2015), The Energy Intensity of the Internet: Edge and Core "
    "Networks, ICT Innovations for Sustainability, Springer, doi:10.1007/978-3-319-09228-7_9: "
    "0.052 kWh/GB for edge, metro and long-haul networks excluding access"
)
_ASLAN = (
    "Aslan, Mayers, Koomey, France (2018), Electricity Intensity of Internet Data Transmission: "
    "Untangling the Estimates, J. Industrial Ecology 22(4):785-798, doi:10.1111/jiec.12630: "
    "0.06 kWh/GB in 2015 for core + fixed-line access, halving about every 2 years since 2000"
)
_SHIFT = (
    "The Shift Project '1byte' model (2018) as shipped in Green Web Foundation co2.js "
    "(FIXED_NETWORK_WIFI 1.52e-10, FOUR_G_MOBILE 8.84e-10 kWh/byte); IEA (Kamiya 2020) found "
    "this family of figures overstated, so it serves as the high bound only"
)
_NOKIA = (
    "Nokia and Telefonica (2020) RAN measurements: 5G up to 90 % more energy efficient per unit "
    "of traffic than 4G (reported by Converge Digest, 2020-12-06)"
)
_TREND = "low bound: central ÷ 4, i.e. Aslan et al.'s halving every ~2 years over 4 years"


class Coefficient(BaseModel):
    """One segment's energy intensity with its provenance."""

    kwh_per_gb: float = Field(ge=0, description="Central value, kWh per 1e9 bytes.")
    low_kwh_per_gb: float = Field(ge=0)
    high_kwh_per_gb: float = Field(ge=0)
    year: int | None = Field(description="Year the underlying data describe.")
    source: str
    note: str = ""

    @property
    def j_per_byte(self) -> float:
        return self.kwh_per_gb * J_PER_BYTE_PER_KWH_PER_GB


class NetworkEnergy(BaseModel):
    """Modelled energy of some bytes, with the model's range."""

    bytes: int
    link: str
    energy_j: float
    low_j: float
    high_j: float
    label: str = "modelled"


class NetworkEnergyModel(BaseModel):
    """Per-link access intensities plus one transport/core intensity."""

    name: str = MODEL_NAME
    version: str = MODEL_VERSION
    core: Coefficient
    links: dict[str, Coefficient]
    overrides: str | None = Field(
        default=None, description="Override file and its sha256, when the defaults were changed."
    )

    def coefficient(self, link: str) -> Coefficient:
        try:
            return self.links[link]
        except KeyError:
            raise ConfigError(
                f"unknown --network-link {link!r}: use one of {', '.join(sorted(self.links))} "
                f"(or add it in a --network-model file)"
            ) from None

    def energy(self, link: str, n_bytes: int) -> NetworkEnergy:
        """Energy of ``n_bytes`` (both directions together) over ``link`` and the core."""
        a = self.coefficient(link)
        c = self.core
        k = J_PER_BYTE_PER_KWH_PER_GB * n_bytes
        return NetworkEnergy(
            bytes=n_bytes,
            link=link,
            energy_j=k * (a.kwh_per_gb + c.kwh_per_gb),
            low_j=k * (a.low_kwh_per_gb + c.low_kwh_per_gb),
            high_j=k * (a.high_kwh_per_gb + c.high_kwh_per_gb),
        )

    def describe(self, link: str) -> dict[str, Any]:
        """What a result stores: name, version, the coefficients used and their sources."""
        return {
            "name": self.name,
            "version": self.version,
            "overrides": self.overrides,
            "formula": "bytes x (access[link] + core) kWh/GB x 3.6e-3 J/(B per kWh/GB)",
            "link": link,
            "access": self.coefficient(link).model_dump(),
            "core": self.core.model_dump(),
        }


def _fixed_access(high: float, high_src: str) -> Coefficient:
    return Coefficient(
        kwh_per_gb=0.033,
        low_kwh_per_gb=0.0083,
        high_kwh_per_gb=high,
        year=2021,
        source=f"{_TRAFICOM}; high: {high_src}; {_TREND}",
        note="fixed access share derived from Traficom's totals and shares (docs/network.md); "
        "the customer's own router/Wi-Fi access point is not included",
    )


def default_model() -> NetworkEnergyModel:
    """The shipped coefficients (see docs/network.md for the derivation)."""
    mobile_src = f"{_TRAFICOM}; high: {_SHIFT}"
    return NetworkEnergyModel(
        core=Coefficient(
            kwh_per_gb=0.017,
            low_kwh_per_gb=0.0043,
            high_kwh_per_gb=0.052,
            year=2021,
            source=f"{_TRAFICOM}; high: {_SCHIEN}; {_TREND}",
            note="'other network sections' of Traficom's study, shared over fixed and mobile "
            "traffic (docs/network.md)",
        ),
        links={
            "ethernet": _fixed_access(0.06, _ASLAN + " (core included: conservative)"),
            "wifi": _fixed_access(0.152, _SHIFT),
            "lte": Coefficient(
                kwh_per_gb=0.103,
                low_kwh_per_gb=0.026,
                high_kwh_per_gb=0.884,
                year=2021,
                source=f"{mobile_src}; {_TREND}",
                note="radio network share derived from Traficom (all generations 2G-5G mixed)",
            ),
            "5g": Coefficient(
                kwh_per_gb=0.103,
                low_kwh_per_gb=0.0103,
                high_kwh_per_gb=0.884,
                year=2021,
                source=f"{mobile_src}; low: {_NOKIA}",
                note="no published per-GB figure for 5G alone was found: the central value is "
                "the mixed-generation mobile figure, the low bound 90 % below it",
            ),
        },
    )


def load_model(path: Path | None) -> NetworkEnergyModel:
    """The default model, with the coefficients of a JSON file at ``path`` laid over it.

    The file holds ``{"core": {...}, "links": {"wifi": {...}, "satellite": {...}}}``;
    a coefficient given in part keeps its other fields from the default (a new link
    must give them all).
    """
    model = default_model()
    if path is None:
        return model
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except OSError as exc:
        raise ConfigError(f"cannot read --network-model {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--network-model {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not set(data) <= {"core", "links"}:
        raise ConfigError(
            f"--network-model {path}: expected an object with 'core' and/or 'links' keys"
        )
    base = model.model_dump()
    try:
        if "core" in data:
            base["core"] = {**base["core"], **data["core"]}
        for name, coef in (data.get("links") or {}).items():
            base["links"][name] = {**base["links"].get(name, {}), **coef}
        base["overrides"] = f"{path.name} sha256={hashlib.sha256(raw).hexdigest()[:12]}"
        base["version"] = f"{MODEL_VERSION}+custom"
        return NetworkEnergyModel.model_validate(base)
    except (ValidationError, TypeError, AttributeError) as exc:
        raise ConfigError(f"--network-model {path}: invalid coefficient: {exc}") from None
