"""The network energy model: formula, provenance, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattbench.core.errors import ConfigError
from wattbench.harness.network.energy_model import (
    J_PER_BYTE_PER_KWH_PER_GB,
    MODEL_VERSION,
    default_model,
    load_model,
)


def test_one_gigabyte_over_wifi_is_access_plus_core() -> None:
    m = default_model()
    e = m.energy("wifi", 10**9)
    expected_kwh = m.links["wifi"].kwh_per_gb + m.core.kwh_per_gb
    assert e.energy_j == pytest.approx(expected_kwh * 3.6e6)
    assert e.label == "modelled"
    assert pytest.approx(3.6e-3) == J_PER_BYTE_PER_KWH_PER_GB


def test_energy_is_linear_in_bytes_and_zero_for_none() -> None:
    m = default_model()
    assert m.energy("lte", 0).energy_j == 0
    assert m.energy("lte", 2000).energy_j == pytest.approx(2 * m.energy("lte", 1000).energy_j)


@pytest.mark.parametrize("link", ["wifi", "ethernet", "lte", "5g"])
def test_every_coefficient_is_sourced_dated_and_ranged(link: str) -> None:
    m = default_model()
    for c in (m.links[link], m.core):
        assert c.low_kwh_per_gb <= c.kwh_per_gb <= c.high_kwh_per_gb
        assert c.year is not None and 2010 <= c.year <= 2030
        assert len(c.source) > 40
    e = m.energy(link, 12345)
    assert e.low_j <= e.energy_j <= e.high_j
    d = m.describe(link)
    assert d["version"] == MODEL_VERSION and d["access"]["source"] and d["core"]["source"]


def test_mobile_costs_more_per_byte_than_fixed() -> None:
    m = default_model()
    assert m.energy("lte", 1000).energy_j > m.energy("ethernet", 1000).energy_j


def test_unknown_link_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="wifi"):
        default_model().energy("carrier-pigeon", 1)


def test_override_file_merges_and_marks_the_version(tmp_path: Path) -> None:
    f = tmp_path / "model.json"
    f.write_text(
        json.dumps(
            {
                "core": {"kwh_per_gb": 0.01},
                "links": {
                    "satellite": {
                        "kwh_per_gb": 1.0,
                        "low_kwh_per_gb": 0.5,
                        "high_kwh_per_gb": 2.0,
                        "year": 2024,
                        "source": "my own measurement",
                    }
                },
            }
        )
    )
    m = load_model(f)
    assert m.core.kwh_per_gb == 0.01
    assert m.core.source == default_model().core.source  # kept from the default
    assert m.version == f"{MODEL_VERSION}+custom" and m.overrides and "model.json" in m.overrides
    assert m.energy("satellite", 10**9).energy_j == pytest.approx((1.0 + 0.01) * 3.6e6)
    assert load_model(None) == default_model()


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("{not json", "not valid JSON"),
        ('{"colour": 1}', "'core' and/or 'links'"),
        ('{"core": {"kwh_per_gb": -1}}', "invalid coefficient"),
        ('{"links": {"new": {"kwh_per_gb": 1}}}', "invalid coefficient"),
    ],
)
def test_bad_override_files_are_one_line_errors(tmp_path: Path, text: str, fragment: str) -> None:
    f = tmp_path / "m.json"
    f.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_model(f)


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_model(tmp_path / "nope.json")
