"""Batch upload (``POST /api/v1/runs/batch``, :meth:`Store.save_runs`) and the uploader's
batching: each run judged on its own, the good ones stored in one transaction; SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the server extra")
pytest.importorskip("httpx", reason="needs the server extra")

with warnings.catch_warnings():  # starlette's notice about httpx vs httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from conftest import DEVICE, local_store, serve_in_thread
from sqlalchemy import func, select

from wattbench.core.canonical import content_sha256
from wattbench.core.errors import StoreError
from wattbench.core.results import RunResult
from wattbench.results_db import batch as batch_module
from wattbench.results_db import upload as upload_module
from wattbench.results_db.schema import (
    UPLOAD_DONE,
    UPLOAD_PENDING,
    UPLOAD_RECEIVED,
    EnergyMeasurement,
    Run,
    Trial,
)
from wattbench.results_db.server import create_app
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token
from wattbench.results_db.upload import upload_pending

BATCH = "/api/v1/runs/batch"


class Api:
    def __init__(self, store: Store, **app_kwargs: Any) -> None:
        self.store = store
        self.client = TestClient(create_app(store, **app_kwargs))
        self.token = create_token(store, DEVICE)

    def batch(self, runs: list[Any], json_lines: bool = False, **headers: str) -> Any:
        """POST ``runs`` (RunResults, or raw JSON text for entries that are not runs)."""
        texts = [r.model_dump_json() if isinstance(r, RunResult) else r for r in runs]
        if json_lines:
            content = "\n".join(texts) + "\n"
            headers.setdefault("Content-Type", "application/x-ndjson")
        else:
            content = "[" + ",".join(texts) + "]"
        headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.client.post(BATCH, content=content, headers=headers)


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    store = Store.open(db_url)
    yield Api(store)
    store.close()


def stored_ids(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.scalars(select(Run.uuid)))


def statuses(resp: Any) -> list[tuple[str, int]]:
    assert resp.status_code == 200, resp.text
    return [(r["status"], r["code"]) for r in resp.json()["results"]]


@pytest.mark.parametrize("json_lines", [False, True], ids=["json-array", "json-lines"])
def test_batch_answers_each_run_and_stores_exactly_the_good_ones(
    api: Api, new_run: Callable[..., RunResult], json_lines: bool
) -> None:
    old = new_run()
    assert (
        api.client.post(
            "/api/v1/runs",
            content=old.model_dump_json(),
            headers={"Authorization": f"Bearer {api.token}"},
        ).status_code
        == 201
    )
    new_a, new_b = new_run(), new_run()
    conflicting = old.model_copy(update={"labels": ["edited"]})
    implausible = new_run().model_copy(update={"throughput_ips": -5.0})
    foreign = new_run(device="bench-02")
    repeated_same = new_b  # the same run twice in one batch
    repeated_other = new_b.model_copy(update={"labels": ["other"]})
    runs: list[Any] = [
        new_a,
        old,
        conflicting,
        implausible,
        foreign,
        '{"run_id": "not-a-run"}',
        new_b,
        repeated_same,
        repeated_other,
    ]
    resp = api.batch(runs, json_lines=json_lines)
    assert statuses(resp) == [
        ("created", 201),
        ("duplicate", 200),
        ("conflict", 409),
        ("invalid", 422),
        ("forbidden", 403),
        ("invalid", 422),
        ("created", 201),
        ("duplicate", 200),
        ("conflict", 409),
    ]
    body = resp.json()
    assert body["status"] == "ok" and body["runs"] == 9
    counts = {k: body[k] for k in ("created", "duplicate", "conflict", "invalid", "forbidden")}
    assert counts == {"created": 2, "duplicate": 2, "conflict": 2, "invalid": 2, "forbidden": 1}
    results = body["results"]
    assert [r["index"] for r in results] == list(range(9))
    assert results[0]["run_id"] == new_a.run_id and results[5]["run_id"] == "not-a-run"
    assert results[2]["path"] == "labels[0]" and "different content" in results[2]["detail"]
    assert results[8]["path"] == "labels[0]"
    assert results[3]["problems"] == [{"path": "throughput_ips", "message": "-5.0 is negative"}]
    assert "bench-02" in results[4]["detail"]
    # Exactly the good runs are stored, whole; the stored ones are unchanged.
    assert stored_ids(api.store) == {old.run_id, new_a.run_id, new_b.run_id}
    for r in (old, new_a, new_b):
        back = api.store.load_result(r.run_id)
        assert back is not None and content_sha256(back) == content_sha256(r)
    with api.store.engine.connect() as conn:
        assert conn.scalar(select(func.count(Trial.id))) == 3 * len(old.trials)
        n_energy = sum(len(t.energy) for t in old.trials) + len(old.energy)
        assert conn.scalar(select(func.count(EnergyMeasurement.id))) == 3 * n_energy
        assert set(conn.scalars(select(Run.upload_state))) == {UPLOAD_RECEIVED}


def test_retrying_a_whole_batch_is_idempotent(api: Api, new_run: Callable[..., Any]) -> None:
    runs = [new_run() for _ in range(5)]
    bad = new_run().model_copy(update={"inferences": -1})
    first = api.batch([*runs, bad])
    assert statuses(first) == [("created", 201)] * 5 + [("invalid", 422)]
    # The answer was lost: the uploader sends the same batch again, as JSON Lines this time.
    again = api.batch([*runs, bad], json_lines=True)
    assert statuses(again) == [("duplicate", 200)] * 5 + [("invalid", 422)]
    assert stored_ids(api.store) == {r.run_id for r in runs}
    assert api.store.count_runs() == 5


def test_body_limit_and_shape_of_a_batch(db_url: str, new_run: Callable[..., Any]) -> None:
    store = Store.open(db_url)
    api = Api(store, max_body_bytes=16 * 1024, max_batch_runs=3)
    runs = [new_run() for _ in range(4)]
    assert len(runs[0].model_dump_json()) * 4 > 16 * 1024

    def error(resp: Any, status: int, code: str) -> str:
        assert resp.status_code == status, resp.text
        body = resp.json()
        assert body["status"] == "error" and body["error"] == code, body
        return str(body["detail"])

    assert "16384 bytes" in error(api.batch(runs), 413, "too_large")  # by Content-Length
    payload = ("[" + ",".join(r.model_dump_json() for r in runs) + "]").encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]

    chunked = api.client.post(
        BATCH, content=chunks(), headers={"Authorization": f"Bearer {api.token}"}
    )
    error(chunked, 413, "too_large")
    small = [r.model_copy(update={"warnings": []}) for r in runs]
    assert "more than 3" in error(api.batch([*small[:2], "1", "2"]), 413, "too_large")
    assert "JSON" in error(api.batch(['{"run_id": '], json_lines=False), 400, "malformed_json")
    not_a_list = api.client.post(
        BATCH, content=runs[0].model_dump_json(), headers={"Authorization": f"Bearer {api.token}"}
    )
    assert "JSON array" in error(not_a_list, 422, "invalid_request")
    error(api.batch(runs[:1], Authorization="Bearer wbt_nope"), 401, "unauthorized")
    gz = api.batch(runs[:1], **{"Content-Encoding": "gzip"})
    error(gz, 415, "unsupported_encoding")
    assert store.count_runs() == 0
    # Within the limits, JSON Lines with a malformed line: that line alone is invalid.
    ok = api.batch([runs[0], "{not json", runs[1]], json_lines=True)
    assert statuses(ok) == [("created", 201), ("invalid", 400), ("created", 201)]
    assert ok.json()["results"][1]["error"] == "malformed_json"
    empty = api.batch([])
    assert empty.status_code == 200 and empty.json()["runs"] == 0
    assert store.count_runs() == 2
    store.close()


def test_a_database_failure_writes_nothing_of_the_batch(
    api: Api, new_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write is all or nothing: a failure after the runs rows went in rolls the whole
    batch back (503), and the same batch sent again goes in whole."""
    runs = [new_run() for _ in range(4)]
    real = batch_module._insert_many

    def broken(conn: Any, table: Any, rows: Any) -> None:
        if table.name == "energy_measurements":
            raise RuntimeError("disk full")
        real(conn, table, rows)

    monkeypatch.setattr(batch_module, "_insert_many", broken)
    with pytest.raises(RuntimeError, match="disk full"):  # not a database error: raised
        api.store.save_runs(runs, upload_state=UPLOAD_RECEIVED, keep_payload=False)
    assert api.store.count_runs() == 0

    def down(conn: Any, table: Any, rows: Any) -> None:
        if table.name == "energy_measurements":
            from sqlalchemy.exc import OperationalError

            raise OperationalError("COPY", {}, Exception("server closed the connection"))
        real(conn, table, rows)

    monkeypatch.setattr(batch_module, "_insert_many", down)
    with pytest.raises(StoreError, match="nothing of it was written"):
        api.store.save_runs(runs, upload_state=UPLOAD_RECEIVED, keep_payload=False)
    resp = api.batch(runs)
    assert resp.status_code == 503 and resp.json()["error"] == "store_unavailable"
    assert api.store.count_runs() == 0
    monkeypatch.setattr(batch_module, "_insert_many", real)
    assert statuses(api.batch(runs)) == [("created", 201)] * 4
    assert stored_ids(api.store) == {r.run_id for r in runs}


