"""Grams of CO2e per 1000 inferences from energy and grid carbon intensity.

Intensity comes from the user (``--carbon-intensity G_PER_KWH``) or from
codecarbon's offline per-country table (``--country ISO3``, the ``carbon``
extra; its ``global_energy_mix.json`` gives the yearly average of each
country's electricity mix). It is never guessed: without either, no carbon
figure is produced.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.metadata import PackageNotFoundError, version

from pydantic import BaseModel, Field

from wattbench.core.errors import ConfigError

J_PER_KWH = 3.6e6


class CarbonIntensity(BaseModel):
    g_per_kwh: float = Field(gt=0)
    source: str


class CarbonFootprint(BaseModel):
    """Carbon of the headline energy; as estimated as the energy it comes from."""

    g_co2e_per_1000_inferences: float
    intensity_g_per_kwh: float
    intensity_source: str
    energy_method: str


def intensity_for_country(iso3: str) -> CarbonIntensity:
    """Yearly average intensity of a country's grid from codecarbon's table."""
    try:
        ref = resources.files("codecarbon") / "data" / "private_infra" / "global_energy_mix.json"
        table = json.loads(ref.read_text(encoding="utf-8"))
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(
            "--country needs codecarbon's data: pip install 'wattbench[carbon]' "
            "(or give --carbon-intensity G_PER_KWH)"
        ) from exc
    row = table.get(iso3.upper())
    if row is None or not row.get("carbon_intensity"):
        raise ConfigError(
            f"no carbon intensity for country {iso3!r}: use an ISO 3166 alpha-3 code such as "
            f"FRA or USA, or give --carbon-intensity G_PER_KWH"
        )
    try:
        cc = f"codecarbon {version('codecarbon')}"
    except PackageNotFoundError:
        cc = "codecarbon"
    return CarbonIntensity(
        g_per_kwh=float(row["carbon_intensity"]),
        source=f"{cc} global_energy_mix {row.get('country_name', iso3)} {row.get('year', '')}",
    )


def footprint(
    joules_per_inference: float, intensity: CarbonIntensity, energy_method: str
) -> CarbonFootprint:
    return CarbonFootprint(
        g_co2e_per_1000_inferences=joules_per_inference * 1000 / J_PER_KWH * intensity.g_per_kwh,
        intensity_g_per_kwh=intensity.g_per_kwh,
        intensity_source=intensity.source,
        energy_method=energy_method,
    )
