"""The gate's statistics on synthetic per-trial samples with known effects."""

from __future__ import annotations

import re
import sys
from collections import Counter

import numpy as np
import pytest
from gate_factory import noisy

from wattbench.analysis.gate import (
    METRICS,
    GateSettings,
    Verdict,
    compare_samples,
    parse_metrics,
    parse_ref,
    parse_thresholds,
    verdict_line,
)
from wattbench.core.errors import ConfigError, UnavailableError

REPS = 200
N = 5  # trials per side: `wattbench run --repeats 5`


def verdicts(effect: float, cv: float, *, reps: int, seed: int, metric: str) -> Counter[Verdict]:
    """Verdicts of ``reps`` seeded repetitions: baseline 1.0, candidate 1.0 + effect."""
    rng = np.random.default_rng(seed)
    out: Counter[Verdict] = Counter()
    for _ in range(reps):
        b = noisy(rng, 1.0, cv, N)
        c = noisy(rng, 1.0 + effect, cv, N)
        out[compare_samples(metric, b, c).verdict] += 1
    return out


def test_ten_percent_energy_regression_is_flagged_with_the_spec_line() -> None:
    rng = np.random.default_rng(1)
    r = compare_samples(
        "joules_per_inference", noisy(rng, 0.044, 0.01, N), noisy(rng, 0.0484, 0.01, N)
    )
    assert r.verdict is Verdict.REGRESSION
    assert r.change == pytest.approx(0.10, abs=0.02)
    assert r.ci_low is not None and r.ci_low > 0.05
    assert r.p_value is not None and r.p_value <= 0.05
    line = verdict_line(r)
    assert re.fullmatch(
        r"REGRESSION joules_per_inference \+\d+\.\d% \(95% CI \+\d+\.\d%\.\.\+\d+\.\d%, "
        r"p=0\.\d{3}, threshold 5%\)",
        line,
    ), line


def test_ten_percent_regression_is_caught_reliably_under_noise() -> None:
    caught = verdicts(0.10, 0.02, reps=100, seed=2, metric="joules_per_inference")
    assert caught[Verdict.REGRESSION] >= 95, caught


@pytest.mark.parametrize("cv", [0.02, 0.05])
def test_no_change_is_not_flagged_in_95_percent_of_noisy_repetitions(cv: float) -> None:
    """The measured false-positive rate (quoted in docs/gate.md): 5 vs 5 trials, no change."""
    got = verdicts(0.0, cv, reps=REPS, seed=3, metric="joules_per_inference")
    fp = got[Verdict.REGRESSION] / REPS
    sys.stdout.write(
        f"\nfalse positives at trial CV {cv:.0%}: {fp:.1%} "
        f"({', '.join(f'{v.value} {n}' for v, n in sorted(got.items()))})\n"
    )
    assert fp <= 0.05, got
    assert got[Verdict.PASS] + got[Verdict.INCONCLUSIVE] + got[Verdict.REGRESSION] == REPS


def test_two_percent_change_is_pass_or_inconclusive_never_regression() -> None:
    # With 1 % noise a 2 % rise is highly significant; only the 5 % minimum effect keeps
    # it from being a regression.
    got = verdicts(0.02, 0.01, reps=100, seed=4, metric="joules_per_inference")
    assert got[Verdict.REGRESSION] == 0, got
    assert got[Verdict.PASS] >= 80, got
    rng = np.random.default_rng(5)
    r = compare_samples("latency_p90_ms", noisy(rng, 4.0, 0.02, N), noisy(rng, 4.08, 0.02, N))
    assert r.verdict in (Verdict.PASS, Verdict.INCONCLUSIVE)


def test_significant_but_small_change_is_not_a_regression_unless_the_threshold_says_so() -> None:
    b = [1.000, 1.001, 0.999, 1.002, 0.998]
    c = [x * 1.03 for x in b]
    r = compare_samples("joules_per_inference", b, c)
    assert r.p_value is not None and r.p_value <= 0.01
    assert r.verdict is Verdict.PASS  # +3 %, CI well below 5 %
    strict = compare_samples(
        "joules_per_inference", b, c, GateSettings(thresholds={"joules_per_inference": 0.02})
    )
    assert strict.verdict is Verdict.REGRESSION


