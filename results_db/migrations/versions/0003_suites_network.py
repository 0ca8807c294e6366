"""Scenarios, end-to-end latency, text generation and network energy.

Adds nullable columns to ``runs`` (existing runs keep NULL, i.e. "not measured"):
``mode`` (edge/cloud/hybrid; existing runs were edge), ``latency_e2e_p50_ms``,
``latency_e2e_p90_ms``, ``ttft_ms``, ``tpot_ms``, ``tokens_per_joule``,
``network_j_per_inference`` (modelled), ``energy_to_solution_j_per_inference`` and
``extras`` (the run's scenario/end-to-end/generation/network sections as recorded, so a
central store without payloads rebuilds them exactly).

Revision ID: 0003_suites
Revises: 0002_lab
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_suites"
down_revision = "0002_lab"
branch_labels = None
depends_on = None

_FLOATS = (
    "latency_e2e_p50_ms",
    "latency_e2e_p90_ms",
    "ttft_ms",
    "tpot_ms",
    "tokens_per_joule",
    "network_j_per_inference",
    "energy_to_solution_j_per_inference",
)


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mode", sa.String(length=20), server_default="edge", nullable=False)
        )
        for name in _FLOATS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("extras", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("extras")
        for name in reversed(_FLOATS):
            batch_op.drop_column(name)
        batch_op.drop_column("mode")
