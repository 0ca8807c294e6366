"""Reading stored runs back: single runs, their traces and histograms, whole RunResults.

Runs recorded here come back from their payload exactly as recorded; the others (the
central store's, and runs stored before migration 0002) are rebuilt from their rows.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from wattbench.core.results import EnergySummary, RunResult, TrialEnergy, TrialResult
from wattbench.core.stats import LatencyStats
from wattbench.results_db.rows import DEVICE_INVENTORY_KEYS, PAYLOAD_ENCODING
from wattbench.results_db.schema import (
    Device,
    EnergyMeasurement,
    LatencyBin,
    PowerTrace,
    Run,
    RunPayload,
)


def get_run(session: sessionmaker[Session], run_id: str) -> Run | None:
    with session() as s:
        return s.scalars(select(Run).where(Run.uuid == run_id)).first()


def run_device_name(session: sessionmaker[Session], run_id: str) -> str | None:
    """The device a stored run belongs to, or None when ``run_id`` is not stored."""
    q = select(Device.name).join(Run, Run.device_id == Device.id).where(Run.uuid == run_id)
    with session() as s:
        return s.scalar(q)


def count_runs(session: sessionmaker[Session]) -> int:
    with session() as s:
        return int(s.scalar(select(func.count(Run.id))) or 0)


def power_traces(
    session: sessionmaker[Session], run_id: str
) -> dict[tuple[int, str], list[tuple[float, float]]]:
    """``{(trial_index, reader): [(t_s, power_w), ...]}`` of a run.

    Reads ``power_traces`` and, for runs stored before migration 0002, the traces
    kept in ``energy_measurements.details["trace"]``.
    """
    out: dict[tuple[int, str], list[tuple[float, float]]] = {}
    with session() as s:
        rid = s.scalar(select(Run.id).where(Run.uuid == run_id))
        if rid is None:
            return out
        for pt in s.scalars(select(PowerTrace).where(PowerTrace.run_id == rid)):
            out[(pt.trial_index, pt.reader)] = [(float(a), float(b)) for a, b in pt.points]
        legacy = select(EnergyMeasurement).where(
            EnergyMeasurement.run_id == rid, EnergyMeasurement.trial_index.is_not(None)
        )
        for em in s.scalars(legacy.order_by(EnergyMeasurement.id)):
            trace = (em.details or {}).get("trace")
            key = (int(em.trial_index or 0), em.reader)
            if trace and key not in out:
                out[key] = [(float(a), float(b)) for a, b in trace]
    return out


def latency_histogram(session: sessionmaker[Session], run_id: str) -> list[tuple[float, int]]:
    """A run's per-query latency histogram: ``[(upper_edge_ms, count), ...]``."""
    q = (
        select(LatencyBin.upper_ms, LatencyBin.count)
        .join(Run, Run.id == LatencyBin.run_id)
        .where(Run.uuid == run_id, LatencyBin.trial_index.is_(None))
        .order_by(LatencyBin.upper_ms)
    )
    with session() as s:
        return [(float(u), int(c)) for u, c in s.execute(q)]


def load_result(session: sessionmaker[Session], run_id: str) -> RunResult | None:
    """The stored run as a :class:`RunResult`, or None when ``run_id`` is not stored.

    Runs recorded here come back exactly as recorded (their payload). Others (the
    central store's, and runs stored before migration 0002) are rebuilt from their
    rows; the model file's local path is not stored, so it comes back as ``.``.
    """
    with session() as s:
        run = s.scalars(select(Run).where(Run.uuid == run_id)).first()
        if run is None:
            return None
        payload = s.get(RunPayload, run.id)
        if payload is not None and payload.encoding == PAYLOAD_ENCODING:
            return RunResult.model_validate_json(gzip.decompress(payload.data))
        return _rebuild(run)


