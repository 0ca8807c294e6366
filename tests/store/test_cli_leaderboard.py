"""`wattbench leaderboard` ranks like with like: one table and one rank 1 per energy scope."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbench.core.power import EnergyScope
from wattbench.core.results import RunResult
from wattbench.results_db.store import Store

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))


def at_scope(run: RunResult, scope: EnergyScope) -> RunResult:
    return run.model_copy(
        update={"energy": [run.energy[0].model_copy(update={"scope": scope}), *run.energy[1:]]}
    )


def wattbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATTBENCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )


def test_chip_and_wall_figures_of_one_device_rank_in_two_groups(
    tmp_path: Path, new_run: Callable[..., Any]
) -> None:
    db = f"sqlite:///{tmp_path / 'results.db'}"
    store = Store.open(db)
    chip = at_scope(new_run(ipj=500.0), EnergyScope.CHIP)  # would "beat" the wall figure
    wall = at_scope(new_run(ipj=100.0), EnergyScope.WALL)
    store.save_run(chip)
    store.save_run(wall)

    proc = wattbench("leaderboard", "--db", db, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["energy_scope"], r["rank"]) for r in rows] == [("wall", 1), ("chip", 1)]
    assert rows[0]["rank_group"].endswith(" · edge · wall · measured")
    assert rows[1]["rank_group"].endswith(" · edge · chip · measured")
    assert rows[0]["run_id"] == wall.run_id and rows[1]["run_id"] == chip.run_id

    table = wattbench("leaderboard", "--db", db)
    assert table.returncode == 0, table.stderr
    titles = [line for line in table.stdout.splitlines() if "ranked by" in line]
    assert len(titles) == 2, table.stdout
    assert "wall scope · measured" in titles[0] and "chip scope · measured" in titles[1]

    csv_out = wattbench("leaderboard", "--db", db, "--format", "csv")
    assert "rank_group" in csv_out.stdout.splitlines()[0].split(",")

    only_chip = json.loads(
        wattbench("leaderboard", "--db", db, "--format", "json", "--scope", "chip").stdout
    )
    assert [(r["run_id"], r["rank"]) for r in only_chip] == [(chip.run_id, 1)]

    bad = wattbench("leaderboard", "--db", db, "--scope", "socket")
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--scope" in errors[0] and "Traceback" not in bad.stderr
