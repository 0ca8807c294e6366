"""The buyer's view: what meeting a workload costs on each configuration, in money and CO2e.

The model (documented in docs/dashboard.md; pure functions, no Streamlit):

* a configuration qualifies when its p90 (or p99) latency is within the bound;
* ``devices = ceil(required_ips / throughput_per_device)``;
* each device is busy a fraction ``u = required_ips / (devices × throughput)`` of the time at
  its measured energy per inference and idles the rest at its measured idle power, so
  ``energy per year = required_ips × J/inference × s/year + devices × (1 − u) × idle_W ×
  s/year`` (idle unknown: counted as 0 and flagged);
* ``kg CO2e per year = kWh per year × g/kWh / 1000``;
* ``total cost per million inferences = (capex + lifetime × energy cost per year) /
  (inferences over the lifetime / 1e6)`` with ``capex = devices × device price``.

Like with like: configurations are ranked only within one *group* of the same energy scope
(wall, board, module, chip) and measured-vs-estimated, ranks restarting per group, wall and
board groups first. A chip-scope figure leaves out the board and power supply, so its
electricity cost is a lower bound and would always "win" against a wall-plug figure of a
cheaper device; an estimate is only an estimate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

SECONDS_PER_YEAR = 365.25 * 24 * 3600
J_PER_KWH = 3.6e6

#: Energy scopes, widest first: the order procurement groups are shown in.
SCOPES_WIDEST_FIRST = ("wall", "board", "module", "chip")
#: Scopes whose energy figure covers what the electricity meter bills.
BILLED_SCOPES = ("wall", "board")


def energy_group(scope: str | None, estimated: bool) -> str:
    """The group a configuration is ranked in: ``wall · measured``, ``chip · estimated``."""
    return f"{scope or 'no scope'} · {'estimated' if estimated else 'measured'}"


def energy_basis(scope: str | None) -> str:
    """What the electricity cost rests on: the whole device (wall, board) or a LOWER BOUND."""
    if scope == "wall":
        return "wall: as billed"
    if scope == "board":
        return "board: near billed (no PSU loss)"
    if not scope:
        return "no scope: basis unknown"
    return f"{scope}: LOWER BOUND ({scope} only)"


def _group_order(scope: str | None, estimated: bool) -> tuple[int, str, bool]:
    width = SCOPES_WIDEST_FIRST.index(scope) if scope in SCOPES_WIDEST_FIRST else 99
    return (width, scope or "", estimated)


@dataclass(frozen=True)
class BuyerInputs:
    """What the buyer needs and pays."""

    required_ips: float
    latency_bound_ms: float
    electricity_price_per_kwh: float
    lifetime_years: float
    carbon_g_per_kwh: float | None = None
    latency_percentile: Literal["p90", "p99"] = "p90"
    currency: str = "EUR"

    def problems(self) -> list[str]:
        """What is wrong with the inputs (empty when they can be used)."""
        out = []
        if not self.required_ips > 0:
            out.append("required throughput must be > 0 inferences/s")
        if not self.latency_bound_ms > 0:
            out.append("latency bound must be > 0 ms")
        if not self.electricity_price_per_kwh >= 0:
            out.append("electricity price must be ≥ 0")
        if not self.lifetime_years > 0:
            out.append("lifetime must be > 0 years")
        if self.carbon_g_per_kwh is not None and not self.carbon_g_per_kwh >= 0:
            out.append("carbon intensity must be ≥ 0 g/kWh")
        return out


@dataclass(frozen=True)
class Candidate:
    """One configuration's measured figures (medians over its runs)."""

    config: str
    throughput_ips: float
    latency_p90_ms: float
    latency_p99_ms: float
    joules_per_inference: float | None
    idle_w: float | None = None
    device_price: float | None = None
    energy: str = ""  # the method/scope badge, e.g. "≈ ESTIMATED · chip"
    estimated: bool = False
    scope: str | None = None  # energy scope: chip, module, board, wall (None: unknown)


