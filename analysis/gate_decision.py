"""The gate's decision: comparability and validity checks, then every metric judged.

:func:`evaluate` refuses (INCONCLUSIVE, never a silent pass) runs whose configurations
differ, invalid runs and empty sides, then judges each selected metric on the pooled
per-trial values (:func:`~wattbench.analysis.gate_stats.compare_samples`) and collects
the outcome in a :class:`GateReport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wattbench.analysis.gate_records import (
    DEFAULT_METRICS,
    METRICS,
    OPTIONAL_METRICS,
    ConfigKey,
    RunRecord,
    describe_differences,
)
from wattbench.analysis.gate_stats import (
    EXIT_CODES,
    GateSettings,
    MetricResult,
    Verdict,
    _replace,
    compare_samples,
)


# -- the gate -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateReport:
    """The gate's outcome: per-metric results, or a problem that made the runs unusable."""

    baseline_ref: str
    candidate_ref: str
    baseline: tuple[RunRecord, ...]
    candidate: tuple[RunRecord, ...]
    results: tuple[MetricResult, ...]
    settings: GateSettings
    problem: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> Verdict:
        """REGRESSION if any metric regressed, else INCONCLUSIVE if any is or none was gated."""
        if self.problem is not None:
            return Verdict.INCONCLUSIVE
        verdicts = [r.verdict for r in self.results]
        if Verdict.REGRESSION in verdicts:
            return Verdict.REGRESSION
        if Verdict.INCONCLUSIVE in verdicts or not any(r.gated for r in self.results):
            return Verdict.INCONCLUSIVE
        return Verdict.PASS

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 2 inconclusive/unusable."""
        return EXIT_CODES[self.verdict]

    @property
    def key(self) -> ConfigKey | None:
        """The compared configuration (the candidate's), None without runs."""
        runs = self.candidate or self.baseline
        return runs[0].key if runs else None

    def summary(self) -> str:
        """One line: the overall verdict and why."""
        v = self.verdict
        if self.problem is not None:
            return f"gate: INCONCLUSIVE: {self.problem}"
        counts = {x: sum(r.verdict is x for r in self.results) for x in Verdict}
        gated = sum(r.gated for r in self.results)
        if v is Verdict.INCONCLUSIVE and gated == 0:
            return "gate: INCONCLUSIVE: no metric was gated (see the SKIPPED lines)"
        words = {
            Verdict.PASS: "passed",
            Verdict.REGRESSION: "regressed",
            Verdict.INCONCLUSIVE: "inconclusive",
            Verdict.SKIPPED: "not gated",
        }
        parts = [f"{counts[x]} {words[x]}" for x in Verdict if counts[x]]
        return (
            f"gate: {v.value} ({', '.join(parts)}; baseline {_runs_trials(self.baseline)}, "
            f"candidate {_runs_trials(self.candidate)})"
        )


def _runs_trials(runs: Sequence[RunRecord]) -> str:
    n = sum(r.trials for r in runs)
    head = f"{len(runs)} run{'s' if len(runs) != 1 else ''}/{n} trials"
    if len(runs) == 1:
        return f"{head}, {runs[0].interval_text}"
    if any(r.confidence for r in runs):
        return f"{head}; " + "; ".join(f"{r.run_id[:8]} {r.interval_text}" for r in runs)
    return head


def selected_metrics(
    settings: GateSettings, baseline: Sequence[RunRecord], candidate: Sequence[RunRecord]
) -> tuple[str, ...]:
    """The requested metrics, or the defaults plus optional metrics either side has."""
    if settings.metrics:
        return settings.metrics
    extra = tuple(
        m for m in OPTIONAL_METRICS if any(m in r.samples for r in (*baseline, *candidate))
    )
    return DEFAULT_METRICS + extra


def unusable(
    problem: str,
    settings: GateSettings,
    *,
    baseline_ref: str,
    candidate_ref: str,
    baseline: Sequence[RunRecord] = (),
    candidate: Sequence[RunRecord] = (),
    notes: Sequence[str] = (),
) -> GateReport:
    """A report whose every metric is INCONCLUSIVE for one reason (config mismatch, no runs…)."""
    metrics = selected_metrics(settings, baseline, candidate)
    return GateReport(
        baseline_ref=baseline_ref,
        candidate_ref=candidate_ref,
        baseline=tuple(baseline),
        candidate=tuple(candidate),
        results=tuple(
            MetricResult(
                m,
                Verdict.INCONCLUSIVE,
                settings.threshold(m),
                confidence=settings.confidence,
                reason=problem,
            )
            for m in metrics
        ),
        settings=settings,
        problem=problem,
        notes=tuple(notes),
    )


def energy_of(run: RunRecord) -> str:
    """``reader/method/scope`` of the headline energy figure (``none`` without one)."""
    k = run.key
    if k.energy_method is None and run.energy_reader is None:
        return "none"
    return f"{run.energy_reader or '?'}/{k.energy_method or '?'}/{k.energy_scope or '?'}"


def config_problem(baseline: Sequence[RunRecord], candidate: Sequence[RunRecord]) -> str | None:
    """Why the runs cannot be compared (differing configuration keys), or None."""
    for side, runs in (("baseline", baseline), ("candidate", candidate)):
        for r in runs[1:]:
            diffs = runs[0].key.differences(r.key)
            if diffs:
                return (
                    f"{side} runs {runs[0].run_id[:8]} and {r.run_id[:8]} differ in configuration: "
                    f"{describe_differences(diffs, 'first', 'other')}: select runs of one "
                    f"configuration"
                )
    if baseline and candidate:
        b_energy, c_energy = energy_of(baseline[0]), energy_of(candidate[0])
        if b_energy != c_energy:
            return (
                f"gate refused: baseline energy is {b_energy}, candidate is {c_energy}: "
                f"gate like with like"
            )
        diffs = baseline[0].key.differences(candidate[0].key)
        if diffs:
            names = ", ".join(d[0] for d in diffs)
            return (
                f"configuration differs in {names}: "
                f"{describe_differences(diffs, 'baseline', 'candidate')}: "
                f"gate only runs of the same suite, model, runtime, hardware, precision, batch, "
                f"scenario and energy reader"
            )
    return None


def validity_problem(baseline: Sequence[RunRecord], candidate: Sequence[RunRecord]) -> str | None:
    """Why invalid runs make the comparison unusable, or None."""
    bad = [("baseline", r) for r in baseline if not r.valid]
    bad += [("candidate", r) for r in candidate if not r.valid]
    if not bad:
        return None
    side, r = bad[0]
    more = f" (and {len(bad) - 1} more invalid run(s))" if len(bad) > 1 else ""
    reasons = "; ".join(r.invalid_reasons) or "no reason recorded"
    return f"{side} run {r.run_id[:8]} is invalid: {reasons}{more}: fix the run and measure again"


def evaluate(
    baseline: Sequence[RunRecord],
    candidate: Sequence[RunRecord],
    settings: GateSettings | None = None,
    *,
    baseline_ref: str = "baseline",
    candidate_ref: str = "candidate",
    notes: Sequence[str] = (),
) -> GateReport:
    """Gate ``candidate`` against ``baseline``: check they are comparable and valid, then judge
    every selected metric on the pooled per-trial values."""
    s = settings or GateSettings()
    problem = None
    if not baseline or not candidate:
        problem = f"no {'baseline' if not baseline else 'candidate'} runs to compare"
    else:
        problem = config_problem(baseline, candidate) or validity_problem(baseline, candidate)
    if problem is not None:
        return unusable(
            problem,
            s,
            baseline_ref=baseline_ref,
            candidate_ref=candidate_ref,
            baseline=baseline,
            candidate=candidate,
            notes=notes,
        )
    estimated = any(r.estimated for r in (*baseline, *candidate))
    results = []
    for metric in selected_metrics(s, baseline, candidate):
        spec = METRICS[metric]
        threshold = s.threshold(metric)
        missing = [
            side
            for side, runs in (("baseline", baseline), ("candidate", candidate))
            if any(metric not in r.samples for r in runs)
        ]
        if missing:
            explicit = s.metrics is not None and metric in s.metrics
            results.append(
                MetricResult(
                    metric,
                    Verdict.INCONCLUSIVE if explicit else Verdict.SKIPPED,
                    threshold,
                    confidence=s.confidence,
                    reason=f"not gated: the {' and '.join(missing)} run(s) do not record it",
                )
            )
            continue
        b = [v for r in baseline for v in r.samples[metric]]
        c = [v for r in candidate for v in r.samples[metric]]
        res = compare_samples(metric, b, c, s)
        if spec.energy_based and estimated and not s.include_estimated:
            # Reported for information, never a verdict either way.
            res = _replace(
                res,
                verdict=Verdict.SKIPPED,
                reason=(
                    "skipped: estimated energy (TDP x CPU utilisation, not a measurement), "
                    "not gated: pass --include-estimated to gate it anyway"
                ),
            )
        elif spec.energy_based and estimated:
            res = _replace(
                res,
                notes=(
                    "ESTIMATED energy (TDP x CPU utilisation), gated on request "
                    "(--include-estimated)",
                ),
            )
        results.append(res)
    return GateReport(
        baseline_ref=baseline_ref,
        candidate_ref=candidate_ref,
        baseline=tuple(baseline),
        candidate=tuple(candidate),
        results=tuple(results),
        settings=s,
        notes=tuple(notes),
    )
