"""After a SIGKILL (or a power cut) the next wattbench command restores the journal of the
dead sweep by itself; a journal whose writer is alive (a sweep running now) is left alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import snapshot
from test_journal import WATTBENCH, _start_and_wait_for_journal

from wattbench.core import tuning
from wattbench.core.errors import ConfigError
from wattbench.core.tuning import (
    TuneSession,
    read_journal,
    restore_stale_journal,
    writer_alive,
    writer_identity,
)
from wattbench.tuners.cpufreq import CpufreqTuner

SAVED = {"policy0": 1800000, "policy4": 2400000}


def _env(journal: Path) -> dict[str, str]:
    return {**os.environ, "WATTBENCH_TUNE_JOURNAL": str(journal)}


def _killed_writer(tree: Path, journal: Path) -> None:
    """A process applies a setting under a TuneSession, then SIGKILLs itself."""
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from wattbench.core.tuning import TuneSession
        from wattbench.tuners.cpufreq import CpufreqTuner
        tree = Path({str(tree)!r})
        s = TuneSession({{"cpufreq": CpufreqTuner(tree)}}, sysfs_root=tree)
        s.__enter__()
        s.apply("cpufreq", 600000)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_env(journal), capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert journal.exists()


def _live_journal(tree: Path, journal: Path) -> None:
    """This (live) test process's journal, with a setting applied."""
    session = TuneSession({"cpufreq": CpufreqTuner(tree)}, journal=journal, sysfs_root=tree)
    session.apply("cpufreq", 800000)  # no __enter__/__exit__: a sweep still running


