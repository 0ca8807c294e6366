"""Schema v1 of the results store (SQLAlchemy 2 declarative).

Every change to these tables comes with an Alembic migration in
``migrations/versions``; ``wattbench db upgrade`` applies them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    cpu_model: Mapped[str | None] = mapped_column(String(255))
    cpu_cores_logical: Mapped[int | None] = mapped_column(Integer)
    cpu_cores_physical: Mapped[int | None] = mapped_column(Integer)
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    arch: Mapped[str | None] = mapped_column(String(50))
    accelerator: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Environment(Base):
    __tablename__ = "environments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class SuiteRow(Base):
    __tablename__ = "suites"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(50))


class ModelArtifactRow(Base):
    __tablename__ = "model_artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(50))
    precision: Mapped[str] = mapped_column(String(20))
    weights: Mapped[str] = mapped_column(String(200))


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_suite_valid", "suite_id", "valid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    suite_id: Mapped[int] = mapped_column(ForeignKey("suites.id"))
    model_artifact_id: Mapped[int] = mapped_column(ForeignKey("model_artifacts.id"))
    scenario: Mapped[str] = mapped_column(String(50))
    adapter: Mapped[str] = mapped_column(String(100))
    runtime_version: Mapped[str] = mapped_column(String(100))
    execution_provider: Mapped[str] = mapped_column(String(200))
    device_target: Mapped[str] = mapped_column(String(100))
    precision: Mapped[str] = mapped_column(String(20))
    batch: Mapped[int] = mapped_column(Integer)
    threads: Mapped[int | None] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    adapter_description: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[str] = mapped_column(Text)
    labels: Mapped[list[Any]] = mapped_column(JSON)
    valid: Mapped[bool] = mapped_column(Boolean)
    invalid_reasons: Mapped[list[Any]] = mapped_column(JSON)
    warnings: Mapped[list[Any]] = mapped_column(JSON)
    quality: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Headline figures, denormalised so the leaderboard is one indexed query.
    load_ms: Mapped[float] = mapped_column(Float)
    first_inference_ms: Mapped[float] = mapped_column(Float)
    preprocess_ms_mean: Mapped[float] = mapped_column(Float)
    inferences: Mapped[int] = mapped_column(BigInteger)
    throughput_ips: Mapped[float] = mapped_column(Float)
    latency_mean_ms: Mapped[float] = mapped_column(Float)
    latency_p50_ms: Mapped[float] = mapped_column(Float)
    latency_p90_ms: Mapped[float] = mapped_column(Float)
    latency_p95_ms: Mapped[float] = mapped_column(Float)
    latency_p99_ms: Mapped[float] = mapped_column(Float)
    latency_p999_ms: Mapped[float] = mapped_column(Float)
    latency_cv: Mapped[float | None] = mapped_column(Float)
    inferences_per_joule: Mapped[float | None] = mapped_column(Float)
    joules_per_inference: Mapped[float | None] = mapped_column(Float)
    energy_method: Mapped[str | None] = mapped_column(String(20))
    energy_scope: Mapped[str | None] = mapped_column(String(20))
    energy_uncertainty_j: Mapped[float | None] = mapped_column(Float)

    device: Mapped[Device] = relationship()
    environment: Mapped[Environment] = relationship()
    suite: Mapped[SuiteRow] = relationship()
    model_artifact: Mapped[ModelArtifactRow] = relationship()
    trials: Mapped[list[Trial]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="Trial.index"
    )
    energy: Mapped[list[EnergyMeasurement]] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("run_id", "index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    queries: Mapped[int] = mapped_column(Integer)
    inferences: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[float] = mapped_column(Float)
    throughput_ips: Mapped[float] = mapped_column(Float)
    latency: Mapped[dict[str, Any]] = mapped_column(JSON)
    run: Mapped[Run] = relationship(back_populates="trials")


class EnergyMeasurement(Base):
    """One reader's energy: per trial (``trial_index`` set) and the run total (NULL)."""

    __tablename__ = "energy_measurements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    trial_index: Mapped[int | None] = mapped_column(Integer)
    reader: Mapped[str] = mapped_column(String(100))
    is_headline: Mapped[bool] = mapped_column(Boolean)
    method: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(20))
    component: Mapped[str] = mapped_column(String(200))
    gross_j: Mapped[float] = mapped_column(Float)
    idle_w: Mapped[float] = mapped_column(Float)
    net_j: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    mean_power_w: Mapped[float] = mapped_column(Float)
    peak_power_w: Mapped[float | None] = mapped_column(Float)
    samples: Mapped[int | None] = mapped_column(Integer)
    sample_rate_hz: Mapped[float | None] = mapped_column(Float)
    update_period_s: Mapped[float | None] = mapped_column(Float)
    uncertainty_j: Mapped[float | None] = mapped_column(Float)
    valid: Mapped[bool] = mapped_column(Boolean)
    invalid_reasons: Mapped[list[Any]] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    run: Mapped[Run] = relationship(back_populates="energy")
