"""Real RunResults with chosen per-trial values, for the gate tests.

One run of the fake protocol (FakeAdapter, FakePowerReader, FakeSuite) gives a
template; its trials are then replaced by trials with the latency p90,
throughput and energy per inference a test asks for. Everything else (config,
model, adapter, device, energy summaries) is the real thing, so the JSON and
store round trips are exercised as in production.
"""

from __future__ import annotations

import functools
import json
import tempfile
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.power import EnergyMethod
from wattbench.core.results import RunResult, TrialResult
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness.protocol import Runner, summarize_energy


@functools.lru_cache(maxsize=4)
def template(method: EnergyMethod = EnergyMethod.COUNTER) -> RunResult:
    clock = FakeClock()
    cfg = RunConfig(
        suite="fake",
        adapter="fake",
        duration_s=0.1,
        min_queries=10,
        repeats=2,
        warmup_s=0.01,
        idle_s=0.1,
        cooldown_s=0,
        device_name="bench-01",
    )
    cache = ModelCache(Path(tempfile.mkdtemp(prefix="gate-cache-")))
    return Runner(
        cfg,
        FakeSuite(),
        FakeAdapter(clock, 0.001),
        [FakePowerReader(clock, 5.0, method=method)],
        cache,
        clock_ns=clock,
        sleep=clock.advance,
    ).execute()


def make_run(
    p90_ms: Sequence[float],
    *,
    throughput_ips: Sequence[float] | None = None,
    j_per_inference: Sequence[float] | None = None,
    method: EnergyMethod = EnergyMethod.COUNTER,
    labels: Sequence[str] = (),
    valid: bool = True,
    started_at: datetime | None = None,
    batch: int = 1,
    precision: str = "fp32",
    inferences: int = 1000,
) -> RunResult:
    """A run whose trial k has p90 ``p90_ms[k]`` and the given throughput/energy.

    Throughput defaults to 1000 / p90 (a slower trial is a less productive one) and
    energy per inference to 5 W x p90 (a longer inference costs more energy).
    """
    t = template(method)
    n = len(p90_ms)
    ips = list(throughput_ips) if throughput_ips is not None else [1000 / p for p in p90_ms]
    jpi = list(j_per_inference) if j_per_inference is not None else [5e-3 * p for p in p90_ms]
    trials = []
    for k in range(n):
        duration_s = inferences / ips[k]
        lat = t.trials[0].latency.model_copy(
            update={"p90_ms": p90_ms[k], "p50_ms": p90_ms[k] * 0.9}
        )
        e0 = t.trials[0].energy[0]
        gross = jpi[k] * inferences
        energy = e0.model_copy(
            update={
                "gross_j": gross,
                "net_j": gross - e0.idle_w * duration_s,
                "duration_s": duration_s,
                "mean_power_w": gross / duration_s,
            }
        )
        trials.append(
            TrialResult(
                index=k,
                queries=inferences // batch,
                inferences=inferences,
                duration_s=duration_s,
                throughput_ips=ips[k],
                latency=lat,
                energy=[energy],
            )
        )
    total = sum(tr.inferences for tr in trials)
    adapter = t.adapter.model_copy(update={"precision": precision})
    update: dict[str, Any] = {
        "run_id": str(uuid.uuid4()),
        "trials": trials,
        "energy": [summarize_energy([tr.energy[0] for tr in trials], total)],
        "inferences": total,
        "throughput_ips": float(np.mean(ips)),
        "labels": list(labels),
        "valid": valid,
        "invalid_reasons": [] if valid else ["quality check failed: non-finite outputs"],
        "config": t.config.model_copy(update={"batch": batch, "repeats": n}),
        "adapter": adapter,
        "started_at": started_at or datetime.now(timezone.utc),
    }
    update["finished_at"] = update["started_at"] + timedelta(seconds=10)
    return t.model_copy(update=update)


def with_tokens(result: RunResult, tokens: Sequence[int]) -> dict[str, Any]:
    """The run's JSON with a per-trial ``tokens`` count, as a token-counting suite writes it
    (RunResult has no such field yet)."""
    data = result.model_dump(mode="json")
    for tr, tok in zip(data["trials"], tokens, strict=True):
        tr["tokens"] = tok
    return data


def dump(
    result: RunResult | dict[str, Any] | Sequence[RunResult | dict[str, Any]], path: Path
) -> Path:
    """Write like `wattbench run --json` (one object) or a list of them."""

    def one(r: RunResult | dict[str, Any]) -> Any:
        return r.model_dump(mode="json") if isinstance(r, RunResult) else r

    data = one(result) if isinstance(result, (RunResult, dict)) else [one(r) for r in result]
    path.write_text(json.dumps(data, indent=2))
    return path


def noisy(rng: np.random.Generator, center: float, cv: float, n: int) -> list[float]:
    """``n`` per-trial values around ``center`` with relative noise ``cv``."""
    return [float(v) for v in center * (1 + cv * rng.standard_normal(n))]
