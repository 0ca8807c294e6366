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
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

import numpy as np
from pydantic import ValidationError

from wattbench.core.errors import ConfigError, UnavailableError
from wattbench.core.results import RunResult
from wattbench.core.stats import STABILITY_REMEDY, coefficient_of_variation

SCIPY_HINT = "pip install 'wattbench[gate]'"
DOCS = "docs/gate.md"

#: Fewest per-trial values per side (after pooling runs) the gate will test. With 3 vs 3
#: the smallest possible one-sided Mann–Whitney p is 1/20 = 0.05, so only complete
#: separation is significant at alpha 0.05; 5 per side or more is recommended.
MIN_TRIALS_PER_SIDE = 3
DEFAULT_ALPHA = 0.05
DEFAULT_CONFIDENCE = 0.95
#: Baseline per-trial coefficient of variation above which the gate will not judge.
DEFAULT_MAX_CV = 0.10
DEFAULT_RESAMPLES = 9999
#: Fixed seed of the bootstrap: the same runs always give the same verdict.
DEFAULT_SEED = 0


# -- metrics ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricSpec:
    """A gated metric: its unit, which direction is better and its default threshold."""

    name: str
    description: str
    unit: str
    higher_is_better: bool
    default_threshold: float  # a fraction: 0.05 = 5 %
    energy_based: bool

    @property
    def better(self) -> str:
        """``"higher"`` or ``"lower"``: which direction is an improvement."""
        return "higher" if self.higher_is_better else "lower"


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec(
            "joules_per_inference",
            "energy per inference (headline reader gross J / inferences, per trial)",
            "J",
            False,
            0.05,
            True,
        ),
        MetricSpec("latency_p90_ms", "p90 latency per trial", "ms", False, 0.05, False),
        MetricSpec("throughput_ips", "throughput per trial", "inferences/s", True, 0.05, False),
        MetricSpec(
            "tokens_per_joule",
            "generated tokens per joule per trial (suites that count tokens)",
            "tokens/J",
            True,
            0.05,
            True,
        ),
    )
}
#: Gated unless --metric says otherwise (tokens_per_joule joins when both sides have it).
DEFAULT_METRICS = ("joules_per_inference", "latency_p90_ms", "throughput_ips")
OPTIONAL_METRICS = ("tokens_per_joule",)

ALIASES = {
    "energy": "joules_per_inference",
    "j/inf": "joules_per_inference",
    "latency": "latency_p90_ms",
    "p90": "latency_p90_ms",
    "latency_p90": "latency_p90_ms",
    "throughput": "throughput_ips",
    "tokens": "tokens_per_joule",
}


