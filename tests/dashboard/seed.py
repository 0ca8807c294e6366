"""A lab-sized results database for the dashboard tests, screenshots and docs.

One real run is produced by the real :class:`Runner` on fake time (FakeAdapter,
FakePowerReader, FakeSuite); every other run is a variation of it — other device,
accelerator, runtime, precision, scenario, energy method and scope, labels, dates —
with per-trial figures scaled consistently (J/inference of the headline equals the
sum of the trials' gross energy over their inferences) and a little trial-to-trial
noise, so medians and confidence intervals have something to work with.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.network import NetworkResult
from wattbench.core.power import EnergyMethod, EnergyScope
from wattbench.core.results import GenerationMetrics, RunResult
from wattbench.core.stats import latency_histogram, latency_stats
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness.network.energy_model import default_model
from wattbench.harness.protocol import Runner
from wattbench.results_db.store import Store


@dataclass(frozen=True)
class Hardware:
    name: str  # device name prefix
    cpu_model: str
    accelerator: str | None
    price: float
    nameplate_w: float
    power_w: float  # busy power
    idle_w: float
    speed: float  # latency divisor


HARDWARE = (
    # Made-up boards (the figures are synthetic: no name of a real product), each "like" a
    # class of edge device. Fast but hungry, frugal but slow: the Pareto page has a front.
    Hardware(
        "synthetic-gpu-like",
        "Synthetic CPU A (test data)",
        "Synthetic GPU module A (test data)",
        499.0,
        15,
        12.0,
        4.0,
        10.0,
    ),
    Hardware("synthetic-sbc-like", "Synthetic CPU B (test data)", None, 80.0, 12, 5.0, 3.1, 1.0),
    Hardware(
        "synthetic-coral-like",
        "Synthetic CPU C (test data)",
        "Synthetic TPU stick C (test data)",
        130.0,
        10,
        2.2,
        1.6,
        3.0,
    ),
    Hardware("synthetic-x86-like", "Synthetic CPU D (test data)", None, 650.0, 65, 28.0, 7.0, 6.0),
    Hardware(
        "synthetic-npu-like",
        "Synthetic CPU B (test data)",
        "Synthetic NPU card E (test data)",
        150.0,
        14,
        4.5,
        3.0,
        5.0,
    ),
)
#: Every seeded run carries it: the figures are made up, whatever the page shows.
SYNTHETIC_LABEL = "synthetic"
RUNTIMES = (
    ("onnxruntime", "1.20.1", "CPUExecutionProvider", 1.0),
    ("openvino", "2024.5.0", "CPU", 1.15),
    ("litert", "1.0.1", "XNNPACK", 0.9),
)
PRECISIONS = (("fp32", 1.0, 1.0), ("fp16", 1.4, 0.9), ("int8", 2.2, 0.8))
METHODS = (
    (EnergyMethod.COUNTER, EnergyScope.CHIP),
    (EnergyMethod.POLLED, EnergyScope.MODULE),
    (EnergyMethod.EXTERNAL, EnergyScope.WALL),
    (EnergyMethod.ESTIMATED, EnergyScope.CHIP),
)
START = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)
#: The dashboard's entry script, for AppTest.from_file and the browser test.
APP_PATH = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def base_run(tmp: Path) -> RunResult:
    """One real run of the protocol on fake time (3 trials, a power trace per trial)."""
    clock = FakeClock()
    cfg = RunConfig(
        suite="fake",
        adapter="fake",
        duration_s=1,
        min_queries=10,
        repeats=3,
        warmup_s=0.1,
        idle_s=1,
        cooldown_s=0,
        device_name="synthetic-base-01",
    )
    adapter = FakeAdapter(clock, 0.004)
    reader = FakePowerReader(clock, lambda t: 5.0 + 0.5 * ((t * 7) % 1.0))
    return Runner(
        cfg,
        FakeSuite(),
        adapter,
        [reader],
        ModelCache(tmp / "cache"),
        clock_ns=clock,
        sleep=clock.advance,
    ).execute()


def vary(
    base: RunResult,
    rng: random.Random,
    *,
    hw: Hardware,
    device_no: int,
    runtime: tuple[str, str, str, float],
    precision: tuple[str, float, float],
    method: tuple[EnergyMethod, EnergyScope],
    scenario: str = "single-stream",
    suite: tuple[str, str] = ("mobilenet_v2", "1.0"),
    labels: list[str] | None = None,
    started_at: datetime = START,
    valid: bool = True,
) -> RunResult:
    """``base`` as if run on ``hw`` with ``runtime`` at ``precision``, measured by ``method``."""
    adapter_name, version, provider, rt_speed = runtime
    prec, prec_speed, prec_power = precision
    speed = hw.speed * rt_speed * prec_speed * (1.6 if scenario == "offline" else 1.0)
    lat_f = 1.0 / speed * rng.uniform(0.97, 1.03)  # latency multiplier vs the base run
    busy_w = hw.power_w * prec_power * rng.uniform(0.97, 1.03)
    np_rng = np.random.default_rng(rng.getrandbits(32))
    base_ms = base.latency.p50_ms
    all_ns: list[np.ndarray] = []
    trials = []
    total_j = 0.0
    total_inf = 0
    for t in base.trials:
        noise = rng.uniform(0.97, 1.03)
        inferences = max(1, round(t.inferences / lat_f * noise))
        p_scale = busy_w / (t.energy[0].mean_power_w or 1.0)
        energy = []
        for e in t.energy:
            gross = e.gross_j * p_scale * rng.uniform(0.98, 1.02)
            energy.append(
                e.model_copy(
                    update={
                        "method": method[0],
                        "scope": method[1],
                        "reader": "estimate" if method[0] is EnergyMethod.ESTIMATED else "rail",
                        "gross_j": gross,
                        "idle_w": hw.idle_w,
                        "net_j": gross - hw.idle_w * e.duration_s,
                        "mean_power_w": gross / e.duration_s,
                        "peak_power_w": (e.peak_power_w or 0) * p_scale,
                        "uncertainty_j": gross
                        * (1.0 if method[0] is EnergyMethod.ESTIMATED else 0.03),
                        "trace": [(ts, w * p_scale) for ts, w in e.trace],
                    }
                )
            )
        total_j += energy[0].gross_j
        total_inf += inferences
        # A right-skewed latency distribution (the fake adapter's is constant).
        sample = np_rng.lognormal(np.log(base_ms * lat_f * noise * 1e6), 0.12, 400)
        sample[:8] *= np_rng.uniform(1.5, 3.0, 8)  # a few stragglers make a tail
        all_ns.append(sample)
        lat = latency_stats(sample)
        trials.append(
            t.model_copy(
                update={
                    "inferences": inferences,
                    "queries": inferences,
                    "throughput_ips": inferences / t.duration_s,
                    "latency": lat,
                    "energy": energy,
                }
            )
        )
    duration = sum(t.duration_s for t in base.trials)
    head = base.energy[0]
    headline = head.model_copy(
        update={
            "reader": trials[0].energy[0].reader,
            "method": method[0],
            "scope": method[1],
            "gross_j": total_j,
            "net_j": total_j - hw.idle_w * duration,
            "idle_w": hw.idle_w,
            "mean_power_w": total_j / duration,
            "inferences_per_joule": total_inf / total_j,
            "joules_per_inference": total_j / total_inf,
            "inferences_per_joule_net": total_inf / max(total_j - hw.idle_w * duration, 1e-9),
            "uncertainty_j": total_j * (1.0 if method[0] is EnergyMethod.ESTIMATED else 0.03),
            "estimated": method[0] is EnergyMethod.ESTIMATED,
        }
    )
    device = dict(base.device) | {
        "name": f"{hw.name}-{device_no:02d}",
        "hostname": f"{hw.name}-{device_no:02d}",
        "cpu_model": hw.cpu_model,
        "purchase_price": hw.price,
        "currency": "EUR",
        "nameplate_power_w": hw.nameplate_w,
    }
    if hw.accelerator:
        device["accelerator"] = hw.accelerator
    adapter = base.adapter.model_copy(
        update={
            "adapter": adapter_name,
            "runtime": adapter_name,
            "runtime_version": version,
            "execution_provider": provider,
            "precision": prec,
        }
    )
    model = base.model.model_copy(
        update={
            "name": f"{suite[0]}_1.0_224",
            "precision": prec,
            "sha256": f"{PRECISIONS.index(precision) + 1:064x}",
        }
    )
    latency = latency_stats(np.concatenate(all_ns))
    hist = latency_histogram(np.concatenate(all_ns))
    reasons = [] if valid else ["rail: counter did not move during trial 2"]
    return base.model_copy(
        update={
            "run_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "suite": suite[0],
            "suite_version": suite[1],
            "scenario": scenario,
            "device": device,
            "adapter": adapter,
            "model": model,
            "trials": trials,
            "energy": [headline],
            "latency": latency,
            "latency_histogram": hist,
            "throughput_ips": total_inf / duration,
            "inferences": total_inf,
            "labels": labels or [],
            "started_at": started_at,
            "finished_at": started_at + timedelta(seconds=duration + 5),
            "valid": valid,
            "invalid_reasons": reasons,
            "warnings": [],
        }
    )


def lab_runs(base: RunResult, *, repeats: int = 2, seed: int = 7) -> list[RunResult]:
    """Every hardware × runtime × precision, each device measured one way (the CPU-only
    boards only by estimate), ``repeats`` runs each, two scenarios; some invalid."""
    rng = random.Random(seed)
    out: list[RunResult] = []
    day = 0
    for h_i, hw in enumerate(HARDWARE):
        # The CPU-only boards only by estimate.
        method = METHODS[3] if hw.accelerator is None else METHODS[h_i % 3]
        for runtime in RUNTIMES:
            for precision in PRECISIONS:
                for scenario in ("single-stream", "offline"):
                    for k in range(repeats):
                        day += 1
                        out.append(
                            vary(
                                base,
                                rng,
                                hw=hw,
                                device_no=1 + k % 2,
                                runtime=runtime,
                                precision=precision,
                                method=method,
                                scenario=scenario,
                                labels=[SYNTHETIC_LABEL, "lab", f"git:{rng.getrandbits(28):07x}"]
                                + (["nightly"] if k == 0 else []),
                                started_at=START + timedelta(hours=7 * day),
                                valid=rng.random() > 0.05,
                            )
                        )
    return out


#: The seeded escalation sweep: its id and thresholds (``sweep:<id>``, ``threshold:<t>``).
SWEEP_ID = "syn0sweep"
THRESHOLDS = ("0", "0.25", "0.5", "0.75", "1")
CLOUD_URL = "http://127.0.0.1:8765/"


def network_run(
    base: RunResult,
    rng: random.Random,
    *,
    mode: str,
    threshold: float | None,
    labels: list[str],
    started_at: datetime,
    queries: int = 400,
) -> RunResult:
    """A hybrid (or cloud) run of the edge board "synthetic-npu-like" with a real
    :class:`NetworkResult`: made-up confidences decide the escalations, bytes are counted per
    escalated 54 kB JPEG, the network joules come from the real energy model (wifi) and the
    cloud's joules per request from a made-up server reading."""
    hw = HARDWARE[4]
    edge = vary(
        base,
        rng,
        hw=hw,
        device_no=1,
        runtime=RUNTIMES[0],
        precision=PRECISIONS[2],
        method=METHODS[1],
        labels=labels,
        started_at=started_at,
    )
    np_rng = np.random.default_rng(rng.getrandbits(32))
    confidence = np_rng.beta(5, 1.5, queries)
    # The edge model agrees with the cloud's less often the less sure it is.
    edge_agrees = np_rng.random(queries) < 0.55 + 0.45 * confidence
    escalate = np.ones(queries, bool) if mode == "cloud" else confidence < float(threshold or 0.0)
    n_esc = int(escalate.sum())
    failures = 1 if n_esc > 0 and threshold == 0.75 else 0  # one timed-out escalation
    agreement = float(np.mean(np.where(escalate, True, edge_agrees)))
    if failures:
        agreement -= (1 - 0.55) / queries  # its edge answer was kept (and was wrong)
    sent, received = n_esc * 54_312, n_esc * 263
    header = n_esc * 2 * 52 * 40
    wire = sent + received + header
    energy = default_model().energy("wifi", wire)
    head = edge.energy[0]
    edge_j = (head.joules_per_inference or 0.0) * (0.08 if mode == "cloud" else 1.0)
    cloud_j_req = 0.21 * rng.uniform(0.97, 1.03)  # server reader, joules per request
    cloud_j = cloud_j_req * (n_esc - failures) / queries
    network_j = energy.energy_j / queries
    rtt = latency_stats(np_rng.lognormal(np.log(18e6), 0.2, max(n_esc, 1)))
    net = NetworkResult(
        mode=mode,
        queries=queries,
        escalated=n_esc,
        escalation_failures=failures,
        bytes_sent=sent,
        bytes_received=received,
        network_j_per_inference=network_j,
        cloud_url=CLOUD_URL,
        threshold=threshold,
        escalation_rate=n_esc / queries,
        payload="jpeg:90",
        link="wifi",
        bytes_method="tcp_info",
        header_bytes=header,
        wire_bytes=wire,
        bytes_per_inference=wire / queries,
        network_j_low_per_inference=energy.low_j / queries,
        network_j_high_per_inference=energy.high_j / queries,
        edge_j_per_inference=edge_j,
        edge_energy_method=head.method.value,
        cloud_j_per_inference=cloud_j,
        cloud_energy="measured" if n_esc else "zero",
        cloud_energy_basis="server reader per request (synthetic)",
        energy_to_solution_j_per_inference=edge_j + network_j + cloud_j,
        energy_to_solution_low_j=edge_j + energy.low_j / queries + cloud_j,
        energy_to_solution_high_j=edge_j + energy.high_j / queries + cloud_j,
        agreement_with_cloud=agreement,
        round_trip=rtt if n_esc else None,
        failures={"timeout": failures} if failures else {},
        energy_model=default_model().describe("wifi"),
    )
    e2e = edge.latency.model_copy(
        update={"p50_ms": edge.latency.p50_ms + net.escalation_rate * rtt.p50_ms}
    )
    return edge.model_copy(
        update={
            "config": edge.config.model_copy(
                update={
                    "mode": mode,
                    "cloud_url": CLOUD_URL,
                    "escalate_below": threshold,
                    "labels": tuple(labels),
                }
            ),
            "network": net,
            "latency_e2e": e2e,
            "warnings": (
                [f"{failures} of {n_esc} escalations to {CLOUD_URL} failed (timeout: 1)"]
                if failures
                else []
            ),
        }
    )


