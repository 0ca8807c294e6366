"""`--target-ci`: trials past `repeats` until the 95 % CIs of the medians are narrow enough,
or the measuring budget ends; the interval, the trial count and the reason are recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wattbench.core.cache import ModelCache
from wattbench.core.confidence import (
    BUDGET_EXHAUSTED,
    DEFAULT_MAX_DURATION_S,
    TARGET_REACHED,
    StoppingRule,
    check_config,
)
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError
from wattbench.core.power import EnergyReading
from wattbench.core.results import RunResult
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness.cli.summary import confidence_line
from wattbench.harness.protocol import Runner, create_runner


def make_config(**overrides: Any) -> RunConfig:
    base: dict[str, Any] = {
        "suite": "fake",
        "adapter": "fake",
        "duration_s": 1.0,
        "min_queries": 10,
        "repeats": 3,
        "warmup_s": 0.01,
        "warmup_queries": 5,
        "idle_s": 1.0,
        "cooldown_s": 0.5,
        "power": ("fake",),
        "e2e_queries": 0,
    }
    base.update(overrides)
    return RunConfig(**base)


class SequenceReader(FakePowerReader):
    """5 W during the idle baseline, then trial k draws ``trial_w[k]`` (the last value for
    ever after, or the list again with ``cycle``)."""

    def __init__(self, clock: FakeClock, trial_w: list[float], *, cycle: bool) -> None:
        super().__init__(clock, 5.0)
        self.trial_w = trial_w
        self.cycle = cycle
        self.stops = 0

    def stop(self) -> EnergyReading:
        reading = super().stop()
        n = len(self.trial_w)
        self.power_w = self.trial_w[self.stops % n if self.cycle else min(self.stops, n - 1)]
        self.stops += 1
        return reading


def execute(
    tmp_path: Path, cfg: RunConfig, trial_w: list[float], *, cycle: bool = False
) -> RunResult:
    clock = FakeClock()
    return Runner(
        cfg,
        FakeSuite(),
        FakeAdapter(clock, 0.001),  # 1 ms per query: every trial is 1000 queries in 1 s
        [SequenceReader(clock, trial_w, cycle=cycle)],
        ModelCache(tmp_path / "cache"),
        clock_ns=clock,
        sleep=clock.advance,
    ).execute()


def test_stops_at_the_target_after_k_trials(tmp_path: Path) -> None:
    # inf/J per trial: 200/1.05, 200/0.95, then 200 for ever. With 6-8 trials the 95 %
    # order-statistic interval is [min, max] (±5.3 %); from 9 trials it is [x(2), x(8)] =
    # [200, 200], so a ±2 % target is reached at exactly 9 trials.
    r = execute(tmp_path, make_config(target_ci_pct=2.0), [5.25, 4.75, 5.0])
    c = r.confidence
    assert c is not None
    assert (c.trials, c.min_trials, c.stopped, c.target_pct) == (9, 3, TARGET_REACHED, 2.0)
    assert len(r.trials) == 9 and r.inferences == 9000
    assert c.budget_s == DEFAULT_MAX_DURATION_S
    ipj = c.inferences_per_joule
    assert ipj.n == 9 and ipj.median == pytest.approx(200.0)
    assert ipj.low == pytest.approx(200.0) and ipj.high == pytest.approx(200.0)
    assert ipj.coverage == pytest.approx(1 - 2 * 10 / 512)  # P(Bin(9, 1/2) <= 1) = 10/512
    assert c.half_width_pct("inferences_per_joule") == pytest.approx(0.0, abs=1e-9)
    assert c.latency_p90_ms.median == pytest.approx(1.0) and c.latency_p90_ms.half_width == 0
    # 9 one-second trials and 8 half-second pauses
    assert c.measured_s == pytest.approx(13.0)
    line = confidence_line(c)
    assert "9 trials in 13.0 s: target ±2% reached" in line and "inf/J 200 [200..200]" in line


def test_identical_trials_stop_at_the_fewest_that_give_an_interval(tmp_path: Path) -> None:
    r = execute(tmp_path, make_config(target_ci_pct=0.5, repeats=2, cooldown_s=0), [5.0])
    assert r.confidence is not None and r.confidence.stopped == TARGET_REACHED
    assert r.confidence.trials == 6  # a distribution-free 95 % CI needs 6 trials


def test_stops_when_the_budget_would_be_exceeded(tmp_path: Path) -> None:
    # ±5 % for ever never reaches ±2 %. After n trials n + 0.5 (n - 1) s have passed; a 7th
    # trial (0.5 s pause + 1 s) would end at 10 s > 9 s, so 6 trials are measured.
    r = execute(
        tmp_path, make_config(target_ci_pct=2.0, max_duration_s=9.0), [5.25, 4.75], cycle=True
    )
    c = r.confidence
    assert c is not None
    assert (c.trials, c.stopped, c.budget_s) == (6, BUDGET_EXHAUSTED, 9.0)
    assert c.measured_s == pytest.approx(8.5) and c.measured_s <= 9.0
    ipj = c.inferences_per_joule
    assert ipj.low == pytest.approx(200 / 1.05) and ipj.high == pytest.approx(200 / 0.95)
    med = (200 / 1.05 + 200 / 0.95) / 2  # 3 trials at each: the median is the midpoint
    assert ipj.median == pytest.approx(med)
    assert c.half_width_pct("inferences_per_joule") == pytest.approx((200 / 0.95 / med - 1) * 100)
    assert "budget exhausted (9 s) before ±2%" in confidence_line(c)
    # the record is part of the stored JSON and reads back
    again = RunResult.model_validate_json(r.model_dump_json())
    assert again.confidence == c


def test_the_repeats_minimum_runs_even_when_the_target_is_met_sooner(tmp_path: Path) -> None:
    r = execute(tmp_path, make_config(target_ci_pct=50.0, repeats=8, cooldown_s=0), [5.0])
    assert r.confidence is not None and r.confidence.trials == 8
    assert r.confidence.stopped == TARGET_REACHED


def test_a_fixed_run_records_its_interval_without_a_reason(tmp_path: Path) -> None:
    r = execute(tmp_path, make_config(), [5.25, 4.75, 5.0])
    c = r.confidence
    assert c is not None and len(r.trials) == 3
    assert (c.trials, c.stopped, c.target_pct, c.budget_s) == (3, None, None, None)
    assert c.inferences_per_joule.low is None  # 3 trials: no distribution-free 95 % interval
    assert "no 95% interval: needs 6+ trials" in confidence_line(c)
    assert "(fixed --repeats)" in confidence_line(c)


def test_progress_names_the_target_and_the_interval_so_far() -> None:
    rule = StoppingRule(make_config(target_ci_pct=1.5))
    assert rule.label(0) == "trial 1/3"
    assert rule.label(3) == "trial 4 (to ±1.5%: needs 6+ trials)"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"max_duration_s": 60.0}, "--max-duration is the budget of --target-ci"),
        (
            {"target_ci_pct": 1.0, "max_duration_s": 2.0},
            "--max-duration 2 s is shorter than the --repeats minimum",
        ),
    ],
)
def test_stopping_options_that_cannot_work_together(
    overrides: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        check_config(make_config(**overrides))


def test_bad_values_name_the_option() -> None:
    for key, value, msg in (
        ("target-ci", 0, "invalid --target-ci: Input should be greater than 0"),
        ("target-ci", 100, "invalid --target-ci: Input should be less than 100"),
        ("max-duration", -1, "invalid --max-duration: Input should be greater than 0"),
    ):
        with pytest.raises(ConfigError, match=msg):
            RunConfig.from_options({"suite": "s", "adapter": "a", key: value})
    cfg = RunConfig.from_options(
        {"suite": "s", "adapter": "a", "target-ci": 1.5, "max-duration": 120}
    )
    assert (cfg.target_ci_pct, cfg.max_duration_s) == (1.5, 120)
    assert "target-ci = 1.5" in cfg.to_toml() and "max-duration = 120" in cfg.to_toml()


def test_generation_and_hybrid_runs_refuse_a_target(tmp_path: Path) -> None:
    clock = FakeClock()
    cfg = make_config(target_ci_pct=1.0, mode="hybrid", cloud_url="http://x")
    with pytest.raises(ConfigError, match="--target-ci applies to edge runs"):
        create_runner(
            cfg, FakeSuite(), FakeAdapter(clock), [FakePowerReader(clock)], ModelCache(tmp_path)
        )