def resolve_metric(name: str) -> str:
    """Canonical metric name for ``name`` or an alias; ConfigError naming the choices."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in METRICS:
        raise ConfigError(
            f"unknown metric {name!r}: use one of {', '.join(METRICS)} "
            f"(or {', '.join(sorted(ALIASES))})"
        )
    return key


def parse_metrics(items: Iterable[str] | None) -> tuple[str, ...] | None:
    """``--metric`` values (repeatable, comma-separated allowed); None means the defaults."""
    names: list[str] = []
    for item in items or ():
        for part in item.split(","):
            if part.strip():
                name = resolve_metric(part)
                if name not in names:
                    names.append(name)
    return tuple(names) or None


_PCT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*$")


def parse_thresholds(items: Iterable[str] | None) -> dict[str, float]:
    """``--threshold`` values: ``METRIC=PCT`` or ``PCT`` (every metric); PCT is a percentage.

    ``joules_per_inference=3%``, ``latency=10`` and ``4%`` are all valid; returns fractions.
    """
    out: dict[str, float] = {}
    for item in items or ():
        metric, sep, value = item.rpartition("=")
        m = _PCT.match(value)
        if not m or (sep and not metric.strip()):
            raise ConfigError(
                f"invalid --threshold {item!r}: use METRIC=PERCENT, e.g. "
                f"joules_per_inference=3%, or PERCENT for every metric"
            )
        pct = float(m.group(1))
        if not 0 < pct < 100:
            raise ConfigError(f"invalid --threshold {item!r}: the percentage must be > 0 and < 100")
        names = [resolve_metric(metric)] if sep else list(METRICS)
        for name in names:
            out[name] = pct / 100
    return out


# -- run records --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigKey:
    """What must match for two runs to be compared (like with like)."""

    suite: str
    suite_version: str
    model_sha256: str
    adapter: str
    hardware: str
    device_target: str
    precision: str
    batch: int
    scenario: str
    power_mode: str | None
    energy_method: str | None
    energy_scope: str | None

    def differences(self, other: ConfigKey) -> list[tuple[str, Any, Any]]:
        """``(field, self's value, other's value)`` for every field that differs."""
        return [
            (f.name, getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    def describe(self) -> str:
        """One human line: suite, runtime, hardware, precision, batch, energy."""
        energy = f"{self.energy_method}/{self.energy_scope}" if self.energy_method else "none"
        mode = f" · power mode {self.power_mode}" if self.power_mode else ""
        return (
            f"{self.suite} {self.suite_version} · {self.adapter} on {self.device_target} · "
            f"{self.hardware}{mode} · {self.precision} · batch {self.batch} · {self.scenario} · "
            f"model {self.model_sha256[:12]} · energy {energy}"
        )


def describe_differences(diffs: Sequence[tuple[str, Any, Any]], a: str, b: str) -> str:
    """``precision (baseline fp32, candidate int8); batch (baseline 1, candidate 4)``."""
    return "; ".join(f"{name} ({a} {va}, {b} {vb})" for name, va, vb in diffs)


def hardware_name(accelerator: str | None, cpu_model: str | None) -> str:
    """The hardware a run measured: the accelerator if recorded, else the CPU model."""
    return (accelerator or cpu_model or "unknown").strip() or "unknown"


def power_mode(
    environment: Mapping[str, Any] | None, details: Mapping[str, Any] | None
) -> str | None:
    """A recorded power mode (e.g. Jetson nvpmodel) or None.

    Looked up as ``environment["power_mode"]``, then the headline energy reading's
    ``details["power_mode"]``: both are stored, so JSON files and the store agree.
    """
    for source in (environment or {}, details or {}):
        value = source.get("power_mode")
        if value not in (None, ""):
            return str(value)
    return None


@dataclass(frozen=True)
class RunRecord:
    """One run as the gate sees it: identity, configuration key, validity, per-trial values."""

    run_id: str
    source: str
    key: ConfigKey
    valid: bool
    invalid_reasons: tuple[str, ...]
    labels: tuple[str, ...]
    started_at: datetime | None
    device_name: str | None
    energy_reader: str | None
    samples: Mapping[str, tuple[float, ...]]

    @property
    def estimated(self) -> bool:
        """Whether the headline energy is an estimate, not a measurement."""
        return self.key.energy_method == "estimated"

    @property
    def trials(self) -> int:
        """Number of trials (the longest per-metric series)."""
        return max((len(v) for v in self.samples.values()), default=0)


def trial_samples(
    trials: Iterable[tuple[int, float, float, float | None, int | None]],
) -> dict[str, tuple[float, ...]]:
    """Per-metric per-trial values from ``(inferences, p90_ms, ips, headline gross J, tokens)``.

    Energy metrics skip trials without a positive energy reading (0 J means the reader saw
    nothing, not free inference); tokens_per_joule appears only when every trial has tokens.
    """
    jpi: list[float] = []
    p90: list[float] = []
    ips: list[float] = []
    tpj: list[float] = []
    all_tokens = True
    for inferences, p90_ms, throughput, gross_j, tokens in trials:
        p90.append(float(p90_ms))
        ips.append(float(throughput))
        if gross_j is not None and gross_j > 0 and inferences > 0:
            jpi.append(gross_j / inferences)
        if tokens is None:
            all_tokens = False
        elif gross_j is not None and gross_j > 0:
            tpj.append(tokens / gross_j)
    out = {
        "joules_per_inference": tuple(jpi),
        "latency_p90_ms": tuple(p90),
        "throughput_ips": tuple(ips),
    }
    if all_tokens and p90:
        out["tokens_per_joule"] = tuple(tpj)
    return out


def record_from_result(
    result: RunResult, *, source: str, raw: Mapping[str, Any] | None = None
) -> RunRecord:
    """A :class:`RunRecord` from a RunResult (``wattbench run --json``).

    ``raw`` is the JSON object the result was parsed from; per-trial ``tokens`` counts
    (which RunResult does not model yet) are read from it.
    """
    head = result.headline
    raw_trials = list((raw or {}).get("trials") or [])
    rows = []
    for i, t in enumerate(result.trials):
        tok = raw_trials[i].get("tokens") if i < len(raw_trials) else None
        rows.append(
            (
                t.inferences,
                t.latency.p90_ms,
                t.throughput_ips,
                t.energy[0].gross_j if t.energy else None,
                int(tok) if isinstance(tok, (int, float)) and not isinstance(tok, bool) else None,
            )
        )
    dev = result.device
    key = ConfigKey(
        suite=result.suite,
        suite_version=result.suite_version,
        model_sha256=result.model.sha256,
        adapter=result.adapter.adapter,
        hardware=hardware_name(dev.get("accelerator"), dev.get("cpu_model")),
        device_target=result.adapter.device,
        precision=result.adapter.precision,
        batch=result.config.batch,
        scenario=result.scenario,
        power_mode=power_mode(result.environment, head.details if head else None),
        energy_method=head.method.value if head else None,
        energy_scope=head.scope.value if head else None,
    )
    return RunRecord(
        run_id=result.run_id,
        source=source,
        key=key,
        valid=result.valid,
        invalid_reasons=tuple(result.invalid_reasons),
        labels=tuple(result.labels),
        started_at=result.started_at,
        device_name=dev.get("name") or dev.get("hostname"),
        energy_reader=head.reader if head else None,
        samples=trial_samples(rows),
    )


def load_json_runs(path: Path) -> list[RunRecord]:
    """Runs from a ``wattbench run --json`` file: one RunResult object or a list of them."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"run file not found: {path} (check the path)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not JSON ({exc.msg}, line {exc.lineno}): "
            f"write it with `wattbench run ... --json > {path.name}`"
        ) from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ConfigError(f"{path} holds an empty list: it needs at least one run")
    records = []
    for i, item in enumerate(items):
        where = f"{path}" if len(items) == 1 else f"{path}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} is not a run: expected `wattbench run --json` output")
        try:
            result = RunResult.model_validate(item)
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = ".".join(str(x) for x in e["loc"]) or "value"
            raise ConfigError(
                f"{where} is not `wattbench run --json` output ({loc}: {e['msg']})"
            ) from None
        records.append(record_from_result(result, source=str(path), raw=item))
    return records


