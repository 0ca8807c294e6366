"""Gating whole runs: like-with-like, validity, estimated energy, markdown and JUnit."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from gate_factory import dump, make_run, with_tokens

from wattbench.analysis.gate import (
    GateReport,
    GateSettings,
    RunRecord,
    Verdict,
    evaluate,
    load_json_runs,
    record_from_result,
    to_junit,
    to_markdown,
    verdict_lines,
)
from wattbench.core.errors import ConfigError
from wattbench.core.power import EnergyMethod

BASE = [4.00, 4.04, 3.97, 4.02, 3.99]


def rec(p90: list[float], **kw: object) -> RunRecord:
    return record_from_result(make_run(p90, **kw), source="test")  # type: ignore[arg-type]


def slower(factor: float) -> list[float]:
    return [x * factor for x in BASE]


def by_metric(report: GateReport) -> dict[str, Verdict]:
    return {r.metric: r.verdict for r in report.results}


def junit(report: GateReport) -> ET.Element:
    root = ET.fromstring(to_junit(report))
    assert root.tag == "testsuites"
    (suite,) = root
    return suite


def test_ten_percent_slower_run_regresses_every_metric_and_reports_say_so() -> None:
    report = evaluate(
        [rec(BASE)], [rec(slower(1.10))], baseline_ref="base.json", candidate_ref="cand.json"
    )
    assert by_metric(report) == {
        "joules_per_inference": Verdict.REGRESSION,
        "latency_p90_ms": Verdict.REGRESSION,
        "throughput_ips": Verdict.REGRESSION,
    }
    assert report.exit_code == 1
    lines = verdict_lines(report)
    assert len(lines) == 3
    assert lines[0].startswith("REGRESSION joules_per_inference +10.0% (95% CI +")
    assert lines[2].startswith("REGRESSION throughput_ips -9.1% (95% CI -")
    assert "p=0.004" in lines[1]  # exact Mann–Whitney, 5 vs 5, complete separation

    md = to_markdown(report)
    assert md.startswith("## ❌ wattbench gate: REGRESSION")
    assert "`base.json`" in md and "`cand.json`" in md
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(rows) == 3 and all("**REGRESSION**" in r for r in rows)
    assert "| `latency_p90_ms` | lower | 4 ms | 4.4 ms | +10.0% |" in md

    suite = junit(report)
    assert suite.get("tests") == "3" and suite.get("failures") == "3"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "joules_per_inference",
        "latency_p90_ms",
        "throughput_ips",
    ]
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("message") == lines[0]


def test_no_change_passes_with_exit_0() -> None:
    report = evaluate([rec(BASE)], [rec([x * 1.001 for x in reversed(BASE)])])
    assert set(by_metric(report).values()) == {Verdict.PASS}
    assert report.exit_code == 0
    assert report.summary().startswith("gate: PASS (3 passed; baseline 1 run/5 trials")
    suite = junit(report)
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    assert all(len(c.findall("failure")) == 0 for c in suite.findall("testcase"))
    assert to_markdown(report).startswith("## ✅ wattbench gate: PASS")


def test_baseline_runs_are_pooled() -> None:
    base = [rec(BASE), rec([x * 1.002 for x in BASE]), rec([x * 0.998 for x in BASE])]
    report = evaluate(base, [rec(slower(1.10))])
    assert report.results[1].n_baseline == 15 and report.results[1].n_candidate == 5
    assert report.exit_code == 1


def test_mismatched_configuration_is_inconclusive_naming_the_fields() -> None:
    report = evaluate([rec(BASE)], [rec(BASE, precision="int8", batch=4)])
    assert report.exit_code == 2
    assert report.problem is not None
    assert "configuration differs in precision, batch" in report.problem
    assert "precision (baseline fp32, candidate int8)" in report.problem
    assert "batch (baseline 1, candidate 4)" in report.problem
    assert set(by_metric(report).values()) == {Verdict.INCONCLUSIVE}
    assert all("configuration differs" in line for line in verdict_lines(report))
    suite = junit(report)
    assert suite.get("errors") == "3"
    assert all(c.find("error") is not None for c in suite.findall("testcase"))


def test_energy_reader_method_is_part_of_the_configuration() -> None:
    report = evaluate([rec(BASE)], [rec(BASE, method=EnergyMethod.POLLED)])
    assert report.exit_code == 2
    assert report.problem is not None and report.problem.startswith("gate refused: baseline ")
    assert "/counter/" in report.problem and "/polled/" in report.problem
    assert report.problem.endswith("gate like with like")


def test_baseline_runs_of_different_configurations_are_refused() -> None:
    report = evaluate([rec(BASE), rec(BASE, batch=2)], [rec(BASE)])
    assert report.exit_code == 2
    assert report.problem is not None and "baseline runs" in report.problem
    assert "batch" in report.problem


def test_too_few_trials_exits_2() -> None:
    report = evaluate([rec(BASE[:2])], [rec(slower(1.5))])
    assert report.exit_code == 2
    assert set(by_metric(report).values()) == {Verdict.INCONCLUSIVE}
    assert "too few trials: baseline 2, candidate 5" in verdict_lines(report)[0]


@pytest.mark.parametrize("side", ["baseline", "candidate"])
def test_invalid_runs_are_inconclusive_never_a_pass(side: str) -> None:
    good, bad = rec(BASE), rec(BASE, valid=False)
    report = evaluate([bad], [good]) if side == "baseline" else evaluate([good], [bad])
    assert report.exit_code == 2
    assert report.problem is not None
    assert f"{side} run {bad.run_id[:8]} is invalid: quality check failed" in report.problem


def test_estimated_energy_is_not_gated_unless_asked() -> None:
    # Energy per inference rises 30 % (estimated); latency and throughput are unchanged.
    base = rec(BASE, method=EnergyMethod.ESTIMATED)
    cand = rec(BASE, method=EnergyMethod.ESTIMATED, j_per_inference=[0.026] * 5)
    report = evaluate([base], [cand])
    assert by_metric(report)["joules_per_inference"] is Verdict.SKIPPED
    assert report.exit_code == 0  # passed on latency and throughput, not on energy
    line = verdict_lines(report)[0]
    # reported for information (the numbers), but not a verdict
    assert line.startswith("SKIPPED joules_per_inference +30.0% (95% CI +")
    assert "skipped: estimated energy" in line
    assert "not gated" in line and "--include-estimated" in line
    skipped = junit(report).findall("testcase")[0].find("skipped")
    assert skipped is not None and "estimated energy" in (skipped.get("message") or "")
    assert "Estimated energy is not gated" in to_markdown(report)

    energy_only = evaluate([base], [cand], GateSettings(metrics=("joules_per_inference",)))
    assert energy_only.exit_code == 2  # nothing gated: never a pass
    assert "no metric was gated" in energy_only.summary()

    gated = evaluate([base], [cand], GateSettings(include_estimated=True))
    assert by_metric(gated)["joules_per_inference"] is Verdict.REGRESSION
    assert gated.exit_code == 1
    assert "ESTIMATED energy" in verdict_lines(gated)[0]
    assert "gated on request" in to_markdown(gated)


def test_tokens_per_joule_is_gated_only_when_the_runs_count_tokens(tmp_path: Path) -> None:
    base, cand = make_run(BASE), make_run(BASE, j_per_inference=[0.03] * 5)
    # energy up 50 % with the same tokens: tokens per joule drops by a third
    b = load_json_runs(dump(with_tokens(base, [500] * 5), tmp_path / "b.json"))
    c = load_json_runs(dump(with_tokens(cand, [500] * 5), tmp_path / "c.json"))
    report = evaluate(b, c)
    assert by_metric(report)["tokens_per_joule"] is Verdict.REGRESSION
    assert report.results[-1].change == pytest.approx(-1 / 3, rel=0.02)

    plain = evaluate([record_from_result(base, source="x")], [record_from_result(cand, source="y")])
    assert "tokens_per_joule" not in by_metric(plain)
    asked = evaluate(
        [record_from_result(base, source="x")],
        [record_from_result(cand, source="y")],
        GateSettings(metrics=("tokens_per_joule",)),
    )
    assert by_metric(asked) == {"tokens_per_joule": Verdict.INCONCLUSIVE}
    assert asked.exit_code == 2


def test_json_files_hold_one_run_or_a_list(tmp_path: Path) -> None:
    runs = [make_run(BASE), make_run(slower(1.01))]
    one = load_json_runs(dump(runs[0], tmp_path / "one.json"))
    many = load_json_runs(dump(runs, tmp_path / "many.json"))
    assert [r.run_id for r in one] == [runs[0].run_id]
    assert [r.run_id for r in many] == [r.run_id for r in runs]
    direct = record_from_result(runs[0], source=str(tmp_path / "one.json"))
    assert one[0] == direct
    assert one[0].samples["latency_p90_ms"] == tuple(BASE)
    assert one[0].samples["joules_per_inference"] == pytest.approx([5e-3 * x for x in BASE])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ("[]", "empty list"),
        ('{"run_id": "x"}', "is not `wattbench run --json` output"),
        ("[1]", "is not a run"),
    ],
)
def test_bad_run_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "run.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_json_runs(path)
    assert "\n" not in str(info.value)


def test_markdown_escapes_table_cells_and_lists_runs() -> None:
    base = rec(BASE, labels=["branch:a|b", "git:abc"])
    report = evaluate([base], [rec(BASE)], baseline_ref="label:a|b")
    md = to_markdown(report)
    assert "`label:a\\|b`" in md and "`branch:a\\|b`" in md
    assert f"baseline `{base.run_id}`" in md
    # every table row has the header's number of cells
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len({line.replace("\\|", "").count("|") for line in table}) == 1


def test_junit_is_well_formed_for_every_verdict() -> None:
    reports = [
        evaluate([rec(BASE)], [rec(slower(1.10))]),
        evaluate([rec(BASE)], [rec(BASE)]),
        evaluate([rec(BASE[:2])], [rec(BASE)]),
        evaluate(
            [rec(BASE, method=EnergyMethod.ESTIMATED)], [rec(BASE, method=EnergyMethod.ESTIMATED)]
        ),
    ]
    for report in reports:
        suite = junit(report)
        cases = suite.findall("testcase")
        assert int(suite.get("tests") or 0) == len(cases) == len(report.results)
        for case, r in zip(cases, report.results, strict=True):
            kinds = {child.tag for child in case} - {"system-out"}
            expected = {
                Verdict.PASS: set(),
                Verdict.REGRESSION: {"failure"},
                Verdict.INCONCLUSIVE: {"error"},
                Verdict.SKIPPED: {"skipped"},
            }[r.verdict]
            assert kinds == expected, (r.verdict, kinds)
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["verdict"] == report.verdict.value
