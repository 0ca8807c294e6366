"""Time to a confident number: how sure a run is of its figures, and when to stop measuring.

Every run records, for inferences per joule and p90 latency across its trials, the 95 %
distribution-free confidence interval of the median (:func:`~wattbench.core.stats.median_ci`:
order statistics, so one disturbed trial moves an end by one rank at most). With
``--target-ci PCT`` the protocol keeps adding trials after the ``--repeats`` minimum until
both intervals lie within ±PCT of their medians (``target reached``) or the measuring budget
``--max-duration`` would be exceeded by the next trial (``budget exhausted``). See
docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from wattbench.core.errors import ConfigError
from wattbench.core.stats import MedianInterval, median_ci, min_trials_for_median_ci

if TYPE_CHECKING:
    from wattbench.core.config import RunConfig
    from wattbench.core.results import TrialResult

CONFIDENCE = 0.95
#: Measuring budget of a ``--target-ci`` run without ``--max-duration`` (seconds of trials
#: and the pauses between them).
DEFAULT_MAX_DURATION_S = 600.0
#: Most trials a ``--target-ci`` run measures, whatever its budget (very short trials).
MAX_TRIALS = 500
METHOD = "order-statistic (binomial) 95% CI of the median across trials"

StopReason = Literal["target reached", "budget exhausted"]
TARGET_REACHED: StopReason = "target reached"
BUDGET_EXHAUSTED: StopReason = "budget exhausted"

#: The figures whose intervals a run records (and ``--target-ci`` waits for).
METRICS = ("inferences_per_joule", "latency_p90_ms")


class TrialConfidence(BaseModel):
    """How sure a run is of its per-trial figures, and why it measured as many trials."""

    method: str = METHOD
    confidence: float = CONFIDENCE
    trials: int = Field(description="Trials measured.")
    min_trials: int = Field(description="The --repeats minimum.")
    target_pct: float | None = Field(
        default=None, description="--target-ci: wanted half-width, % of the median."
    )
    budget_s: float | None = Field(
        default=None, description="Measuring budget (--max-duration or the default), s."
    )
    measured_s: float = Field(description="Time of the trials and the pauses between them, s.")
    stopped: StopReason | None = Field(
        default=None, description="Why measuring stopped (None: the fixed --repeats ran)."
    )
    inferences_per_joule: MedianInterval = Field(
        description="Per-trial inferences / headline gross J."
    )
    latency_p90_ms: MedianInterval = Field(description="Per-trial p90 latency, ms.")

    def half_width_pct(self, metric: str) -> float | None:
        """The metric's achieved half-width in % of its median (None: no interval)."""
        hw = getattr(self, metric).half_width
        return None if hw is None else hw * 100


def trial_values(trials: Sequence[TrialResult]) -> dict[str, list[float]]:
    """Per-trial inferences per joule (headline reader, gross) and p90 latency."""
    ipj = [
        t.inferences / t.energy[0].gross_j for t in trials if t.energy and t.energy[0].gross_j > 0
    ]
    return {"inferences_per_joule": ipj, "latency_p90_ms": [t.latency.p90_ms for t in trials]}


def intervals(trials: Sequence[TrialResult]) -> dict[str, MedianInterval]:
    """Both figures' 95 % intervals of the median."""
    return {k: median_ci(v, CONFIDENCE) for k, v in trial_values(trials).items()}


def within(iv: MedianInterval, target_pct: float) -> bool:
    return iv.half_width is not None and iv.half_width * 100 <= target_pct


def check_config(cfg: RunConfig) -> None:
    """One-line errors for stopping options that cannot work together."""
    if cfg.max_duration_s is not None and cfg.target_ci_pct is None:
        raise ConfigError(
            "--max-duration is the budget of --target-ci: pass --target-ci PCT as well "
            "(or leave --max-duration out; --repeats fixes the trials)"
        )
    if cfg.target_ci_pct is None:
        return
    minimum = cfg.repeats * cfg.duration_s + (cfg.repeats - 1) * cfg.cooldown_s
    budget = budget_s(cfg)
    if budget < minimum:
        raise ConfigError(
            f"--max-duration {budget:g} s is shorter than the --repeats minimum "
            f"({cfg.repeats} x --duration {cfg.duration_s:g} s + pauses = {minimum:g} s): "
            f"raise --max-duration or lower --repeats"
        )