# -- references -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRef:
    """A parsed --baseline/--candidate: a JSON file, a run id (prefix) or a label selector."""

    text: str
    kind: Literal["file", "run", "label"]
    value: str
    limit: int | None = None  # label selectors: the N most recent runs


_RUN_ID = re.compile(r"^[0-9a-fA-F]{4}[0-9a-fA-F-]{0,32}$")
_LIMIT = re.compile(r"^(.*)~(\d+)$")
REF_FORMS = (
    "a run file (run.json from `wattbench run --json`), a run id or unique prefix "
    "(>= 4 hex digits), or a label selector: label:NAME, git:SHA, branch:NAME, "
    "with ~N for the N most recent runs (label:branch:main~5)"
)


def parse_ref(text: str) -> RunRef:
    """Parse a run reference; ConfigError listing the accepted forms when it fits none."""
    raw = text.strip()
    if not raw:
        raise ConfigError(f"empty run reference: use {REF_FORMS}")
    if raw.startswith(("label:", "git:", "branch:")):
        label = raw[len("label:") :] if raw.startswith("label:") else raw
        limit = None
        m = _LIMIT.match(label)
        if m:
            label, limit = m.group(1), int(m.group(2))
            if limit < 1:
                raise ConfigError(f"invalid selector {raw!r}: ~N needs N >= 1")
        if not label or label in ("git:", "branch:"):
            raise ConfigError(f"invalid selector {raw!r}: name the label, e.g. label:branch:main~5")
        return RunRef(raw, "label", label, limit)
    path = Path(raw).expanduser()
    if path.is_file() or raw.lower().endswith(".json"):
        if not path.is_file():
            raise ConfigError(f"run file not found: {raw} (check the path)")
        return RunRef(raw, "file", str(path))
    if _RUN_ID.match(raw):
        return RunRef(raw, "run", raw.lower())
    raise ConfigError(f"cannot read run reference {raw!r}: use {REF_FORMS}")


# -- statistics -----------------------------------------------------------------------------------
class Verdict(str, enum.Enum):
    """A metric's (and the gate's) outcome."""

    PASS = "PASS"
    REGRESSION = "REGRESSION"
    INCONCLUSIVE = "INCONCLUSIVE"
    SKIPPED = "SKIPPED"  # not gated (estimated energy, a metric the suite does not produce)


