"""Per-configuration summaries of the valid runs, for the dashboard's first view.

Adds ``config_summaries``: one row per suite version, scenario, device, model artifact and
run configuration (adapter, runtime version, execution provider, device target, precision,
batch, threads, energy method and scope, mode), with the count of valid runs, per figure
the count of runs having it and their sum, the first and last start and the latest run.
The store keeps it in the transaction that stores each run
(``wattbench.results_db.summaries.add_run``); this revision fills it from the runs already
stored (two grouped passes over the valid runs). See docs/dashboard.md#responsiveness.

Revision ID: 0007_summaries
Revises: 0006_profiles
Create Date: 2026-12-09
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007_summaries"
down_revision = "0006_profiles"
branch_labels = None
depends_on = None

# Frozen here (a migration never changes): the key and the figures as of this revision.
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
METRICS = (
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


def _key(row: dict[str, Any]) -> str:
    """sha256 of the key columns, as ``wattbench.results_db.summaries.summary_key``."""
    key = [
        None if row[c] is None else int(row[c]) if c in _INT_KEYS else str(row[c])
        for c in KEY_COLUMNS
    ]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def upgrade() -> None:
    op.create_table(
        "config_summaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("suite_id", sa.Integer(), nullable=False),
        sa.Column("scenario", sa.String(length=50), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("model_artifact_id", sa.Integer(), nullable=False),
        sa.Column("adapter", sa.String(length=100), nullable=False),
        sa.Column("runtime_version", sa.String(length=100), nullable=False),
        sa.Column("execution_provider", sa.String(length=200), nullable=False),
        sa.Column("device_target", sa.String(length=100), nullable=False),
        sa.Column("precision", sa.String(length=20), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=True),
        sa.Column("energy_method", sa.String(length=20), nullable=True),
        sa.Column("energy_scope", sa.String(length=20), nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("first_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_uuid", sa.String(length=36), nullable=False),
        *[
            col
            for m in METRICS
            for col in (
                sa.Column(f"{m}_n", sa.BigInteger(), nullable=False),
                sa.Column(f"{m}_sum", sa.Float(), nullable=False),
            )
        ],
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.ForeignKeyConstraint(["model_artifact_id"], ["model_artifacts.id"]),
        sa.ForeignKeyConstraint(["suite_id"], ["suites.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_sha256"),
    )
    op.create_index("ix_config_summaries_group", "config_summaries", ["suite_id", "scenario"])
    _backfill()


def _backfill() -> None:
    """One summary row per key of the valid runs stored so far."""
    bind = op.get_bind()
    md = sa.MetaData()
    runs = sa.Table("runs", md, autoload_with=bind)
    summaries = sa.Table("config_summaries", md, autoload_with=bind)
    keys = [runs.c[c] for c in KEY_COLUMNS]
    exprs: dict[str, Any] = {m: runs.c[m] for m in METRICS if m != "uncertainty_pct"}
    exprs["uncertainty_pct"] = (
        runs.c.energy_uncertainty_j
        * 100.0
        / sa.func.nullif(runs.c.joules_per_inference * runs.c.inferences, 0)
    )
    aggs: list[Any] = []
    for m in METRICS:
        e = sa.type_coerce(exprs[m], sa.Float)
        aggs += [sa.func.count(e), sa.func.coalesce(sa.func.sum(e), 0.0)]
    valid = runs.c.valid.is_(True)
    started = runs.c.started_at
    q = sa.select(*keys, sa.func.count(), sa.func.min(started), sa.func.max(started), *aggs)
    nk = len(keys)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in bind.execute(q.where(valid).group_by(*keys)):
        row: dict[str, Any] = dict(zip(KEY_COLUMNS, r[:nk], strict=True))
        row["key_sha256"] = _key(row)
        row["runs"], row["first_started_at"], row["last_started_at"] = r[nk : nk + 3]
        for i, m in enumerate(METRICS):
            row[f"{m}_n"], row[f"{m}_sum"] = r[nk + 3 + 2 * i], float(r[nk + 4 + 2 * i])
        rows[tuple(r[:nk])] = row
    # The latest run of each key, by (started_at, uuid).
    rn = sa.func.row_number().over(partition_by=keys, order_by=(started.desc(), runs.c.uuid.desc()))
    ranked = sa.select(*keys, runs.c.uuid, rn.label("rn")).where(valid).subquery()
    for r in bind.execute(sa.select(ranked).where(ranked.c.rn == 1)):
        rows[tuple(r[:nk])]["last_run_uuid"] = r[nk]
    values = list(rows.values())
    for i in range(0, len(values), 1000):
        bind.execute(summaries.insert(), values[i : i + 1000])


def downgrade() -> None:
    op.drop_index("ix_config_summaries_group", table_name="config_summaries")
    op.drop_table("config_summaries")
