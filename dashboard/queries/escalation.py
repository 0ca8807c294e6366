"""Escalation sweeps: the sweeps in the database (runs sharing a ``sweep:<id>`` label) and
one sweep's points, read from each run's stored ``network`` section."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, Text, select, type_coerce

from wattbench.dashboard.queries.common import energy_badge, labels_text
from wattbench.dashboard.queries.settings_sweep import is_settings_sweep
from wattbench.results_db.readonly import Database
from wattbench.results_db.schema import Device, Run, SuiteRow

if TYPE_CHECKING:
    import pandas as pd


#: Labels naming a sweep's swept value, by sweep kind (harness.network.sweep.run_sweep).
SWEEP_VALUE_KEYS = ("threshold", "payload", "frames")
SWEEP_PREFIX = "sweep:"


def _sweep_labels(labels: Any) -> tuple[str | None, str | None, str | None]:
    """(sweep id, kind, swept value) from a run's labels (JSON text or list)."""
    items = json.loads(labels) if isinstance(labels, str) else list(labels or [])
    sid = kind = value = None
    for x in items:
        x = str(x)
        if x.startswith(SWEEP_PREFIX):
            sid = x[len(SWEEP_PREFIX) :]
        else:
            key, sep, rest = x.partition(":")
            if sep and key in SWEEP_VALUE_KEYS:
                kind, value = key, rest
    return sid, kind, value


def sweeps(db: Database) -> pd.DataFrame:
    """One row per sweep (runs sharing a ``sweep:<id>`` label): sweep, kind, suite, device,
    runs, valid_runs, first, last; the latest first."""
    import pandas as pd

    q = (
        select(
            type_coerce(Run.labels, Text),
            SuiteRow.name,
            Device.name,
            type_coerce(Run.valid, Integer),
            type_coerce(Run.started_at, String),
        )
        .join(SuiteRow, Run.suite_id == SuiteRow.id)
        .join(Device, Run.device_id == Device.id)
        .where(labels_text().contains(f'"{SWEEP_PREFIX}', autoescape=True))
    )
    rows = []
    with db.engine.connect() as conn:
        for labels, suite, device, valid, started in conn.execute(q):
            sid, kind, _value = _sweep_labels(labels)
            if sid is not None and not is_settings_sweep(labels):  # those: the Sweep page
                rows.append((sid, kind or "?", suite, device, bool(valid), started))
    cols = ["sweep", "kind", "suite", "device", "valid", "started_at"]
    df = pd.DataFrame(rows, columns=cols)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    out = (
        df.groupby("sweep")
        .agg(
            kind=("kind", "first"),
            suite=("suite", "first"),
            device=("device", lambda s: ", ".join(sorted(set(s)))),
            runs=("valid", "size"),
            valid_runs=("valid", "sum"),
            first=("started_at", "min"),
            last=("started_at", "max"),
        )
        .reset_index()
    )
    return out.sort_values(["last", "sweep"], ascending=[False, True]).reset_index(drop=True)


#: Columns of :func:`sweep_points`.
SWEEP_POINT_COLUMNS = (
    "value",
    "x",
    "run_id",
    "mode",
    "valid",
    "escalation_rate",
    "energy_to_solution_j",
    "energy_to_solution_low_j",
    "energy_to_solution_high_j",
    "edge_j",
    "edge_energy",
    "network_j",
    "network_j_low",
    "network_j_high",
    "network_energy",
    "cloud_j",
    "cloud_energy",
    "agreement_with_cloud",
    "bytes_per_inference",
    "e2e_p50_ms",
    "escalated",
    "escalation_failures",
    "link",
    "payload",
    "device",
    "started_at",
    "invalid_reasons",
)


def sweep_points(db: Database, sweep_id: str) -> pd.DataFrame:
    """The points of one sweep, one per run, ordered by the swept value: the coordinates of
    :class:`wattbench.harness.network.sweep.SweepPoint` read from each run's stored
    ``network`` section (validated as a :class:`NetworkResult`) plus labels for the energy
    parts (edge: the reader's method; network: modelled; cloud: measured/estimated/...)."""
    import pandas as pd

    from wattbench.core.network import NetworkResult

    tag = json.dumps(f"{SWEEP_PREFIX}{sweep_id}")
    q = (
        select(
            Run.uuid,
            type_coerce(Run.labels, Text),
            Run.mode,
            type_coerce(Run.valid, Integer),
            Run.invalid_reasons,
            Run.extras,
            Run.joules_per_inference,
            Run.energy_method,
            Run.energy_scope,
            Run.latency_e2e_p50_ms,
            Device.name,
            type_coerce(Run.started_at, String),
        )
        .join(Device, Run.device_id == Device.id)
        .where(labels_text().contains(tag, autoescape=True))
        .order_by(Run.started_at, Run.id)
    )
    rows = []
    with db.engine.connect() as conn:
        for (
            uuid_,
            labels,
            mode,
            valid,
            reasons,
            extras,
            jpi,
            method,
            scope,
            e2e,
            dev,
            t,
        ) in conn.execute(q):
            sid, _kind, value = _sweep_labels(labels)
            if sid != sweep_id:  # a longer id that merely contains this one
                continue
            extras = json.loads(extras) if isinstance(extras, str) else (extras or {})
            raw = extras.get("network")
            n = NetworkResult.model_validate(raw) if raw else None
            edge_badge = energy_badge(method, scope)
            rows.append(
                {
                    "value": value or "",
                    "run_id": uuid_,
                    "mode": mode or "edge",
                    "valid": bool(valid),
                    # An edge-only point (no network section): all of it is the edge's.
                    "escalation_rate": n.escalation_rate if n else 0.0,
                    "energy_to_solution_j": n.energy_to_solution_j_per_inference if n else jpi,
                    "energy_to_solution_low_j": n.energy_to_solution_low_j if n else jpi,
                    "energy_to_solution_high_j": n.energy_to_solution_high_j if n else jpi,
                    "edge_j": n.edge_j_per_inference if n else jpi,
                    "edge_energy": edge_badge,
                    "network_j": n.network_j_per_inference if n else 0.0,
                    "network_j_low": n.network_j_low_per_inference if n else 0.0,
                    "network_j_high": n.network_j_high_per_inference if n else 0.0,
                    "network_energy": n.network_energy_label if n else "none",
                    "cloud_j": n.cloud_j_per_inference if n else 0.0,
                    "cloud_energy": n.cloud_energy if n else "none",
                    "agreement_with_cloud": n.agreement_with_cloud if n else None,
                    "bytes_per_inference": n.bytes_per_inference if n else 0.0,
                    "e2e_p50_ms": e2e,
                    "escalated": n.escalated if n else 0,
                    "escalation_failures": n.escalation_failures if n else 0,
                    "link": n.link if n else "",
                    "payload": n.payload if n else "",
                    "device": dev,
                    "started_at": t,
                    "invalid_reasons": "; ".join(reasons or []),
                }
            )
    df = pd.DataFrame(rows, columns=[c for c in SWEEP_POINT_COLUMNS if c != "x"])
    df["x"] = pd.to_numeric(df["value"], errors="coerce")  # thresholds; NaN for payloads
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    order = ["x", "started_at"] if df["x"].notna().all() else ["started_at"]
    return df.sort_values(order).reset_index(drop=True)[list(SWEEP_POINT_COLUMNS)]
