"""CPU name normalisation and TDP lookup (custom CSV and codecarbon's table)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from wattbench.power.tdp import (
    codecarbon_table_path,
    load_table,
    lookup_tdp,
    normalize_cpu_name,
)

HAS_CODECARBON = importlib.util.find_spec("codecarbon") is not None
needs_codecarbon = pytest.mark.skipif(
    not HAS_CODECARBON,
    reason="codecarbon not installed (pip install 'wattbench[carbon]'): no TDP table to read",
)


@pytest.mark.parametrize(
    ("brand", "normalised"),
    [
        ("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", "intel core i7-8650u"),
        ("AMD Ryzen 7 5800X 8-Core Processor", "amd ryzen 7 5800x"),
        ("AMD EPYC 7B13", "amd epyc 7b13"),
        ("AMD EPYC", "amd epyc"),
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "intel xeon platinum 8375c"),
        ("AMD Ryzen 7 PRO 4750U with Radeon Graphics", "amd ryzen 7 pro 4750u"),
        ("  Intel Core i7-8650U  ", "intel core i7-8650u"),
    ],
)
def test_normalize_cpu_name(brand: str, normalised: str) -> None:
    assert normalize_cpu_name(brand) == normalised


def test_normalisation_makes_brand_and_table_names_agree() -> None:
    assert normalize_cpu_name("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz") == normalize_cpu_name(
        "Intel Core i7-8650U"
    )
    assert normalize_cpu_name("AMD Ryzen 7 5800X 8-Core Processor") == normalize_cpu_name(
        "AMD Ryzen 7 5800X"
    )


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "cpu_power.csv"
    path.write_text(
        "Name,TDP\n"
        "Intel Core i7-8650U,15\n"
        "AMD Ryzen 7 5800X,105.0\n"
        "AMD Ryzen 7 5800X3D,105.0\n"
        "AMD EPYC 7B13,240\n"
        "AMD EPYC 7763,280\n"
        "Broken CPU,n/a\n"
        "Zero CPU,0\n"
        "Intel Core i7-8650U,99\n",  # duplicate: the first listing wins
        encoding="utf-8",
    )
    return path


def test_load_table_skips_bad_rows(table: Path) -> None:
    t = load_table(table)
    assert t["intel core i7-8650u"] == ("Intel Core i7-8650U", 15.0)
    assert t["amd epyc 7b13"] == ("AMD EPYC 7B13", 240.0)
    assert "broken" not in t
    assert "zero" not in t
    assert len(t) == 5


@pytest.mark.parametrize(
    ("brand", "tdp", "listed"),
    [
        ("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", 15.0, "Intel Core i7-8650U"),
        ("AMD Ryzen 7 5800X 8-Core Processor", 105.0, "AMD Ryzen 7 5800X"),
        ("AMD EPYC 7B13", 240.0, "AMD EPYC 7B13"),
    ],
)
def test_lookup_tdp_in_a_custom_table(table: Path, brand: str, tdp: float, listed: str) -> None:
    m = lookup_tdp(brand, table)
    assert m is not None
    assert m.tdp_w == tdp
    assert m.matched_name == listed
    assert listed in m.source


@pytest.mark.parametrize("brand", ["AMD EPYC", "AMD Ryzen 7", "Broken CPU", "Zero CPU", "", "   "])
def test_lookup_tdp_no_fuzzy_match(table: Path, brand: str) -> None:
    assert lookup_tdp(brand, table) is None


@needs_codecarbon
def test_codecarbon_table_is_found() -> None:
    path = codecarbon_table_path()
    assert path is not None
    assert path.is_file()
    assert path.read_text(encoding="utf-8").splitlines()[0].strip() == "Name,TDP"


@needs_codecarbon
@pytest.mark.parametrize(
    ("brand", "tdp"),
    [
        ("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", 15.0),
        ("AMD Ryzen 7 5800X 8-Core Processor", 105.0),
    ],
)
def test_lookup_tdp_in_codecarbon_table(brand: str, tdp: float) -> None:
    m = lookup_tdp(brand)
    assert m is not None
    assert m.tdp_w == tdp
    assert m.source.startswith("codecarbon ")
    assert "cpu_power.csv" in m.source


@needs_codecarbon
def test_generic_epyc_as_vms_report_is_not_matched() -> None:
    assert lookup_tdp("AMD EPYC") is None


def test_no_table_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wattbench.power.tdp.codecarbon_table_path", lambda: None)
    assert lookup_tdp("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz") is None
