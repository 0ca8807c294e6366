"""Per-trial and per-run measurements of chosen runs: the compare page's pooled trial
samples and the headline reader's power, which the procurement page plans with."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from wattbench.results_db.readonly import Database
from wattbench.results_db.schema import EnergyMeasurement, Run, Trial

if TYPE_CHECKING:
    import pandas as pd


def trial_samples(db: Database, run_ids: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Pooled per-trial values of ``run_ids``: joules_per_inference (headline reader's gross
    energy / inferences), latency_p90_ms, throughput_ips (see harness.gate.trial_samples)."""
    from wattbench.analysis.gate import trial_samples as gate_samples

    if not run_ids:
        return {}
    headline = (
        select(EnergyMeasurement.run_id, EnergyMeasurement.trial_index, EnergyMeasurement.gross_j)
        .where(EnergyMeasurement.is_headline.is_(True), EnergyMeasurement.trial_index.is_not(None))
        .subquery()
    )
    q = (
        select(Trial.inferences, Trial.latency, Trial.throughput_ips, headline.c.gross_j)
        .join(Run, Run.id == Trial.run_id)
        .outerjoin(
            headline,
            (headline.c.run_id == Trial.run_id) & (headline.c.trial_index == Trial.index),
        )
        .where(Run.uuid.in_(list(run_ids)))
        .order_by(Run.id, Trial.index)
    )
    with db.engine.connect() as conn:
        rows = [
            (int(inf), float((lat or {}).get("p90_ms", math.nan)), float(ips), gross, None)
            for inf, lat, ips, gross in conn.execute(q)
        ]
    return gate_samples(rows)


def headline_power(db: Database, run_ids: Iterable[str]) -> pd.DataFrame:
    """Headline reader's run totals: run_id, idle_w, mean_power_w (for procurement)."""
    import pandas as pd

    ids = list(run_ids)
    if not ids:
        return pd.DataFrame(columns=["run_id", "idle_w", "mean_power_w"])
    q = (
        select(Run.uuid, EnergyMeasurement.idle_w, EnergyMeasurement.mean_power_w)
        .join(Run, Run.id == EnergyMeasurement.run_id)
        .where(
            EnergyMeasurement.is_headline.is_(True),
            EnergyMeasurement.trial_index.is_(None),
            Run.uuid.in_(ids),
        )
    )
    with db.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(q)]
    return pd.DataFrame(rows, columns=["run_id", "idle_w", "mean_power_w"])
