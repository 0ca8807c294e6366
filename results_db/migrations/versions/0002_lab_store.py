"""Lab store: device inventory, upload spool, power traces, latency histograms, API tokens.

Adds (never renames) so schema-v1 readers keep working:

* ``devices``: nameplate_power_w, purchase_price, currency, rack, location, tags;
* ``runs``: upload_state (existing runs become ``pending``), uploaded_at, upload_attempts,
  upload_last_error; indexes for the top-N leaderboard, the pending queue and ``--since``;
* ``power_traces`` (new runs' traces; older ones stay in energy_measurements.details),
  ``latency_bins``, ``run_payloads`` (the run as recorded, for upload) and ``api_tokens``.

Revision ID: 0002_lab
Revises: 0001_v1
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_lab"
down_revision = "0001_v1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nameplate_power_w", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("purchase_price", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("rack", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("location", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=True))

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "upload_state", sa.String(length=20), server_default="pending", nullable=False
            )
        )
        batch_op.add_column(sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("upload_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("upload_last_error", sa.Text(), nullable=True))
        batch_op.create_index("ix_runs_upload_state", ["upload_state"], unique=False)
        batch_op.create_index("ix_runs_started_at", ["started_at"], unique=False)
        batch_op.create_index(
            "ix_runs_leaderboard",
            ["suite_id", "scenario", "valid", sa.text("inferences_per_joule DESC"), "id"],
            unique=False,
        )

    op.create_table(
        "power_traces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("trial_index", sa.Integer(), nullable=False),
        sa.Column("reader", sa.String(length=100), nullable=False),
        sa.Column("n_points", sa.Integer(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "trial_index", "reader"),
    )
    with op.batch_alter_table("power_traces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_power_traces_run_id"), ["run_id"], unique=False)

    op.create_table(
        "latency_bins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("trial_index", sa.Integer(), nullable=True),
        sa.Column("upper_ms", sa.Float(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("latency_bins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_latency_bins_run_id"), ["run_id"], unique=False)

    op.create_table(
        "run_payloads",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(length=20), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id"),
    )

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_name", sa.String(length=200), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_tokens_device_name"), ["device_name"], unique=False
        )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy of ``devices`` would
    # have to drop a table that ``runs`` references, which SQLite refuses with FKs on.
    op.drop_table("api_tokens")
    op.drop_table("run_payloads")
    op.drop_table("latency_bins")
    op.drop_table("power_traces")
    op.drop_index("ix_runs_leaderboard", table_name="runs")
    op.drop_index("ix_runs_started_at", table_name="runs")
    op.drop_index("ix_runs_upload_state", table_name="runs")
    for column in ("upload_last_error", "upload_attempts", "uploaded_at", "upload_state"):
        op.drop_column("runs", column)
    for column in ("tags", "location", "rack", "currency", "purchase_price", "nameplate_power_w"):
        op.drop_column("devices", column)