def budget_s(cfg: RunConfig) -> float:
    return cfg.max_duration_s if cfg.max_duration_s is not None else DEFAULT_MAX_DURATION_S


class StoppingRule:
    """Decides after each trial whether the protocol measures another one.

    Without a target the ``repeats`` trials run. With one, trials continue past ``repeats``
    until both intervals are within the target, or until the next trial (the mean trial so
    far plus the pause before it) would end after the budget, or ``MAX_TRIALS``.
    """

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.target = cfg.target_ci_pct
        self.budget = budget_s(cfg) if self.target is not None else None
        self.stopped: StopReason | None = None
        self.current: dict[str, MedianInterval] = {}

    def more(self, trials: Sequence[TrialResult], elapsed_s: float) -> bool:
        """Whether to measure another trial after ``trials`` (``elapsed_s`` since the first
        began)."""
        n = len(trials)
        if n < self.cfg.repeats:
            return True
        if self.target is None or self.budget is None:
            return False
        self.current = intervals(trials)
        if all(within(iv, self.target) for iv in self.current.values()):
            self.stopped = TARGET_REACHED
            return False
        mean_s = sum(t.duration_s for t in trials) / n
        if n >= MAX_TRIALS or elapsed_s + self.cfg.cooldown_s + mean_s > self.budget:
            self.stopped = BUDGET_EXHAUSTED
            return False
        return True

    def label(self, k: int) -> str:
        """The progress phase of trial ``k`` (0-based)."""
        if k < self.cfg.repeats or self.target is None:
            return f"trial {k + 1}/{self.cfg.repeats}"
        now = [iv.half_width for iv in self.current.values()]
        if not now or any(h is None for h in now):
            where = f"needs {min_trials_for_median_ci(CONFIDENCE)}+ trials"
        else:
            where = f"now ±{max(h for h in now if h is not None) * 100:.2g}%"
        return f"trial {k + 1} (to ±{self.target:g}%: {where})"

    def record(self, trials: Sequence[TrialResult], measured_s: float) -> TrialConfidence:
        ivs = intervals(trials)
        return TrialConfidence(
            trials=len(trials),
            min_trials=self.cfg.repeats,
            target_pct=self.target,
            budget_s=self.budget,
            measured_s=measured_s,
            stopped=self.stopped,
            inferences_per_joule=ivs["inferences_per_joule"],
            latency_p90_ms=ivs["latency_p90_ms"],
        )


def describe(c: TrialConfidence) -> str:
    """``12 trials, target ±1% reached in 14.2 s`` / ``budget exhausted`` / fixed."""
    head = f"{c.trials} trials in {c.measured_s:.1f} s"
    if c.target_pct is None:
        return f"{head} (fixed --repeats)"
    if c.stopped == TARGET_REACHED:
        return f"{head}: target ±{c.target_pct:g}% reached"
    return f"{head}: budget exhausted ({c.budget_s:g} s) before ±{c.target_pct:g}%"


def interval_text(iv: MedianInterval, fmt: str = ".4g") -> str:
    """``123.4 [121.9..124.6] ±1.2%`` or ``123.4 (needs 6+ trials for a 95% CI)``."""
    if iv.median is None:
        return "n/a"
    if iv.low is None or iv.high is None or iv.half_width is None:
        return (
            f"{iv.median:{fmt}} (no 95% interval: needs "
            f"{min_trials_for_median_ci(CONFIDENCE)}+ trials)"
        )
    return f"{iv.median:{fmt}} [{iv.low:{fmt}}..{iv.high:{fmt}}] ±{iv.half_width * 100:.2g}%"
