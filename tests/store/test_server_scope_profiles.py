"""The central store's leaderboard by energy scope, and device profiles sent to it: a real
``wattbench serve`` app on a loopback port, the real CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the server extra")
pytest.importorskip("uvicorn", reason="needs the server extra")

from conftest import DEVICE, local_store, serve_in_thread

from wattbench.core.errors import StoreError
from wattbench.core.power import EnergyScope
from wattbench.core.results import RunResult
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token
from wattbench.results_db.upload import upload_profile

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))


def wattbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATTBENCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post(url: str, body: bytes, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def utc(text: str) -> datetime:
    """An ISO time as UTC (SQLite gives the stored UTC time back without its zone)."""
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def at_scope(run: RunResult, scope: EnergyScope) -> RunResult:
    """``run`` as if its headline reader measured at ``scope``."""
    head = run.energy[0].model_copy(update={"scope": scope})
    trials = [
        t.model_copy(update={"energy": [e.model_copy(update={"scope": scope}) for e in t.energy]})
        for t in run.trials
    ]
    return run.model_copy(update={"energy": [head, *run.energy[1:]], "trials": trials})


@pytest.fixture
def central(db_url: str) -> Iterator[tuple[Store, str]]:
    store = Store.open(db_url)
    with serve_in_thread(store) as url:
        yield store, url
    store.close()


def report(device: str, outcome: str, at: datetime) -> dict[str, Any]:
    """A `wattbench doctor --json` report (the parts a profile keeps)."""
    return {
        "device_name": device,
        "hostname": "host",
        "wattbench_version": "9.9.9",
        "created_at": at.isoformat(),
        "outcome": outcome,
        "exit_code": {"validated": 0, "failed": 1, "estimate_only": 3}[outcome],
        "headline_reader": "rapl" if outcome == "validated" else None,
        "readers": [
            {
                "name": "rapl",
                "status": "measured",
                "verdict": "ok",
                "method": "counter",
                "scope": "chip",
                "component": "cpu package (package-0)",
                "idle_mean_w": 5.0,
                "idle_std_w": 0.1,
                "requested_rate_hz": 10.0,
                "achieved_rate_hz": 9.9,
                "step_delta_w": 20.0,
                "step_delay_s": 0.05,
                "checks": [],
            }
        ],
    }


def test_leaderboard_scope_ranks_each_group_apart_like_the_cli(
    central: tuple[Store, str], db_url: str, new_run: Callable[..., RunResult]
) -> None:
    store, url = central
    # the SAME device measured at chip and at wall scope: two groups, each with a rank 1
    chip = [at_scope(new_run(ipj=v), EnergyScope.CHIP) for v in (300.0, 200.0)]
    wall = [at_scope(new_run(ipj=v), EnergyScope.WALL) for v in (50.0, 80.0)]
    for r in (*chip, *wall):
        assert store.save_run(r)

    status, rows = get(f"{url}/api/v1/leaderboard")
    assert status == 200
    by_scope: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_scope.setdefault(row["energy_scope"], []).append(row)
    assert [(r["rank"], r["run_id"]) for r in by_scope["chip"]] == [
        (1, chip[0].run_id),
        (2, chip[1].run_id),
    ]
    assert [(r["rank"], r["run_id"]) for r in by_scope["wall"]] == [
        (1, wall[1].run_id),
        (2, wall[0].run_id),
    ]
    assert {r["rank_group"] for r in by_scope["chip"]} != {
        r["rank_group"] for r in by_scope["wall"]
    }
    assert all(" · wall · measured" in r["rank_group"] for r in by_scope["wall"])

    # exactly the CLI's JSON (same rows, same fields, same order)
    cli = wattbench("leaderboard", "--db", db_url, "--format", "json", "--scope", "wall")
    assert cli.returncode == 0, cli.stderr
    status, api_wall = get(f"{url}/api/v1/leaderboard?scope=wall")
    assert status == 200
    assert api_wall == json.loads(cli.stdout)
    assert [(r["rank"], r["energy_scope"]) for r in api_wall] == [(1, "wall"), (2, "wall")]
    status, api_chip = get(f"{url}/api/v1/leaderboard?scope=chip&limit=1")
    assert status == 200 and [(r["rank"], r["run_id"]) for r in api_chip] == [(1, chip[0].run_id)]
    status, none = get(f"{url}/api/v1/leaderboard?scope=board")
    assert (status, none) == (200, [])

    # the table: one titled table per group, each starting at rank 1
    table = wattbench("leaderboard", "--db", db_url)
    assert table.returncode == 0, table.stderr
    titles = [
        line for line in table.stdout.splitlines() if "ranked by inferences per joule" in line
    ]
    assert len(titles) == 2, table.stdout
    assert any("chip scope · measured" in t for t in titles)
    assert any("wall scope · measured" in t for t in titles)
    firsts = [
        line.split("│")[1].strip()
        for line in table.stdout.splitlines()
        if line.startswith("│") and DEVICE in line
    ]
    assert firsts == ["1", "2", "1", "2"], table.stdout

    status, body = get(f"{url}/api/v1/leaderboard?scope=plug")
    assert status == 422
    assert body["error"] == "invalid_request" and "\n" not in body["detail"]
    assert body["detail"] == "unknown scope 'plug': use chip, module, board, wall"


def test_profile_endpoint_is_authenticated_idempotent_and_validated(
    central: tuple[Store, str], new_run: Callable[..., RunResult]
) -> None:
    store, url = central
    token = create_token(store, DEVICE)
    at = datetime.now(timezone.utc) - timedelta(hours=1)
    body = json.dumps(report(DEVICE, "validated", at)).encode()

    status, answer = post(f"{url}/api/v1/profiles", body, "wbt_nope")
    assert status == 401 and "wattbench token create" in answer["detail"]
    status, answer = post(
        f"{url}/api/v1/profiles", json.dumps(report("other", "validated", at)).encode(), token
    )
    assert status == 403 and "'other'" in answer["detail"]
    status, answer = post(f"{url}/api/v1/profiles", b"{not json", token)
    assert status == 400 and answer["error"] == "malformed_json"
    bad = report(DEVICE, "validated", at) | {"outcome": "great"}
    status, answer = post(f"{url}/api/v1/profiles", json.dumps(bad).encode(), token)
    assert status == 422 and "not a doctor report" in answer["detail"]
    assert store.latest_device_profile(DEVICE) is None

    status, first = post(f"{url}/api/v1/profiles", body, token)
    assert status == 201 and first["status"] == "created"
    status, again = post(f"{url}/api/v1/profiles", body, token)
    assert status == 200 and again == first | {"status": "duplicate"}
    changed = report(DEVICE, "failed", at)
    status, answer = post(f"{url}/api/v1/profiles", json.dumps(changed).encode(), token)
    assert status == 409 and answer["error"] == "conflict"
    profile = store.latest_device_profile(DEVICE)
    assert profile is not None and profile.id == first["profile_id"] and profile.validated

    # the client: the same answer through upload_profile, a refusal as one StoreError line
    sent = upload_profile(url, token, report(DEVICE, "validated", at))
    assert (sent.status, sent.profile_id) == ("duplicate", first["profile_id"])
    with pytest.raises(StoreError, match="HTTP 401") as exc:
        upload_profile(url, "wbt_nope", report(DEVICE, "validated", at))
    assert "\n" not in str(exc.value)

    # a run uploaded afterwards points at it: validated, with the date
    run = new_run()
    status, _ = post(f"{url}/api/v1/runs", run.model_dump_json().encode(), token)
    assert status == 201
    status, rows = get(f"{url}/api/v1/leaderboard")
    row = next(r for r in rows if r["run_id"] == run.run_id)
    assert row["device_validation"] == "validated"
    assert utc(row["device_validation_at"]) == pytest.approx(at, abs=timedelta(seconds=1))


def test_doctor_save_upload_to_then_uploaded_runs_reference_the_profile(
    central: tuple[Store, str], tmp_path: Path, new_run: Callable[..., RunResult]
) -> None:
    store, url = central
    token = create_token(store, DEVICE)
    local_db = f"sqlite:///{tmp_path / 'device.db'}"
    empty = tmp_path / "root"  # a fake sysfs tree without any power reader: estimate only
    empty.mkdir()

    # usage errors before any measuring: one error line, exit 2
    for args, message in (
        (("--upload-to", url, "--token", token), "error: --upload-to sends the saved profile"),
        (("--save", "--upload-to", url), "error: --upload-to needs --token"),
        (("--save", "--upload-to", "ftp://x", "--token", token), "error: invalid --upload-to"),
    ):
        proc = subprocess.run(
            [WATTBENCH, "doctor", "--sysfs-root", str(empty), "--db", local_db, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if k != "WATTBENCH_TOKEN"},
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().startswith(message) and "Traceback" not in proc.stderr

    proc = wattbench(
        "doctor", "--sysfs-root", str(empty), "--idle-s", "0.3", "--step-s", "0.3",
        "--device-name", DEVICE, "--json", "--save", "--db", local_db,
        "--upload-to", url, "--token", token,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr  # estimate only: stored all the same
    data = json.loads(proc.stdout)
    central_profile = store.latest_device_profile(DEVICE)
    assert central_profile is not None and central_profile.outcome == "estimate_only"
    assert f"uploaded to {url} (#{central_profile.id}, created)" in proc.stderr
    local_profile = Store.open(local_db).latest_device_profile(DEVICE)
    assert local_profile is not None and local_profile.created_at == central_profile.created_at
    assert central_profile.created_at == datetime.fromisoformat(data["created_at"])

    # a wrong token: one error line, nonzero, nothing stored centrally
    proc = wattbench(
        "doctor", "--sysfs-root", str(empty), "--idle-s", "0.3", "--step-s", "0.3",
        "--device-name", DEVICE, "--save", "--db", local_db,
        "--upload-to", url, "--token", "wbt_wrong",
    )  # fmt: skip
    assert proc.returncode not in (0, 3)
    assert proc.stderr.strip().splitlines()[-1].startswith("error: device profile not uploaded")
    assert "HTTP 401" in proc.stderr and "Traceback" not in proc.stderr

    # a run recorded on the device and uploaded afterwards references the central profile
    run = new_run()
    local = local_store(tmp_path, "device.db")
    local.save_run(run)
    proc = wattbench("upload", "--db", local_db, "--to", url, "--token", token)
    assert proc.returncode == 0, proc.stderr
    linked = store.run_device_profile(run.run_id)
    assert linked is not None and linked.id == central_profile.id
    status, rows = get(f"{url}/api/v1/leaderboard")
    assert status == 200
    row = next(r for r in rows if r["run_id"] == run.run_id)
    assert row["device_validation"] == "estimate_only"
    assert utc(row["device_validation_at"]) == central_profile.created_at
