"""Procurement on one device measured at chip and at wall scope: two groups, two rank 1s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from seed import seed_url

from wattbench.dashboard.queries.procurement import candidates


def test_chip_and_wall_of_one_device_rank_apart(
    tmp_path: Path, run_page: Callable[..., Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    seed_url(url, tmp_path, dual_scope=True, repeats=1)
    at = run_page(url, "procurement")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    tables = [d.value for d in at.dataframe[1:]]  # [0] is the price editor
    rows = pd.concat(tables)
    dual = rows[rows["config"].str.contains("dual-scope")]
    assert set(dual["group"]) == {"wall · measured", "chip · measured"}, dual
    for t in tables:
        assert t["group"].nunique() == 1 and t["rank"].iloc[0] == 1
    assert tables[0]["group"].iloc[0] == "wall · measured"  # the widest scope first
    basis = dict(zip(dual["group"], dual["energy basis"], strict=True))
    assert "LOWER BOUND" in basis["chip · measured"]
    assert basis["wall · measured"] == "wall: as billed"


def test_candidates_carry_scope_and_drop_unknown_figures() -> None:
    configs = pd.DataFrame(
        {
            "config": ["a", "b"],
            "run_id": ["r1", "r2"],
            "hardware": ["hw1", "hw2"],
            "throughput_ips": [10.0, 20.0],
            "latency_p90_ms": [1.0, 2.0],
            "latency_p99_ms": [1.5, 2.5],
            "joules_per_inference": [0.1, float("nan")],
            "energy": ["measured: external · wall", "≈ ESTIMATED · chip"],
            "estimated": [False, True],
            "energy_scope": ["wall", "chip"],
        }
    )
    a, b = candidates(configs, {"r1": 2.0, "r2": float("nan")}, {"hw1": 99.0})
    assert (a.scope, a.estimated, a.idle_w, a.device_price) == ("wall", False, 2.0, 99.0)
    assert (b.scope, b.estimated, b.joules_per_inference, b.idle_w, b.device_price) == (
        "chip",
        True,
        None,
        None,
        None,
    )
