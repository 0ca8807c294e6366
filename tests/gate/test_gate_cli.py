"""`wattbench gate` in-process: options, exit codes, stdout lines and report files.

The command runs under the real ``cli.main`` (its ``error:`` handling and exit codes)
with an app that carries it, so these tests do not depend on cli.py registering it;
tests/gate/test_gate_e2e.py runs the installed ``wattbench gate``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import typer
from gate_factory import dump, make_run

from wattbench.core.power import EnergyMethod, EnergyScope
from wattbench.core.results import RunResult
from wattbench.harness import cli
from wattbench.harness.cli.gate import gate
from wattbench.results_db.store import Store

BASE = [4.00, 4.04, 3.97, 4.02, 3.99]
GateRunner = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run_gate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> GateRunner:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def _root() -> None:
        """wattbench (test app)."""

    app.command("gate")(gate)
    monkeypatch.setattr(cli, "app", app)

    def invoke(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            cli.main(["gate", *args])
        out = capsys.readouterr()
        code = info.value.code
        return (code if isinstance(code, int) else 1), out.out, out.err

    return invoke


def files(tmp_path: Path, base: list[float], cand: list[float], **kw: Any) -> list[str]:
    b = dump(make_run(base, **kw), tmp_path / "base.json")
    c = dump(make_run(cand, **kw), tmp_path / "cand.json")
    return ["--baseline", str(b), "--candidate", str(c)]


def test_regression_exits_1_with_lines_markdown_and_junit(
    run_gate: GateRunner, tmp_path: Path
) -> None:
    md, xml = tmp_path / "out" / "gate.md", tmp_path / "out" / "gate.xml"
    code, out, err = run_gate(
        *files(tmp_path, BASE, [x * 1.1 for x in BASE]),
        "--markdown",
        str(md),
        "--junit",
        str(xml),
    )
    assert code == 1, err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["REGRESSION", "joules_per_inference"],
        ["REGRESSION", "latency_p90_ms"],
        ["REGRESSION", "throughput_ips"],
    ]
    assert "gate: REGRESSION (3 regressed" in err
    assert "**REGRESSION**" in md.read_text()
    suite = ET.parse(xml).getroot()[0]
    assert suite.get("failures") == "3"


def test_one_outlier_baseline_trial_and_a_whole_ci_beyond_the_threshold_exits_1(
    run_gate: GateRunner, tmp_path: Path
) -> None:
    # issue 20: 2 threads (one disturbed trial, CV 24.6 %) vs 1 thread, p90 +67 %
    baseline = [2.77, 2.85, 3.0, 3.05, 4.7]
    code, out, err = run_gate(
        *files(tmp_path, baseline, [4.95, 4.98, 5.01, 5.04, 5.08]), "--metric", "latency"
    )
    assert code == 1, out + err
    assert out.splitlines() == [
        "REGRESSION latency_p90_ms +67.0% (95% CI +6.6%..+80.9%, p=0.004, threshold 5%)"
    ]
    assert "gate: REGRESSION" in err


def test_inconclusive_names_the_command_that_adds_trials(
    run_gate: GateRunner, tmp_path: Path
) -> None:
    noisy = [1.0, 1.3, 0.7, 1.2, 0.8]
    code, out, _ = run_gate(
        *files(tmp_path, noisy, [1.0, 1.02, 0.99, 1.01, 1.0]), "--metric", "latency"
    )
    assert code == 2
    assert out.startswith("INCONCLUSIVE latency_p90_ms ") and "baseline unstable" in out
    assert "`wattbench run --target-ci 2.5`" in out


def test_a_run_against_itself_passes(run_gate: GateRunner, tmp_path: Path) -> None:
    path = dump(make_run(BASE), tmp_path / "run.json")
    code, out, err = run_gate("--baseline", str(path), "--candidate", str(path))
    assert code == 0, err
    assert all(line.startswith("PASS ") for line in out.splitlines()) and len(out.splitlines()) == 3


def test_threshold_and_metric_options(run_gate: GateRunner, tmp_path: Path) -> None:
    args = files(tmp_path, BASE, [x * 1.1 for x in BASE])
    code, out, _ = run_gate(*args, "--threshold", "15%")
    assert code == 0 and "threshold 15%" in out
    code, out, _ = run_gate(*args, "--metric", "latency", "--threshold", "latency_p90_ms=12%")
    assert code == 0
    assert len(out.splitlines()) == 1 and out.startswith("PASS latency_p90_ms +10.0%")
    code, out, _ = run_gate(*args, "--metric", "energy", "--threshold", "energy=3%")
    assert code == 1 and out.startswith("REGRESSION joules_per_inference") and "threshold 3%" in out


def test_mismatched_configuration_exits_2_naming_the_fields(
    run_gate: GateRunner, tmp_path: Path
) -> None:
    b = dump(make_run(BASE), tmp_path / "b.json")
    c = dump(make_run(BASE, precision="int8"), tmp_path / "c.json")
    xml = tmp_path / "gate.xml"
    code, out, _ = run_gate("--baseline", str(b), "--candidate", str(c), "--junit", str(xml))
    assert code == 2
    assert "precision (baseline fp32, candidate int8)" in out
    assert all(line.startswith("INCONCLUSIVE ") for line in out.splitlines())
    assert ET.parse(xml).getroot()[0].get("errors") == "3"


def rescoped(run: RunResult, reader: str, scope: EnergyScope) -> RunResult:
    """``run`` as if measured by another reader at another energy scope."""
    upd = {"reader": reader, "scope": scope}
    trials = [
        t.model_copy(update={"energy": [e.model_copy(update=upd) for e in t.energy]})
        for t in run.trials
    ]
    energy = [e.model_copy(update=upd) for e in run.energy]
    return run.model_copy(update={"trials": trials, "energy": energy})


def test_mixed_energy_scopes_are_refused_with_one_line_naming_both_sides(
    run_gate: GateRunner, tmp_path: Path
) -> None:
    base = make_run(BASE)
    b = dump(base, tmp_path / "b.json")
    c = dump(rescoped(make_run(BASE), "shelly", EnergyScope.WALL), tmp_path / "c.json")
    code, _, err = run_gate("--baseline", str(b), "--candidate", str(c))
    assert code == 2
    (line,) = [x for x in err.splitlines() if "gate refused" in x]
    head = base.energy[0]
    assert (
        f"gate refused: baseline energy is {head.reader}/{head.method.value}/"
        f"{head.scope.value}, candidate is shelly/{head.method.value}/wall: gate like with like"
    ) in line


def test_too_few_trials_exits_2(run_gate: GateRunner, tmp_path: Path) -> None:
    code, out, _ = run_gate(*files(tmp_path, BASE[:2], BASE[:2]))
    assert code == 2 and "too few trials" in out


def test_estimated_energy_is_reported_not_gated(run_gate: GateRunner, tmp_path: Path) -> None:
    args = files(tmp_path, BASE, BASE, method=EnergyMethod.ESTIMATED)
    code, out, _ = run_gate(*args)
    assert code == 0
    energy = out.splitlines()[0]
    assert energy.startswith("SKIPPED joules_per_inference +0.0%")
    assert "skipped: estimated energy" in energy and "not gated" in energy
    code, out, _ = run_gate(*args, "--include-estimated")
    assert code == 0 and out.startswith("PASS joules_per_inference")
    assert "ESTIMATED energy" in out.splitlines()[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "nope.json", "--candidate", "nope.json"], "run file not found: nope.json"),
        (["--baseline", "zz", "--candidate", "zz"], "cannot read run reference 'zz'"),
        (
            ["--baseline", "x.json", "--candidate", "x.json", "--threshold", "energy=x"],
            "--threshold",
        ),
        (["--baseline", "x.json", "--candidate", "x.json", "--max-cv", "lots"], "--max-cv"),
        (["--baseline", "x.json", "--candidate", "x.json", "--metric", "watts"], "unknown metric"),
    ],
)
def test_usage_errors_are_one_error_line_and_exit_2(
    run_gate: GateRunner, args: list[str], message: str
) -> None:
    code, out, err = run_gate(*args)
    assert code == 2 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err


def test_unresolvable_baseline_still_writes_the_reports(
    run_gate: GateRunner, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    cand = dump(make_run(BASE), tmp_path / "run.json")
    md, xml = tmp_path / "gate.md", tmp_path / "gate.xml"
    code, _, err = run_gate(
        "--baseline", "label:branch:main~5", "--candidate", str(cand), "--db", db,
        "--markdown", str(md), "--junit", str(xml),
    )  # fmt: skip
    assert code == 2 and "error: no runs labelled 'branch:main'" in err
    assert "no runs labelled 'branch:main'" in md.read_text()
    suite = ET.parse(xml).getroot()[0]
    assert suite.get("errors") == "3"
    assert all(c.find("error") is not None for c in suite.findall("testcase"))


def test_label_selectors_against_a_database(run_gate: GateRunner, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store.open(db)
    for i in range(3):
        store.save_run(make_run([x * (1 + i / 1000) for x in BASE], labels=["branch:main"]))
    bad = make_run(BASE, labels=["branch:main"], valid=False)
    store.save_run(bad)
    slow = make_run([x * 1.2 for x in BASE], labels=["git:cafe"])
    store.save_run(slow)
    code, out, err = run_gate(
        "--baseline", "label:branch:main~3", "--candidate", "git:cafe", "--db", db
    )
    assert code == 1, err
    assert "REGRESSION latency_p90_ms +19.9%" in out
    assert "note: 1 invalid run(s) labelled 'branch:main' were passed over" in err
    code, out, err = run_gate("--baseline", slow.run_id[:8], "--candidate", bad.run_id, "--db", db)
    assert code == 2 and f"candidate run {bad.run_id[:8]} is invalid" in out


def test_cli_defaults_agree_with_the_gate_and_registering_stays_light() -> None:
    import subprocess
    import sys

    from wattbench.analysis import gate as gate_mod
    from wattbench.harness.cli import gate as cli_gate

    assert cli_gate.DEFAULT_ALPHA == gate_mod.DEFAULT_ALPHA
    assert cli_gate._percent(cli_gate.DEFAULT_MAX_CV, "--max-cv") == gate_mod.DEFAULT_MAX_CV
    # Registering the command must not import numpy or the statistics (every CLI call pays).
    code = (
        "import sys, wattbench.harness.cli.gate; "
        "print(sorted(m for m in ('numpy', 'scipy', 'wattbench.analysis.gate') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