def sweep_runs(base: RunResult, seed: int = 11) -> list[RunResult]:
    """An escalation sweep over :data:`THRESHOLDS` plus one cloud-only baseline run."""
    rng = random.Random(seed)
    start = START + timedelta(days=60)
    out = [
        network_run(
            base,
            rng,
            mode="hybrid",
            threshold=float(t),
            labels=[SYNTHETIC_LABEL, f"sweep:{SWEEP_ID}", f"threshold:{t}"],
            started_at=start + timedelta(minutes=5 * i),
        )
        for i, t in enumerate(THRESHOLDS)
    ]
    out.append(
        network_run(
            base,
            rng,
            mode="cloud",
            threshold=None,
            labels=[SYNTHETIC_LABEL, "cloud-baseline"],
            started_at=start + timedelta(minutes=30),
        )
    )
    return out


#: The slm runs' generation shape: prompt and output tokens per request.
SLM_PROMPT_TOKENS, SLM_OUTPUT_TOKENS = 128, 64


def slm_runs(base: RunResult, seed: int = 13) -> list[RunResult]:
    """Text-generation runs (suite ``slm``) with real :class:`GenerationMetrics`: two
    configurations, two runs each. Prefill and decode joules per token are made up;
    tokens per joule is composed from them by the harness's formula (one standard request:
    prompt + output tokens over prefill J per prompt + (output - 1) x decode J per token)."""
    rng = random.Random(seed)
    out = []
    setups = (
        (HARDWARE[0], ("onnxruntime-genai", "0.5.2", "CPUExecutionProvider", 1.0), METHODS[0]),
        (HARDWARE[3], ("transformers", "4.57.0", "torch-cpu", 0.7), METHODS[3]),
    )
    for i, (hw, runtime, method) in enumerate(setups):
        for k in range(2):
            run = vary(
                base,
                rng,
                hw=hw,
                device_no=1 + k,
                runtime=runtime,
                precision=PRECISIONS[0],
                method=method,
                suite=("slm", "1.0"),
                labels=[SYNTHETIC_LABEL, "slm"],
                started_at=START + timedelta(days=70, hours=3 * (2 * i + k)),
            )
            np_rng = np.random.default_rng(rng.getrandbits(32))
            speed = hw.speed * runtime[3]
            prefill_j = 0.004 * hw.power_w / speed * rng.uniform(0.95, 1.05)
            decode_j = 0.03 * hw.power_w / speed * rng.uniform(0.95, 1.05)
            p, o = SLM_PROMPT_TOKENS, SLM_OUTPUT_TOKENS
            gen = GenerationMetrics(
                prompt_tokens=p,
                output_tokens=o,
                ttft_ms=latency_stats(np_rng.lognormal(np.log(40e6 / speed), 0.1, 20)),
                tpot_ms=latency_stats(np_rng.lognormal(np.log(25e6 / speed), 0.1, 20 * o)),
                prefill_tokens_per_s=p / (0.04 / speed),
                decode_tokens_per_s=1 / (0.025 / speed),
                prefill_j_per_token=prefill_j,
                decode_j_per_token=decode_j,
                tokens_per_joule=(p + o) / (prefill_j * p + (o - 1) * decode_j),
                details={"synthetic": True},
            )
            out.append(
                run.model_copy(
                    update={
                        "model": run.model.model_copy(
                            update={"name": "synthetic-tiny-llama", "sha256": f"{i + 9:064x}"}
                        ),
                        "generation": gen,
                    }
                )
            )
    return out


