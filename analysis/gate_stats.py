"""Judging one metric: the gate's settings, verdicts and statistics.

The per-trial values of each side are compared with two statistics (see docs/gate.md):

* a one-sided Mann–Whitney U test in the metric's *worse* direction (p-value), and
* a percentile-bootstrap confidence interval of the ratio of medians
  (candidate / baseline), reported as a relative change.

:func:`compare_samples` turns them into a :class:`MetricResult` under
:class:`GateSettings`. scipy is an optional dependency (``pip install 'wattbench[gate]'``),
imported only when statistics are computed.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from wattbench.analysis.gate_records import METRICS, MetricSpec
from wattbench.core.errors import ConfigError, UnavailableError
from wattbench.core.stats import STABILITY_REMEDY, robust_cv

SCIPY_HINT = "pip install 'wattbench[gate]'"
DOCS = "docs/gate.md"

#: Fewest per-trial values per side (after pooling runs) the gate will test. With 3 vs 3
#: the smallest possible one-sided Mann–Whitney p is 1/20 = 0.05, so only complete
#: separation is significant at alpha 0.05; 5 per side or more is recommended.
MIN_TRIALS_PER_SIDE = 3
DEFAULT_ALPHA = 0.05
DEFAULT_CONFIDENCE = 0.95
#: Baseline per-trial robust CV (1.4826 x MAD / median) above which the gate will not pass.
DEFAULT_MAX_CV = 0.10
DEFAULT_RESAMPLES = 9999
#: Fixed seed of the bootstrap: the same runs always give the same verdict.
DEFAULT_SEED = 0


# -- settings and results --------------------------------------------------------------------
class Verdict(str, enum.Enum):
    """A metric's (and the gate's) outcome."""

    PASS = "PASS"
    REGRESSION = "REGRESSION"
    INCONCLUSIVE = "INCONCLUSIVE"
    SKIPPED = "SKIPPED"  # not gated (estimated energy, a metric the suite does not produce)


EXIT_CODES = {Verdict.PASS: 0, Verdict.REGRESSION: 1, Verdict.INCONCLUSIVE: 2}


@dataclass(frozen=True)
class GateSettings:
    """How the gate judges: thresholds (fractions), alpha, CI level, stability limit
    (``max_cv``: the baseline's robust CV above which no metric passes)."""

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
    #: robust CV of each side's trials: 1.4826 x MAD / median (one outlier barely moves it)
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


# -- statistics -----------------------------------------------------------------------------------
def _pct(x: float | None, *, signed: bool = True) -> str:
    # A relative change as a percentage (reasons here, and the reports in gate_report.py).
    if x is None:
        return "n/a"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.3g}%"


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

    REGRESSION needs p ≤ alpha and a CI that excludes no change, in the worse direction, and
    either the whole CI beyond the threshold (whatever the noise) or, with a stable baseline,
    a change of medians ≥ the threshold; PASS needs no regression, a stable baseline (robust
    CV ≤ max_cv) and the CI's worse end below the threshold; anything else (too few values, an
    unstable baseline, a CI that reaches the threshold) is INCONCLUSIVE, naming the command
    that adds trials (``wattbench run --target-ci``).
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
                f"per side (--repeats 5+ recommended): {more_trials(threshold)}"
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
        baseline_cv=robust_cv(b.tolist()),
        candidate_cv=robust_cv(c.tolist()),
    )
    worse, bound, better = res.worse_change(), res.worse_bound(), res.better_bound()
    assert worse is not None and bound is not None and better is not None
    # Both tests must say "worse": the rank test (p ≤ alpha, allowing float round-off of
    # exact p-values such as 1/20 for 3 vs 3 trials) and the CI (no change excluded).
    significant = p <= s.alpha * (1 + 1e-9) and better > 0
    if significant and better >= threshold:
        # The whole interval lies beyond the threshold: noise widened it, yet even its
        # better end is a regression. However unstable the trials, that is a regression.
        return _replace(res, verdict=Verdict.REGRESSION)
    if res.baseline_cv is not None and res.baseline_cv > s.max_cv:
        # Noise may turn a pass (or a regression the interval does not confirm) into
        # "inconclusive", never into a verdict.
        return _replace(
            res,
            reason=(
                f"baseline unstable: its trials vary {res.baseline_cv * 100:.1f}% (robust CV) "
                f"> limit {s.max_cv * 100:g}%, and the {s.confidence * 100:g}% CI does not lie "
                f"wholly beyond the {_pct(threshold, signed=False)} threshold: "
                f"{STABILITY_REMEDY}; or {more_trials(threshold)}"
            ),
        )
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
            f"{_pct(threshold, signed=False)} regression cannot be ruled out: "
            f"{more_trials(threshold)}"
        ),
    )


def more_trials(threshold: float) -> str:
    """What to do when the data cannot decide: the command that adds trials."""
    pct = f"{threshold * 100 / 2:.2g}"
    return (
        f"measure again with `wattbench run --target-ci {pct}` (adds trials until each run's "
        f"95% CI is within ±{pct}%; budget --max-duration) or pool more baseline runs "
        f"(label:NAME~N)"
    )


def _replace(r: MetricResult, **changes: Any) -> MetricResult:
    return replace(r, **changes)
