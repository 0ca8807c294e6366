"""A campaign cell samples temperatures as `wattbench run` does: one cell through the
worker and the harness executor, on a fake sysfs tree with one thermal zone, stores a run
whose ``thermal`` section holds that zone's temperature (issue 18)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from wattbench.fleet.executor import HarnessExecutor
from wattbench.fleet.ledger import Claim
from wattbench.fleet.worker import Worker
from wattbench.results_db.store import Store

FAKEPLUG = Path(__file__).parent / "fakeplug"


class _OneCellLedger:
    """The ledger of a campaign of one cell (no database, no broker)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.run_uuid = str(uuid.uuid4())
        self.finished: list[tuple[str, str | None]] = []

    def claim(self, cell_id: int, attempt: int, device: str) -> Claim:
        return Claim(
            "run", cell_id, "camp-1", attempt=attempt, run_uuid=self.run_uuid, params=self.params
        )

    def finish(self, cell_id: int, attempt: int, status: str, reason: str | None) -> None:
        self.finished.append((status, reason))

    def is_cancelled(self, campaign_id: str) -> bool:
        return False

    def register(self, *a: Any, **kw: Any) -> None: ...

    def set_adapters(self, *a: Any, **kw: Any) -> None: ...

    def heartbeat(self, *a: Any, **kw: Any) -> None: ...

    def device_stopped(self, *a: Any, **kw: Any) -> None: ...


def _zone_tree(root: Path, temp_c: float) -> Path:
    """One thermal zone, as in tests/power/test_thermal.py (nothing else in the tree)."""
    z = root / "sys/class/thermal/thermal_zone0"
    z.mkdir(parents=True)
    (z / "type").write_text("x86_pkg_temp\n")
    (z / "temp").write_text(f"{int(temp_c * 1000)}\n")
    (z / "trip_point_0_type").write_text("passive\n")
    (z / "trip_point_0_temp").write_text("95000\n")
    return root


def test_a_cell_stores_a_thermal_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FAKEPLUG))  # the fake suite and adapter's entry points
    tree = _zone_tree(tmp_path / "sysfs", 61.5)
    params: dict[str, Any] = {
        "suite": "fleet-fake",
        "power": "estimate",
        "duration": 0.2,
        "repeats": 1,
        "idle-s": 0.2,
        "warmup": 0.05,
        "cooldown": 0,
        "min-queries": 1,
        "e2e-queries": 0,
        "sysfs-root": str(tree),  # where the worker's monitor reads, as `wattbench run`
    }
    book = _OneCellLedger(params)
    store = Store.open(f"sqlite:///{tmp_path / 'spool.db'}")
    try:
        worker = Worker("lab-1", [], store, HarnessExecutor(), ledger_client=book)
        assert worker.handle(1, "camp-1", 0) == "done", book.finished
        stored = store.load_result(book.run_uuid)
        row = store.get_run(book.run_uuid)
        assert row is not None
        extras_thermal = (row.extras or {}).get("thermal")
    finally:
        store.close()
    assert stored is not None and stored.thermal is not None
    # NVML may add a GPU on a machine with one; the zone is there either way
    assert stored.thermal.sensors["x86_pkg_temp"] == 61.5
    assert stored.thermal.sources[0] == "thermal zone x86_pkg_temp (trip passive 95 C)"
    assert stored.thermal.throttled_trials == []  # 61.5 C is below its 95 C passive trip
    assert extras_thermal is not None  # the row (what the dashboard reads) has it too
    assert extras_thermal["sensors"]["x86_pkg_temp"] == 61.5
