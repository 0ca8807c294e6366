"""Schema of the results store (SQLAlchemy 2 declarative), at migration 0007.

Every change to these tables comes with an Alembic migration in
``migrations/versions``; ``wattbench db upgrade`` applies them. Columns and
tables are only ever added, never renamed: other modules query them by name.
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
    LargeBinary,
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
    # 0002: what the lab knows about the box (from the run's device dict when given).
    nameplate_power_w: Mapped[float | None] = mapped_column(Float)
    purchase_price: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(3))
    rack: Mapped[str | None] = mapped_column(String(100))
    location: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[Any] | None] = mapped_column(JSON)


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


#: ``runs.upload_state``: recorded here and not yet acknowledged by the central store.
UPLOAD_PENDING = "pending"
#: ``runs.upload_state``: acknowledged by the central store (or copied to its database).
UPLOAD_DONE = "uploaded"
#: ``runs.upload_state``: this database is the central store; the run came from a device.
UPLOAD_RECEIVED = "received"
UPLOAD_STATES = (UPLOAD_PENDING, UPLOAD_DONE, UPLOAD_RECEIVED)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_suite_valid", "suite_id", "valid"),
        Index("ix_runs_upload_state", "upload_state"),
        Index("ix_runs_started_at", "started_at"),
    )
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
    # 0003: scenario/suite figures; NULL = not measured by that run.
    mode: Mapped[str] = mapped_column(String(20), server_default="edge")
    latency_e2e_p50_ms: Mapped[float | None] = mapped_column(Float)
    latency_e2e_p90_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    tpot_ms: Mapped[float | None] = mapped_column(Float)
    tokens_per_joule: Mapped[float | None] = mapped_column(Float)
    network_j_per_inference: Mapped[float | None] = mapped_column(Float, doc="modelled")
    energy_to_solution_j_per_inference: Mapped[float | None] = mapped_column(Float)
    extras: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # 0002: the offline spool. Pending until the central store acknowledged the run.
    upload_state: Mapped[str] = mapped_column(String(20), server_default=UPLOAD_PENDING)
    uploaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    upload_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    upload_last_error: Mapped[str | None] = mapped_column(Text)
    # 0004: sha256 of the canonical payload (wattbench.core.canonical); NULL for older runs.
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    # 0006: the device's `wattbench doctor --save` profile (device_profiles.id) current when
    # the run was stored; a plain id, no FK constraint (adding one makes SQLite rebuild runs).
    device_profile_id: Mapped[int | None] = mapped_column(Integer)

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
    traces: Mapped[list[PowerTrace]] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )
    latency_bins: Mapped[list[LatencyBin]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="LatencyBin.upper_ms"
    )
    payload: Mapped[RunPayload | None] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )


# 0002: top-N per (suite, scenario) walks this index instead of sorting every run
# (``Store.leaderboard(limit=N)``). Same definition on both dialects: DESC puts NULLs
# first on PostgreSQL and last on SQLite, so the store asks for NULLs separately.
Index(
    "ix_runs_leaderboard",
    Run.suite_id,
    Run.scenario,
    Run.valid,
    Run.inferences_per_joule.desc(),
    Run.id,
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


class PowerTrace(Base):
    """0002: one reader's downsampled power trace for one trial (at most 2000 points).

    ``points`` is ``[[t_s, power_w], ...]`` with t from the start of the trial window.
    Runs stored before 0002 keep theirs in ``energy_measurements.details["trace"]``;
    :meth:`Store.power_traces` reads both.
    """

    __tablename__ = "power_traces"
    __table_args__ = (UniqueConstraint("run_id", "trial_index", "reader"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    trial_index: Mapped[int] = mapped_column(Integer)
    reader: Mapped[str] = mapped_column(String(100))
    n_points: Mapped[int] = mapped_column(Integer)
    points: Mapped[list[Any]] = mapped_column(JSON)
    run: Mapped[Run] = relationship(back_populates="traces")


class LatencyBin(Base):
    """0002: one bin of a run's per-query latency histogram (log-spaced, fixed edges).

    ``trial_index`` is NULL for the whole run (the only kind written today). Fixed edges
    make ``SELECT upper_ms, SUM(count) ... GROUP BY upper_ms`` a valid merged histogram.
    """

    __tablename__ = "latency_bins"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    trial_index: Mapped[int | None] = mapped_column(Integer)
    upper_ms: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(BigInteger)
    run: Mapped[Run] = relationship(back_populates="latency_bins")


class RunPayload(Base):
    """0002: the run exactly as recorded (gzip'd RunResult JSON), so an upload sends it verbatim.

    Written for runs recorded on this machine; the central store does not keep one.
    """

    __tablename__ = "run_payloads"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    encoding: Mapped[str] = mapped_column(String(20))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    run: Mapped[Run] = relationship(back_populates="payload")


class ApiToken(Base):
    """0002: an upload token for one device; only its sha256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_name: Mapped[str] = mapped_column(String(200), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- lab campaigns (wattbench.fleet) ---------------------------------------------------------
# 0005: a campaign is a matrix of runs sent to device racks through a broker; each cell is
# one run on one device (or on any one device of a tag set). The runs themselves are stored
# in ``runs`` like any other, under the cell's deterministic run uuid (docs/fleet.md).

#: ``campaign_cells.status``: queued, not yet taken by a worker
CELL_PENDING = "pending"
#: a worker is running it
CELL_RUNNING = "running"
#: its run is stored (``run_uuid``)
CELL_DONE = "done"
#: the run failed (``reason``); ``wattbench campaign retry --failed`` queues it again
CELL_FAILED = "failed"
#: the device cannot run it (adapter not installed, no accelerator): ``reason`` says why
CELL_SKIPPED = "skipped"
#: the campaign was cancelled before the cell ran
CELL_CANCELLED = "cancelled"
CELL_STATES = (CELL_PENDING, CELL_RUNNING, CELL_DONE, CELL_FAILED, CELL_SKIPPED, CELL_CANCELLED)


class Campaign(Base):
    """0005: one submitted campaign file."""

    __tablename__ = "campaigns"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: active or cancelled (done-ness is counted from the cells)
    state: Mapped[str] = mapped_column(String(20), server_default="active")
    each_device: Mapped[bool] = mapped_column(Boolean)
    #: the broker queue prefix its cells were sent under
    queue_prefix: Mapped[str] = mapped_column(String(100))
    #: the campaign file as parsed (matrix, run, target)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CampaignCell(Base):
    """0005: one run of a campaign on one device (``device``) or on any device of a tag set
    (``device`` NULL until a worker takes it, ``target`` = ``tags:a+b``)."""

    __tablename__ = "campaign_cells"
    __table_args__ = (
        UniqueConstraint("campaign_id", "cell_index", "target"),
        Index("ix_campaign_cells_campaign_status", "campaign_id", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    #: position in the matrix's cross product
    cell_index: Mapped[int] = mapped_column(Integer)
    #: the device name, or ``tags:a+b`` for any one device having those tags
    target: Mapped[str] = mapped_column(String(300))
    #: the device that runs (ran) it
    device: Mapped[str | None] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(400))
    #: the cell's `wattbench run` options (run-file keys)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), server_default=CELL_PENDING)
    attempt: Mapped[int] = mapped_column(Integer, server_default="0")
    #: the deterministic run uuid of the current attempt (stored in ``runs.uuid`` when done)
    run_uuid: Mapped[str | None] = mapped_column(String(36), index=True)
    #: one line: why it failed or was skipped
    reason: Mapped[str | None] = mapped_column(Text)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FleetDevice(Base):
    """0005: the device registry: one row per worker's device, refreshed by its heartbeat.

    (``devices`` holds the devices that runs were recorded on; this one the workers that are
    or were attached to a broker.)"""

    __tablename__ = "fleet_devices"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    tags: Mapped[list[Any]] = mapped_column(JSON)
    hostname: Mapped[str | None] = mapped_column(String(255))
    #: adapter -> None when it runs here, else the one-line reason it does not
    adapters: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics_port: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: the cell it is running now
    current_cell_id: Mapped[int | None] = mapped_column(Integer)
    #: up, or stopped (a clean shutdown); offline is a heartbeat older than the timeout
    state: Mapped[str] = mapped_column(String(20), server_default="up")


# -- device validation (wattbench doctor) ------------------------------------------------------
# 0006: what `wattbench doctor --save` found on a device; a run stored afterwards points at the
# latest profile of its device name (``runs.device_profile_id``), docs/hardware-validation.md.

#: ``device_profiles.outcome``: every measured reader passed its checks (doctor exit 0)
PROFILE_VALIDATED = "validated"
#: a reader failed a check (exit 1)
PROFILE_FAILED = "failed"
#: no measured reader: only the estimate (exit 3)
PROFILE_ESTIMATE_ONLY = "estimate_only"
PROFILE_OUTCOMES = (PROFILE_VALIDATED, PROFILE_FAILED, PROFILE_ESTIMATE_ONLY)


class DeviceProfile(Base):
    """0006: one `wattbench doctor --save` of a device: its readers, their scope, idle noise
    floor and sample rate, the outcome, the date and the wattbench version."""

    __tablename__ = "device_profiles"
    __table_args__ = (Index("ix_device_profiles_device_created", "device_name", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the name runs are stored under (``--device-name``, else the host name)
    device_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    wattbench_version: Mapped[str] = mapped_column(String(50))
    hostname: Mapped[str | None] = mapped_column(String(255))
    #: validated, failed or estimate_only (:data:`PROFILE_OUTCOMES`)
    outcome: Mapped[str] = mapped_column(String(20))
    exit_code: Mapped[int] = mapped_column(Integer)
    #: the first measured reader that passed, and its figures
    headline_reader: Mapped[str | None] = mapped_column(String(100))
    headline_scope: Mapped[str | None] = mapped_column(String(20))
    noise_floor_w: Mapped[float | None] = mapped_column(Float)
    noise_std_w: Mapped[float | None] = mapped_column(Float)
    sample_rate_hz: Mapped[float | None] = mapped_column(Float)
    #: one summary per reader (name, status, verdict, method, scope, noise floor, rates, step)
    readers: Mapped[list[Any]] = mapped_column(JSON)
    #: the whole report, as `wattbench doctor --json` prints it
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


# -- dashboard summaries -----------------------------------------------------------------------
# 0007: the valid runs summarised per configuration as they are stored
# (wattbench.results_db.summaries), so the dashboard's first view reads one row per
# configuration and device instead of every run (docs/dashboard.md#responsiveness).


class ConfigSummary(Base):
    """0007: the valid runs of one summary key (suite version, scenario, device, model
    artifact, adapter, runtime version, execution provider, device target, precision, batch,
    threads, energy method and scope, mode): their count and, per figure, how many have it
    and its sum; the first and last start and the latest run. Kept by the store in the
    transaction that stores each run (:func:`wattbench.results_db.summaries.add_run`)."""

    __tablename__ = "config_summaries"
    __table_args__ = (Index("ix_config_summaries_group", "suite_id", "scenario"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: sha256 of the key columns (:func:`wattbench.results_db.summaries.summary_key`)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    suite_id: Mapped[int] = mapped_column(ForeignKey("suites.id"))
    scenario: Mapped[str] = mapped_column(String(50))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    model_artifact_id: Mapped[int] = mapped_column(ForeignKey("model_artifacts.id"))
    adapter: Mapped[str] = mapped_column(String(100))
    runtime_version: Mapped[str] = mapped_column(String(100))
    execution_provider: Mapped[str] = mapped_column(String(200))
    device_target: Mapped[str] = mapped_column(String(100))
    precision: Mapped[str] = mapped_column(String(20))
    batch: Mapped[int] = mapped_column(Integer)
    threads: Mapped[int | None] = mapped_column(Integer)
    energy_method: Mapped[str | None] = mapped_column(String(20))
    energy_scope: Mapped[str | None] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(20))
    #: valid runs counted here
    runs: Mapped[int] = mapped_column(BigInteger)
    first_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: the latest run (by started_at, then uuid): the row's drill-down target
    last_run_uuid: Mapped[str] = mapped_column(String(36))
    # Per figure: how many of the runs have it, and their sum (the mean is sum / n).
    inferences_per_joule_n: Mapped[int] = mapped_column(BigInteger)
    inferences_per_joule_sum: Mapped[float] = mapped_column(Float)
    joules_per_inference_n: Mapped[int] = mapped_column(BigInteger)
    joules_per_inference_sum: Mapped[float] = mapped_column(Float)
    tokens_per_joule_n: Mapped[int] = mapped_column(BigInteger)
    tokens_per_joule_sum: Mapped[float] = mapped_column(Float)
    latency_p50_ms_n: Mapped[int] = mapped_column(BigInteger)
    latency_p50_ms_sum: Mapped[float] = mapped_column(Float)
    latency_p90_ms_n: Mapped[int] = mapped_column(BigInteger)
    latency_p90_ms_sum: Mapped[float] = mapped_column(Float)
    latency_p99_ms_n: Mapped[int] = mapped_column(BigInteger)
    latency_p99_ms_sum: Mapped[float] = mapped_column(Float)
    latency_e2e_p50_ms_n: Mapped[int] = mapped_column(BigInteger)
    latency_e2e_p50_ms_sum: Mapped[float] = mapped_column(Float)
    latency_e2e_p90_ms_n: Mapped[int] = mapped_column(BigInteger)
    latency_e2e_p90_ms_sum: Mapped[float] = mapped_column(Float)
    ttft_ms_n: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_sum: Mapped[float] = mapped_column(Float)
    tpot_ms_n: Mapped[int] = mapped_column(BigInteger)
    tpot_ms_sum: Mapped[float] = mapped_column(Float)
    throughput_ips_n: Mapped[int] = mapped_column(BigInteger)
    throughput_ips_sum: Mapped[float] = mapped_column(Float)
    uncertainty_pct_n: Mapped[int] = mapped_column(BigInteger)
    uncertainty_pct_sum: Mapped[float] = mapped_column(Float)
    network_j_per_inference_n: Mapped[int] = mapped_column(BigInteger)
    network_j_per_inference_sum: Mapped[float] = mapped_column(Float)
    energy_to_solution_j_per_inference_n: Mapped[int] = mapped_column(BigInteger)
    energy_to_solution_j_per_inference_sum: Mapped[float] = mapped_column(Float)
