"""The result of a run: the payload stored, printed with --json and uploaded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from wattbench.core.adapter import AdapterDescription, ModelArtifact
from wattbench.core.carbon import CarbonFootprint
from wattbench.core.confidence import TrialConfidence
from wattbench.core.config import RunConfig
from wattbench.core.network import NetworkResult
from wattbench.core.power import EnergyMethod, EnergyScope
from wattbench.core.stats import LatencyStats
from wattbench.core.suite import QualityResult


class TrialEnergy(BaseModel):
    """One reader's energy for one trial window."""

    reader: str
    method: EnergyMethod
    scope: EnergyScope
    component: str
    gross_j: float
    idle_w: float = Field(description="Mean power of the idle baseline window.")
    net_j: float = Field(description="gross_j - idle_w x duration_s; may be < 0 if noisy.")
    duration_s: float
    mean_power_w: float
    peak_power_w: float | None
    samples: int
    sample_rate_hz: float | None
    update_period_s: float | None
    uncertainty_j: float | None
    valid: bool
    invalid_reasons: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    trace: list[tuple[float, float]] = Field(default_factory=list)


class TrialResult(BaseModel):
    index: int
    queries: int
    inferences: int
    duration_s: float
    throughput_ips: float
    latency: LatencyStats
    energy: list[TrialEnergy]
    throttled: bool = Field(
        default=False,
        description="The device throttled during this trial (clock below the value set, a "
        "thermal trip point reached, or a platform throttle flag); see throttle_reasons.",
    )
    max_temp_c: float | None = Field(
        default=None, description="Hottest temperature sampled during the trial, deg C."
    )
    throttle_reasons: list[str] = Field(default_factory=list)


class TrialThermal(BaseModel):
    """A trial's thermal figures, kept in the run's ``thermal`` section as well (a run
    rebuilt from the store's rows gets them back from there)."""

    index: int
    throttled: bool = False
    max_temp_c: float | None = None
    throttle_reasons: list[str] = Field(default_factory=list)


class ThermalSummary(BaseModel):
    """Temperatures and throttling sampled during a run's measured windows."""

    max_temp_c: float | None = Field(description="Hottest sample over all trials, deg C.")
    sensors: dict[str, float] = Field(
        default_factory=dict, description="Hottest sample per sensor over all trials, deg C."
    )
    throttled_trials: list[int] = Field(
        default_factory=list, description="Indices of the trials that throttled."
    )
    trials: list[TrialThermal] = Field(default_factory=list)
    period_s: float | None = Field(default=None, description="Sampling period, s.")
    sources: list[str] = Field(
        default_factory=list, description="What was sampled (thermal zones, hwmon, NVML, ...)."
    )

    @property
    def throttled(self) -> bool:
        return bool(self.throttled_trials)


class EnergySummary(BaseModel):
    """One reader's energy over all trials; the first summary is the headline."""

    reader: str
    method: EnergyMethod
    scope: EnergyScope
    component: str
    gross_j: float
    net_j: float
    idle_w: float
    duration_s: float
    inferences_per_joule: float | None = Field(description="Inferences / gross J.")
    joules_per_inference: float | None
    inferences_per_joule_net: float | None = Field(description="Inferences / net J.")
    mean_power_w: float
    peak_power_w: float | None
    uncertainty_j: float | None
    sample_rate_hz: float | None
    estimated: bool
    details: dict[str, Any] = Field(default_factory=dict)


class GenerationMetrics(BaseModel):
    """Text-generation figures; prefill and decode energy come from separate windows."""

    prompt_tokens: int = Field(description="Tokens per prompt (prefill length).")
    output_tokens: int = Field(description="Generated tokens per prompt (decode length).")
    ttft_ms: LatencyStats = Field(description="Time to first token, per prompt.")
    tpot_ms: LatencyStats = Field(description="Time per output token after the first.")
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    prefill_j_per_token: float | None = Field(description="Headline reader, prefill windows.")
    decode_j_per_token: float | None = Field(description="Headline reader, decode windows.")
    tokens_per_joule: float | None = Field(
        description="One standard request composed from the two windows: (prompt + output "
        "tokens) / (prefill J per prompt + (output tokens - 1) x decode J per token)."
    )
    prefill_energy: list[EnergySummary] = Field(default_factory=list)
    decode_energy: list[EnergySummary] = Field(default_factory=list)
    prefill_trials: list[TrialResult] = Field(
        default_factory=list,
        description="The prefill windows (inferences = prompt tokens); the run's own trials "
        "are the decode windows.",
    )
    details: dict[str, Any] = Field(default_factory=dict)


class RunResult(BaseModel):
    run_id: str
    suite: str
    suite_version: str
    scenario: str = "single-stream"
    config: RunConfig
    model: ModelArtifact
    adapter: AdapterDescription
    device: dict[str, Any]
    environment: dict[str, Any]
    inputs: str
    started_at: datetime
    finished_at: datetime
    load_ms: float
    first_inference_ms: float
    preprocess_ms_mean: float
    latency: LatencyStats
    latency_histogram: list[tuple[float, int]] = Field(
        default_factory=list,
        description="Per-query latency, all trials: (upper bin edge in ms, count), log bins.",
    )
    latency_e2e: LatencyStats | None = Field(
        default=None,
        description="End to end per query: acquisition + preprocessing + inference + "
        "post-processing, timed outside the energy windows.",
    )
    e2e_breakdown_ms: dict[str, float] = Field(
        default_factory=dict, description="Mean ms per end-to-end stage."
    )
    scenario_details: dict[str, Any] = Field(
        default_factory=dict, description="Scenario settings found/used (QPS, concurrency, ...)."
    )
    artifacts: dict[str, str] = Field(
        default_factory=dict, description="Text logs kept with the run (LoadGen summary, ...)."
    )
    throughput_ips: float
    inferences: int
    trials: list[TrialResult]
    energy: list[EnergySummary]
    quality: QualityResult
    carbon: CarbonFootprint | None = None
    generation: GenerationMetrics | None = None
    network: NetworkResult | None = None
    thermal: ThermalSummary | None = Field(
        default=None, description="Temperatures and throttling during the trials."
    )
    confidence: TrialConfidence | None = Field(
        default=None,
        description="95% CI of the median of inferences per joule and p90 latency across "
        "trials, the trials measured and why measuring stopped (--target-ci).",
    )
    valid: bool
    invalid_reasons: list[str]
    warnings: list[str]
    labels: list[str]

    @property
    def headline(self) -> EnergySummary | None:
        return self.energy[0] if self.energy else None
