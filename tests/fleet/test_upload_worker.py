"""``wattbench worker --upload-to URL --token T``: a worker without database access.

The real RabbitMQ, the central PostgreSQL store behind a real ingest server on loopback
(with the fleet routes mounted), and a worker process that claims cells through the server
and uploads its results: every cell done, exactly one run per cell on the central store, a
redelivered cell whose run is already there acknowledged without running again, and a bad
token refused with one ``error:`` line.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetkit import FAST_RUN, WATTBENCH, Fleet, cli
from sqlalchemy import func, select, update

pytest.importorskip("uvicorn", reason="needs the server extra")

from wattbench.fleet import broker, ledger, routes
from wattbench.fleet.spec import parse_campaign
from wattbench.results_db.schema import CampaignCell, Run
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token

DEVICE = "up-a"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(store: Store) -> Iterator[str]:
    """The ingest server as ``wattbench serve`` builds it (the fleet routes come from the
    installed ``wattbench.server_routes`` entry point), on a free loopback port, in a thread."""
    import uvicorn

    from wattbench.results_db.server import create_app

    port = _free_port()
    config = uvicorn.Config(
        create_app(store),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def central(fleet: Fleet) -> Iterator[tuple[Store, str]]:
    store = Store.open(fleet.db)
    with _server(store) as url:
        yield store, url
    store.close()


def _worker_cmd(fleet: Fleet, url: str, token: str, spool: Path) -> list[str]:
    return [
        WATTBENCH, "worker", "--device", DEVICE, "--broker", fleet.broker,
        "--upload-to", url, "--token", token, "--state-dir", str(spool),
        "--queue-prefix", fleet.prefix, "--heartbeat-s", "0.5", "--no-scan-adapters",
    ]  # fmt: skip


def _start(fleet: Fleet, cmd: list[str]) -> None:
    fleet.queues.update(broker.worker_queues(fleet.prefix, DEVICE, []))
    log = fleet.tmp / f"worker-{DEVICE}-{len(fleet._logs)}.log"
    fleet._logs.append(log)
    with log.open("wb") as fh:
        fleet.workers[DEVICE] = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=fleet.env()
        )


def test_the_installed_server_mounts_the_fleet_routes() -> None:
    """``wattbench serve`` finds the fleet's routes through the entry point group, which
    the store itself never imports (pyproject.toml names it)."""
    from wattbench.results_db.server import route_hooks

    assert routes.mount in route_hooks()


def test_upload_worker_runs_a_campaign_exactly_once(
    fleet: Fleet, central: tuple[Store, str]
) -> None:
    store, url = central
    token = create_token(store, DEVICE)
    _start(fleet, _worker_cmd(fleet, url, token, fleet.tmp / "spool"))
    fleet.wait_registered(DEVICE)
    cid = fleet.submit(
        f"""