def test_large_but_not_significant_change_is_inconclusive() -> None:
    # 3 vs 3 with overlap: +15 % median change, but the smallest value ties the baseline.
    r = compare_samples("latency_p90_ms", [1.0, 1.02, 0.98], [1.0, 1.15, 1.2])
    assert r.change == pytest.approx(0.15)
    assert r.p_value is not None and r.p_value > 0.05
    assert r.verdict is Verdict.INCONCLUSIVE
    assert r.reason is not None and "not significant" in r.reason
    assert "measure again with `wattbench run --target-ci 2.5`" in r.reason  # half of 5 %


def test_a_regression_needs_the_ci_as_well_as_the_rank_test() -> None:
    # +8.9 % and p = 0.037, but the bootstrap CI still includes no change (-1.0 %).
    b = [0.97, 0.99, 1.01, 1.01, 1.04]
    c = [1.00, 1.04, 1.10, 1.14, 1.16]
    r = compare_samples("latency_p90_ms", b, c)
    assert r.p_value is not None and r.p_value < 0.05
    assert r.ci_low is not None and r.ci_low < 0 and r.change == pytest.approx(0.0891, abs=1e-3)
    assert r.verdict is Verdict.INCONCLUSIVE
    assert r.reason is not None and r.reason.startswith("not significant")


def test_three_versus_three_complete_separation_is_just_significant() -> None:
    r = compare_samples("latency_p90_ms", [1.0, 1.01, 0.99], [1.2, 1.21, 1.19])
    assert r.p_value == pytest.approx(0.05)
    assert r.verdict is Verdict.REGRESSION


def test_direction_higher_is_better_for_throughput() -> None:
    b = [100.0, 101.0, 99.0, 100.5, 99.5]
    drop = compare_samples("throughput_ips", b, [x * 0.9 for x in b])
    rise = compare_samples("throughput_ips", b, [x * 1.1 for x in b])
    assert drop.verdict is Verdict.REGRESSION and drop.change == pytest.approx(-0.10)
    assert rise.verdict is Verdict.PASS and rise.change == pytest.approx(0.10)
    faster = compare_samples("latency_p90_ms", b, [x * 0.9 for x in b])
    assert faster.verdict is Verdict.PASS
    assert verdict_line(drop).startswith("REGRESSION throughput_ips -10.0% (95% CI -")


def test_too_few_trials_is_inconclusive_and_names_the_fix() -> None:
    r = compare_samples("joules_per_inference", [1.0, 1.1], [2.0, 2.1, 2.2, 2.3, 2.4])
    assert r.verdict is Verdict.INCONCLUSIVE
    assert r.reason is not None
    assert "too few trials: baseline 2, candidate 5" in r.reason and "--repeats" in r.reason
    assert r.change is None and verdict_line(r).startswith("INCONCLUSIVE joules_per_inference:")


# Issue 20: 1-thread candidate vs a 2-thread baseline with one disturbed trial. p90 latency
# rose 67 %, the whole 95 % CI (+6.6 %..+80.9 %) lies beyond the 5 % threshold and p = 0.004,
# but the baseline's trial CV was 24.6 % > 10 %, and the gate used to answer INCONCLUSIVE.
OUTLIER_BASELINE = [2.77, 2.85, 3.0, 3.05, 4.7]
ONE_THREAD = [4.95, 4.98, 5.01, 5.04, 5.08]


def test_a_whole_ci_beyond_the_threshold_is_a_regression_despite_one_outlier_trial() -> None:
    from wattbench.core.stats import coefficient_of_variation

    assert coefficient_of_variation(OUTLIER_BASELINE) == pytest.approx(0.246, abs=5e-4)
    r = compare_samples("latency_p90_ms", OUTLIER_BASELINE, ONE_THREAD)
    assert r.verdict is Verdict.REGRESSION
    assert verdict_line(r) == (
        "REGRESSION latency_p90_ms +67.0% (95% CI +6.6%..+80.9%, p=0.004, threshold 5%)"
    )
    assert r.baseline_cv is not None and r.baseline_cv < 0.10  # robust CV: the outlier is 1 of 5


