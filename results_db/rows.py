"""How a :class:`RunResult` maps onto table rows: plain values, no database access.

Kept apart from :mod:`wattbench.results_db.ingest` (transactions, retries, shared
rows) so that what is stored can be read without the machinery of storing it.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from wattbench.core.results import RunResult, TrialEnergy
from wattbench.results_db.schema import UPLOAD_PENDING

#: Most points kept per reader per trial in ``power_traces`` (readers already downsample).
MAX_TRACE_POINTS = 2000
#: Device facts a run's ``device`` dict may carry (e.g. from the runner's config).
DEVICE_INVENTORY_KEYS = ("nameplate_power_w", "purchase_price", "currency", "rack", "location")
#: How ``run_payloads.data`` is encoded (the run exactly as recorded).
PAYLOAD_ENCODING = "json+gzip"

#: RunResult sections (added with 0003) kept whole in ``runs.extras``.
EXTRA_SECTIONS = {
    "latency_e2e",
    "e2e_breakdown_ms",
    "scenario_details",
    "artifacts",
    "generation",
    "network",
    "thermal",  # temperatures and throttling (optional; per-trial flags kept here too)
    "confidence",  # CIs of the medians across trials, why measuring stopped (--target-ci)
}


def device_name(result: RunResult) -> str:
    """The device name a run is stored (and authorised) under."""
    dev = result.device
    return str(dev.get("name") or dev.get("hostname") or "unknown")


def downsample(trace: Sequence[Sequence[float]], max_points: int) -> list[tuple[float, float]]:
    """At most ``max_points`` evenly spaced points of ``trace``, keeping the first and last."""
    n = len(trace)
    if n <= max_points:
        return [(float(p[0]), float(p[1])) for p in trace]
    picks = (round(i * (n - 1) / (max_points - 1)) for i in range(max_points))
    return [(float(trace[k][0]), float(trace[k][1])) for k in picks]


def run_values(r: RunResult, now: datetime, upload_state: str, **ids: int) -> dict[str, Any]:
    """The ``runs`` row; ``ids`` are its device/environment/suite/model_artifact ids."""
    head = r.headline
    return {
        "uuid": r.run_id,
        **ids,
        "scenario": r.scenario,
        "adapter": r.adapter.adapter,
        "runtime_version": r.adapter.runtime_version,
        "execution_provider": r.adapter.execution_provider,
        "device_target": r.adapter.device,
        "precision": r.adapter.precision,
        "batch": r.config.batch,
        "threads": r.config.threads,
        "config": r.config.model_dump(mode="json"),
        "adapter_description": r.adapter.model_dump(mode="json"),
        "inputs": r.inputs,
        "labels": list(r.labels),
        "valid": r.valid,
        "invalid_reasons": list(r.invalid_reasons),
        "warnings": list(r.warnings),
        "quality": r.quality.model_dump(mode="json"),
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "created_at": now,
        "load_ms": r.load_ms,
        "first_inference_ms": r.first_inference_ms,
        "preprocess_ms_mean": r.preprocess_ms_mean,
        "inferences": r.inferences,
        "throughput_ips": r.throughput_ips,
        "latency_mean_ms": r.latency.mean_ms,
        "latency_p50_ms": r.latency.p50_ms,
        "latency_p90_ms": r.latency.p90_ms,
        "latency_p95_ms": r.latency.p95_ms,
        "latency_p99_ms": r.latency.p99_ms,
        "latency_p999_ms": r.latency.p999_ms,
        "latency_cv": r.latency.cv,
        "inferences_per_joule": head.inferences_per_joule if head else None,
        "joules_per_inference": head.joules_per_inference if head else None,
        "energy_method": head.method.value if head else None,
        "energy_scope": head.scope.value if head else None,
        "energy_uncertainty_j": head.uncertainty_j if head else None,
        "mode": r.config.mode,
        "extras": r.model_dump(mode="json", include=EXTRA_SECTIONS),
        "latency_e2e_p50_ms": r.latency_e2e.p50_ms if r.latency_e2e else None,
        "latency_e2e_p90_ms": r.latency_e2e.p90_ms if r.latency_e2e else None,
        "ttft_ms": r.generation.ttft_ms.p50_ms if r.generation else None,
        "tpot_ms": r.generation.tpot_ms.p50_ms if r.generation else None,
        "tokens_per_joule": r.generation.tokens_per_joule if r.generation else None,
        "network_j_per_inference": (r.network.network_j_per_inference if r.network else None),
        "energy_to_solution_j_per_inference": (
            getattr(r.network, "energy_to_solution_j_per_inference", None) if r.network else None
        ),
        "upload_state": upload_state,
        "uploaded_at": now if upload_state != UPLOAD_PENDING else None,
        "upload_attempts": 0,
    }


def trial_rows(run_id: int, r: RunResult) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "index": t.index,
            "queries": t.queries,
            "inferences": t.inferences,
            "duration_s": t.duration_s,
            "throughput_ips": t.throughput_ips,
            "latency": t.latency.model_dump(mode="json"),
        }
        for t in r.trials
    ]


def energy_rows(run_id: int, r: RunResult) -> list[dict[str, Any]]:
    """``energy_measurements``: every trial's readings, then the run's summaries.

    The first of each is the headline. A summary keeps its net figure and (the
    headline) the run's carbon estimate in ``details``, which have no columns.
    """
    rows = [
        _trial_energy_values(run_id, e, t.index, i == 0)
        for t in r.trials
        for i, e in enumerate(t.energy)
    ]
    rows += [
        {
            "run_id": run_id,
            "trial_index": None,
            "reader": summary.reader,
            "is_headline": i == 0,
            "method": summary.method.value,
            "scope": summary.scope.value,
            "component": summary.component,
            "gross_j": summary.gross_j,
            "idle_w": summary.idle_w,
            "net_j": summary.net_j,
            "duration_s": summary.duration_s,
            "mean_power_w": summary.mean_power_w,
            "peak_power_w": summary.peak_power_w,
            "samples": None,
            "sample_rate_hz": summary.sample_rate_hz,
            "update_period_s": None,
            "uncertainty_j": summary.uncertainty_j,
            "valid": all(e.valid for t in r.trials for e in t.energy if e.reader == summary.reader),
            "invalid_reasons": [],
            "details": summary.details
            | {"inferences_per_joule_net": summary.inferences_per_joule_net}
            | (
                {"carbon": r.carbon.model_dump(mode="json")}
                if i == 0 and r.carbon is not None
                else {}
            ),
        }
        for i, summary in enumerate(r.energy)
    ]
    return rows


def _trial_energy_values(
    run_id: int, e: TrialEnergy, trial_index: int, headline: bool
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "trial_index": trial_index,
        "reader": e.reader,
        "is_headline": headline,
        "method": e.method.value,
        "scope": e.scope.value,
        "component": e.component,
        "gross_j": e.gross_j,
        "idle_w": e.idle_w,
        "net_j": e.net_j,
        "duration_s": e.duration_s,
        "mean_power_w": e.mean_power_w,
        "peak_power_w": e.peak_power_w,
        "samples": e.samples,
        "sample_rate_hz": e.sample_rate_hz,
        "update_period_s": e.update_period_s,
        "uncertainty_j": e.uncertainty_j,
        "valid": e.valid,
        "invalid_reasons": list(e.invalid_reasons),
        # Since 0002 the trace lives in power_traces (bounded, one row per reader/trial).
        "details": dict(e.details),
    }


def trace_rows(run_id: int, r: RunResult) -> list[dict[str, Any]]:
    """``power_traces``: one per trial and reader (the first wins), downsampled."""
    traces: dict[tuple[int, str], list[Any]] = {}
    for t in r.trials:
        for e in t.energy:
            if e.trace and (t.index, e.reader) not in traces:  # unique per run/trial/reader
                traces[(t.index, e.reader)] = (
                    e.trace
                    if len(e.trace) <= MAX_TRACE_POINTS
                    else downsample(e.trace, MAX_TRACE_POINTS)
                )
    return [
        {
            "run_id": run_id,
            "trial_index": k,
            "reader": reader,
            "n_points": len(points),
            "points": points,
        }
        for (k, reader), points in traces.items()
    ]


def histogram_rows(run_id: int, r: RunResult) -> list[dict[str, Any]]:
    """``latency_bins`` of the whole run.

    RunResult.latency_histogram is read leniently, so results from before the field
    existed (and payloads from older runners) store fine.
    """
    return [
        {"run_id": run_id, "trial_index": None, "upper_ms": float(u), "count": int(c)}
        for u, c in getattr(r, "latency_histogram", None) or ()
    ]


def payload_values(run_id: int, r: RunResult) -> dict[str, Any]:
    """The ``run_payloads`` row: the run exactly as recorded, so an upload sends it verbatim."""
    return {
        "run_id": run_id,
        "encoding": PAYLOAD_ENCODING,
        "data": gzip.compress(r.model_dump_json().encode(), compresslevel=6),
    }