EXIT_CODES = {Verdict.PASS: 0, Verdict.REGRESSION: 1, Verdict.INCONCLUSIVE: 2}


@dataclass(frozen=True)
class GateSettings:
    """How the gate judges: thresholds (fractions), alpha, CI level, stability limit."""

    thresholds: Mapping[str, float] = field(default_factory=dict)
    metrics: tuple[str, ...] | None = None
    include_estimated: bool = False
    alpha: float = DEFAULT_ALPHA
    confidence: float = DEFAULT_CONFIDENCE
    max_cv: float = DEFAULT_MAX_CV
    min_trials: int = MIN_TRIALS_PER_SIDE
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ConfigError(f"invalid --alpha {self.alpha}: use a value in (0, 0.5), e.g. 0.05")
        if not 0.5 < self.confidence < 1:
            raise ConfigError(f"invalid confidence {self.confidence}: use e.g. 0.95")
        if not self.max_cv > 0:
            raise ConfigError(f"invalid --max-cv {self.max_cv}: use a percentage > 0, e.g. 10%")
        if self.min_trials < 2:
            raise ConfigError("the gate needs at least 2 trials per side")

    def threshold(self, metric: str) -> float:
        """The metric's threshold as a fraction (0.05 = 5 %)."""
        return self.thresholds.get(metric, METRICS[metric].default_threshold)


@dataclass(frozen=True)
class MetricResult:
    """One metric's comparison. Changes and CI bounds are relative: +0.05 = 5 % higher."""

    metric: str
    verdict: Verdict
    threshold: float
    n_baseline: int = 0
    n_candidate: int = 0
    baseline_median: float | None = None
    candidate_median: float | None = None
    change: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float = DEFAULT_CONFIDENCE
    p_value: float | None = None
    baseline_cv: float | None = None
    candidate_cv: float | None = None
    reason: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def spec(self) -> MetricSpec:
        """The metric's definition."""
        return METRICS[self.metric]

    @property
    def gated(self) -> bool:
        """Whether this metric took part in the verdict (not SKIPPED)."""
        return self.verdict is not Verdict.SKIPPED

    def worse_change(self) -> float | None:
        """The change in the metric's worse direction (+ is worse)."""
        if self.change is None:
            return None
        return -self.change if self.spec.higher_is_better else self.change

    def worse_bound(self) -> float | None:
        """The CI end on the worse side, as a change in the worse direction."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return -self.ci_low if self.spec.higher_is_better else self.ci_high

    def better_bound(self) -> float | None:
        """The CI end on the better side, as a change in the worse direction (> 0: the
        whole interval is worse than no change)."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return -self.ci_high if self.spec.higher_is_better else self.ci_low


def _scipy_stats() -> Any:
    try:
        return importlib.import_module("scipy.stats")
    except ImportError:
        raise UnavailableError(f"the regression gate needs scipy: {SCIPY_HINT}") from None


def _bootstrap_rng_kw(stats: Any, seed: int) -> dict[str, Any]:
    # scipy >= 1.15 takes rng=; older versions random_state= (both seed a Generator).
    params = inspect.signature(stats.bootstrap).parameters
    name = "rng" if "rng" in params else "random_state"
    return {name: np.random.default_rng(seed)}


def _ratio_of_medians(c: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.median(c, axis=axis) / np.median(b, axis=axis))


