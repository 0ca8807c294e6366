"""The procurement page's candidates: one per configuration, with its energy scope, so the
plans rank like with like (:func:`wattbench.analysis.procurement.plan_all`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wattbench.analysis.procurement import Candidate

if TYPE_CHECKING:
    import pandas as pd


def _number(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _text(x: Any) -> str | None:
    return x if isinstance(x, str) and x else None


def candidates(
    configs: pd.DataFrame,
    idle_w: Mapping[str, Any],
    prices: Mapping[Any, Any],
) -> list[Candidate]:
    """A :class:`Candidate` per row of ``configs`` (the dashboard's configurations):
    ``idle_w`` maps a run id to its headline idle power, ``prices`` a hardware name to the
    device price (missing, None or NaN: unknown)."""
    return [
        Candidate(
            config=str(r.config),
            throughput_ips=float(r.throughput_ips),
            latency_p90_ms=float(r.latency_p90_ms),
            latency_p99_ms=float(r.latency_p99_ms),
            joules_per_inference=_number(r.joules_per_inference),
            idle_w=_number(idle_w.get(r.run_id)),
            device_price=_number(prices.get(r.hardware)),
            energy=str(r.energy),
            estimated=bool(r.estimated),
            scope=_text(getattr(r, "energy_scope", None)),
        )
        for r in configs.itertuples()
    ]