def test_unstable_baseline_blocks_a_pass_never_a_regression_beyond_the_threshold() -> None:
    b = [1.0, 1.3, 0.7, 1.2, 0.8]  # robust CV about 30 %: every trial disagrees, not one
    big = compare_samples("latency_p90_ms", b, [2.0, 2.1, 1.9, 2.05, 1.95])
    assert big.baseline_cv is not None and big.baseline_cv > 0.25
    assert big.verdict is Verdict.REGRESSION  # +100 %, the whole CI far beyond 5 %
    assert big.ci_low is not None and big.ci_low > 0.05
    same = compare_samples("latency_p90_ms", b, [1.0, 1.02, 0.99, 1.01, 1.0])
    assert same.verdict is Verdict.INCONCLUSIVE
    assert same.reason is not None and same.reason.startswith("baseline unstable")
    assert "(robust CV) > limit 10%" in same.reason
    assert "measure again with `wattbench run --target-ci 2.5`" in same.reason
    loose = compare_samples(
        "latency_p90_ms", b, [1.0, 1.02, 0.99, 1.01, 1.0], GateSettings(max_cv=0.5)
    )
    assert loose.verdict is not Verdict.REGRESSION


def test_one_disturbed_baseline_trial_does_not_void_a_pass() -> None:
    b = [3.0, 3.01, 2.99, 3.02, 4.7]  # CV 24 %, robust CV 0.5 %
    r = compare_samples("latency_p90_ms", b, [3.0, 3.01, 2.99, 3.02, 3.0])
    assert r.verdict is Verdict.PASS, verdict_line(r)


def test_identical_samples_pass_and_the_verdict_is_reproducible() -> None:
    same = [4.0, 4.1, 3.9, 4.05, 3.95]
    r = compare_samples("latency_p90_ms", same, same)
    assert r.verdict is Verdict.PASS and r.change == 0
    assert r.p_value is not None and r.p_value > 0.4
    flat = compare_samples("latency_p90_ms", [4.0] * 5, [4.0] * 5)
    assert flat.verdict is Verdict.PASS and flat.ci_low == flat.ci_high == 0
    rng = np.random.default_rng(7)
    b, c = noisy(rng, 1.0, 0.03, N), noisy(rng, 1.04, 0.03, N)
    assert compare_samples("latency_p90_ms", b, c) == compare_samples("latency_p90_ms", b, c)


def test_missing_scipy_is_a_one_line_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(UnavailableError, match=r"needs scipy: pip install 'wattbench\[gate\]'"):
        compare_samples("latency_p90_ms", [1.0, 1.1, 1.2], [1.0, 1.1, 1.2])


def test_parse_thresholds() -> None:
    got = parse_thresholds(["joules_per_inference=3%", "latency=10", "throughput_ips=2.5%"])
    assert got == {
        "joules_per_inference": pytest.approx(0.03),
        "latency_p90_ms": pytest.approx(0.10),
        "throughput_ips": pytest.approx(0.025),
    }
    assert parse_thresholds(["4%"]) == {m: pytest.approx(0.04) for m in METRICS}
    assert parse_thresholds(["4%", "energy=2%"])["joules_per_inference"] == pytest.approx(0.02)
    for bad, msg in (
        ("energy=abc", "METRIC=PERCENT"),
        ("=3%", "METRIC=PERCENT"),
        ("energy=0", "> 0 and < 100"),
        ("energy=150%", "> 0 and < 100"),
        ("watts=3%", "unknown metric 'watts'"),
    ):
        with pytest.raises(ConfigError, match=re.escape(msg)):
            parse_thresholds([bad])


def test_parse_metrics() -> None:
    assert parse_metrics(None) is None
    assert parse_metrics(["energy,latency", "energy"]) == ("joules_per_inference", "latency_p90_ms")
    with pytest.raises(ConfigError, match="unknown metric"):
        parse_metrics(["p99"])


def test_parse_ref() -> None:
    for text in ("label:branch:main~5", "branch:main~5"):
        r = parse_ref(text)
        assert (r.kind, r.value, r.limit) == ("label", "branch:main", 5)
    assert parse_ref("git:abc123").value == "git:abc123" and parse_ref("git:abc123").limit is None
    assert parse_ref("label:a~b").value == "a~b"  # only a trailing ~DIGITS is a count
    assert parse_ref("3F2a9c1e").kind == "run" and parse_ref("3F2a9c1e").value == "3f2a9c1e"
    for bad, msg in (
        ("label:main~0", "N >= 1"),
        ("label:", "name the label"),
        ("missing.json", "run file not found"),
        ("not a ref", "cannot read run reference"),
        ("abc", "cannot read run reference"),
    ):
        with pytest.raises(ConfigError, match=re.escape(msg)):
            parse_ref(bad)


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="--alpha"):
        GateSettings(alpha=0.7)
    with pytest.raises(ConfigError, match="--max-cv"):
        GateSettings(max_cv=0)
