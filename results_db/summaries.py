"""Per-configuration summaries of the valid runs (``config_summaries``, migration 0007).

One row per *summary key*: suite version and scenario, device, model artifact, and the run
configuration the dashboard groups by (adapter, runtime version, execution provider, device
target, precision, batch, threads, energy method and scope, mode). It holds what can be
kept exactly as runs arrive: the count of runs, for each figure of :data:`SUMMARY_METRICS`
the count of runs that have it and their sum (so the **mean**), the first and last start
and the uuid of the latest run (latest by ``started_at``, then uuid).

:func:`add_run` updates the run's row (an upsert) in the transaction that stores the run
(:class:`~wattbench.results_db.ingest.RunWriter`); migration 0007 fills the table from the
runs stored before it. Only valid runs are summarised, and runs are never changed or
deleted after they are stored, so the table stays equal to :func:`recompute` (tested on
both dialects).

The key holds the device and the model artifact, not the hardware name or the model name:
those are read from ``devices`` and ``model_artifacts`` when a page groups the rows, so a
device's inventory (its accelerator, price) updated by a later run never leaves a summary
behind. Medians are not kept: they cannot be updated exactly one run at a time (the
dashboard shows means from here and exact medians where it reads the runs themselves,
docs/dashboard.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Float, and_, case, delete, func, insert, or_, select, type_coerce

from wattbench.results_db.schema import ConfigSummary, Run

#: The summary key's run columns (with ``suite_id`` and ``scenario`` first), in key order.
KEY_COLUMNS = (
    "suite_id",
    "scenario",
    "device_id",
    "model_artifact_id",
    "adapter",
    "runtime_version",
    "execution_provider",
    "device_target",
    "precision",
    "batch",
    "threads",
    "energy_method",
    "energy_scope",
    "mode",
)
_INT_KEYS = frozenset({"suite_id", "device_id", "model_artifact_id", "batch", "threads"})

#: Figures summarised (count and sum of the runs having each); the dashboard's
#: ``METRIC_COLUMNS``. ``uncertainty_pct`` is derived per run (:func:`metric_values`).
SUMMARY_METRICS = (
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


def summary_key(values: Mapping[str, Any]) -> str:
    """sha256 of the run's key columns (a unique column: some key columns may be NULL, and
    NULLs never collide in a unique constraint). Migration 0007 computes the same."""
    key = [
        None if values.get(c) is None else int(values[c]) if c in _INT_KEYS else str(values[c])
        for c in KEY_COLUMNS
    ]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def uncertainty_pct(values: Mapping[str, Any]) -> float | None:
    """The energy uncertainty in % of the run's energy (the dashboard's ``± %``)."""
    unc, jpi, n = (
        values.get("energy_uncertainty_j"),
        values.get("joules_per_inference"),
        values.get("inferences"),
    )
    if unc is None or jpi is None or n is None:
        return None
    total = jpi * n
    return None if total == 0 else unc * 100.0 / total


def uncertainty_pct_sql() -> Any:
    """:func:`uncertainty_pct` as a SQL expression over ``runs``."""
    return (
        Run.energy_uncertainty_j * 100.0 / func.nullif(Run.joules_per_inference * Run.inferences, 0)
    )


def metric_values(values: Mapping[str, Any]) -> dict[str, float | None]:
    """A run's figures as summarised: None when missing (or not finite)."""
    out: dict[str, float | None] = {}
    for m in SUMMARY_METRICS:
        v = uncertainty_pct(values) if m == "uncertainty_pct" else values.get(m)
        out[m] = float(v) if v is not None and math.isfinite(v) else None
    return out


