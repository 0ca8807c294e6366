"""`wattbench gate` shows each side's own achieved 95 % interval (issue 20, `--target-ci`)."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import typer
from gate_factory import dump, make_run

from wattbench.core.confidence import BUDGET_EXHAUSTED, TARGET_REACHED, TrialConfidence, intervals
from wattbench.core.results import RunResult
from wattbench.harness import cli
from wattbench.harness.cli.gate import gate
from wattbench.results_db.store import Store

BASE = [4.00, 4.04, 3.97, 4.02, 3.99, 4.01, 4.03, 3.98]


def with_interval(run: RunResult, stopped: str | None, target_pct: float | None) -> RunResult:
    """The run with the confidence record `wattbench run` computes from its own trials."""
    ivs = intervals(run.trials)
    conf = TrialConfidence(
        trials=len(run.trials),
        min_trials=5,
        target_pct=target_pct,
        budget_s=600.0 if target_pct is not None else None,
        measured_s=40.0,
        stopped=stopped,  # type: ignore[arg-type]
        inferences_per_joule=ivs["inferences_per_joule"],
        latency_p90_ms=ivs["latency_p90_ms"],
    )
    return run.model_copy(update={"confidence": conf})


def pct(run: RunResult, metric: str) -> str:
    assert run.confidence is not None
    hw = getattr(run.confidence, metric).half_width
    assert hw is not None
    return f"±{hw * 100:.2g} %"


def run_gate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def _root() -> None:
        """wattbench (test app)."""

    app.command("gate")(gate)
    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit) as info:
        cli.main(["gate", *args])
    out = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


def test_files_show_both_sides_intervals_in_summary_markdown_and_junit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = with_interval(make_run(BASE), TARGET_REACHED, 2.0)
    cand = with_interval(make_run([x * 1.02 for x in BASE[:6]]), None, None)
    md, xml = tmp_path / "gate.md", tmp_path / "gate.xml"
    code, out, err = run_gate(
        monkeypatch,
        capsys,
        "--baseline",
        str(dump(base, tmp_path / "b.json")),
        "--candidate",
        str(dump(cand, tmp_path / "c.json")),
        "--markdown",
        str(md),
        "--junit",
        str(xml),
    )
    assert code == 0, out + err
    summary = next(line for line in err.splitlines() if line.startswith("gate: "))
    b_text = (
        f"95% CI inf/J {pct(base, 'inferences_per_joule')}, "
        f"p90 {pct(base, 'latency_p90_ms')} (target reached)"
    )
    c_text = (
        f"95% CI inf/J {pct(cand, 'inferences_per_joule')}, "
        f"p90 {pct(cand, 'latency_p90_ms')} (fixed repeats)"
    )
    assert f"baseline 1 run/8 trials, {b_text}" in summary
    assert f"candidate 1 run/6 trials, {c_text}" in summary
    text = md.read_text()
    assert f"(1 run/8 trials, {b_text})" in text and f"(1 run/6 trials, {c_text})" in text
    assert f"`{base.run_id}` (8 trials, {b_text}," in text
    props = {p.get("name"): p.get("value") for p in ET.parse(xml).getroot()[0][0]}
    assert props["baseline_intervals"] == b_text
    assert props["candidate_intervals"] == c_text


def test_stored_runs_carry_their_interval_and_runs_without_one_say_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store.open(db)
    base = with_interval(make_run(BASE, labels=["branch:main"]), BUDGET_EXHAUSTED, 0.5)
    old = make_run(BASE, labels=["git:cafe"]).model_copy(update={"confidence": None})
    store.save_run(base)
    store.save_run(old)
    code, out, err = run_gate(
        monkeypatch, capsys, "--baseline", "branch:main", "--candidate", "git:cafe", "--db", db
    )
    assert code == 0, out + err
    summary = next(line for line in err.splitlines() if line.startswith("gate: "))
    assert (
        f"baseline 1 run/8 trials, 95% CI inf/J {pct(base, 'inferences_per_joule')}, "
        f"p90 {pct(base, 'latency_p90_ms')} (budget exhausted)" in summary
    )
    assert "candidate 1 run/8 trials, no 95% CI)" in summary
