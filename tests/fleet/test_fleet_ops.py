"""Campaign operations on the real broker and store: SIGTERM requeues, heartbeats and
offline devices, live metrics, cancel, retry of failed cells, skips known at submit."""

from __future__ import annotations

import signal
import time
import urllib.request

from fleetkit import FAST_RUN, Fleet, cli
from sqlalchemy import func, select

from wattbench.fleet import broker
from wattbench.results_db.schema import CampaignCell, FleetDevice, Run


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_sigterm_requeues_the_running_cell_and_a_silent_device_goes_offline(
    fleet: Fleet,
) -> None:
    fleet.start_worker("solo-1", extra=("--metrics-port", "0", "--power", "estimate"))
    fleet.wait_registered("solo-1")
    cid = fleet.submit(
        f"""
name = "long"
[run]
{FAST_RUN.replace("duration = 0.2", "duration = 4.0")}
[target]
devices = ["solo-1"]
"""
    )
    fleet.wait_for(cid, lambda s: s["overall"]["running"] == 1)
    with fleet.engine.connect() as conn:
        port = conn.scalar(select(FleetDevice.metrics_port).where(FleetDevice.name == "solo-1"))
    assert port
    text = _metrics(port)
    assert 'wattbench_worker_up{device="solo-1"} 1.0' in text
    assert f'wattbench_cell_running{{campaign="{cid}",cell="0",device="solo-1"}} 1.0' in text
    time.sleep(2.5)  # one sampling window of the live power
    assert 'wattbench_power_watts{device="solo-1",reader="estimate"}' in _metrics(port)
    assert "wattbench_energy_joules_total" in _metrics(port)

    t0 = time.monotonic()
    assert fleet.kill("solo-1", signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 4.0  # the 4 s trial was cut short, not waited out
    st = fleet.status(cid)
    assert st["overall"]["pending"] == 1, st  # back in the queue, nothing stored
    assert st["devices"][0]["state"] == "stopped"
    with fleet.engine.connect() as conn:
        assert conn.scalar(select(func.count(Run.id))) == 0
    assert broker.queue_depths(fleet.broker, [f"{fleet.prefix}.device.solo-1"]) == {
        f"{fleet.prefix}.device.solo-1": 1
    }

    fleet.start_worker("solo-1", extra=("--metrics-port", "0"))
    st = fleet.wait_settled(cid)
    assert st["overall"]["done"] == 1
    with fleet.engine.connect() as conn:
        assert conn.scalar(select(func.count(Run.id))) == 1

    fleet.kill("solo-1", signal.SIGKILL)  # no clean stop: only the heartbeat tells
    time.sleep(1.5)
    assert fleet.status(cid, "--offline-after", "30")["devices"][0]["state"] == "up"
    assert fleet.status(cid, "--offline-after", "1")["devices"][0]["state"] == "offline"


def test_cancel_retry_and_failed_cells(fleet: Fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    inputs = tmp_path / "inputs"
    body = f"""
name = "ops"
[matrix]
data-dir = ["{tmp_path}", "{inputs}"]
seed = [0, 1]
[run]
{FAST_RUN}
[target]
devices = ["ops-1"]
"""
    # cancelled before any worker is there: its messages are dropped when delivered
    cid = fleet.submit(body)
    code, out, err = cli("campaign", "cancel", cid[:8], "--db", fleet.db)
    assert code == 0, err
    assert "4 pending cells" in out
    fleet.start_worker("ops-1")
    qname = f"{fleet.prefix}.device.ops-1"
    deadline = time.monotonic() + 30
    while broker.queue_depths(fleet.broker, [qname])[qname] and time.monotonic() < deadline:
        time.sleep(0.2)
    st = fleet.status(cid)
    assert st["state"] == "cancelled" and st["overall"]["cancelled"] == 4, st

    # retry everything not done: a missing --data-dir fails with its one-line reason
    code, out, err = cli(
        "campaign", "retry", cid, "--broker", fleet.broker, "--db", fleet.db
    )  # fmt: skip
    assert code == 0, err
    st = fleet.wait_settled(cid)
    assert (st["overall"]["done"], st["overall"]["failed"]) == (2, 2), st
    assert {f["reason"] for f in st["failures"]} == {f"no inputs: {inputs} does not exist"}
    assert all(f["attempt"] == 1 for f in st["failures"])
    code, out, _ = cli("campaign", "status", cid, "--db", fleet.db)
    assert f"failed: cell 2 on ops-1: no inputs: {inputs} does not exist" in out

    inputs.mkdir()
    code, out, err = cli(
        "campaign", "retry", cid, "--failed", "--broker", fleet.broker, "--db", fleet.db
    )  # fmt: skip
    assert code == 0, err
    assert "2 cells queued again" in out
    st = fleet.wait_settled(cid)
    assert st["overall"]["done"] == 4 and st["state"] == "finished", st
    with fleet.engine.connect() as conn:
        cells = conn.execute(
            select(CampaignCell.cell_index, CampaignCell.attempt, CampaignCell.run_uuid)
        ).all()
        assert sorted((i, a) for i, a, _ in cells) == [(0, 1), (1, 1), (2, 2), (3, 2)]
        # one stored run per done cell: failed attempts stored nothing
        assert sorted(conn.scalars(select(Run.uuid))) == sorted(u for *_, u in cells)
    code, out, _ = cli("campaign", "list", "--db", fleet.db, "--json")
    assert code == 0 and cid in out


def test_a_device_without_the_adapter_skips_at_submit(fleet: Fleet) -> None:
    fleet.start_worker("scan-1", "arm", extra=("--scan-adapters",))
    fleet.wait_registered("scan-1")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with fleet.engine.connect() as conn:
            if conn.scalar(select(FleetDevice.adapters).where(FleetDevice.name == "scan-1")):
                break
        time.sleep(0.3)
    cid = fleet.submit(
        f"""
name = "skips"
[matrix]
adapter = ["fleet-fake", "not-installed"]
[run]
{FAST_RUN}
[target]
tags = ["arm"]
"""
    )
    st = fleet.status(cid)
    assert (
        st["overall"]["skipped"] == 1
        and st["overall"]["pending"] + st["overall"]["running"] + st["overall"]["done"] == 1
    ), st
    st = fleet.wait_settled(cid)
    assert (st["overall"]["done"], st["overall"]["skipped"]) == (1, 1)
    with fleet.engine.connect() as conn:
        reason = conn.scalar(select(CampaignCell.reason).where(CampaignCell.status == "skipped"))
    assert reason == "adapter 'not-installed' is not installed on scan-1"


def test_submit_errors_are_one_line(fleet: Fleet) -> None:
    path = fleet.campaign_file('name = "x"\n[run]\nsuite = "fleet-fake"\n[target]\ntags = ["nope"]')
    code, _, err = cli(
        "campaign", "submit", str(path), "--broker", fleet.broker, "--db", fleet.db
    )  # fmt: skip
    assert code != 0
    assert err.strip() == (
        "error: no registered device has tags nope (start their workers with --tag first, or "
        "name devices in [target] devices)"
    )
    code, _, err = cli("campaign", "status", "nope", "--db", fleet.db)
    assert code != 0 and "no campaign 'nope'" in err


def test_workers_reconnect_after_the_broker_goes_away(fleet: Fleet) -> None:
    from urllib.parse import urlsplit

    from fleetkit import TcpProxy

    parts = urlsplit(fleet.broker)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    try:
        via_proxy = fleet.broker.replace(parts.netloc.split("@")[-1], f"127.0.0.1:{proxy.port}")
        fleet.start_worker("recon-1", extra=("--broker", via_proxy))
        fleet.wait_registered("recon-1")
        body = f'name = "before"\n[run]\n{FAST_RUN}\n[target]\ndevices = ["recon-1"]\n'
        first = fleet.submit(body)
        assert fleet.wait_settled(first)["overall"]["done"] == 1

        proxy.cut()  # every connection dropped, new ones refused: the broker "restarts"
        second = fleet.submit(body.replace("before", "during"))  # the broker itself is up
        time.sleep(3.0)
        fleet.check_alive()  # the worker waits for its broker, it does not exit
        assert fleet.status(second)["overall"]["pending"] == 1  # nothing reached it
        assert "Connection to broker lost" in fleet.logs()
        proxy.resume()
        st = fleet.wait_settled(second, timeout=90)
        assert st["overall"]["done"] == 1, st
        with fleet.engine.connect() as conn:
            assert conn.scalar(select(func.count(Run.id))) == 2
    finally:
        proxy.close()


def test_cancel_stops_a_running_cell_at_its_next_phase(fleet: Fleet) -> None:
    fleet.start_worker("cancel-1")
    fleet.wait_registered("cancel-1")
    run = FAST_RUN.replace("duration = 0.2", "duration = 1.0").replace("repeats = 1", "repeats = 3")
    cid = fleet.submit(f'name = "c"\n[run]\n{run}\n[target]\ndevices = ["cancel-1"]\n')
    fleet.wait_for(cid, lambda s: s["overall"]["running"] == 1)
    code, _, err = cli("campaign", "cancel", cid, "--db", fleet.db)
    assert code == 0, err
    st = fleet.wait_for(cid, lambda s: s["overall"]["cancelled"] == 1, timeout=30)
    assert st["state"] == "cancelled"
    with fleet.engine.connect() as conn:
        assert conn.scalar(select(func.count(Run.id))) == 0  # the cut-short run is not stored
        assert conn.scalar(select(CampaignCell.reason)) == "campaign cancelled"
    fleet.check_alive()  # the worker goes on with other cells
