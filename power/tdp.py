"""CPU TDP lookup in codecarbon's maintained table (``cpu_power.csv``).

codecarbon is an optional dependency (``pip install 'wattbench[carbon]'``).
The table is read with :mod:`csv`; codecarbon itself (and its pandas import) is
never imported. A CPU that is not in the table is reported as such: the caller
decides what to do and must say so.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_NOISE = re.compile(
    r"\((?:r|tm)\)|\bcpu\b|\bprocessor\b|@\s*[\d.]+\s*ghz|\b\d+-core\b|\bwith\b.*$|"
    r"\bradeon\b.*$|\bgraphics\b.*$",
    re.IGNORECASE,
)


def normalize_cpu_name(name: str) -> str:
    """Lower-case a CPU brand string and drop marketing noise and clock speeds."""
    return " ".join(_NOISE.sub(" ", name).lower().split())


@dataclass(frozen=True)
class TdpMatch:
    """A TDP figure and where it came from."""

    tdp_w: float
    matched_name: str
    source: str


def codecarbon_table_path() -> Path | None:
    """Path of codecarbon's CPU table, or None when codecarbon is not installed."""
    try:
        ref = resources.files("codecarbon") / "data" / "hardware" / "cpu_power.csv"
    except ModuleNotFoundError:
        return None
    path = Path(str(ref))
    return path if path.is_file() else None


def load_table(path: Path) -> dict[str, tuple[str, float]]:
    """Map normalised CPU name → (name as listed, TDP in W)."""
    table: dict[str, tuple[str, float]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                tdp = float(row["TDP"])
            except (KeyError, TypeError, ValueError):
                continue
            if tdp > 0:
                table.setdefault(normalize_cpu_name(row["Name"]), (row["Name"], tdp))
    return table


def lookup_tdp(cpu_model: str, table_path: Path | None = None) -> TdpMatch | None:
    """Find ``cpu_model`` in the table; exact match on the normalised name only.

    Fuzzy matching is deliberately not attempted: "AMD EPYC" (what many VMs
    report) would match any of a hundred EPYC parts from 120 W to 400 W.
    """
    path = table_path or codecarbon_table_path()
    if path is None or not cpu_model.strip():
        return None
    wanted = normalize_cpu_name(cpu_model)
    hit = load_table(path).get(wanted)
    if hit is None:
        return None
    if table_path is None:
        try:
            origin = f"codecarbon {version('codecarbon')} {path.name}"
        except PackageNotFoundError:
            origin = f"codecarbon {path.name}"
    else:
        origin = str(path)
    return TdpMatch(tdp_w=hit[1], matched_name=hit[0], source=f"{origin}: {hit[0]!r}")
