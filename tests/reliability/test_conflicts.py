"""Conflicts are errors: same uuid + same content = duplicate, different content = 409.

Through the store, the ingest API, the uploader (HTTP and database targets) and
``wattbench import``; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import DEVICE, local_store, serve_in_thread
from sqlalchemy import select, update

from wattbench.core.canonical import (
    canonical_json,
    content_sha256,
    difference_between,
    first_difference,
)
from wattbench.core.results import RunResult
from wattbench.results_db.errors import RunConflictError
from wattbench.results_db.schema import UPLOAD_PENDING, UPLOAD_RECEIVED, Run
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token
from wattbench.results_db.transfer import dump_runs, import_runs
from wattbench.results_db.upload import upload_pending


def edited(r: RunResult) -> RunResult:
    """The same run id with one figure changed (what a tampered re-upload looks like)."""
    trial = r.trials[0].model_copy(update={"queries": r.trials[0].queries + 1})
    return r.model_copy(update={"trials": [trial, *r.trials[1:]]})


def test_canonical_form_ignores_key_order_local_path_and_timezone_spelling(
    base_result: RunResult,
) -> None:
    r = base_result
    shuffled = r.model_copy(
        update={
            "device": dict(reversed(list(r.device.items()))),
            "model": r.model.model_copy(update={"path": Path("/elsewhere/model.onnx")}),
            "started_at": r.started_at.replace(tzinfo=None),  # naive = UTC
        }
    )
    assert content_sha256(shuffled) == content_sha256(r)
    again = RunResult.model_validate_json(r.model_dump_json())
    assert canonical_json(again) == canonical_json(r)  # JSON round trip: same bytes
    assert b'"path"' not in canonical_json(r).split(b'"model":')[1][:200]
    assert content_sha256(edited(r)) != content_sha256(r)
    assert difference_between(edited(r), r) == "trials[0].queries"
    assert first_difference({"a": [1, 2]}, {"a": [1, 2, 3]}) == "a[2]"
    assert first_difference({"a": 1}, {"a": 1.0}) is None
    assert first_difference({"a": 1, "b": {"c": "x"}}, {"a": 1, "b": {"c": "y"}}) == "b.c"


def test_store_duplicate_and_conflict(db_url: str, new_run: Callable[..., RunResult]) -> None:
    store = Store.open(db_url)
    r = new_run()
    assert store.save_run(r) is True
    assert store.save_run(r) is False
    with pytest.raises(RunConflictError) as caught:
        store.save_run(edited(r))
    assert caught.value.path == "trials[0].queries" and r.run_id in str(caught.value)
    assert "\n" not in str(caught.value)
    stored = store.load_result(r.run_id)
    assert stored is not None and content_sha256(stored) == content_sha256(r)  # kept
    with store.engine.connect() as conn:
        assert conn.scalar(select(Run.content_sha256)) == content_sha256(r)


def test_run_stored_before_the_hash_is_hashed_when_it_comes_again(
    db_url: str, new_run: Callable[..., RunResult]
) -> None:
    central = Store.open(db_url)
    r = new_run()
    central.save_run(r, upload_state=UPLOAD_RECEIVED, keep_payload=False)
    with central.engine.begin() as conn:  # as if stored before migration 0004
        conn.execute(update(Run).values(content_sha256=None))
    assert central.save_run(r, upload_state=UPLOAD_RECEIVED, keep_payload=False) is False
    with central.engine.connect() as conn:
        assert conn.scalar(select(Run.content_sha256)) == content_sha256(r)  # filled in
    with pytest.raises(RunConflictError, match=r"trials\[0\]\.queries"):
        central.save_run(edited(r), upload_state=UPLOAD_RECEIVED, keep_payload=False)


def test_api_answers_duplicate_then_409_naming_the_field(
    db_url: str, new_run: Callable[..., RunResult]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from wattbench.results_db.server import create_app

    store = Store.open(db_url)
    client = TestClient(create_app(store))
    auth = {"Authorization": f"Bearer {create_token(store, DEVICE)}"}
    r = new_run()
    post = lambda x: client.post("/api/v1/runs", content=x.model_dump_json(), headers=auth)  # noqa: E731
    assert post(r).status_code == 201
    dup = post(r)
    assert dup.status_code == 200 and dup.json()["status"] == "duplicate"
    resp = post(edited(r))
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert body["error"] == "conflict" and body["run_id"] == r.run_id
    assert body["path"] == "trials[0].queries"
    assert r.run_id in body["detail"] and "trials[0].queries" in body["detail"]
    assert store.count_runs() == 1
    stored = store.load_result(r.run_id)
    assert stored is not None and stored.trials == r.trials


def _pending_conflict(tmp_path: Path, central: Store, r: RunResult) -> Store:
    """A device store holding an edited version of ``r`` (pending) that ``central`` has."""
    central.save_run(r, upload_state=UPLOAD_RECEIVED, keep_payload=False)
    device = local_store(tmp_path)
    device.save_run(edited(r))
    return device


def test_uploader_keeps_a_conflicting_run_pending_and_reports_one_line(
    tmp_path: Path, new_run: Callable[..., RunResult]
) -> None:
    central = Store.open(f"sqlite:///{tmp_path / 'central.db'}")
    token = create_token(central, DEVICE)
    r = new_run()
    device = _pending_conflict(tmp_path, central, r)
    ok = new_run()
    device.save_run(ok)
    with serve_in_thread(central) as url:
        report = upload_pending(device, url, token, sleep=lambda _s: None)
        assert report.created == [ok.run_id]
        assert [rid for rid, _ in report.conflicts] == [r.run_id]
        reason = report.conflicts[0][1]
        assert "HTTP 409" in reason and "trials[0].queries" in reason
        assert device.pending_run_ids() == [r.run_id]
        stored_run = device.get_run(r.run_id)
        assert stored_run is not None and stored_run.upload_state == UPLOAD_PENDING
        assert "409" in (stored_run.upload_last_error or "")
        # The CLI: one line for the conflict, then the one-line error; exit 2.
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "wattbench.harness.cli", "upload"),
                *("--to", url, "--token", token, "--db", str(device.engine.url)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    conflict = [ln for ln in lines if ln.startswith("conflict:")]
    assert len(conflict) == 1 and r.run_id in conflict[0] and "trials[0].queries" in conflict[0]
    assert lines[-1].startswith("error: 1 run(s) still pending")
    stored = central.load_result(r.run_id)
    assert stored is not None and content_sha256(stored) == content_sha256(r)  # not overwritten


def test_upload_into_a_database_reports_the_conflict(
    db_url: str, tmp_path: Path, new_run: Callable[..., RunResult]
) -> None:
    central = Store.open(db_url)
    r = new_run()
    device = _pending_conflict(tmp_path, central, r)
    report = upload_pending(device, db_url, None)
    assert [rid for rid, _ in report.conflicts] == [r.run_id] and report.pending == 1
    assert "trials[0].queries" in report.conflicts[0][1]


def test_import_between_stores_same_rule(
    db_url: str, tmp_path: Path, new_run: Callable[..., RunResult]
) -> None:
    source = local_store(tmp_path, "source.db")
    runs = [new_run() for _ in range(3)]
    for x in runs:
        source.save_run(x)
    target = Store.open(db_url)
    first = import_runs(target, str(source.engine.url))
    assert first.created == [x.run_id for x in runs] and first.ok
    again = import_runs(target, str(source.engine.url))
    assert again.duplicates == [x.run_id for x in runs] and not again.created
    # A file with one edited run: that one is a conflict, the store keeps its own.
    dump = tmp_path / "runs.jsonl"
    with dump.open("w") as fh:
        assert dump_runs(source, fh) == 3
    lines = dump.read_text().splitlines()
    lines[1] = edited(RunResult.model_validate_json(lines[1])).model_dump_json()
    dump.write_text("\n".join(lines) + "\n")
    seen: list[str] = []
    report = import_runs(target, str(dump), on_problem=seen.append)
    assert [rid for rid, _ in report.conflicts] == [runs[1].run_id] and not report.ok
    assert len(seen) == 1 and "trials[0].queries" in seen[0] and "runs.jsonl:2" in seen[0]
    assert target.count_runs() == 3
    kept = target.load_result(runs[1].run_id)
    assert kept is not None and content_sha256(kept) == content_sha256(runs[1])
    # One run as `wattbench run --json` prints it (indented) imports too.
    single = tmp_path / "one.json"
    fresh = new_run()
    single.write_text(json.dumps(json.loads(fresh.model_dump_json()), indent=2))
    assert import_runs(target, str(single)).created == [fresh.run_id]


def test_import_cli_one_line_per_problem(tmp_path: Path, new_run: Callable[..., Any]) -> None:
    db = f"sqlite:///{tmp_path / 'target.db'}"
    r = new_run()
    Store.open(db).save_run(r)
    path = tmp_path / "in.jsonl"
    path.write_text(edited(r).model_dump_json() + "\n" + new_run().model_dump_json() + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wattbench.harness.cli", "import", str(path), "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert "in.jsonl:1" in lines[0] and "trials[0].queries" in lines[0]
    assert "1 run(s) imported" in lines[1] and "1 in conflict" in lines[1]
    assert lines[2].startswith("error: 1 run(s) of")
    assert Store.open(db).count_runs() == 2
