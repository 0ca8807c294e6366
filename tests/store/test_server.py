"""The ingest API in process (FastAPI's TestClient), with SQLite and PostgreSQL behind it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the server extra")
pytest.importorskip("httpx", reason="needs the server extra")

with warnings.catch_warnings():  # starlette's notice about httpx vs httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from wattbench.results_db.schema import UPLOAD_RECEIVED, Run
from wattbench.results_db.server import create_app
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token, revoke_tokens

DEVICE = "bench-01"


class Api:
    def __init__(self, store: Store, **app_kwargs: Any) -> None:
        self.store = store
        self.client = TestClient(create_app(store, **app_kwargs))
        self.token = create_token(store, DEVICE)

    def post(self, body: Any, token: str | None = "default", **headers: str) -> Any:
        if token == "default":
            token = self.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = body if isinstance(body, bytes | str) else body.model_dump_json()
        return self.client.post("/api/v1/runs", content=content, headers=headers)


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    store = Store.open(db_url)
    yield Api(store)
    store.close()


def assert_error(resp: Any, status: int, code: str, *fragments: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == "error" and body["error"] == code, body
    assert "\n" not in body["detail"]
    for f in fragments:
        assert f in body["detail"], body["detail"]


def test_created_then_duplicate_is_idempotent(api: Api, new_run: Callable[..., Any]) -> None:
    r = new_run()
    first = api.post(r)
    assert first.status_code == 201 and first.json() == {"status": "created", "run_id": r.run_id}
    again = api.post(r)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert api.store.count_runs() == 1
    stored = api.store.get_run(r.run_id)
    assert stored is not None and stored.upload_state == UPLOAD_RECEIVED
    rebuilt = api.store.load_result(r.run_id)
    assert rebuilt is not None and rebuilt.trials == r.trials  # nothing lost on the way


def test_auth_errors_are_401_with_the_remedy(api: Api, new_run: Callable[..., Any]) -> None:
    r = new_run()
    assert_error(api.post(r, token=None), 401, "unauthorized", "missing bearer token")
    resp = api.post(r, token=None, Authorization="Basic dXNlcjpwdw==")
    assert_error(resp, 401, "unauthorized", "missing bearer token")
    assert_error(api.post(r, token="wbt_not-a-real-token"), 401, "unauthorized", "unknown token")
    revoke_tokens(api.store, device=DEVICE)
    resp = api.post(r)
    assert_error(resp, 401, "unauthorized", "token revoked", "wattbench token create")
    assert api.store.count_runs() == 0


def test_a_token_writes_only_its_own_devices_runs(api: Api, new_run: Callable[..., Any]) -> None:
    other = new_run(device="bench-02")
    resp = api.post(other)
    assert_error(resp, 403, "forbidden", "'bench-01'", "'bench-02'")
    assert api.store.count_runs() == 0
    # bench-02's own token works; its uuid cannot then be claimed by bench-01.
    token2 = create_token(api.store, "bench-02")
    assert api.post(other, token=token2).status_code == 201
    hijack = other.model_copy(update={"device": other.device | {"name": DEVICE}})
    assert_error(api.post(hijack), 409, "conflict", "already stored for device 'bench-02'")
    assert api.store.count_runs() == 1


def test_malformed_and_invalid_payloads(api: Api, new_run: Callable[..., Any]) -> None:
    r = new_run()
    assert_error(api.post(b"{not json"), 400, "malformed_json", "not valid JSON")
    assert_error(api.post(b"\xff\xfe"), 400, "malformed_json")
    nan = r.model_dump_json().replace('"load_ms":', '"load_ms":NaN,"x":', 1)
    assert_error(api.post(nan), 400, "malformed_json", "NaN")
    resp = api.post(b'{"run_id": "x"}')
    assert_error(resp, 422, "invalid_run", "not a wattbench run")
    assert len(resp.json()["errors"]) > 1
    data = json.loads(r.model_dump_json())
    data["trials"][0]["energy"][0]["gross_j"] = "lots"
    resp = api.post(json.dumps(data))
    assert_error(resp, 422, "invalid_run", "trials.0.energy.0.gross_j")
    # Valid JSON for pydantic but not for the database columns: refused up front.
    assert_error(api.post(r.model_copy(update={"run_id": "not-a-uuid"})), 422, "invalid_run")
    long_suite = r.model_copy(update={"suite": "s" * 101})
    assert_error(api.post(long_suite), 422, "invalid_run", "suite: longer than 100")
    bad_dev = r.model_copy(update={"device": r.device | {"memory_bytes": "lots"}})
    assert_error(api.post(bad_dev), 422, "invalid_run", "device.memory_bytes")
    assert api.store.count_runs() == 0


def test_oversized_bodies_are_413(db_url: str, new_run: Callable[..., Any]) -> None:
    store = Store.open(db_url)
    api = Api(store, max_body_bytes=2048)
    r = new_run()
    assert len(r.model_dump_json()) > 2048
    assert_error(api.post(r), 413, "too_large", "2048 bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream is counted
        body = r.model_dump_json().encode()
        for i in range(0, len(body), 512):
            yield body[i : i + 512]

    resp = api.client.post(
        "/api/v1/runs", content=chunks(), headers={"Authorization": f"Bearer {api.token}"}
    )
    assert_error(resp, 413, "too_large")
    assert store.count_runs() == 0


def test_labels_with_sql_metacharacters_and_unicode_arrive_verbatim(
    api: Api, new_run: Callable[..., Any]
) -> None:
    labels = ["x'); DROP TABLE runs; --", "ünïcødé ⚡ 日本", 'quo"te\\', "%_", "a,b;c", "NaN"]
    r = new_run(labels=labels)
    assert api.post(r).status_code == 201
    with api.store.engine.connect() as conn:
        from sqlalchemy import select

        assert conn.scalar(select(Run.labels)) == labels
    rows = api.client.get("/api/v1/leaderboard").json()
    assert rows[0]["labels"] == labels


def test_leaderboard_and_health(api: Api, new_run: Callable[..., Any]) -> None:
    slow, fast = new_run(ipj=100.0), new_run(ipj=300.0)
    for r in (slow, fast):
        api.post(r)
    rows = api.client.get("/api/v1/leaderboard", params={"suite": "fake"}).json()
    assert [(x["rank"], x["run_id"]) for x in rows] == [(1, fast.run_id), (2, slow.run_id)]
    one = api.client.get("/api/v1/leaderboard", params={"limit": 1}).json()
    assert [x["run_id"] for x in one] == [fast.run_id]
    assert api.client.get("/api/v1/leaderboard", params={"suite": "nope"}).json() == []
    assert_error(api.client.get("/api/v1/leaderboard?limit=0"), 422, "invalid_request", "limit")
    health = api.client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert_error(api.client.get("/api/v1/nothing"), 404, "not_found")
    assert_error(api.client.get("/api/v1/runs"), 405, "method_not_allowed")


def test_database_down_is_503_so_clients_retry(tmp_path: Any, new_run: Callable[..., Any]) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'down.db'}")
    api = Api(store)
    (tmp_path / "down.db").unlink()  # the file vanishes under the server
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"down.db{suffix}").unlink(missing_ok=True)
    store.engine.dispose()
    resp = api.post(new_run())
    assert_error(resp, 503, "store_unavailable", "retry later")
    assert api.client.get("/healthz").status_code == 503
