"""Settings always come back: on exit, on errors, on SIGTERM, and after a SIGKILL through
the journal and `wattbench tune restore`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import snapshot

from wattbench.core.errors import ConfigError
from wattbench.core.tuning import TuneSession, read_journal, restore_from_journal
from wattbench.tuners.cpufreq import CpufreqTuner

WATTBENCH = [sys.executable, "-m", "wattbench.harness.cli"]


def test_journal_written_before_the_change_and_removed_after(
    cpufreq_tree: Path, journal: Path
) -> None:
    before = snapshot(cpufreq_tree)
    tuner = CpufreqTuner(cpufreq_tree)
    with TuneSession({"cpufreq": tuner}, journal=journal) as session:
        assert not journal.exists()
        session.apply("cpufreq", 600000)
        data = read_journal(journal)
        assert data is not None
        assert data["entries"]["cpufreq"]["saved"] == {"policy0": 1800000, "policy4": 2400000}
        assert snapshot(cpufreq_tree) != before
    assert snapshot(cpufreq_tree) == before and not journal.exists()


def test_an_exception_restores(cpufreq_tree: Path, journal: Path) -> None:
    before = snapshot(cpufreq_tree)
    with pytest.raises(RuntimeError), TuneSession({"cpufreq": CpufreqTuner(cpufreq_tree)}) as s:
        s.apply("cpufreq", 600000)
        raise RuntimeError("boom")
    assert snapshot(cpufreq_tree) == before and not journal.exists()


def test_a_leftover_journal_blocks_a_new_session(cpufreq_tree: Path, journal: Path) -> None:
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps({"entries": {}}))
    with pytest.raises(ConfigError, match="wattbench tune restore"), TuneSession({}):
        pass


def test_restore_from_journal_then_remove_it(cpufreq_tree: Path, journal: Path) -> None:
    before = snapshot(cpufreq_tree)
    session = TuneSession({"cpufreq": CpufreqTuner(cpufreq_tree)}, sysfs_root=cpufreq_tree)
    session.__enter__()
    session.apply("cpufreq", 800000)  # then "killed": no __exit__
    session._old_handlers.clear()
    assert restore_from_journal(journal) == [("cpufreq", {"policy0": 1800000, "policy4": 2400000})]
    assert snapshot(cpufreq_tree) == before and not journal.exists()


def _sweep_file(tmp_path: Path, duration: float) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(
        f"""
[run]
suite = "mobilenet_v2"
adapter = "onnxruntime"
duration = {duration}
repeats = 1
idle-s = 0.2
warmup = 0.1
cooldown = 0
min-queries = 5
e2e-queries = 0
power = "estimate"
tdp-w = 15

[sweep]
cpu-max-freq = "all"
"""
    )
    return path


def _start_and_wait_for_journal(
    tmp_path: Path, tree: Path, journal: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WATTBENCH_TUNE_JOURNAL": str(journal)}
    cmd = [
        *WATTBENCH, "sweep", "settings", "--config", str(_sweep_file(tmp_path, 3.0)),
        "--db", f"sqlite:///{tmp_path / 'kill.db'}", "--sysfs-root", str(tree), "--no-git-labels",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not journal.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no journal appeared: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.05)
    time.sleep(0.3)  # mid-point: the first setting is applied and being measured
    return proc


@pytest.mark.e2e
def test_sigkill_mid_sweep_then_tune_restore(
    tmp_path: Path, cpufreq_tree: Path, journal: Path
) -> None:
    before = snapshot(cpufreq_tree)
    proc = _start_and_wait_for_journal(tmp_path, cpufreq_tree, journal)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert journal.exists()
    assert snapshot(cpufreq_tree) != before  # left at the sweep's setting
    env = {**os.environ, "WATTBENCH_TUNE_JOURNAL": str(journal)}
    shown = subprocess.run([*WATTBENCH, "tune", "show"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and "saved" in shown.stdout and "1800000" in shown.stdout
    done = subprocess.run(
        [*WATTBENCH, "tune", "restore", "--sysfs-root", str(cpufreq_tree)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "restored cpufreq" in done.stdout
    assert snapshot(cpufreq_tree) == before and not journal.exists()


@pytest.mark.e2e
def test_sigterm_mid_sweep_restores_by_itself(
    tmp_path: Path, cpufreq_tree: Path, journal: Path
) -> None:
    before = snapshot(cpufreq_tree)
    proc = _start_and_wait_for_journal(tmp_path, cpufreq_tree, journal)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    assert snapshot(cpufreq_tree) == before and not journal.exists()
