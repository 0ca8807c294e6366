"""Crash-safe runs: a run killed at any point leaves no row that ranks and shows as aborted
with the phase it died in; concurrent writers into one SQLite file lose nothing.

The runs are fast fake runs in child processes (fake_run.py: the CLI's journal and store
path with a fake adapter), SIGKILLed at chosen phases.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_result
from sqlalchemy import func, select

from wattbench.core.errors import ImplausibleResultError
from wattbench.harness import journal
from wattbench.results_db.schema import EnergyMeasurement, Run, RunPayload, Trial
from wattbench.results_db.store import Store

FAKE_RUN = Path(__file__).with_name("fake_run.py")
CLI = [sys.executable, "-m", "wattbench.harness.cli"]


def spawn(db: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(FAKE_RUN), db, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )


def journal_of(pid: int) -> dict[str, Any] | None:
    for path in journal.journal_dir().glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("pid") == pid:
            return data
    return None


def wait_for_phase(proc: subprocess.Popen[str], phase: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = journal_of(proc.pid)
        if data is not None and data["phase"] == phase:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before phase {phase!r}: {proc.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.003)
    raise AssertionError(f"phase {phase!r} not reached in {timeout_s} s")


def wait_for_line(proc: subprocess.Popen[str], marker: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == marker:
            return
    raise AssertionError(f"{marker} never printed: {proc.stderr.read()}")  # type: ignore[union-attr]


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def complete_runs(store: Store) -> tuple[int, int]:
    """(runs stored, runs stored with every row: 2 trials, 3 energy rows, a payload)."""
    with store.engine.connect() as conn:
        total = int(conn.scalar(select(func.count(Run.id))) or 0)
        trials = select(func.count(Trial.id)).where(Trial.run_id == Run.id).scalar_subquery()
        energy = (
            select(func.count(EnergyMeasurement.id))
            .where(EnergyMeasurement.run_id == Run.id)
            .scalar_subquery()
        )
        payload = select(func.count()).where(RunPayload.run_id == Run.id).scalar_subquery()
        whole = conn.scalar(
            select(func.count(Run.id)).where(trials == 2, energy == 3, payload == 1)
        )
    return total, int(whole or 0)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    Store.open(url).close()  # the schema exists before the children race to create it
    yield url


KILL_PHASES = ("warm-up", "idle baseline", "trial 2/2", journal.STORE_PHASE)


def test_killed_in_each_phase_leaves_nothing_and_shows_as_aborted(db: str) -> None:
    procs = {phase: spawn(db, "--slow-store", "5") for phase in KILL_PHASES}
    for phase, proc in procs.items():
        if phase == journal.STORE_PHASE:
            wait_for_line(proc, "IN_TX")  # killed inside the store transaction
        else:
            wait_for_phase(proc, phase)
        kill(proc)
    store = Store.open(db)
    assert complete_runs(store) == (0, 0)
    assert store.leaderboard(include_invalid=True) == []
    # The next start tells, once, about every killed run and where it died.
    first = cli("suites")
    notices = [ln for ln in first.stderr.splitlines() if ln.startswith("warning: run")]
    assert len(notices) == 4, first.stderr
    for phase in KILL_PHASES:
        assert sum(f"aborted in phase {phase!r}" in ln for ln in notices) == 1
    assert "warning: run" not in cli("suites").stderr  # told once
    listed = cli("runs", "--aborted", "--json", "--db", db)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["phase"] for r in rows) == sorted(KILL_PHASES)
    assert {r["status"] for r in rows} == {"aborted"}
    assert {r["pid"] for r in rows} == {p.pid for p in procs.values()}
    stored_phase = next(r for r in rows if r["phase"] == journal.STORE_PHASE)
    assert stored_phase["run_id"]  # the id that was being written (and is not stored)
    assert cli("runs", "--aborted", "--clear", "--db", db).returncode == 0
    assert json.loads(cli("runs", "--aborted", "--json", "--db", db).stdout) == []


def test_killed_after_the_commit_is_a_stored_run_not_an_aborted_one(db: str) -> None:
    proc = spawn(db, "--slow-finish", "5")
    wait_for_line(proc, "COMMITTED")
    kill(proc)
    store = Store.open(db)
    assert complete_runs(store) == (1, 1)
    entries = journal.scan(is_stored=lambda d: store.get_run(d["run_id"]) is not None)
    assert [e.status for e in entries] == [journal.STORED]
    assert journal.scan() == []  # tidied: the file is gone
    assert json.loads(cli("runs", "--aborted", "--json", "--db", db).stdout) == []


def test_a_running_run_is_listed_as_running(db: str) -> None:
    proc = spawn(db, "--slow-store", "5")
    try:
        wait_for_phase(proc, "trial 1/2")
        entries = journal.scan()
        assert [(e.status, e.data["pid"]) for e in entries] == [(journal.RUNNING, proc.pid)]
    finally:
        kill(proc)
    assert [e.status for e in journal.scan()] == [journal.ABORTED]


def test_a_reused_pid_does_not_keep_a_dead_run_alive(tmp_path: Path) -> None:
    j = journal.RunJournal.begin(suite="fake", adapter="fake", device_name="d", db="x")
    # another process now has our pid? our start time says it is not the run's process
    j.data["process_started"] = (j.data["process_started"] or 0) - 1000
    j.phase("warm-up")
    (entry,) = journal.scan()
    assert entry.status == journal.ABORTED and entry.phase == "warm-up"
    (j.path.parent / "garbage.json").write_text("{not json")  # ignored, not fatal
    assert len(journal.scan()) == 1
    j.finish()
    assert [e for e in journal.scan() if e.path == j.path] == []


def test_concurrent_writers_into_one_sqlite_file_lose_nothing(db: str) -> None:
    n_procs, n_runs = 4, 6
    procs = [
        spawn(db, "--runs", str(n_runs), "--query-ms", "0", "--idle-ms", "0", "--device", f"d{i}")
        for i in range(n_procs)
    ]
    printed: list[str] = []
    for proc in procs:
        out, errs = proc.communicate(timeout=240)
        assert proc.returncode == 0, errs
        printed += out.split()
    assert len(printed) == n_procs * n_runs
    store = Store.open(db)
    assert complete_runs(store) == (n_procs * n_runs, n_procs * n_runs)
    with store.engine.connect() as conn:
        assert sorted(conn.scalars(select(Run.uuid))) == sorted(printed)
    assert journal.scan() == []  # every journal removed


def test_an_implausible_run_is_one_error_and_kept_aside(tmp_path: Path) -> None:
    result = make_result(tmp_path).model_copy(update={"throughput_ips": -1.0})
    store = Store.open(f"sqlite:///{tmp_path / 'local.db'}")
    with (
        pytest.raises(ImplausibleResultError) as caught,
        journal.RunJournal.recording(suite="fake", adapter="fake", device_name=None, db="x") as j,
    ):
        journal.store_result(result, store, j)
    message = str(caught.value)
    assert "\n" not in message and "throughput_ips: -1.0 is negative" in message
    assert "nothing was stored" in message
    kept = journal.journal_dir() / f"{result.run_id}.rejected.json"
    assert kept.is_file() and str(kept) in message
    assert store.count_runs() == 0
    assert journal.scan() == []  # the run ended with an error the user saw: not "aborted"


def test_wattbench_run_refuses_an_implausible_result_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real ``wattbench run`` command with the protocol replaced by a bad result."""
    from wattbench.harness import protocol
    from wattbench.harness.cli import main

    bad = make_result(tmp_path).model_copy(update={"throughput_ips": -7.0})

    class BadRunner:
        def __init__(self, *args: Any, progress: Any = None, **kw: Any) -> None:
            self.progress = progress

        def execute(self) -> Any:
            self.progress.phase("trial 1/1")
            return bad

    monkeypatch.setattr(protocol, "create_runner", BadRunner)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    with pytest.raises(SystemExit) as exited:
        main(
            [
                *("run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime"),
                *("--power", "estimate", "--db", db, "--no-git-labels"),
            ]
        )
    assert exited.value.code == 2
    err_lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1 and "throughput_ips: -7.0 is negative" in err_lines[0]
    assert Store.open(db).count_runs() == 0
    assert journal.scan() == []
