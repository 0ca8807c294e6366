"""A campaign across three worker processes on the real RabbitMQ and PostgreSQL, with one
worker killed (SIGKILL) mid-cell and restarted: every cell ends done or skipped, and the
store holds exactly one valid run per done cell."""

from __future__ import annotations

import signal
import time

from fleetkit import FAST_RUN, Fleet
from sqlalchemy import func, select

from wattbench.results_db.schema import CampaignCell, Run

DEVICES = ("rack-a", "rack-b", "rack-c")


def test_campaign_across_three_workers_survives_a_sigkill(fleet: Fleet) -> None:
    for d in DEVICES:
        fleet.start_worker(d, "rack")
    fleet.wait_registered(*DEVICES)
    cid = fleet.submit(
        f"""
name = "e2e"
each_device = true
[matrix]
seed = [0, 1, 2, 3]
adapter = ["fleet-fake", "not-installed"]
[run]
{FAST_RUN}
[target]
tags = ["rack"]
"""
    )
    # 4 seeds x 2 adapters x 3 devices; the missing adapter is skipped on each device
    st = fleet.status(cid)
    assert st["overall"]["total"] == 24

    # SIGKILL rack-a while it runs a cell (claimed, not finished)
    deadline = time.monotonic() + 60
    killed_cell = None
    while killed_cell is None and time.monotonic() < deadline:
        with fleet.engine.connect() as conn:
            killed_cell = conn.scalar(
                select(CampaignCell.id).where(
                    CampaignCell.device == "rack-a",
                    CampaignCell.status == "running",
                    CampaignCell.params["adapter"].as_string() == "fleet-fake",
                )
            )
        if killed_cell is None:
            time.sleep(0.02)
    assert killed_cell is not None, fleet.logs()
    assert fleet.kill("rack-a", signal.SIGKILL) == -signal.SIGKILL
    with fleet.engine.connect() as conn:
        cell = conn.execute(select(CampaignCell).where(CampaignCell.id == killed_cell)).one()
        # nothing of the killed cell's run was stored
        assert conn.scalar(select(func.count()).where(Run.uuid == cell.run_uuid)) == 0

    fleet.start_worker("rack-a", "rack")  # its cell comes back to it
    st = fleet.wait_settled(cid)
    overall = st["overall"]
    assert overall["done"] == 12, st
    assert overall["skipped"] == 12, st
    assert overall["failed"] == overall["pending"] == overall["running"] == 0
    for row in st["devices"]:
        assert (row["done"], row["skipped"]) == (4, 4), row

    with fleet.engine.connect() as conn:
        done = conn.execute(
            select(CampaignCell.run_uuid, CampaignCell.attempt).where(
                CampaignCell.campaign_id == cid, CampaignCell.status == "done"
            )
        ).all()
        uuids = {u for u, _ in done}
        assert len(uuids) == 12
        runs = conn.execute(select(Run.uuid, Run.valid, Run.labels)).all()
        # exactly one run per done cell, each valid and labelled with its campaign
        assert sorted(r.uuid for r in runs) == sorted(uuids)
        assert all(r.valid for r in runs)
        assert all(f"campaign:{cid}" in r.labels for r in runs)
        skipped = conn.scalars(
            select(CampaignCell.reason).where(CampaignCell.status == "skipped")
        ).all()
        assert all("'not-installed' is not installed on rack-" in r for r in skipped), skipped
    fleet.check_alive()
