"""Runner-side upload: exactly once across outages, retries with backoff, rejections,
a server SIGKILLed mid-upload, 20 concurrent uploaders; SQLite and PostgreSQL servers."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the server extra")
pytest.importorskip("uvicorn", reason="needs the server extra")

from conftest import DEVICE, ServerProcess, free_port, local_store, serve_in_thread
from sqlalchemy import select

from wattbench.core.errors import ConfigError
from wattbench.results_db.schema import UPLOAD_DONE, UPLOAD_RECEIVED, Run
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token, revoke_tokens
from wattbench.results_db.upload import MAX_BACKOFF_S, UploadReport, upload_pending


def server_uuids(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.scalars(select(Run.uuid)))


def fill(store: Store, new_run: Callable[..., Any], n: int, **kw: Any) -> list[str]:
    runs = [new_run(**kw) for _ in range(n)]
    for r in runs:
        store.save_run(r)
    return [r.run_id for r in runs]


def no_sleep(_s: float) -> None:
    pass


def test_pending_runs_reach_the_server_once(
    db_url: str, tmp_path: Path, new_run: Callable[..., Any]
) -> None:
    central = Store.open(db_url)
    token = create_token(central, DEVICE)
    device = local_store(tmp_path)
    ids = fill(device, new_run, 3)
    seen: list[tuple[str, str]] = []
    with serve_in_thread(central) as url:
        report = upload_pending(device, url, token, on_result=lambda i, o: seen.append((i, o)))
        assert report.ok and report.created == ids and report.duplicates == []
        assert seen == [(i, "created") for i in ids]
        assert sorted(server_uuids(central)) == sorted(ids)
        # Nothing pending: a second pass sends nothing.
        again = upload_pending(device, url, token)
        assert (again.attempts, again.delivered, again.pending) == (0, 0, 0)
        # An acknowledgement lost on the way: the run is sent again and acknowledged.
        with device.engine.begin() as conn:
            conn.execute(Run.__table__.update().values(upload_state="pending"))
        lost = upload_pending(device, url, token)
        assert lost.duplicates == ids and lost.created == [] and lost.ok
    assert sorted(server_uuids(central)) == sorted(ids)
    with central.engine.connect() as conn:
        assert set(conn.scalars(select(Run.upload_state))) == {UPLOAD_RECEIVED}
    with device.engine.connect() as conn:
        assert set(conn.scalars(select(Run.upload_state))) == {UPLOAD_DONE}


def test_unreachable_server_leaves_runs_pending_after_bounded_backoff(
    tmp_path: Path, new_run: Callable[..., Any]
) -> None:
    device = local_store(tmp_path)
    ids = fill(device, new_run, 3)
    waits: list[float] = []
    report = upload_pending(
        device,
        f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "wbt_x",
        max_attempts=4,
        backoff_s=2.0,
        timeout_s=2,
        sleep=waits.append,
    )
    assert not report.ok and report.pending == 3 and report.delivered == 0
    assert report.attempts == 4  # the pass stops at the first run: no hammering
    assert report.stopped is not None and "unavailable after 4 attempt(s)" in report.stopped
    assert "ConnectionRefusedError" in report.stopped
    assert len(waits) == 3
    for k, w in enumerate(waits):  # 2, 4, 8 s, each jittered to 50-100 %
        assert 0.5 * 2.0 * 2**k <= w <= min(2.0 * 2**k, MAX_BACKOFF_S)
    run = device.get_run(ids[0])
    assert run is not None and run.upload_attempts == 1
    assert run.upload_last_error and "ConnectionRefusedError" in run.upload_last_error
    assert "3 pending" in report.summary()


def test_rejections_and_fatal_answers(
    db_url: str, tmp_path: Path, new_run: Callable[..., Any]
) -> None:
    central = Store.open(db_url)
    token = create_token(central, DEVICE)
    device = local_store(tmp_path)
    good = fill(device, new_run, 1)
    foreign = fill(device, new_run, 1, device="bench-02")
    good += fill(device, new_run, 1)
    with serve_in_thread(central) as url:
        bad = upload_pending(device, url, "wbt_wrong", sleep=no_sleep)
        assert bad.attempts == 1 and bad.pending == 3
        assert bad.stopped and "refused the token" in bad.stopped and "unknown token" in bad.stopped
        missing = upload_pending(device, url + "/not-here", token, sleep=no_sleep)
        assert missing.stopped and "no wattbench ingest API" in missing.stopped
        # A run of another device is refused; the others still go through.
        report = upload_pending(device, url, token, sleep=no_sleep)
        assert report.created == good
        assert [rid for rid, _ in report.rejected] == foreign
        assert "HTTP 403" in report.rejected[0][1]
        assert report.pending == 1 and device.pending_run_ids() == foreign
        revoke_tokens(central, device=DEVICE)
        revoked = upload_pending(device, url, token, sleep=no_sleep)
        assert revoked.stopped and "token revoked" in revoked.stopped
    assert sorted(server_uuids(central)) == sorted(good)


def test_usage_errors(tmp_path: Path) -> None:
    device = local_store(tmp_path)
    with pytest.raises(ConfigError, match="needs --token"):
        upload_pending(device, "http://127.0.0.1:1", None)
    with pytest.raises(ConfigError, match="invalid --to"):
        upload_pending(device, "ftp://example.org", "t")
    with pytest.raises(ConfigError, match="--max-attempts"):
        upload_pending(device, "http://127.0.0.1:1", "t", max_attempts=0)


def test_upload_straight_into_a_database(
    db_url: str, tmp_path: Path, new_run: Callable[..., Any]
) -> None:
    device = local_store(tmp_path)
    ids = fill(device, new_run, 3, labels=["lab", "ü'; --"])
    report = upload_pending(device, db_url, None)
    assert report.created == ids and report.ok
    central = Store.open(db_url)
    assert sorted(server_uuids(central)) == sorted(ids)
    got = central.load_result(ids[0])
    assert got is not None and got.labels == ["lab", "ü'; --"]
    # Already there: acknowledged, not copied twice.
    with device.engine.begin() as conn:
        conn.execute(Run.__table__.update().values(upload_state="pending"))
    assert upload_pending(device, db_url, None).duplicates == ids
    assert central.count_runs() == 3


def test_database_target_down_keeps_runs_pending(
    tmp_path: Path, new_run: Callable[..., Any]
) -> None:
    device = local_store(tmp_path)
    fill(device, new_run, 2)
    report = upload_pending(
        device,
        "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2",
        None,
        max_attempts=2,
        sleep=no_sleep,
    )
    assert report.pending == 2 and report.stopped and "cannot connect" in report.stopped


class AckDroppingProxy:
    """Relays HTTP/1.1 requests to a server; at request number ``drop_at`` it lets the
    server answer (the run is committed), SIGKILLs the server and closes the client's
    connection without the answer: an acknowledgement lost in a crash."""

    def __init__(self, upstream_port: int, drop_at: int, on_drop: Callable[[], None]) -> None:
        self.upstream_port = upstream_port
        self.drop_at = drop_at
        self.on_drop = on_drop
        self.requests = 0
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _read_message(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            body += chunk
        return head + b"\r\n\r\n" + body

    def _serve(self, client: socket.socket) -> None:
        with client:
            while True:
                request = self._read_message(client)
                if request is None:
                    return
                with self.lock:
                    self.requests += 1
                    n = self.requests
                try:
                    with socket.create_connection(("127.0.0.1", self.upstream_port)) as up:
                        up.sendall(request)
                        response = self._read_message(up)
                except OSError:
                    return  # server down: the client sees its connection closed
                if response is None:
                    return
                if n == self.drop_at:
                    self.on_drop()
                    return
                client.sendall(response)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("batch", [1, 3], ids=["single-posts", "batches-of-3"])
def test_server_killed_mid_upload_then_restarted_nothing_lost_or_doubled(
    db_url: str,
    tmp_path: Path,
    new_run: Callable[..., Any],
    server_process: Callable[..., ServerProcess],
    batch: int,
) -> None:
    central = Store.open(db_url)
    token = create_token(central, DEVICE)
    device = local_store(tmp_path)
    ids = fill(device, new_run, 10)
    srv = server_process(db_url)
    # Single posts: the 4th request is run 4; batches of 3: the 2nd request is runs 4-6.
    proxy = AckDroppingProxy(srv.port, drop_at=4 if batch == 1 else 2, on_drop=srv.kill)
    lost = ids[3:4] if batch == 1 else ids[3:6]
    try:
        first = upload_pending(
            device, proxy.url, token, max_attempts=3, backoff_s=0.01, batch_size=batch
        )
        # Runs 1-3 acknowledged; the next request was committed but its answer was lost.
        assert first.created == ids[:3]
        assert first.stopped and "unavailable after 3 attempt(s)" in first.stopped
        assert first.pending == 7 and device.pending_run_ids() == ids[3:]
        assert sorted(server_uuids(central)) == sorted(ids[:3] + lost)

        server_process(db_url, port=srv.port)  # restarted behind the same proxy
        second = upload_pending(
            device, proxy.url, token, max_attempts=3, backoff_s=0.01, batch_size=batch
        )
    finally:
        proxy.close()
    assert second.ok and second.duplicates == lost and second.created == ids[3 + len(lost) :]
    stored = server_uuids(central)
    assert len(stored) == len(set(stored)) == 10 and set(stored) == set(ids)
    assert device.count_pending() == 0


def test_twenty_concurrent_uploaders_with_duplicates(
    db_url: str,
    tmp_path: Path,
    new_run: Callable[..., Any],
    server_process: Callable[..., ServerProcess],
) -> None:
    central = Store.open(db_url)
    token = create_token(central, DEVICE)
    shared = [new_run() for _ in range(5)]  # every uploader holds these
    template = local_store(tmp_path, "template.db")
    for r in shared:
        template.save_run(r)
    template.close()  # checkpoints the WAL into the file
    devices: list[Store] = []
    own: list[str] = []
    for i in range(20):
        shutil.copyfile(tmp_path / "template.db", tmp_path / f"device-{i}.db")
        store = local_store(tmp_path, f"device-{i}.db")
        own += fill(store, new_run, 1)
        devices.append(store)
    srv = server_process(db_url)
    reports: list[UploadReport] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(devices))

    def push(store: Store) -> None:
        try:
            barrier.wait()
            reports.append(upload_pending(store, srv.url, token, backoff_s=0.05))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(s,)) for s in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    assert len(reports) == 20 and all(r.ok and not r.rejected for r in reports)
    assert sum(len(r.created) for r in reports) == 5 + 20
    assert sum(len(r.duplicates) for r in reports) == 5 * 19
    stored = server_uuids(central)
    assert len(stored) == len(set(stored)) == 25
    assert set(stored) == {r.run_id for r in shared} | set(own)