@dataclass(frozen=True)
class Plan:
    """What one configuration needs to meet the buyer's inputs."""

    group: str  # see energy_group: ranked only against plans of the same group
    config: str
    energy: str
    energy_basis: str
    estimated: bool
    scope: str | None
    latency_ms: float
    devices: int
    utilisation: float
    capex: float | None
    energy_kwh_per_year: float | None
    energy_cost_per_year: float | None
    kg_co2e_per_year: float | None
    cost_per_million: float | None
    idle_known: bool
    notes: str


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def plan_one(c: Candidate, inp: BuyerInputs) -> Plan | None:
    """The plan for ``c``, or None when it misses the latency bound or has no throughput."""
    latency = c.latency_p99_ms if inp.latency_percentile == "p99" else c.latency_p90_ms
    if not _finite(latency) or latency > inp.latency_bound_ms:
        return None
    if not _finite(c.throughput_ips) or c.throughput_ips <= 0:
        return None
    devices = max(1, math.ceil(inp.required_ips / c.throughput_ips - 1e-9))
    utilisation = inp.required_ips / (devices * c.throughput_ips)
    notes: list[str] = []
    idle_known = _finite(c.idle_w)
    if not idle_known:
        notes.append("idle power unknown: spare capacity counted at 0 W")
    kwh = cost = co2 = None
    if _finite(c.joules_per_inference):
        assert c.joules_per_inference is not None
        idle_w = float(c.idle_w) if idle_known and c.idle_w is not None else 0.0
        joules = (
            inp.required_ips * c.joules_per_inference * SECONDS_PER_YEAR
            + devices * (1 - utilisation) * idle_w * SECONDS_PER_YEAR
        )
        kwh = joules / J_PER_KWH
        cost = kwh * inp.electricity_price_per_kwh
        if inp.carbon_g_per_kwh is not None:
            co2 = kwh * inp.carbon_g_per_kwh / 1000
    else:
        notes.append("no energy figure")
    capex = (
        devices * float(c.device_price)
        if c.device_price is not None and _finite(c.device_price)
        else None
    )
    if capex is None:
        notes.append("device price needed")
    per_million = None
    if capex is not None and cost is not None:
        lifetime_inferences = inp.required_ips * SECONDS_PER_YEAR * inp.lifetime_years
        per_million = (capex + inp.lifetime_years * cost) / (lifetime_inferences / 1e6)
    if c.estimated:
        notes.append("energy is an estimate")
    return Plan(
        group=energy_group(c.scope, c.estimated),
        config=c.config,
        energy=c.energy,
        energy_basis=energy_basis(c.scope),
        estimated=c.estimated,
        scope=c.scope,
        latency_ms=float(latency),
        devices=devices,
        utilisation=utilisation,
        capex=capex,
        energy_kwh_per_year=kwh,
        energy_cost_per_year=cost,
        kg_co2e_per_year=co2,
        cost_per_million=per_million,
        idle_known=idle_known,
        notes="; ".join(notes),
    )


def plan_all(candidates: list[Candidate], inp: BuyerInputs) -> list[Plan]:
    """Plans of the qualifying candidates, group by group (:func:`energy_group`; wall, board,
    module, chip, measured before estimated) and within a group cheapest per million
    inferences first (then by energy; configurations without a cost last)."""
    plans = [p for c in candidates if (p := plan_one(c, inp)) is not None]

    def key(p: Plan) -> tuple[Any, ...]:
        return (
            _group_order(p.scope, p.estimated),
            p.cost_per_million is None,
            p.cost_per_million or 0.0,
            p.energy_kwh_per_year is None,
            p.energy_kwh_per_year or 0.0,
        )

    return sorted(plans, key=key)


def ranks(plans: list[Plan]) -> list[int]:
    """Each plan's rank in its group, for plans in :func:`plan_all`'s order (restarts at 1)."""
    seen: dict[str, int] = {}
    out = []
    for p in plans:
        seen[p.group] = seen.get(p.group, 0) + 1
        out.append(seen[p.group])
    return out


def plans_frame(plans: list[Plan], currency: str = "EUR") -> pd.DataFrame:
    """Plans (in :func:`plan_all`'s order) as a table with human column names (money columns
    in ``currency``); ``rank`` restarts in each ``group``."""
    import pandas as pd

    rows: list[dict[str, Any]] = [asdict(p) for p in plans]
    df = pd.DataFrame(rows, columns=list(Plan.__dataclass_fields__))
    df = df.drop(columns=["scope"])
    df.insert(0, "rank", ranks(plans))
    return df.rename(
        columns={
            "energy_basis": "energy basis",
            "latency_ms": "latency ms",
            "utilisation": "utilisation",
            "capex": f"capex {currency}",
            "energy_kwh_per_year": "kWh / year",
            "energy_cost_per_year": f"energy {currency} / year",
            "kg_co2e_per_year": "kg CO2e / year",
            "cost_per_million": f"total {currency} / million inferences",
        }
    )
