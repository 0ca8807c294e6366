"""Device profiles: what `wattbench doctor --save` found on a device, and the runs that use it.

Adds the ``device_profiles`` table (readers, scope, idle noise floor, sample rate, outcome,
date, wattbench version and the whole report) and ``runs.device_profile_id`` (nullable): the
latest profile of the run's device name when the run was stored. Runs stored before this
revision keep NULL (not validated). See docs/hardware-validation.md.

Revision ID: 0006_profiles
Revises: 0005_fleet
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_profiles"
down_revision = "0005_fleet"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wattbench_version", sa.String(length=50), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=False),
        sa.Column("headline_reader", sa.String(length=100), nullable=True),
        sa.Column("headline_scope", sa.String(length=20), nullable=True),
        sa.Column("noise_floor_w", sa.Float(), nullable=True),
        sa.Column("noise_std_w", sa.Float(), nullable=True),
        sa.Column("sample_rate_hz", sa.Float(), nullable=True),
        sa.Column("readers", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_device_profiles_device_created", "device_profiles", ["device_name", "created_at"]
    )
    # A plain ALTER TABLE on both dialects: no batch (SQLite would copy and re-create runs,
    # and with foreign keys on, dropping the old table cascades to its trials) and no FK
    # constraint (SQLite cannot add one without that copy), so the id is kept by the store.
    op.add_column("runs", sa.Column("device_profile_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "device_profile_id")  # SQLite >= 3.35 drops a column in place
    op.drop_index("ix_device_profiles_device_created", table_name="device_profiles")
    op.drop_table("device_profiles")