#: A frugal made-up board measured both ways: a chip-scope counter and a wall plug.
DUAL_SCOPE_HW = Hardware(
    "synthetic-dualscope-like",
    "Synthetic CPU Z dual-scope (test data)",
    "Synthetic NPU Z dual-scope (test data)",
    90.0,
    6,
    0.9,
    0.5,
    12.0,
)
DUAL_SCOPE_DEVICE = f"{DUAL_SCOPE_HW.name}-01"


def dual_scope_runs(base: RunResult, seed: int = 17) -> list[RunResult]:
    """The SAME device, configuration, suite and scenario measured at chip scope (a
    counter) and at wall scope (a plug): two rank groups, never one ranking. The board is
    the most frugal of the seed, so it is rank 1 in both groups."""
    rng = random.Random(seed)
    return [
        vary(
            base,
            rng,
            hw=DUAL_SCOPE_HW,
            device_no=1,
            runtime=RUNTIMES[0],
            precision=PRECISIONS[0],
            method=method,
            scenario="single-stream",
            labels=[SYNTHETIC_LABEL, "lab", "dual-scope"],
            started_at=START + timedelta(days=2, hours=i),
        )
        for i, method in enumerate((METHODS[0], METHODS[2]))
    ]


def seed(store: Store, tmp: Path, *, repeats: int = 2, dual_scope: bool = False) -> list[RunResult]:
    """Fill ``store`` with :func:`lab_runs`, :func:`sweep_runs` and :func:`slm_runs` (and,
    with ``dual_scope``, :func:`dual_scope_runs`); returns them."""
    base = base_run(tmp)
    runs = lab_runs(base, repeats=repeats) + sweep_runs(base) + slm_runs(base)
    if dual_scope:
        runs += dual_scope_runs(base)
    for r in runs:
        store.save_run(r)
    return runs


def seed_url(url: str, tmp: Path, **kw: Any) -> list[RunResult]:
    store = Store.open(url)
    try:
        return seed(store, tmp, **kw)
    finally:
        store.close()