def summary_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config_summaries`` row of one run (its ``runs`` row values)."""
    row: dict[str, Any] = {c: values.get(c) for c in KEY_COLUMNS}
    row["key_sha256"] = summary_key(values)
    row["runs"] = 1
    row["first_started_at"] = row["last_started_at"] = values["started_at"]
    row["last_run_uuid"] = values["uuid"]
    for m, v in metric_values(values).items():
        row[f"{m}_n"] = 0 if v is None else 1
        row[f"{m}_sum"] = 0.0 if v is None else v
    return row


def add_run(conn: Connection, values: Mapping[str, Any]) -> None:
    """Count a just-inserted valid run into its summary row (created when missing).

    One upsert, in the caller's transaction: concurrent writers of one key queue on its
    row (PostgreSQL) or on the database (SQLite), and a rolled-back run takes its count
    with it.
    """
    conn.execute(_upsert(conn.dialect.name), summary_row(values))


@functools.cache
def _upsert(dialect: str) -> Any:
    """``INSERT … ON CONFLICT (key_sha256) DO UPDATE`` adding the run, built once."""
    from sqlalchemy.dialects import postgresql, sqlite

    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"config summaries need SQLite or PostgreSQL, not {dialect}")
    dialect_insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(ConfigSummary)
    t, new = ConfigSummary.__table__.c, stmt.excluded
    later = or_(
        new.last_started_at > t.last_started_at,
        and_(new.last_started_at == t.last_started_at, new.last_run_uuid > t.last_run_uuid),
    )
    sets: dict[str, Any] = {
        "runs": t.runs + new.runs,
        "first_started_at": case(
            (new.first_started_at < t.first_started_at, new.first_started_at),
            else_=t.first_started_at,
        ),
        "last_started_at": case((later, new.last_started_at), else_=t.last_started_at),
        "last_run_uuid": case((later, new.last_run_uuid), else_=t.last_run_uuid),
    }
    for m in SUMMARY_METRICS:
        sets[f"{m}_n"] = t[f"{m}_n"] + new[f"{m}_n"]
        sets[f"{m}_sum"] = t[f"{m}_sum"] + new[f"{m}_sum"]
    return stmt.on_conflict_do_update(index_elements=["key_sha256"], set_=sets)


def recompute(conn: Connection) -> list[dict[str, Any]]:
    """The summary rows computed from the valid runs themselves (what the table must hold;
    what :func:`rebuild` writes). Two grouped passes over the runs."""
    keys = [getattr(Run, c) for c in KEY_COLUMNS]
    exprs = {
        m: uncertainty_pct_sql() if m == "uncertainty_pct" else getattr(Run, m)
        for m in SUMMARY_METRICS
    }
    aggs = []
    for e in exprs.values():
        aggs += [func.count(e), func.coalesce(func.sum(type_coerce(e, Float)), 0.0)]
    q = (
        select(*keys, func.count(), func.min(Run.started_at), func.max(Run.started_at), *aggs)
        .where(Run.valid.is_(True))
        .group_by(*keys)
    )
    nk = len(keys)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in conn.execute(q):
        row: dict[str, Any] = dict(zip(KEY_COLUMNS, r[:nk], strict=True))
        row["key_sha256"] = summary_key(row)
        row["runs"], row["first_started_at"], row["last_started_at"] = r[nk : nk + 3]
        for i, m in enumerate(SUMMARY_METRICS):
            row[f"{m}_n"], row[f"{m}_sum"] = r[nk + 3 + 2 * i], float(r[nk + 4 + 2 * i])
        rows[tuple(r[:nk])] = row
    # The latest run of each key: the first by (started_at, uuid) descending.
    rn = (
        func.row_number()
        .over(partition_by=keys, order_by=(Run.started_at.desc(), Run.uuid.desc()))
        .label("rn")
    )
    ranked = select(*keys, Run.uuid, rn).where(Run.valid.is_(True)).subquery()
    for r in conn.execute(select(ranked).where(ranked.c.rn == 1)):
        rows[tuple(r[:nk])]["last_run_uuid"] = r[nk]
    return list(rows.values())


def rebuild(conn: Connection) -> int:
    """Replace the table's rows by :func:`recompute` (after runs were written past
    :func:`add_run`, e.g. by a bulk load); returns the number of rows."""
    rows = recompute(conn)
    conn.execute(delete(ConfigSummary))
    for i in range(0, len(rows), 1000):
        conn.execute(insert(ConfigSummary), rows[i : i + 1000])
    return len(rows)
