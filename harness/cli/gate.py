"""``wattbench gate``: fail CI when energy per inference, latency or throughput regress.

Registered in ``harness/cli/__init__.py`` with ``app.command("gate")(gate)``. It compares the
per-trial values of a candidate (the change under test) with a baseline (e.g.
the main branch's recent runs) and exits 0 (pass), 1 (regression) or 2
(inconclusive or unusable: too few trials, an unstable baseline, invalid runs,
configurations that differ). The statistics live in :mod:`wattbench.analysis.gate`
and are explained in docs/gate.md.

Runs are referenced as ``run.json`` (``wattbench run --json`` output, one run or a
list), a run id or unique prefix, or a label selector ``label:NAME`` / ``git:SHA`` /
``branch:NAME`` with ``~N`` for the N most recent runs (``label:branch:main~5``).
A baseline selector only picks valid runs with the candidate's configuration.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wattbench.core.errors import ConfigError, WattbenchError

if TYPE_CHECKING:
    from wattbench.analysis.gate import ConfigKey, GateReport, RunRecord, RunRef
    from wattbench.results_db.store import Store

# Defaults of harness.gate, repeated so that registering this command imports neither
# numpy nor the result models (tests/gate/test_gate_cli.py checks they agree).
DEFAULT_ALPHA = 0.05
DEFAULT_MAX_CV = "10%"

REF_HELP = (
    "run.json from `wattbench run --json`, a run id (prefix), or a label selector "
    "label:NAME / git:SHA / branch:NAME, ~N for the N most recent (label:branch:main~5)."
)


@dataclass
class Resolved:
    """Both sides' runs and what the selectors passed over."""

    baseline: list[RunRecord]
    candidate: list[RunRecord]
    notes: list[str] = field(default_factory=list)


class _LazyStore:
    """Opens the database only if a reference needs it, once."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.store: Store | None = None

    def get(self) -> Store:
        if self.store is None:
            from wattbench.results_db.store import Store

            self.store = Store.open(self.url)
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _load(
    ref: RunRef,
    store: Callable[[], Store],
    *,
    baseline: bool,
    key: ConfigKey | None = None,
    exclude: frozenset[str] = frozenset(),
) -> tuple[list[RunRecord], list[str]]:
    from wattbench.analysis.gate import load_json_runs

    if ref.kind == "file":
        return load_json_runs(Path(ref.value)), []
    from wattbench.analysis import gate_queries as queries

    db = store()
    if ref.kind == "run":
        return [queries.find_run(db, ref.value)], []
    selection = queries.select_labelled(
        db,
        ref.value,
        limit=ref.limit,
        key=key if baseline else None,
        exclude=exclude if baseline else frozenset(),
        valid_only=baseline,
    )
    return list(selection.records), selection.notes(ref.value)


def resolve_runs(baseline: str, candidate: str, db: str | None = None) -> Resolved:
    """Load both sides; the candidate first, so a baseline selector can match its config."""
    from wattbench.analysis.gate import parse_ref

    b_ref, c_ref = parse_ref(baseline), parse_ref(candidate)
    store = _LazyStore(db)
    try:
        cand, c_notes = _load(c_ref, store.get, baseline=False)
        keys = {r.key for r in cand}
        base, b_notes = _load(
            b_ref,
            store.get,
            baseline=True,
            key=next(iter(keys)) if len(keys) == 1 else None,
            exclude=frozenset(r.run_id for r in cand),
        )
    finally:
        store.close()
    return Resolved(base, cand, [*b_notes, *c_notes])


def _percent(value: str, option: str) -> float:
    text = value.strip().rstrip("%").strip()
    try:
        pct = float(text)
    except ValueError:
        raise ConfigError(f"invalid {option} {value!r}: give a percentage, e.g. 10%") from None
    if not 0 < pct < 1000:
        raise ConfigError(
            f"invalid {option} {value!r}: give a percentage between 0 and 1000, e.g. 10%"
        )
    return pct / 100


def _write(path: Path, text: str, option: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {option} {path}: {exc.strerror or exc}") from None


def _emit(report: GateReport, markdown: Path | None, junit: Path | None) -> None:
    from wattbench.analysis.gate import to_junit, to_markdown

    if markdown is not None:
        _write(markdown, to_markdown(report), "--markdown")
    if junit is not None:
        _write(junit, to_junit(report), "--junit")


def gate(
    baseline: Annotated[str, typer.Option(help="Baseline runs: " + REF_HELP)],
    candidate: Annotated[str, typer.Option(help="Candidate runs: " + REF_HELP)],
    metric: Annotated[
        list[str] | None,
        typer.Option(
            help="Metric to gate (repeatable): joules_per_inference, latency_p90_ms, "
            "throughput_ips, tokens_per_joule. Default: the first three, plus "
            "tokens_per_joule when the runs count tokens."
        ),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            help="Minimum change that counts as a regression, METRIC=PERCENT (repeatable), "
            "e.g. joules_per_inference=3%; a bare PERCENT sets every metric. Default 5%."
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL for run ids and labels (default: WATTBENCH_DB or SQLite in "
            "the data dir); not needed for run files.",
        ),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(help="Write a markdown summary (PR comment, $GITHUB_STEP_SUMMARY)."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(help="Write JUnit XML, one testcase per metric.")
    ] = None,
    include_estimated: Annotated[
        bool,
        typer.Option(
            "--include-estimated",
            help="Gate estimated energy (TDP x CPU utilisation) too; by default it is "
            "reported but not gated.",
        ),
    ] = False,
    alpha: Annotated[
        float, typer.Option(help="Significance level of the one-sided Mann-Whitney U test.")
    ] = DEFAULT_ALPHA,
    max_cv: Annotated[
        str,
        typer.Option(
            help="Baseline trial-to-trial variation (robust CV: 1.4826 x MAD / median) above "
            "which no metric passes (a whole CI beyond the threshold still regresses)."
        ),
    ] = DEFAULT_MAX_CV,
) -> None:
    """Compare CANDIDATE with BASELINE: exit 0 pass, 1 regression, 2 inconclusive.

    Prints one verdict line per metric; see docs/gate.md for the statistics.
    """
    from wattbench.analysis.gate import (
        GateSettings,
        evaluate,
        parse_metrics,
        parse_thresholds,
        unusable,
        verdict_lines,
    )

    settings = GateSettings(
        thresholds=parse_thresholds(threshold),
        metrics=parse_metrics(metric),
        include_estimated=include_estimated,
        alpha=alpha,
        max_cv=_percent(max_cv, "--max-cv"),
    )
    try:
        runs = resolve_runs(baseline, candidate, db)
    except WattbenchError as exc:
        # CI still gets its summary and JUnit file, saying why nothing was compared.
        problem = unusable(str(exc), settings, baseline_ref=baseline, candidate_ref=candidate)
        _emit(problem, markdown, junit)
        raise
    report = evaluate(
        runs.baseline,
        runs.candidate,
        settings,
        baseline_ref=baseline,
        candidate_ref=candidate,
        notes=runs.notes,
    )
    for line in verdict_lines(report):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    for note in report.notes:
        sys.stderr.write(f"note: {note}\n")
    sys.stderr.write(report.summary() + "\n")
    _emit(report, markdown, junit)
    if report.exit_code:
        raise typer.Exit(report.exit_code)
