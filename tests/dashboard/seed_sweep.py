"""A seeded settings sweep (``wattbench sweep settings``) for the Sweep page tests.

CPU max frequency x batch on one synthetic board, plus the baseline. Power grows with the
cube of the clock, so the middle clock is the cheapest per inference and the highest is
the fastest; batching trades latency for energy. The fastest batch-1 point ran hot and is
marked throttled (its trials and its ``thermal`` section), as the thermal monitor would.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta
from pathlib import Path

from seed import (
    HARDWARE,
    METHODS,
    PRECISIONS,
    RUNTIMES,
    START,
    SYNTHETIC_LABEL,
    base_run,
    vary,
)

from wattbench.core.results import RunResult, ThermalSummary, TrialThermal
from wattbench.results_db.store import Store

SETTINGS_SWEEP_ID = "syn0tune"
FREQS_MHZ = (600, 1200, 1800)
BATCHES = (1, 4)
BOUND_MS = 13.0
#: the point that throttled
HOT = "cpu-max-freq=1800MHz,batch=1"


def _throttled(run: RunResult) -> RunResult:
    trials = [
        t.model_copy(
            update={
                "throttled": t.index == 1,
                "max_temp_c": 88.0 + 9 * (t.index == 1),
                "throttle_reasons": ["x86_pkg_temp at 97 C >= its passive trip 95 C"]
                if t.index == 1
                else [],
            }
        )
        for t in run.trials
    ]
    thermal = ThermalSummary(
        max_temp_c=97.0,
        sensors={"x86_pkg_temp": 97.0},
        throttled_trials=[1],
        trials=[
            TrialThermal(
                index=t.index,
                throttled=t.throttled,
                max_temp_c=t.max_temp_c,
                throttle_reasons=t.throttle_reasons,
            )
            for t in trials
        ],
        period_s=0.5,
        sources=["thermal zone x86_pkg_temp (trip passive 95 C)"],
    )
    return run.model_copy(update={"trials": trials, "thermal": thermal})


def settings_sweep_runs(base: RunResult, seed: int = 17) -> list[RunResult]:
    rng = random.Random(seed)
    board = HARDWARE[1]
    meta = f"sweep-meta:search=exhaustive,grid={len(FREQS_MHZ) * len(BATCHES)},p90<={BOUND_MS:g}ms"
    points: list[tuple[dict[str, str], int, int]] = [({}, 1800, 1)]
    points += [
        ({"cpu-max-freq": f"{f}MHz", "batch": str(b)}, f, b) for f in FREQS_MHZ for b in BATCHES
    ]
    runs = []
    for i, (settings, mhz, batch) in enumerate(points):
        rel = mhz / 1800
        lat_x = (2.5 if batch > 1 else 1.0) / rel  # latency multiplier
        power = 2.0 + 6.0 * rel**3  # W
        power_x = power * (0.6 / 2.5 if batch > 1 else 1.0)  # batching amortises
        hw = dataclasses.replace(board, speed=1 / lat_x, power_w=power_x)
        labels = [SYNTHETIC_LABEL, f"sweep:{SETTINGS_SWEEP_ID}", meta]
        labels += [f"setting:{k}={v}" for k, v in settings.items()] or ["setting:baseline"]
        run = vary(
            base, rng, hw=hw, device_no=1, runtime=RUNTIMES[0], precision=PRECISIONS[0],
            method=METHODS[1], labels=labels,
            started_at=START + timedelta(days=400, minutes=5 * i),
        )  # fmt: skip
        key = ",".join(f"{k}={v}" for k, v in settings.items())
        runs.append(_throttled(run) if key == HOT else run)
    return runs


def seed_settings_sweep(url: str, tmp: Path) -> list[RunResult]:
    runs = settings_sweep_runs(base_run(tmp))
    store = Store.open(url)
    try:
        for r in runs:
            store.save_run(r)
    finally:
        store.close()
    return runs
