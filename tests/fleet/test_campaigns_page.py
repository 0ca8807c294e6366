"""The dashboard's Campaigns page and its queries, on a store filled through the ledger
(no broker): progress per device, failures with their reason, and a leaderboard of the
campaign's valid done runs only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wattbench.fleet import ledger
from wattbench.fleet.executor import NoopExecutor
from wattbench.fleet.spec import parse_campaign
from wattbench.results_db.store import Store

pytest.importorskip("streamlit")


class _Quiet:
    def phase(self, name: str, total: float | None = None) -> None:
        pass

    def update(self, completed: float) -> None:
        pass


def seed(url: str) -> str:
    """A campaign of 6 cells on two devices: 3 done, 1 failed, 1 stored but never finished
    (its worker died before recording it), 1 pending."""
    store = Store.open(url)
    engine = store.engine
    spec = parse_campaign(
        """
name = "page"
[matrix]
seed = [0, 1, 2]
[run]
suite = "fake"
adapter = "fake"
[target]
devices = ["dev-a", "dev-b"]
""",
        Path("page.toml"),
    )
    sub = ledger.create_campaign(engine, spec, "page")
    ledger.register_device(engine, "dev-a", [], hostname="h", adapters=None, metrics_port=None)
    ex = NoopExecutor()
    cells = sorted(sub.messages)
    for i, (cell_id, cid, _queue, attempt) in enumerate(cells):
        if i == 5:
            break  # stays pending
        claim = ledger.claim(engine, cell_id, attempt, "dev-a" if i % 2 == 0 else "dev-b")
        assert claim.action == "run"
        if i == 3:
            ledger.finish(engine, cell_id, attempt, "failed", "ModelError: out of memory")
            continue
        cfg = ex.config(claim.params, device="x", labels=[f"campaign:{cid}"])
        result = ex.run(cfg, _Quiet())
        ipj = 100.0 + i
        head = result.energy[0].model_copy(update={"inferences_per_joule": ipj})
        store.save_run(result.model_copy(update={"run_id": claim.run_uuid, "energy": [head]}))
        if i != 4:  # cell 4: stored, but its worker died before marking it done
            ledger.finish(engine, cell_id, attempt, "done")
    store.close()
    return sub.campaign_id


def test_queries(tmp_path: Path) -> None:
    from wattbench.dashboard.queries import campaigns as q
    from wattbench.results_db.readonly import open_readonly

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    cid = seed(url)
    db = open_readonly(url)
    try:
        camps = q.campaigns(db)
        assert camps.iloc[0][["cells", "done", "failed", "running", "pending"]].tolist() == [
            6, 3, 1, 1, 1,
        ]  # fmt: skip
        prog = q.progress(db, cid).set_index("device")
        assert prog.loc["dev-a", "state"] == "up"
        assert prog.loc["dev-b", "state"] == "never seen"
        assert prog["cells"].sum() == 6
        bad = q.problems(db, cid)
        assert bad[["status", "reason"]].values.tolist() == [
            ["failed", "ModelError: out of memory"]
        ]
        res = q.results(db, cid)
        # done cells only: the stored-but-unfinished run (ipj 104) does not rank
        assert res["inf/J"].tolist() == [102.0, 101.0, 100.0]
        assert res["#"].tolist() == [1, 2, 3]
        assert res["detail"].str.startswith("run?run=").all()
    finally:
        db.close()


def test_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    cid = seed(url)
    monkeypatch.setenv("WATTBENCH_DASHBOARD_DB", url)

    def script() -> None:
        from wattbench.dashboard.app import render_page

        render_page("campaigns")

    at: Any = AppTest.from_function(script, default_timeout=60)
    at.query_params["campaign"] = cid[:8]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Campaigns"
    assert at.selectbox(key="camp_id").value == cid
    assert {m.label: m.value for m in at.metric}["done"] == "3"
    progress, problems, results = (d.value for d in at.dataframe)
    assert set(progress["device"]) == {"dev-a", "dev-b"}
    assert problems["reason"].tolist() == ["ModelError: out of memory"]
    assert len(results) == 3
