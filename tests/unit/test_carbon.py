from __future__ import annotations

import pytest

from wattbench.core.carbon import CarbonIntensity, footprint, intensity_for_country
from wattbench.core.errors import ConfigError


def test_footprint_converts_joules_to_grams_per_1000_inferences() -> None:
    # 3.6 J per inference = 1 Wh per 1000 inferences = 1e-3 kWh; at 400 g/kWh -> 0.4 g
    fp = footprint(3.6, CarbonIntensity(g_per_kwh=400, source="user"), "counter")
    assert fp.g_co2e_per_1000_inferences == pytest.approx(0.4)
    assert fp.energy_method == "counter" and fp.intensity_source == "user"


def test_country_intensity_from_codecarbon_table() -> None:
    pytest.importorskip("codecarbon", reason="needs the carbon extra")
    fra = intensity_for_country("fra")
    assert 0 < fra.g_per_kwh < 200  # a nuclear-heavy grid
    assert "France" in fra.source and "codecarbon" in fra.source
    pol = intensity_for_country("POL")
    assert pol.g_per_kwh > fra.g_per_kwh


def test_unknown_country_names_the_fix() -> None:
    pytest.importorskip("codecarbon", reason="needs the carbon extra")
    with pytest.raises(ConfigError, match="alpha-3"):
        intensity_for_country("XXX")
