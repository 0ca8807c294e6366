"""`wattbench run --config/--print-config`, the suite's default adapter, and the progress
display on a terminal (under a pseudo-terminal) and in a log."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
pytest.importorskip("onnx", reason="needs the models extra")

pytestmark = pytest.mark.e2e

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
FAST = {
    "suite": "mobilenet_v2",
    "duration": 0.3,
    "repeats": 2,
    "idle-s": 0.3,
    "warmup": 0.1,
    "cooldown": 0,
    "min-queries": 5,
    "threads": 1,
    "e2e-queries": 0,
}


def _toml(values: dict[str, object]) -> str:
    return "".join(
        f"{k} = {v!r}\n".replace("'", '"') if not isinstance(v, (int, float)) else f"{k} = {v}\n"
        for k, v in values.items()
    )


def wattbench(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATTBENCH, *args, "--db", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_print_config_without_adapter_uses_the_suites_default(tmp_path: Path) -> None:
    proc = wattbench(
        "run", "--suite", "mobilenet_v2", "--repeats", "2", "--print-config", db=tmp_path / "x.db"
    )
    assert proc.returncode == 0, proc.stderr
    printed = tomllib.loads(proc.stdout)
    assert printed["suite"] == "mobilenet_v2" and printed["adapter"] == "onnxruntime"
    assert printed["repeats"] == 2 and printed["duration"] == 10.0 and printed["idle-s"] == 3.0
    assert not (tmp_path / "x.db").exists()  # printing runs nothing and stores nothing


def test_first_run_needs_no_adapter_option(tmp_path: Path) -> None:
    """The README's first command, `wattbench run --suite mobilenet_v2 --duration D --repeats 1`,
    runs on the suite's default adapter and stores the run (shortened, same options)."""
    proc = wattbench(
        "run", "--suite", "mobilenet_v2", "--duration", "0.3", "--repeats", "1",
        "--json", "--no-git-labels", db=tmp_path / "x.db",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    r = json.loads(proc.stdout)
    assert r["adapter"]["adapter"] == "onnxruntime" and r["suite"] == "mobilenet_v2"
    assert r["model"]["weights"].startswith("pretrained") and len(r["trials"]) == 1
    assert "Traceback" not in proc.stderr
    # the power warning (no measured reader here) stays short: at most two lines
    warning = [ln for ln in proc.stderr.splitlines() if "reader" in ln.lower()]
    assert len(warning) <= 2, proc.stderr


def test_config_file_runs_and_options_override_it(tmp_path: Path) -> None:
    run_file = tmp_path / "run.toml"
    run_file.write_text(_toml({**FAST, "label": "from-file"}))
    printed = wattbench(
        "run", "--config", str(run_file), "--repeats", "1", "--print-config", db=tmp_path / "p.db"
    )
    assert printed.returncode == 0, printed.stderr
    cfg = tomllib.loads(printed.stdout)
    assert cfg["repeats"] == 1 and cfg["duration"] == 0.3 and cfg["label"] == ["from-file"]
    # the printed file is itself a run file: run it, with no --adapter anywhere
    again = tmp_path / "again.toml"
    again.write_text(printed.stdout)
    proc = wattbench(
        "run", "--config", str(again), "--json", "--no-git-labels", db=tmp_path / "r.db"
    )
    assert proc.returncode == 0, proc.stderr
    import json

    result = json.loads(proc.stdout)
    assert result["adapter"]["adapter"] == "onnxruntime" and len(result["trials"]) == 1
    assert result["config"]["labels"] == ["from-file"]


def test_config_errors_name_the_key_and_store_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(_toml({**FAST, "repeats": 0}))
    db = tmp_path / "bad.db"
    for args, fragment in (
        (["--config", str(bad)], f"invalid key 'repeats' in {bad}"),
        (["--config", str(bad), "--repeats", "-2"], "invalid --repeats"),
        (["--config", str(tmp_path / "none.toml")], "cannot read run file"),
        (["--duration", "1"], "no suite: pass --suite NAME"),
    ):
        proc = wattbench("run", *args, db=db)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode == 2 and len(errors) == 1 and fragment in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert not db.exists()


def _run_in_pty(argv: list[str], timeout_s: float = 240) -> tuple[int, str]:
    """Run ``argv`` with stderr on a pseudo-terminal; return (exit status, what it drew)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_progress_is_live_on_a_terminal_and_plain_in_a_log(tmp_path: Path) -> None:
    run_file = tmp_path / "run.toml"
    run_file.write_text(_toml(FAST))
    argv = [WATTBENCH, "run", "--config", str(run_file), "--db", f"sqlite:///{tmp_path}/t.db"]
    rc, screen = _run_in_pty(argv)
    assert rc == 0, screen
    # a live display: cursor control sequences, the trial counter and the time left
    assert "\x1b[" in screen and "trial 2/2" in screen and "s left" in screen
    assert "wattbench: trial" not in screen  # no plain log lines on a terminal
    plain = wattbench("run", "--config", str(run_file), db=tmp_path / "l.db")
    assert plain.returncode == 0, plain.stderr
    lines = plain.stderr.splitlines()
    assert any(line.startswith("wattbench: trial 1/2 (0.3 s, ~") for line in lines), plain.stderr
    assert "\x1b[" not in plain.stderr
    warning = [line for line in lines if line.startswith("warning: no measured power reader")]
    if warning:  # no sensor here: the warning is two short lines
        i = lines.index(warning[0])
        assert len(warning[0]) <= 160 and len(lines[i + 1]) <= 200