def median_ratio_ci(
    baseline: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap CI of median(candidate) / median(baseline), samples resampled apart."""
    stats = _scipy_stats()
    c = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (all-equal) samples: the CI is a point
        res = stats.bootstrap(
            (c, b),
            _ratio_of_medians,
            paired=False,
            vectorized=True,
            axis=-1,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            **_bootstrap_rng_kw(stats, seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # cannot happen with percentile; be safe
        r = float(_ratio_of_medians(c, b))
        lo = hi = r
    return lo, hi


def worse_p_value(
    baseline: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool,
) -> float:
    """One-sided Mann–Whitney U p-value that the candidate is worse than the baseline."""
    stats = _scipy_stats()
    alternative = "less" if higher_is_better else "greater"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.mannwhitneyu(
            np.asarray(candidate, dtype=np.float64),
            np.asarray(baseline, dtype=np.float64),
            alternative=alternative,
            method="auto",
        )
    p = float(res.pvalue)
    return p if math.isfinite(p) else 1.0


def compare_samples(
    metric: str,
    baseline: Sequence[float],
    candidate: Sequence[float],
    settings: GateSettings | None = None,
) -> MetricResult:
    """Judge one metric from pooled per-trial values of each side.

    REGRESSION needs p ≤ alpha, a CI that excludes no change and a change of medians ≥ the
    threshold, all in the worse direction; PASS needs no regression and the CI's worse end
    below the threshold; too few values, an unstable baseline or a CI that reaches the
    threshold is INCONCLUSIVE.
    """
    s = settings or GateSettings()
    spec = METRICS[metric]
    threshold = s.threshold(metric)
    b = np.asarray([v for v in baseline if math.isfinite(v)], dtype=np.float64)
    c = np.asarray([v for v in candidate if math.isfinite(v)], dtype=np.float64)
    base = MetricResult(
        metric=metric,
        verdict=Verdict.INCONCLUSIVE,
        threshold=threshold,
        n_baseline=int(b.size),
        n_candidate=int(c.size),
        confidence=s.confidence,
    )
    if b.size < s.min_trials or c.size < s.min_trials:
        return _replace(
            base,
            reason=(
                f"too few trials: baseline {b.size}, candidate {c.size}, need >= {s.min_trials} "
                f"per side: raise `wattbench run --repeats` (5+ recommended) or select more "
                f"baseline runs (label:NAME~N)"
            ),
        )
    if np.any(b <= 0) or np.any(c <= 0):
        return _replace(base, reason="non-positive per-trial values: the runs are unusable")
    b_med, c_med = float(np.median(b)), float(np.median(c))
    change = c_med / b_med - 1
    lo, hi = median_ratio_ci(b, c, confidence=s.confidence, n_resamples=s.n_resamples, seed=s.seed)
    p = worse_p_value(b, c, higher_is_better=spec.higher_is_better)
    res = _replace(
        base,
        baseline_median=b_med,
        candidate_median=c_med,
        change=change,
        ci_low=lo - 1,
        ci_high=hi - 1,
        p_value=p,
        baseline_cv=coefficient_of_variation(b.tolist()),
        candidate_cv=coefficient_of_variation(c.tolist()),
    )
    if res.baseline_cv is not None and res.baseline_cv > s.max_cv:
        return _replace(
            res,
            reason=(
                f"baseline unstable: its trials vary {res.baseline_cv * 100:.1f}% (CV) "
                f"> limit {s.max_cv * 100:g}%: {STABILITY_REMEDY}"
            ),
        )
    worse, bound, better = res.worse_change(), res.worse_bound(), res.better_bound()
    assert worse is not None and bound is not None and better is not None
    # Both tests must say "worse": the rank test (p ≤ alpha, allowing float round-off of
    # exact p-values such as 1/20 for 3 vs 3 trials) and the CI (no change excluded).
    significant = p <= s.alpha * (1 + 1e-9) and better > 0
    if significant and worse >= threshold:
        return _replace(res, verdict=Verdict.REGRESSION)
    if bound < threshold:
        return _replace(res, verdict=Verdict.PASS)
    why = (
        "worse, significantly, but by less than the threshold"
        if significant
        else f"not significant (needs p <= {s.alpha:g} and a CI that excludes no change)"
    )
    return _replace(
        res,
        reason=(
            f"{why}, and the {s.confidence * 100:g}% CI reaches {_pct(bound, signed=False)} "
            f"{'lower' if spec.higher_is_better else 'higher'}, so a "
            f"{_pct(threshold, signed=False)} regression cannot be ruled out: add trials "
            f"(--repeats) or baseline runs"
        ),
    )


def _replace(r: MetricResult, **changes: Any) -> MetricResult:
    return replace(r, **changes)


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
    return f"{len(runs)} run{'s' if len(runs) != 1 else ''}/{n} trials"


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


# -- reports ----------------------------------------------------------------------------------
def _pct(x: float | None, *, signed: bool = True) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.3g}%"


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
    return f"`{r.run_id}` ({r.trials} trials, {when}, {_md(r.source)}; {labels}){valid}"


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
        f"of the ratio of medians ({s.n_resamples} resamples) excludes no change **and** the "
        f"change of medians is at least its threshold, all in the worse direction; it passes "
        f"when the CI's worse end stays below the threshold; otherwise it is inconclusive "
        f"(also with fewer than {s.min_trials} trials per side or a baseline CV above "
        f"{s.max_cv * 100:g}%). Estimated energy is "
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
