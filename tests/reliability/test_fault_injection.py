"""Fault injection (docs/reliability.md, section 6; the figures there come from these tests).

* a TCP proxy between the uploader and the ingest API resets connections, delays
  requests, truncates answers and closes after the server committed but before the
  answer reached the device: every run stored exactly once, no conflict;
* a private PostgreSQL behind the ingest API is stopped (immediate shutdown: a crash) and
  started again during ingest: the API answers 503 while it is down, the uploaders retry,
  nothing is lost or doubled;
* fast fake runs are SIGKILLed, each at a random moment of its run, four at a time into
  one SQLite file (``WATTBENCH_FAULT_KILLS`` kills, default 40): no partial row, only
  whole runs ranked, every killed run listed by ``wattbench runs --aborted`` with its phase
  or stored whole.

Each test prints its figures (``pytest -s``). The long ones are marked ``long``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEVICE, free_port, wait_healthy
from sqlalchemy import select, text

from wattbench.core.results import RunResult
from wattbench.harness import journal
from wattbench.results_db.schema import Run
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token
from wattbench.results_db.upload import upload_pending

#: Runs pushed through the faulty proxy (env override for a quicker look).
FAULT_RUNS = int(os.environ.get("WATTBENCH_FAULT_RUNS", "1000"))


def fast_dir() -> Path:
    """A scratch directory on tmpfs when there is one: fsync-heavy setup costs nothing."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    return Path(tempfile.mkdtemp(prefix="wb-fault-", dir=base))


