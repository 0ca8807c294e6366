"""The energy regression gate: compare a candidate's trials with a baseline's.

Pure functions on per-trial samples and run records; the CLI (``cli_gate.py``) and
the store queries (``analysis/gate_queries.py``) feed them. Nothing here touches a
database or the terminal.

For each metric the per-trial values of all baseline runs are pooled, and so are
the candidate's. Two statistics are computed (see docs/gate.md):

* a one-sided Mann–Whitney U test in the metric's *worse* direction (p-value), and
* a percentile-bootstrap confidence interval of the ratio of medians
  (candidate / baseline), reported as a relative change.

A metric **regresses** when both say "worse" (p ≤ alpha and the interval excludes
no change) *and* the observed change of medians is at least the metric's threshold
in the worse direction. It **passes** when it does not regress and the worse end
of the interval stays below the threshold (a regression of threshold size is ruled
out). Anything else is **inconclusive**, as are too few trials, an unstable
baseline, invalid runs and configurations that differ: never a silent pass.

scipy is an optional dependency (``pip install 'wattbench[gate]'``), imported only
when statistics are computed.

This module is the gate's public face; the work is split by job:

* ``gate_records.py``: gated metrics, configuration keys, run records (from results and
  JSON files) and run references;
* ``gate_stats.py``: settings, verdicts and the per-metric statistics;
* ``gate_decision.py``: the report and :func:`evaluate` (comparability, validity, verdicts);
* ``gate_report.py``: verdict lines, Markdown and JUnit XML.
"""

from __future__ import annotations

from wattbench.analysis.gate_decision import (
    GateReport,
    config_problem,
    evaluate,
    selected_metrics,
    unusable,
    validity_problem,
)
from wattbench.analysis.gate_records import (
    ALIASES,
    DEFAULT_METRICS,
    METRICS,
    OPTIONAL_METRICS,
    REF_FORMS,
    ConfigKey,
    MetricSpec,
    RunRecord,
    RunRef,
    describe_differences,
    hardware_name,
    load_json_runs,
    parse_metrics,
    parse_ref,
    parse_thresholds,
    power_mode,
    record_from_result,
    resolve_metric,
    trial_samples,
)
from wattbench.analysis.gate_report import (
    to_junit,
    to_markdown,
    verdict_line,
    verdict_lines,
)
from wattbench.analysis.gate_stats import (
    DEFAULT_ALPHA,
    DEFAULT_CONFIDENCE,
    DEFAULT_MAX_CV,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    DOCS,
    EXIT_CODES,
    MIN_TRIALS_PER_SIDE,
    SCIPY_HINT,
    GateSettings,
    MetricResult,
    Verdict,
    compare_samples,
    median_ratio_ci,
    worse_p_value,
)

__all__ = [
    "ALIASES",
    "DEFAULT_ALPHA",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_MAX_CV",
    "DEFAULT_METRICS",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "DOCS",
    "EXIT_CODES",
    "METRICS",
    "MIN_TRIALS_PER_SIDE",
    "OPTIONAL_METRICS",
    "REF_FORMS",
    "SCIPY_HINT",
    "ConfigKey",
    "GateReport",
    "GateSettings",
    "MetricResult",
    "MetricSpec",
    "RunRecord",
    "RunRef",
    "Verdict",
    "compare_samples",
    "config_problem",
    "describe_differences",
    "evaluate",
    "hardware_name",
    "load_json_runs",
    "median_ratio_ci",
    "parse_metrics",
    "parse_ref",
    "parse_thresholds",
    "power_mode",
    "record_from_result",
    "resolve_metric",
    "selected_metrics",
    "to_junit",
    "to_markdown",
    "trial_samples",
    "unusable",
    "validity_problem",
    "verdict_line",
    "verdict_lines",
    "worse_p_value",
]
