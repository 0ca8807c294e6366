"""The gate's reports: verdict lines, a Markdown summary and JUnit XML."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from wattbench.analysis.gate_decision import GateReport, _runs_trials
from wattbench.analysis.gate_records import RunRecord
from wattbench.analysis.gate_stats import DOCS, MetricResult, Verdict, _pct


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _num(v: float | None, unit: str) -> str:
    return "n/a" if v is None else f"{v:.4g} {unit}"


def verdict_line(r: MetricResult) -> str:
    """``REGRESSION joules_per_inference +9.8% (95% CI +7.1%..+12.4%, p=0.004, threshold 5%)``."""
    head = f"{r.verdict.value} {r.metric}"
    if r.change is not None:
        head += (
            f" {_pct(r.change)} ({r.confidence * 100:g}% CI {_pct(r.ci_low)}..{_pct(r.ci_high)}, "
            f"{_p(r.p_value)}, threshold {_pct(r.threshold, signed=False)})"
        )
    extra = [r.reason] if r.reason and r.verdict is not Verdict.PASS else []
    extra += list(r.notes)
    return head + (": " + "; ".join(extra) if extra else "")


def verdict_lines(report: GateReport) -> list[str]:
    """One line per metric, in the order gated."""
    return [verdict_line(r) for r in report.results]


_ICON = {
    Verdict.PASS: "✅",
    Verdict.REGRESSION: "❌",
    Verdict.INCONCLUSIVE: "⚠️",
    Verdict.SKIPPED: "➖",
}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _run_line(r: RunRecord) -> str:
    labels = ", ".join(f"`{_md(x)}`" for x in r.labels) or "no labels"
    when = r.started_at.isoformat(timespec="seconds") if r.started_at else "?"
    valid = "" if r.valid else " **INVALID**"
    return (
        f"`{r.run_id}` ({r.trials} trials, {_md(r.interval_text)}, {when}, {_md(r.source)}; "
        f"{labels}){valid}"
    )


def to_markdown(report: GateReport) -> str:
    """A summary for a PR comment or $GITHUB_STEP_SUMMARY."""
    s = report.settings
    v = report.verdict
    out = [f"## {_ICON[v]} wattbench gate: {v.value}", ""]
    out.append(
        f"Baseline `{_md(report.baseline_ref)}` ({_runs_trials(report.baseline)}) vs "
        f"candidate `{_md(report.candidate_ref)}` ({_runs_trials(report.candidate)})."
    )
    if report.key is not None:
        out += ["", f"Configuration: {_md(report.key.describe())}"]
    if report.problem is not None:
        out += ["", f"**Inconclusive:** {_md(report.problem)}"]
    out += [
        "",
        f"| metric | better | baseline median | candidate median | change | "
        f"{s.confidence * 100:g}% CI | p | threshold | verdict |",
        "|---|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in report.results:
        spec = r.spec
        ci = f"{_pct(r.ci_low)} … {_pct(r.ci_high)}" if r.ci_low is not None else "n/a"
        p = "n/a" if r.p_value is None else ("<0.001" if r.p_value < 0.001 else f"{r.p_value:.3f}")
        out.append(
            f"| `{r.metric}` | {spec.better} | {_num(r.baseline_median, spec.unit)} | "
            f"{_num(r.candidate_median, spec.unit)} | {_pct(r.change)} | {ci} | {p} | "
            f"{_pct(r.threshold, signed=False)} | {_ICON[r.verdict]} **{r.verdict.value}** |"
        )
    details = [
        f"- `{r.metric}`: {_md('; '.join([*([r.reason] if r.reason else []), *r.notes]))}"
        for r in report.results
        if (r.reason and r.verdict is not Verdict.PASS) or r.notes
    ]
    details += [f"- {_md(n)}" for n in report.notes]
    if details and report.problem is None:
        out += ["", *details]
    elif report.notes:
        out += ["", *[f"- {_md(n)}" for n in report.notes]]
    out += ["", "<details><summary>Runs and method</summary>", ""]
    out += [f"- baseline {_run_line(r)}" for r in report.baseline]
    out += [f"- candidate {_run_line(r)}" for r in report.candidate]
    out += [
        "",
        f"Per-trial values of each side are pooled. A metric regresses when a one-sided "
        f"Mann–Whitney U test gives p ≤ {s.alpha:g}, the {s.confidence * 100:g}% bootstrap CI "
        f"of the ratio of medians ({s.n_resamples} resamples) excludes no change **and** "
        f"either the whole CI lies beyond its threshold (however noisy the trials) or, with a "
        f"stable baseline, the change of medians is at least the threshold, all in the worse "
        f"direction; it passes when the baseline is stable and the CI's worse end stays below "
        f"the threshold; otherwise it is inconclusive (also with fewer than {s.min_trials} "
        f"trials per side); stable means a robust CV (1.4826 × MAD / median) of at most "
        f"{s.max_cv * 100:g}%. Inconclusive lines name `wattbench run --target-ci`, which "
        f"adds trials until a run's interval is narrow enough. Estimated energy is "
        f"{'gated (--include-estimated)' if s.include_estimated else 'not gated'}. "
        f"See {DOCS}.",
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)


def to_junit(report: GateReport) -> str:
    """JUnit XML: one testcase per metric; failure = regression, error = inconclusive,
    skipped = not gated."""
    results = report.results
    suite = ET.Element(
        "testsuite",
        {
            "name": "wattbench gate",
            "tests": str(len(results)),
            "failures": str(sum(r.verdict is Verdict.REGRESSION for r in results)),
            "errors": str(sum(r.verdict is Verdict.INCONCLUSIVE for r in results)),
            "skipped": str(sum(r.verdict is Verdict.SKIPPED for r in results)),
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("baseline", report.baseline_ref),
        ("candidate", report.candidate_ref),
        ("baseline_runs", " ".join(r.run_id for r in report.baseline)),
        ("candidate_runs", " ".join(r.run_id for r in report.candidate)),
        ("baseline_intervals", "; ".join(r.interval_text for r in report.baseline)),
        ("candidate_intervals", "; ".join(r.interval_text for r in report.candidate)),
        ("verdict", report.verdict.value),
        ("configuration", report.key.describe() if report.key else ""),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for r in results:
        case = ET.SubElement(
            suite, "testcase", {"classname": "wattbench.gate", "name": r.metric, "time": "0"}
        )
        line = verdict_line(r)
        if r.verdict is Verdict.REGRESSION:
            ET.SubElement(case, "failure", {"type": "regression", "message": line}).text = line
        elif r.verdict is Verdict.INCONCLUSIVE:
            ET.SubElement(case, "error", {"type": "inconclusive", "message": line}).text = line
        elif r.verdict is Verdict.SKIPPED:
            ET.SubElement(case, "skipped", {"message": line})
        ET.SubElement(case, "system-out").text = line
    root = ET.Element(
        "testsuites",
        {
            "name": "wattbench gate",
            "tests": suite.get("tests", "0"),
            "failures": suite.get("failures", "0"),
            "errors": suite.get("errors", "0"),
            "skipped": suite.get("skipped", "0"),
        },
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