# -- who wrote the journal, and is it alive? ------------------------------------------------
def test_the_journal_names_its_writer(cpufreq_tree: Path, journal: Path) -> None:
    _live_journal(cpufreq_tree, journal)
    data = read_journal(journal)
    assert data is not None
    assert data["pid"] == os.getpid()
    if Path("/proc/sys/kernel/random/boot_id").exists():
        assert data["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        assert data["pid_start"] is not None
    assert writer_alive(data)


def test_writer_gone_when_dead_rebooted_or_recycled(tmp_path: Path) -> None:
    me = writer_identity()
    assert writer_alive(me)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    assert not writer_alive({**me, "pid": dead.pid, "pid_start": None})
    assert not writer_alive({"entries": {}})  # no pid: nothing can be running it
    if me["boot_id"]:  # a journal from an earlier boot: a power cut, even if the pid exists
        assert not writer_alive({**me, "boot_id": "00000000-0000-0000-0000-000000000000"})
    if me["pid_start"]:  # the same pid, another process (started at another tick)
        assert not writer_alive({**me, "pid_start": str(int(me["pid_start"]) + 1)})


def test_a_zombie_writer_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    if not Path(f"/proc/{proc.pid}/stat").exists():
        proc.wait()
        pytest.skip("no /proc here")
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        assert not writer_alive({"pid": proc.pid})
    finally:
        proc.wait()


# -- restore_stale_journal ---------------------------------------------------------------------
def test_a_live_writers_journal_is_never_touched(cpufreq_tree: Path, journal: Path) -> None:
    _live_journal(cpufreq_tree, journal)
    changed, kept = snapshot(cpufreq_tree), journal.read_text()
    assert restore_stale_journal(journal) is None
    assert snapshot(cpufreq_tree) == changed and journal.read_text() == kept
    with pytest.raises(ConfigError, match=rf"another wattbench \(pid {os.getpid()}\)"):
        TuneSession({}, journal=journal).__enter__()


def test_a_dead_writers_journal_is_restored(cpufreq_tree: Path, journal: Path) -> None:
    before = snapshot(cpufreq_tree)
    _killed_writer(cpufreq_tree, journal)
    assert snapshot(cpufreq_tree) != before
    found = restore_stale_journal(journal)
    assert found is not None and found[1] == [("cpufreq", SAVED)]
    assert snapshot(cpufreq_tree) == before and not journal.exists()
    assert restore_stale_journal(journal) is None  # nothing left


# -- the CLI's start-up hook -----------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.parametrize("command", [["tune", "list"], ["suites"]])
def test_the_next_command_restores_a_killed_writers_journal(
    cpufreq_tree: Path, journal: Path, command: list[str]
) -> None:
    before = snapshot(cpufreq_tree)
    _killed_writer(cpufreq_tree, journal)
    res = subprocess.run([*WATTBENCH, *command], env=_env(journal), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, res.stderr
    assert "restored the device settings of a killed wattbench sweep" in warnings[0]
    assert f"cpufreq {json.dumps(SAVED)}" in warnings[0] and str(journal) in warnings[0]
    assert snapshot(cpufreq_tree) == before and not journal.exists()


@pytest.mark.e2e
def test_tune_show_reads_without_restoring(cpufreq_tree: Path, journal: Path) -> None:
    _killed_writer(cpufreq_tree, journal)
    changed = snapshot(cpufreq_tree)
    res = subprocess.run(
        [*WATTBENCH, "tune", "show", "--json"], env=_env(journal), capture_output=True, text=True
    )
    assert res.returncode == 0 and "warning:" not in res.stderr, res.stderr
    shown = json.loads(res.stdout)
    assert shown["writer_alive"] is False
    assert shown["entries"]["cpufreq"]["saved"] == SAVED
    assert shown["entries"]["cpufreq"]["current"] == {"policy0": 600000, "policy4": 800000}
    assert snapshot(cpufreq_tree) == changed and journal.exists()


@pytest.mark.e2e
def test_the_next_command_leaves_a_live_writers_journal(cpufreq_tree: Path, journal: Path) -> None:
    _live_journal(cpufreq_tree, journal)  # this test process is the live writer
    changed, kept = snapshot(cpufreq_tree), journal.read_text()
    res = subprocess.run([*WATTBENCH, "suites"], env=_env(journal), capture_output=True, text=True)
    assert res.returncode == 0 and "warning:" not in res.stderr, res.stderr
    assert snapshot(cpufreq_tree) == changed and journal.read_text() == kept


@pytest.mark.e2e
def test_sigkilled_sweep_then_an_unrelated_command_restores(
    tmp_path: Path, cpufreq_tree: Path, journal: Path
) -> None:
    before = snapshot(cpufreq_tree)
    proc = _start_and_wait_for_journal(tmp_path, cpufreq_tree, journal)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert journal.exists() and snapshot(cpufreq_tree) != before
    res = subprocess.run(
        [*WATTBENCH, "leaderboard", "--db", f"sqlite:///{tmp_path / 'kill.db'}"],
        env=_env(journal), capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "warning: restored the device settings of a killed wattbench sweep" in res.stderr
    assert snapshot(cpufreq_tree) == before and not journal.exists()


def test_an_unrestorable_journal_is_one_warning_and_the_command_runs(
    cpufreq_tree: Path,
    journal: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from wattbench.harness.cli import main

    _killed_writer(cpufreq_tree, journal)
    changed = snapshot(cpufreq_tree)
    real_write = Path.write_text

    def refuse(self: Path, *args: object, **kwargs: object) -> int:
        if self.name == "scaling_max_freq":  # as sysfs refuses a user without root
            raise PermissionError(13, "Permission denied", str(self))
        return real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(SystemExit) as info:
        main(["suites"])
    assert info.value.code == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning:"), err
    assert "run as root (sudo)" in lines[0] and "`wattbench tune restore`" in lines[0]
    assert str(journal) in lines[0]  # it is kept, and where
    assert snapshot(cpufreq_tree) == changed and journal.exists()


def test_a_corrupt_journal_is_one_warning(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wattbench.harness.cli import main

    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("{half")
    with pytest.raises(SystemExit) as info:
        main(["suites"])
    assert info.value.code == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "not valid JSON" in lines[0] and "fix or delete it" in lines[0]
    assert journal.exists()


def test_no_journal_costs_one_failed_open(journal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = tuning.read_journal

    def counted(path: Path) -> object:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(tuning, "read_journal", counted)
    monkeypatch.setattr(tuning, "writer_alive", lambda d: pytest.fail("no journal to judge"))
    assert restore_stale_journal() is None and calls == [journal]