def test_store_save_runs_applies_the_single_run_rules(
    db_url: str, new_run: Callable[..., Any]
) -> None:
    store = Store.open(db_url)
    kept = new_run()
    assert store.save_run(kept)
    runs = [new_run() for _ in range(3)]
    outcomes = store.save_runs(
        [*runs, kept, kept.model_copy(update={"labels": ["x"]})], keep_payload=True
    )
    assert [o.status for o in outcomes] == ["created"] * 3 + ["duplicate", "conflict"]
    conflict = outcomes[4].conflict
    assert conflict is not None and conflict.path == "labels[0]"
    assert set(store.pending_run_ids()) == {kept.run_id, *(r.run_id for r in runs)}
    for r in runs:  # payload kept: loads back exactly as given
        back = store.load_result(r.run_id)
        assert back is not None and back.model_dump() == r.model_dump()
    assert store.save_runs([]) == []
    store.close()


# -- the uploader ---------------------------------------------------------------------------
def record_posts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(path, status) of every request the uploader makes."""
    seen: list[tuple[str, int]] = []
    real = upload_module._HttpTarget._post

    def post(self: Any, path: str, body: bytes) -> tuple[int, bytes]:
        status, data = real(self, path, body)
        seen.append((path, status))
        return status, data

    monkeypatch.setattr(upload_module._HttpTarget, "_post", post)
    return seen


def fill(store: Store, new_run: Callable[..., Any], n: int, **kw: Any) -> list[str]:
    runs = [new_run(**kw) for _ in range(n)]
    assert all(o.status == "created" for o in store.save_runs(runs))
    return [r.run_id for r in runs]


def test_uploader_sends_the_spool_in_bounded_batches(
    db_url: str, tmp_path: Path, new_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    central = Store.open(db_url)
    token = create_token(central, DEVICE)
    device = local_store(tmp_path)
    ids = fill(device, new_run, 25)
    foreign = fill(device, new_run, 1, device="bench-02")
    seen = record_posts(monkeypatch)
    outcomes: list[tuple[str, str]] = []
    with serve_in_thread(central) as url:
        report = upload_pending(
            device, url, token, batch_size=10, on_result=lambda i, o: outcomes.append((i, o))
        )
        assert seen == [(BATCH, 200)] * 3  # 10 + 10 + 6 runs
        assert sorted(report.created) == sorted(ids) and report.duplicates == []
        assert [rid for rid, _ in report.rejected] == foreign
        assert "HTTP 403" in report.rejected[0][1] and report.pending == 1
        assert len(outcomes) == 26 and {o for _, o in outcomes} == {"created", "rejected"}
        # by size too: about two runs' bodies per batch
        seen.clear()
        with device.engine.begin() as conn:
            conn.execute(Run.__table__.update().values(upload_state=UPLOAD_PENDING))
        body = len(upload_module.run_payload(device, ids[0]))
        again = upload_pending(device, url, token, batch_size=10, batch_bytes=2 * body + 100)
        assert sorted(again.duplicates) == sorted(ids) and again.pending == 1
        assert len(seen) == 13 and {p for p, _ in seen} == {BATCH}
    assert stored_ids(central) == set(ids)
    run = device.get_run(ids[0])
    assert run is not None and run.upload_state == UPLOAD_DONE and run.upload_attempts == 2
    bad = device.get_run(foreign[0])
    assert bad is not None and bad.upload_state == UPLOAD_PENDING
    assert bad.upload_last_error and "HTTP 403" in bad.upload_last_error
    central.close()


def test_uploader_falls_back_to_single_posts_on_an_older_server(
    db_url: str, tmp_path: Path, new_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    central = Store.open(db_url)
    token = create_token(central, DEVICE)
    device = local_store(tmp_path)
    ids = fill(device, new_run, 5)
    seen = record_posts(monkeypatch)
    real_create = create_app

    def old_server(store: Store, **kw: Any) -> Any:  # a wattbench serve without batches
        app = real_create(store, **kw)
        app.router.routes = [r for r in app.router.routes if getattr(r, "path", "") != BATCH]
        return app

    monkeypatch.setattr("wattbench.results_db.server.create_app", old_server)
    with serve_in_thread(central) as url:
        report = upload_pending(device, url, token, batch_size=3)
    assert report.ok and sorted(report.created) == sorted(ids)
    # one batch refused (404), then every run on its own, without asking again
    assert seen == [(BATCH, 404)] + [("/api/v1/runs", 201)] * 5
    assert stored_ids(central) == set(ids)
    central.close()


def test_uploader_halves_a_batch_the_server_finds_too_large(
    db_url: str, tmp_path: Path, new_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    central = Store.open(db_url)
    token = create_token(central, DEVICE)
    device = local_store(tmp_path)
    ids = fill(device, new_run, 4)
    body = len(upload_module.run_payload(device, ids[0]))
    seen = record_posts(monkeypatch)
    with serve_in_thread(central, max_body_bytes=2 * body + 100) as url:
        report = upload_pending(device, url, token, batch_size=4)
    assert report.ok and sorted(report.created) == sorted(ids)
    assert seen == [(BATCH, 413), (BATCH, 200), (BATCH, 200)]
    central.close()


def test_uploader_batches_into_a_database(
    db_url: str, tmp_path: Path, new_run: Callable[..., Any]
) -> None:
    central = Store.open(db_url)
    device = local_store(tmp_path)
    ids = fill(device, new_run, 6)
    conflicting = device.load_result(ids[0])
    assert conflicting is not None
    central.save_run(conflicting.model_copy(update={"labels": ["other"]}))
    report = upload_pending(device, db_url, None, batch_size=4)
    assert sorted(report.created) == sorted(ids[1:])
    assert [rid for rid, _ in report.conflicts] == [ids[0]]
    assert "labels[0]" in report.conflicts[0][1] and report.pending == 1
    again = upload_pending(device, db_url, None, batch_size=4)
    assert again.created == [] and again.pending == 1 and len(again.conflicts) == 1
    assert json.dumps(sorted(stored_ids(central))) == json.dumps(sorted(ids))
    central.close()


def test_batches_keep_the_configuration_summaries_equal_to_a_recomputation(
    db_url: str, new_run: Callable[..., RunResult]
) -> None:
    """One upsert per summary key and batch (runs of a key merged first) counts the same as
    one per run: the table equals a recomputation from the runs."""
    from test_config_summaries import assert_rows_equal, recomputed, stored_rows, varied_runs

    store = Store.open(db_url)
    runs = varied_runs(new_run)
    store.save_run(runs[0])
    outcomes = store.save_runs([*runs[1:8], runs[0]], keep_payload=False)
    assert [o.status for o in outcomes] == ["created"] * 7 + ["duplicate"]
    store.save_runs(runs[8:], keep_payload=False)
    rows = stored_rows(store)
    assert_rows_equal(rows, recomputed(store))
    assert sum(r["runs"] for r in rows) == sum(r.valid for r in runs)
    store.close()
