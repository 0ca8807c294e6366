"""`wattbench doctor`'s reports: terminal lines, markdown and JSON."""

from __future__ import annotations

from typing import Any

from wattbench.harness.doctor_models import DoctorReport, ReaderReport


# -- reports ----------------------------------------------------------------------------------
def _label(rep: ReaderReport) -> str:
    if rep.status == "absent":
        return f"{rep.name} · absent: {rep.reason}"
    method = "ESTIMATED" if rep.status == "estimate" else (rep.method or "?")
    what = f"{method}/{rep.scope}" if rep.scope else method
    comp = f" · {rep.component}" if rep.component else ""
    return f"{rep.name} · {what}{comp} · {rep.status} · {(rep.verdict or '').upper()}"


def report_lines(report: DoctorReport) -> list[str]:
    """The report as plain text lines (what ``wattbench doctor`` prints)."""
    lines = [
        f"wattbench doctor · device {report.device_name} · wattbench {report.wattbench_version} · "
        f"{report.created_at:%Y-%m-%d %H:%M} UTC",
    ]
    if report.load.startswith("none"):
        lines.append("nothing to measure: no measured reader is available")
    else:
        lines.append(
            f"one window: idle {report.idle_s:g} s, load {report.step_s:g} s "
            f"({report.load}), recovery {report.recover_s:g} s; sampling every "
            f"{report.sample_interval_s:g} s"
        )
    present = [r for r in report.readers if r.status != "absent"]
    absent = [r for r in report.readers if r.status == "absent"]
    for rep in present:
        lines.append("")
        lines.append(_label(rep))
        for c in rep.checks:
            lines.append(f"  {c.verdict.upper():<5} {c.name:<12} {c.summary}")
            if c.remedy and c.verdict != "ok":
                lines.append(f"        remedy: {c.remedy}")
    if absent:
        lines.append("")
        lines.append("absent (nothing of their kind here):")
        lines += [f"  {r.name}: {r.reason}" for r in absent]
    if report.cross_checks:
        lines.append("")
        lines.append("cross-checks over the same window:")
        for cc in report.cross_checks:
            lines.append(f"  {cc.verdict.upper():<5} {cc.summary}")
            if cc.remedy:
                lines.append(f"        remedy: {cc.remedy}")
    lines.append("")
    lines.append(f"exit {report.exit_code}: {report.summary}")
    return lines


def _md_num(v: float | None, unit: str = "", digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}g}{unit}"


def report_markdown(report: DoctorReport) -> str:
    """The report as a markdown file to attach to a result."""
    out = [
        f"# wattbench doctor: {report.device_name}",
        "",
        f"* date: {report.created_at:%Y-%m-%d %H:%M} UTC; wattbench {report.wattbench_version}; "
        f"host {report.hostname}",
        f"* outcome: **{report.outcome}** (exit {report.exit_code}): {report.summary}",
        (
            "* nothing measured: no measured reader was available"
            if report.load.startswith("none")
            else f"* window: idle {report.idle_s:g} s, load {report.step_s:g} s ({report.load}), "
            f"recovery {report.recover_s:g} s, sampling every {report.sample_interval_s:g} s; "
            f"a step must exceed {report.sigmas:g}σ and {report.min_step_w:g} W"
        ),
        "",
        "| reader | status | verdict | method/scope | idle W (σ) | rate Hz (asked) | step ΔW "
        "| rise s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report.readers:
        if r.status == "absent":
            continue
        idle = (
            f"{_md_num(r.idle_mean_w)} ({_md_num(r.idle_std_w, digits=2)})"
            if r.idle_mean_w is not None
            else "—"
        )
        out.append(
            f"| {r.name} | {r.status} | {r.verdict or '—'} | {r.method}/{r.scope or '?'} "
            f"| {idle} | "
            f"{_md_num(r.achieved_rate_hz)} ({_md_num(r.requested_rate_hz)}) | "
            f"{_md_num(r.step_delta_w)} | {_md_num(r.step_delay_s, digits=2)} |"
        )
    for r in report.readers:
        if r.status == "absent":
            continue
        out += ["", f"## {r.name}", ""]
        if r.component:
            out.append(f"{r.component} ({r.method}/{r.scope})")
            out.append("")
        for c in r.checks:
            out.append(f"* **{c.verdict}** {c.name}: {c.summary}")
            if c.remedy and c.verdict != "ok":
                out.append(f"  * remedy: {c.remedy}")
    if report.cross_checks:
        out += ["", "## Cross-checks", ""]
        for cc in report.cross_checks:
            out.append(f"* **{cc.verdict}** {cc.summary}")
            if cc.remedy:
                out.append(f"  * remedy: {cc.remedy}")
    absent = [r for r in report.readers if r.status == "absent"]
    if absent:
        out += ["", "## Absent", ""]
        out += [f"* {r.name}: {r.reason}" for r in absent]
    return "\n".join(out) + "\n"


def report_json(report: DoctorReport) -> dict[str, Any]:
    """The JSON form (``--json``; what ``--save`` stores), each reader with its verdict."""
    data = report.model_dump(mode="json")
    for r, rep in zip(data["readers"], report.readers, strict=True):
        r["verdict"] = rep.verdict
    return data
