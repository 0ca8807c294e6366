"""Lab campaigns: campaigns, their cells and the device registry of the workers.

Adds three tables (nothing existing changes): ``campaigns`` (one submitted campaign file),
``campaign_cells`` (one run of a campaign on one device, or on any one device of a tag set,
with its status, attempt and deterministic run uuid) and ``fleet_devices`` (the workers'
devices: tags, adapters that run there, last heartbeat). See docs/fleet.md.

Revision ID: 0005_fleet
Revises: 0004_content
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_fleet"
down_revision = "0004_content"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("each_device", sa.Boolean(), nullable=False),
        sa.Column("queue_prefix", sa.String(length=100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "campaign_cells",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("cell_index", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("device", sa.String(length=200), nullable=True),
        sa.Column("queue", sa.String(length=400), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("run_uuid", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "cell_index", "target"),
    )
    op.create_index(
        "ix_campaign_cells_campaign_status", "campaign_cells", ["campaign_id", "status"]
    )
    op.create_index(op.f("ix_campaign_cells_run_uuid"), "campaign_cells", ["run_uuid"])
    op.create_table(
        "fleet_devices",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("adapters", sa.JSON(), nullable=True),
        sa.Column("metrics_port", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_cell_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), server_default="up", nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("fleet_devices")
    op.drop_index(op.f("ix_campaign_cells_run_uuid"), table_name="campaign_cells")
    op.drop_index("ix_campaign_cells_campaign_status", table_name="campaign_cells")
    op.drop_table("campaign_cells")
    op.drop_table("campaigns")