def _rebuild(run: Run) -> RunResult:
    """A RunResult from a run's rows (its relationships load lazily in the open session)."""
    dev = run.device
    device: dict[str, Any] = {
        "hostname": dev.hostname,
        "cpu_model": dev.cpu_model,
        "cpu_cores_logical": dev.cpu_cores_logical,
        "cpu_cores_physical": dev.cpu_cores_physical,
        "memory_bytes": dev.memory_bytes,
        "arch": dev.arch,
        "name": dev.name,
    }
    if dev.accelerator is not None:
        device["accelerator"] = dev.accelerator
    for key in DEVICE_INVENTORY_KEYS:
        if getattr(dev, key) is not None:
            device[key] = getattr(dev, key)
    if dev.tags is not None:
        device["tags"] = dev.tags
    traces = {
        (pt.trial_index, pt.reader): [(float(a), float(b)) for a, b in pt.points]
        for pt in run.traces
    }
    per_trial: dict[int, list[TrialEnergy]] = {}
    summaries: list[EnergySummary] = []
    carbon = None
    energy = sorted(run.energy, key=lambda e: (not e.is_headline, e.id))
    for em in energy:
        details = dict(em.details or {})
        if em.trial_index is not None:
            legacy_trace = details.pop("trace", None) or []
            trace = traces.get((em.trial_index, em.reader)) or [
                (float(a), float(b)) for a, b in legacy_trace
            ]
            per_trial.setdefault(em.trial_index, []).append(
                TrialEnergy(
                    reader=em.reader,
                    method=em.method,  # type: ignore[arg-type]
                    scope=em.scope,  # type: ignore[arg-type]
                    component=em.component,
                    gross_j=em.gross_j,
                    idle_w=em.idle_w,
                    net_j=em.net_j,
                    duration_s=em.duration_s,
                    mean_power_w=em.mean_power_w,
                    peak_power_w=em.peak_power_w,
                    samples=em.samples or 0,
                    sample_rate_hz=em.sample_rate_hz,
                    update_period_s=em.update_period_s,
                    uncertainty_j=em.uncertainty_j,
                    valid=em.valid,
                    invalid_reasons=list(em.invalid_reasons or []),
                    details=details,
                    trace=trace,
                )
            )
            continue
        ipj_net = details.pop("inferences_per_joule_net", None)
        if "carbon" in details:
            carbon = details.pop("carbon")
        gross = em.gross_j
        ipj = run.inferences / gross if gross > 0 else None
        jpi = gross / run.inferences if gross > 0 and run.inferences else None
        if not summaries:  # the headline: as stored with the run
            ipj, jpi = run.inferences_per_joule, run.joules_per_inference
        summaries.append(
            EnergySummary(
                reader=em.reader,
                method=em.method,  # type: ignore[arg-type]
                scope=em.scope,  # type: ignore[arg-type]
                component=em.component,
                gross_j=gross,
                net_j=em.net_j,
                idle_w=em.idle_w,
                duration_s=em.duration_s,
                inferences_per_joule=ipj,
                joules_per_inference=jpi,
                inferences_per_joule_net=ipj_net,
                mean_power_w=em.mean_power_w,
                peak_power_w=em.peak_power_w,
                uncertainty_j=em.uncertainty_j,
                sample_rate_hz=em.sample_rate_hz,
                estimated=em.method == "estimated",
                details=details,
            )
        )
    trials = [
        TrialResult(
            index=t.index,
            queries=t.queries,
            inferences=t.inferences,
            duration_s=t.duration_s,
            throughput_ips=t.throughput_ips,
            latency=LatencyStats.model_validate(t.latency),
            energy=per_trial.get(t.index, []),
        )
        for t in run.trials
    ]
    thermal = (run.extras or {}).get("thermal") or {}
    flags = {int(t["index"]): t for t in thermal.get("trials", [])}
    trials = [  # throttled / hottest temperature per trial, kept in the thermal section
        t.model_copy(
            update={
                k: flags[t.index][k]
                for k in ("throttled", "max_temp_c", "throttle_reasons")
                if k in flags[t.index]
            }
        )
        if t.index in flags
        else t
        for t in trials
    ]
    lat = [t.latency for t in trials]
    latency = LatencyStats(
        count=sum(x.count for x in lat),
        mean_ms=run.latency_mean_ms,
        min_ms=min((x.min_ms for x in lat), default=run.latency_p50_ms),
        max_ms=max((x.max_ms for x in lat), default=run.latency_p999_ms),
        p50_ms=run.latency_p50_ms,
        p90_ms=run.latency_p90_ms,
        p95_ms=run.latency_p95_ms,
        p99_ms=run.latency_p99_ms,
        p999_ms=run.latency_p999_ms,
        cv=run.latency_cv,
    )
    art = run.model_artifact
    data: dict[str, Any] = {
        "run_id": run.uuid,
        "suite": run.suite.name,
        "suite_version": run.suite.version,
        "scenario": run.scenario,
        "config": run.config,
        "model": {
            "path": ".",
            "sha256": art.sha256,
            "format": art.format,
            "precision": art.precision,
            "weights": art.weights,
            "name": art.name,
        },
        "adapter": run.adapter_description,
        "device": device,
        "environment": run.environment.data,
        "inputs": run.inputs,
        "started_at": _utc(run.started_at),
        "finished_at": _utc(run.finished_at),
        "load_ms": run.load_ms,
        "first_inference_ms": run.first_inference_ms,
        "preprocess_ms_mean": run.preprocess_ms_mean,
        "latency": latency,
        "latency_histogram": [(b.upper_ms, b.count) for b in run.latency_bins],
        "throughput_ips": run.throughput_ips,
        "inferences": run.inferences,
        "trials": trials,
        "energy": summaries,
        "quality": run.quality,
        "carbon": carbon,
        "valid": run.valid,
        "invalid_reasons": list(run.invalid_reasons or []),
        "warnings": list(run.warnings or []),
        "labels": list(run.labels or []),
        # 0003: scenario, end-to-end, generation and network sections as recorded
        **(run.extras or {}),
    }
    if "latency_histogram" not in RunResult.model_fields:  # a RunResult from before it
        data.pop("latency_histogram")
    return RunResult.model_validate(data)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