name = "upload"
[matrix]
seed = [0, 1, 2]
adapter = ["fleet-fake"]
[run]
{FAST_RUN}
[target]
devices = ["{DEVICE}"]
"""
    )
    st = fleet.wait_settled(cid)
    assert st["overall"]["done"] == 3, (st, fleet.logs())
    assert st["overall"]["total"] == 3
    with fleet.engine.connect() as conn:
        cells = conn.execute(
            select(CampaignCell.id, CampaignCell.run_uuid, CampaignCell.queue).where(
                CampaignCell.campaign_id == cid
            )
        ).all()
        runs = conn.execute(select(Run.uuid, Run.valid)).all()
    # exactly one valid run per cell on the central store, under the cell's run uuid
    assert sorted(r.uuid for r in runs) == sorted(c.run_uuid for c in cells)
    assert all(r.valid for r in runs)

    # the worker died after uploading, before finishing: the cell is still running and
    # its message comes again. It is acknowledged as stored, not run again.
    again = cells[0]
    with fleet.engine.begin() as conn:
        conn.execute(
            update(CampaignCell).where(CampaignCell.id == again.id).values(status="running")
        )
    broker.publish_cells(fleet.broker, fleet.prefix, [(again.id, cid, again.queue, 0)])
    st = fleet.wait_for(cid, lambda s: s["overall"]["done"] == 3, timeout=60)
    deadline = time.monotonic() + 30
    while "run already stored" not in fleet.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "run already stored" in fleet.logs(), fleet.logs()
    with fleet.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Run)) == 3
        assert conn.scalar(select(func.count()).where(Run.uuid == again.run_uuid)) == 1
    fleet.check_alive()


def test_upload_worker_with_a_bad_token_stops_with_one_error_line(
    fleet: Fleet, central: tuple[Store, str]
) -> None:
    _store, url = central
    proc = subprocess.run(
        _worker_cmd(fleet, url, "not-a-token", fleet.tmp / "spool"),
        capture_output=True,
        text=True,
        env=fleet.env(),
        timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and "token" in lines[0], lines
    assert "Traceback" not in proc.stdout + proc.stderr


def test_worker_needs_exactly_one_of_db_and_upload_to(fleet: Fleet) -> None:
    base = ("worker", "--device", DEVICE, "--broker", fleet.broker)
    code, _out, err = cli(*base, "--db", fleet.db, "--upload-to", "http://127.0.0.1:9")
    assert code != 0
    assert err.strip().startswith("error:") and "not both" in err
    assert len(err.strip().splitlines()) == 1
    code, _out, err = cli(*base, "--upload-to", "http://127.0.0.1:9")
    assert code != 0
    assert err.strip().startswith("error:") and "--token" in err


def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        return exc.code, dict(json.loads(exc.read()))


def test_fleet_routes_refuse_other_devices_cells_and_bad_tokens(
    fleet: Fleet, central: tuple[Store, str]
) -> None:
    store, url = central
    mine, other = create_token(store, DEVICE), create_token(store, "up-b")
    ledger.register_device(fleet.engine, DEVICE, [], hostname="h", adapters=None, metrics_port=None)
    spec = parse_campaign(
        f'name = "routes"\n[matrix]\nseed = [0]\n[run]\n{FAST_RUN}\n'
        f'[target]\ndevices = ["{DEVICE}"]\n',
        fleet.tmp / "routes.toml",
    )
    cell_id = ledger.create_campaign(fleet.engine, spec, fleet.prefix).messages[0][0]
    claim = f"{url}/api/v1/fleet/cells/{cell_id}/claim"
    finish = f"{url}/api/v1/fleet/cells/{cell_id}/finish"

    status, answer = _post(claim, "not-a-token", {"attempt": 0})
    assert status == 401 and "token create" in answer["detail"]
    status, answer = _post(claim, other, {"attempt": 0})
    assert status == 403 and "up-b" in answer["detail"]
    status, _ = _post(f"{url}/api/v1/fleet/devices/{DEVICE}/heartbeat", other, {"event": "beat"})
    assert status == 403
    status, answer = _post(claim, mine, {"attempt": 0})
    assert status == 200 and answer["action"] == "run" and answer["params"]["seed"] == 0
    status, _ = _post(finish, other, {"attempt": 0, "status": "done", "reason": None})
    assert status == 403
    status, _ = _post(finish, mine, {"attempt": 0, "status": "finished?", "reason": None})
    assert status == 400
    status, _ = _post(finish, mine, {"attempt": 0, "status": "failed", "reason": "test"})
    assert status == 200
    with fleet.engine.connect() as conn:
        row = conn.execute(select(CampaignCell).where(CampaignCell.id == cell_id)).one()
    assert (row.status, row.reason, row.device) == ("failed", "test", DEVICE)
    # a finished cell's message is dropped, not run
    status, answer = _post(claim, mine, {"attempt": 0})
    assert status == 200 and answer["action"] == "drop"
