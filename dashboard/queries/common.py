"""What the dashboard's query modules share: the leaderboard's :class:`Filters`, what makes
two runs one configuration (:data:`CONFIG_KEY`) and which figures are summarised
(:data:`METRIC_COLUMNS`), the energy badge and a configuration's label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, func

from wattbench.results_db.schema import Run

if TYPE_CHECKING:
    import pandas as pd


def energy_badge(method: str | None, scope: str | None) -> str:
    """``≈ ESTIMATED · chip`` or ``measured: counter · board``; honest at a glance."""
    if method is None:
        return "no energy figure"
    if method == "estimated":
        return f"≈ ESTIMATED · {scope or '?'}"
    return f"measured: {method} · {scope or '?'}"


@dataclass(frozen=True)
class Filters:
    """The leaderboard's filters; empty collections mean "all"."""

    devices: tuple[str, ...] = ()
    hardware: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    hide_estimated: bool = False
    #: One mode at a time, as ``wattbench leaderboard``: a cloud or hybrid run's own energy
    #: is only the device's share of the work, so it never ranks among edge runs.
    mode: str = "edge"


#: What makes two runs the same configuration in the leaderboard. Energy method and scope
#: are part of it, so a row never mixes measured and estimated (or chip and wall) figures.
CONFIG_KEY = (
    "hardware",
    "adapter",
    "runtime_version",
    "execution_provider",
    "device_target",
    "model",
    "weights",
    "precision",
    "batch",
    "threads",
    "energy_method",
    "energy_scope",
    "mode",
)

#: Metrics summarised per configuration (mean over its runs; the drill-down has medians).
METRIC_COLUMNS = (
    "inferences_per_joule",
    "joules_per_inference",
    "tokens_per_joule",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_e2e_p50_ms",
    "latency_e2e_p90_ms",
    "ttft_ms",
    "tpot_ms",
    "throughput_ips",
    "uncertainty_pct",
    "network_j_per_inference",
    "energy_to_solution_j_per_inference",
)


def config_label(row: Any) -> str:
    """A short human name of a configuration: hardware · runtime · model precision · scope.

    The energy scope is part of the name because one device measured at chip and at wall is
    two configurations; without it, their labels collide (the Compare page keys on them).
    """
    est = " ≈est" if getattr(row, "estimated", False) else ""
    t = getattr(row, "threads", None)
    threads = f" ×{int(t)}t" if t is not None and _present(t) else ""
    scope = getattr(row, "energy_scope", None)
    at_scope = f" @{scope}" if _present(scope) else ""
    return (
        f"{row.hardware} · {row.adapter} {row.runtime_version} ({row.execution_provider}) · "
        f"{row.model} {row.precision} b{row.batch}{threads}{at_scope}{est}"
    )


def _present(value: Any) -> bool:
    if value is None or value == "":
        return False
    return not (isinstance(value, float) and math.isnan(value))


def empty_configs(runs: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    cols = [
        *CONFIG_KEY,
        *METRIC_COLUMNS,
        "runs",
        "devices",
        "run_id",
        "last_run",
        "estimated",
        "energy",
        "runtime",
        "suite",
        "suite_version",
        "scenario",
        "purchase_price",
        "currency",
        "config",
    ]
    return pd.DataFrame(columns=cols)


def labels_text() -> Any:
    # JSON as stored (json.dumps: ASCII, '"label"' per element) on both dialects.
    return func.cast(Run.labels, Text)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
