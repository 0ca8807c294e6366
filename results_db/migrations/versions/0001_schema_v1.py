"""Schema v1: devices, environments, suites, model artifacts, runs, trials, energy.

Revision ID: 0001_v1
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_v1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("cpu_model", sa.String(length=255), nullable=True),
        sa.Column("cpu_cores_logical", sa.Integer(), nullable=True),
        sa.Column("cpu_cores_physical", sa.Integer(), nullable=True),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("arch", sa.String(length=50), nullable=True),
        sa.Column("accelerator", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint_sha256"),
    )
    op.create_table(
        "model_artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=50), nullable=False),
        sa.Column("precision", sa.String(length=20), nullable=False),
        sa.Column("weights", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    op.create_table(
        "suites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("suite_id", sa.Integer(), nullable=False),
        sa.Column("model_artifact_id", sa.Integer(), nullable=False),
        sa.Column("scenario", sa.String(length=50), nullable=False),
        sa.Column("adapter", sa.String(length=100), nullable=False),
        sa.Column("runtime_version", sa.String(length=100), nullable=False),
        sa.Column("execution_provider", sa.String(length=200), nullable=False),
        sa.Column("device_target", sa.String(length=100), nullable=False),
        sa.Column("precision", sa.String(length=20), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("adapter_description", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("invalid_reasons", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("load_ms", sa.Float(), nullable=False),
        sa.Column("first_inference_ms", sa.Float(), nullable=False),
        sa.Column("preprocess_ms_mean", sa.Float(), nullable=False),
        sa.Column("inferences", sa.BigInteger(), nullable=False),
        sa.Column("throughput_ips", sa.Float(), nullable=False),
        sa.Column("latency_mean_ms", sa.Float(), nullable=False),
        sa.Column("latency_p50_ms", sa.Float(), nullable=False),
        sa.Column("latency_p90_ms", sa.Float(), nullable=False),
        sa.Column("latency_p95_ms", sa.Float(), nullable=False),
        sa.Column("latency_p99_ms", sa.Float(), nullable=False),
        sa.Column("latency_p999_ms", sa.Float(), nullable=False),
        sa.Column("latency_cv", sa.Float(), nullable=True),
        sa.Column("inferences_per_joule", sa.Float(), nullable=True),
        sa.Column("joules_per_inference", sa.Float(), nullable=True),
        sa.Column("energy_method", sa.String(length=20), nullable=True),
        sa.Column("energy_scope", sa.String(length=20), nullable=True),
        sa.Column("energy_uncertainty_j", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_artifact_id"],
            ["model_artifacts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["suite_id"],
            ["suites.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_suite_valid", ["suite_id", "valid"], unique=False)

    op.create_table(
        "energy_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("trial_index", sa.Integer(), nullable=True),
        sa.Column("reader", sa.String(length=100), nullable=False),
        sa.Column("is_headline", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("component", sa.String(length=200), nullable=False),
        sa.Column("gross_j", sa.Float(), nullable=False),
        sa.Column("idle_w", sa.Float(), nullable=False),
        sa.Column("net_j", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("mean_power_w", sa.Float(), nullable=False),
        sa.Column("peak_power_w", sa.Float(), nullable=True),
        sa.Column("samples", sa.Integer(), nullable=True),
        sa.Column("sample_rate_hz", sa.Float(), nullable=True),
        sa.Column("update_period_s", sa.Float(), nullable=True),
        sa.Column("uncertainty_j", sa.Float(), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("invalid_reasons", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("energy_measurements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_energy_measurements_run_id"), ["run_id"], unique=False)

    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("queries", sa.Integer(), nullable=False),
        sa.Column("inferences", sa.BigInteger(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("throughput_ips", sa.Float(), nullable=False),
        sa.Column("latency", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "index"),
    )
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trials_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trials_run_id"))

    op.drop_table("trials")
    with op.batch_alter_table("energy_measurements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_energy_measurements_run_id"))

    op.drop_table("energy_measurements")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_suite_valid")

    op.drop_table("runs")
    op.drop_table("suites")
    op.drop_table("model_artifacts")
    op.drop_table("environments")
    op.drop_table("devices")