class IngestServer:
    """``wattbench serve``'s server in a child process (the other core; killable)."""

    def __init__(self, db_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = (
            "import sys\n"
            "from wattbench.results_db.server import run_server\n"
            "from wattbench.results_db.store import Store\n"
            "run_server(Store.open(sys.argv[1]), '127.0.0.1', int(sys.argv[2]), access_log=False)\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, db_url, str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_healthy(self.url)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the faulty proxy ------------------------------------------------------------------------
FAULTS = ("reset", "commit_then_close", "truncated_answer", "delay")


def _read_message(sock: socket.socket, buf: bytearray) -> bytes | None:
    """One HTTP/1.1 message (headers + Content-Length body) from ``sock``; None at EOF."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    head_end = buf.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buf[:head_end]).split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buf) < head_end + length:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    message = bytes(buf[: head_end + length])
    del buf[: head_end + length]
    return message


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0): the peer sees ECONNRESET."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultyProxy:
    """Forwards HTTP requests to ``upstream``; ``rate`` of them meet one of FAULTS."""

    def __init__(self, upstream_port: int, rate: float, seed: int = 19) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _pick(self) -> str | None:
        with self.lock:
            self.requests += 1
            if self.rng.random() >= self.rate:
                return None
            fault = self.rng.choice(FAULTS)
            self.faults[fault] += 1
            return fault

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        cbuf, ubuf = bytearray(), bytearray()
        try:
            while True:
                request = _read_message(client, cbuf)
                if request is None:
                    return
                fault = self._pick()
                if fault == "reset":  # before the server saw anything
                    _reset(client)
                    return
                if fault == "delay":
                    time.sleep(self.rng.uniform(0.01, 0.1))
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                upstream.sendall(request)
                answer = _read_message(upstream, ubuf)
                if answer is None:
                    _reset(client)
                    return
                if fault == "commit_then_close":  # committed; the answer never arrives
                    _reset(client)
                    return
                if fault == "truncated_answer":
                    client.sendall(answer[: len(answer) // 2])
                    _reset(client)
                    return
                client.sendall(answer)
        except OSError:
            _reset(client)
        finally:
            if upstream is not None:
                upstream.close()

    def close(self) -> None:
        self.listener.close()


def _fill(store: Store, base: RunResult, n: int) -> list[str]:
    ids = []
    for i in range(n):
        run_id = f"{i:08x}-0000-4000-8000-{random.getrandbits(48):012x}"
        r = base.model_copy(update={"run_id": run_id})
        store.save_run(r)
        ids.append(r.run_id)
    return ids


def _uuids(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.scalars(select(Run.uuid)))


def _upload_until_done(
    device: Store, url: str, token: str, *, passes: int = 20, **kw: Any
) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for _ in range(passes):
        report = upload_pending(device, url, token, **kw)
        totals["passes"] += 1
        totals["created"] += len(report.created)
        totals["duplicates"] += len(report.duplicates)
        totals["conflicts"] += len(report.conflicts)
        totals["rejected"] += len(report.rejected)
        totals["attempts"] += report.attempts
        if report.pending == 0:
            break
    return dict(totals)


@pytest.mark.long
@pytest.mark.parametrize("batch", [1, 25], ids=["single-posts", "batches-of-25"])
def test_faulty_network_every_run_stored_exactly_once(base_result: RunResult, batch: int) -> None:
    """N runs through a proxy that faults ≥ 20 % of requests: N stored, 0 doubled, 0 conflicts;
    one run per request, and batches of 25 (a lost answer then loses 25 acknowledgements)."""
    scratch = fast_dir()
    try:
        central_url = f"sqlite:///{scratch / 'central.db'}"
        central = Store.open(central_url)
        token = create_token(central, DEVICE)
        device = Store.open(f"sqlite:///{scratch / 'device.db'}")
        t0 = time.monotonic()
        ids = _fill(device, base_result, FAULT_RUNS)
        fill_s = time.monotonic() - t0
        server = IngestServer(central_url)
        proxy = FaultyProxy(server.port, rate=0.35)
        try:
            t0 = time.monotonic()
            totals = _upload_until_done(
                device,
                proxy.url,
                token,
                max_attempts=10,
                backoff_s=0.001,
                timeout_s=5,
                batch_size=batch,
            )
            upload_s = time.monotonic() - t0
        finally:
            proxy.close()
            server.stop()
        stored = _uuids(central)
        faulted = sum(proxy.faults.values())
        broken = faulted - proxy.faults["delay"]  # the request or its answer was lost
        figures = {
            "runs": FAULT_RUNS,
            "runs_per_request": batch,
            "requests": proxy.requests,
            "faulted": faulted,
            "faulted_share": round(faulted / proxy.requests, 3),
            "lost_share": round(broken / proxy.requests, 3),
            "faults": dict(proxy.faults),
            **totals,
            "stored": len(stored),
            "stored_distinct": len(set(stored)),
            "upload_s": round(upload_s, 1),
            "fill_s": round(fill_s, 1),
        }
        print(f"\nFAULT-INJECTION network: {json.dumps(figures)}")
        # ≥ 20 % lost, delays not counted (batches: tens of requests, so ≥ 10 %, and at
        # least one whole batch committed whose answer was lost)
        assert broken / proxy.requests >= (0.2 if batch == 1 else 0.1)
        assert totals["duplicates"] >= batch
        assert sorted(stored) == sorted(ids)  # exactly N, each once
        assert totals["conflicts"] == 0 and totals["rejected"] == 0
        assert totals["created"] + totals["duplicates"] == FAULT_RUNS
        assert device.count_pending() == 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- PostgreSQL down and up during ingest ----------------------------------------------------
class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb/pg_ctl) on a free port, stoppable at will.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres``
    user and every pg_ctl call goes through ``su``.
    """

    def __init__(self) -> None:
        self.initdb = shutil.which("initdb")
        self.pg_ctl = shutil.which("pg_ctl")
        if self.initdb is None or self.pg_ctl is None:
            pytest.skip("initdb/pg_ctl are not on PATH")
        self.dir = Path(tempfile.mkdtemp(prefix="wb-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres")
        self._sh(f"{self.initdb} -D {self.data} -A trust -U postgres --no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _sh(self, command: str) -> None:
        argv = (
            ["su", "postgres", "-s", "/bin/sh", "-c", command]
            if self.as_root
            else [
                "/bin/sh",
                "-c",
                command,
            ]
        )
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._sh(f"{self.pg_ctl} -D {self.data} -o '{opts}' -l {self.dir}/log -w start")

    def crash(self) -> None:
        """Immediate shutdown: no checkpoint, clients cut off (recovery at the next start)."""
        self._sh(f"{self.pg_ctl} -D {self.data} -m immediate -w stop")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._sh(f"{self.pg_ctl} -D {self.data} -m fast -w stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.long
def test_postgresql_crash_and_restart_during_ingest(
    private_pg: PrivatePostgres, base_result: RunResult
) -> None:
    """4 devices × 50 runs; the database crashes mid-ingest and comes back: 200 stored."""
    n_devices, n_runs = 4, 50
    central = Store.open(private_pg.url)
    server = IngestServer(private_pg.url)
    scratch = fast_dir()
    devices: list[tuple[Store, str, list[str]]] = []
    for d in range(n_devices):
        name = f"pg-dev-{d}"
        store = Store.open(f"sqlite:///{scratch / f'{name}.db'}")
        run = base_result.model_copy(update={"device": base_result.device | {"name": name}})
        devices.append((store, create_token(central, name), _fill(store, run, n_runs)))
    central.close()
    results: dict[int, dict[str, int]] = {}
    outage: dict[str, Any] = {}

    def device_loop(i: int) -> None:
        store, token, _ = devices[i]
        results[i] = _upload_until_done(  # one run per request: the crash falls mid-spool
            store,
            server.url,
            token,
            passes=50,
            max_attempts=6,
            backoff_s=0.05,
            timeout_s=10,
            batch_size=1,
        )

    threads = [threading.Thread(target=device_loop, args=(i,)) for i in range(n_devices)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # let a part of the runs in
            with contextlib.suppress(Exception):
                done = sum(s.count_pending() for s, _, _ in devices)
                if done <= n_devices * n_runs * 0.7:
                    break
            time.sleep(0.05)
        t_crash = time.monotonic()
        private_pg.crash()
        codes = [_status(server.url) for _ in range(3)]  # while it is down
        outage["health_while_down"] = codes
        time.sleep(2.0)
        private_pg.start()
        outage["down_s"] = round(time.monotonic() - t_crash, 1)
        for t in threads:
            t.join(timeout=180)
        outage["health_after"] = _status(server.url)
    finally:
        server.stop()
    central = Store.open(private_pg.url)
    stored = _uuids(central)
    expected = sorted(i for _, _, ids in devices for i in ids)
    totals = Counter[str]()
    for r in results.values():
        totals.update(r)
    figures = {
        "devices": n_devices,
        "runs": n_devices * n_runs,
        **outage,
        **dict(totals),
        "stored": len(stored),
        "stored_distinct": len(set(stored)),
    }
    print(f"\nFAULT-INJECTION postgresql: {json.dumps(figures)}")
    central.close()
    shutil.rmtree(scratch, ignore_errors=True)
    assert all(code == 503 for code in outage["health_while_down"])
    assert outage["health_after"] == 200
    assert sorted(stored) == expected  # nothing lost, nothing doubled
    assert totals["conflicts"] == 0 and totals["rejected"] == 0
    assert totals["attempts"] > n_devices * n_runs  # the outage was felt and retried
    assert all(s.count_pending() == 0 for s, _, _ in devices)


# -- SIGKILL at random moments ---------------------------------------------------------------
FAKE_RUN = Path(__file__).with_name("fake_run.py")
CLI = [sys.executable, "-m", "wattbench.harness.cli"]
#: Fake-run processes SIGKILLed by the test, each exactly once (env override: 100+ for the
#: issue's figure; the default keeps the test near a minute on a loaded 2-core machine).
FAULT_KILLS = int(os.environ.get("WATTBENCH_FAULT_KILLS", "40"))
#: Processes alive at once, all writing into one SQLite file.
KILL_POOL = 4
#: fake_run.py settings: phases of ~0.1 s, 50 ms inside the store transaction.
FAKE_ARGS = ("--query-ms", "0.5", "--idle-ms", "100", "--slow-store", "0.05")


def _spawn_fake(db: str, device: str, runs: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(FAKE_RUN), db, "--runs", str(runs), "--device", device, *FAKE_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


class JournalWatch:
    """Maps pids to the moment (monotonic) their first run journal appeared: imports done,
    a run begun. Each journal file is parsed once (its pid never changes), so polling a
    directory that fills with aborted journals stays cheap."""

    def __init__(self) -> None:
        self.seen: set[Path] = set()
        self.started: dict[int, float] = {}

    def poll(self) -> None:
        for path in journal.journal_dir().glob("*.json"):
            if path in self.seen:
                continue
            with contextlib.suppress(OSError, ValueError):
                pid = json.loads(path.read_text()).get("pid")
                self.seen.add(path)
                if isinstance(pid, int):
                    self.started.setdefault(pid, time.monotonic())


def _calibrate_run_s(db: str) -> float:
    """Seconds from a fake run's journal to its commit, measured on one process alone."""
    watch = JournalWatch()
    proc = _spawn_fake(db, "calibration", runs=2)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while proc.pid not in watch.started and time.monotonic() < deadline:
        watch.poll()
        time.sleep(0.005)
    line = ""
    while len(line.strip()) != 36:  # the run id, printed after the commit (IN_TX before it)
        line = proc.stdout.readline()
        assert line, "the calibration run ended without storing a run"
    run_s = time.monotonic() - watch.started[proc.pid]
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    return run_s


@pytest.mark.long
def test_sigkill_at_random_moments_leaves_no_partial_row(tmp_path: Path) -> None:
    """FAULT_KILLS fake-run processes, KILL_POOL at a time into one SQLite file, each
    SIGKILLed once at a random moment of its own run.

    The processes are asked for 1000 runs, so none can finish before its kill, however fast
    the machine. The kill moments are stratified over one run's measured length (1.5 × the
    journal-to-commit time of a calibration run alone: runs slow down when 4 share the CPU),
    each measured from the process's own first journal, so they spread over the phases —
    warm-up, idle baseline, trials, inside the store transaction, after the commit — on a
    fast or a slow machine alike."""
    rng = random.Random(1919)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    Store.open(db).close()
    t_start = time.monotonic()
    window_s = 1.5 * _calibrate_run_s(db)
    # stratified: kill k's moment lies in its own 1/N of the window, in shuffled order
    slots = list(range(FAULT_KILLS))
    rng.shuffle(slots)
    delays = [window_s * (slot + rng.random()) / FAULT_KILLS for slot in slots]

    watch = JournalWatch()
    live: dict[int, tuple[subprocess.Popen[str], str, float]] = {}  # pid -> (proc, device, delay)
    killed: dict[int, str] = {}  # pid -> device
    died_alone: list[int] = []
    printed = 0
    spawned = 0
    try:
        while len(killed) + len(died_alone) < FAULT_KILLS:
            while len(live) < KILL_POOL and spawned < FAULT_KILLS:
                device = f"kill-{spawned:04d}"
                proc = _spawn_fake(db, device, runs=1000)
                live[proc.pid] = (proc, device, delays[spawned])
                spawned += 1
            watch.poll()
            now = time.monotonic()
            for pid, (proc, device, delay) in list(live.items()):
                if proc.poll() is not None:  # crashed: it had 1000 runs to do
                    died_alone.append(pid)
                elif pid in watch.started and now >= watch.started[pid] + delay:
                    os.kill(pid, signal.SIGKILL)
                    killed[pid] = device
                else:
                    continue
                out, _ = proc.communicate(timeout=30)
                printed += sum(len(word) == 36 for word in out.split())  # run ids, not IN_TX
                del live[pid]
            time.sleep(0.005)
    finally:
        for proc, _, _ in live.values():
            proc.kill()
            proc.communicate(timeout=30)
    kill_s = time.monotonic() - t_start

    store = Store.open(db)
    with store.engine.connect() as conn:
        whole = conn.execute(
            text(
                "SELECT r.uuid, d.name,"
                " (SELECT count(*) FROM trials t WHERE t.run_id = r.id),"
                " (SELECT count(*) FROM energy_measurements e WHERE e.run_id = r.id),"
                " (SELECT count(*) FROM run_payloads p WHERE p.run_id = r.id)"
                " FROM runs r JOIN devices d ON d.id = r.device_id"
            )
        ).all()
    partial = [u for u, _, t, e, p in whole if (t, e, p) != (2, 3, 1)]
    stored_devices = Counter(name for _, name, *_ in whole)
    ranked = {row.run_id for row in store.leaderboard(include_invalid=True)}
    listed = subprocess.run(
        [*CLI, "runs", "--aborted", "--json", "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    aborted = json.loads(listed.stdout)
    phases = Counter(row["phase"] for row in aborted)
    figures = {
        "kills_asked": FAULT_KILLS,
        "killed": len(killed),
        "died_unkilled": len(died_alone),
        "kill_window_s": round(window_s, 2),
        "runs_stored": len(whole),
        "runs_printed_as_stored": printed,
        "partial_rows": len(partial),
        "ranked": len(ranked),
        "aborted_listed": len(aborted),
        "killed_after_a_commit": len(killed) - len(aborted),
        "aborted_phases": dict(phases.most_common()),
        "wall_s": round(kill_s, 1),
    }
    print(f"\nFAULT-INJECTION sigkill: {json.dumps(figures)}")
    assert died_alone == [] and len(killed) == FAULT_KILLS  # every kill really happened
    assert partial == []  # every stored run has its 2 trials, 3 energy rows and payload
    assert ranked == {u for u, *_ in whole}  # only whole runs exist, so only they rank
    assert len(whole) >= printed + 2  # every run reported stored is stored (+ calibration)
    # every killed process inside a run is listed once, with the phase it died in; one
    # not listed was killed after a commit (or between two runs) and has a stored run
    pids = [row["pid"] for row in aborted]
    assert len(set(pids)) == len(pids) and set(pids) <= set(killed)
    assert all(row["status"] == "aborted" and row["phase"] for row in aborted)
    assert all(not row["run_id"] or row["run_id"] not in ranked for row in aborted)
    assert all(stored_devices[dev] > 0 for pid, dev in killed.items() if pid not in pids)
    if FAULT_KILLS >= 20:  # stratified moments reach several phases on any machine
        assert len(phases) >= 3, phases
