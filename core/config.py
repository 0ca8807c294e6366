"""Typed run configuration; every field documents itself."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from wattbench.core.adapter import Precision


class RunConfig(BaseModel):
    """Everything that defines one benchmark run (stored with the result)."""

    model_config = ConfigDict(frozen=True)

    suite: str = Field(description="Suite name, see `wattbench suites`.")
    adapter: str = Field(description="Runtime adapter name, see `wattbench adapters`.")
    model: Path | None = Field(default=None, description="User model file instead of the suite's.")
    device: str = Field(default="cpu", description="Adapter device (cpu, cuda, ...).")
    threads: int | None = Field(default=None, ge=1, description="Runtime intra-op threads.")
    precision: Precision | None = Field(
        default=None, description="Model precision; None runs the model at its own."
    )
    batch: int = Field(default=1, ge=1, description="Samples per query.")
    duration_s: float = Field(
        default=10.0, gt=0, description="Minimum measured-window length per trial."
    )
    min_queries: int = Field(default=100, ge=1, description="Minimum queries per trial.")
    repeats: int = Field(default=3, ge=1, description="Trials (measured windows).")
    warmup_s: float = Field(default=2.0, ge=0, description="Warm-up time before measuring.")
    warmup_queries: int = Field(default=10, ge=0, description="Minimum warm-up queries.")
    idle_s: float = Field(default=3.0, gt=0, description="Idle-power baseline window.")
    cooldown_s: float = Field(default=1.0, ge=0, description="Pause between trials.")
    power: tuple[str, ...] = Field(
        default=("auto",), description="Power readers; the first gives the headline figure."
    )
    tdp_w: float | None = Field(default=None, gt=0, description="CPU TDP for the estimate.")
    labels: tuple[str, ...] = Field(default=(), description="Free-form labels, e.g. git:abc.")
    data_dir: Path | None = Field(default=None, description="Real inputs for the suite.")
    seed: int = Field(default=0, description="Seed of random weights and synthetic inputs.")
    stability_threshold: float = Field(
        default=0.05, gt=0, description="Trial CV above which a stability warning is given."
    )
    carbon_intensity_g_per_kwh: float | None = Field(
        default=None, gt=0, description="Grid carbon intensity for the CO2e figure."
    )
    country: str | None = Field(
        default=None, description="ISO 3166 alpha-3 country for codecarbon's grid intensity."
    )
    sysfs_root: Path | None = Field(
        default=None, description="Root under which power readers read sysfs (tests, replays)."
    )
    adapter_options: dict[str, str] = Field(
        default_factory=dict, description="Adapter settings KEY -> value (--adapter-opt)."
    )
    power_options: dict[str, str] = Field(
        default_factory=dict, description="Reader settings 'reader.key' -> value."
    )
    device_name: str | None = Field(default=None, description="Name of this device (hostname).")
    # -- scenario (MLPerf semantics) ------------------------------------------------------
    scenario: Literal["single-stream", "offline", "server"] = Field(
        default="single-stream",
        description="single-stream: one query at a time (headline p90 latency); offline: all "
        "samples at once (headline samples/s); server: Poisson arrivals at a target QPS.",
    )
    driver: Literal["builtin", "loadgen"] = Field(
        default="builtin", description="Who issues the queries: wattbench or MLPerf LoadGen."
    )
    target_qps: float | None = Field(
        default=None, gt=0, description="Server scenario: arrival rate; None searches the highest."
    )
    latency_bound_ms: float | None = Field(
        default=None, gt=0, description="Server scenario: p99 latency bound the QPS must meet."
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Offline/server: queries in flight (None: adapter's choice).",
    )
    e2e_queries: int = Field(
        default=50,
        ge=0,
        description="Queries timed end to end (acquisition + pre + inference + post), outside "
        "the energy windows; 0 skips.",
    )
    # -- edge / cloud / hybrid -------------------------------------------------------------
    mode: Literal["edge", "cloud", "hybrid"] = Field(
        default="edge",
        description="edge: all on this device; cloud: every query to --cloud-url; hybrid: "
        "queries below --escalate-below confidence go to the cloud.",
    )
    cloud_url: str | None = Field(default=None, description="Cloud inference endpoint.")
    escalate_below: float | None = Field(
        default=None, ge=0, le=1, description="Hybrid: escalate when confidence is below this."
    )
    network_link: str = Field(
        default="wifi", description="Access link of the network energy model (wifi, ethernet, ...)."
    )
    payload: str | None = Field(
        default=None,
        description="Cloud/hybrid: wire encoding of an escalated sample: raw (the source's "
        "bytes), png[@SIDE], jpeg[:Q][@SIDE] or npy (preprocessed inputs); None: jpeg:90 for "
        "images, npy otherwise.",
    )
    network_model: Path | None = Field(
        default=None,
        description="Cloud/hybrid: JSON file overriding the network energy model's kWh/GB "
        "coefficients (docs/network.md); None: the built-in model, or WATTBENCH_NETWORK_MODEL.",
    )
    cloud_j_per_request: float | None = Field(
        default=None,
        ge=0,
        description="Cloud/hybrid: cloud compute joules per answered request when the server "
        "meters none (labelled estimated).",
    )
