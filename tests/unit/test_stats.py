"""Latency statistics and the trial-stability check."""

from __future__ import annotations

import numpy as np
import pytest

from wattbench.core.stats import (
    PERCENTILES,
    STABILITY_REMEDY,
    coefficient_of_variation,
    latency_stats,
    median_ci,
    min_trials_for_median_ci,
    robust_cv,
    stability_warnings,
)

# 1..100 ms as nanoseconds, shuffled so that the summary cannot rely on input order.
LAT_NS = np.random.default_rng(7).permutation(np.arange(1, 101) * 1_000_000)


def test_percentiles_match_numpy_linear_interpolation() -> None:
    s = latency_stats(LAT_NS)
    expected = np.percentile(LAT_NS / 1e6, PERCENTILES)
    got = [s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.p999_ms]
    assert got == pytest.approx(expected.tolist(), rel=1e-12)
    # Hand-checked values for 1..100 ms with linear interpolation.
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.p999_ms == pytest.approx(99.901)


def test_ns_are_converted_to_ms() -> None:
    s = latency_stats([1_000_000, 2_000_000, 3_000_000, 10_000_000])
    assert s.count == 4
    assert s.min_ms == pytest.approx(1.0)
    assert s.max_ms == pytest.approx(10.0)
    assert s.mean_ms == pytest.approx(4.0)
    assert s.p50_ms == pytest.approx(2.5)


def test_cv_is_sample_std_over_mean() -> None:
    s = latency_stats(LAT_NS)
    ms = LAT_NS / 1e6
    assert s.cv == pytest.approx(ms.std(ddof=1) / ms.mean(), rel=1e-12)


def test_cv_is_none_for_a_single_sample() -> None:
    s = latency_stats([2_500_000])
    assert s.count == 1
    assert s.cv is None
    assert s.p50_ms == s.p999_ms == s.mean_ms == pytest.approx(2.5)


def test_empty_latencies_raise() -> None:
    with pytest.raises(ValueError, match="no latencies"):
        latency_stats([])


def test_coefficient_of_variation_edge_cases() -> None:
    assert coefficient_of_variation([1.0]) is None
    assert coefficient_of_variation([0.0, 0.0]) is None
    assert coefficient_of_variation([1.0, float("nan")]) is None
    assert coefficient_of_variation([2.0, 3.0, 4.0]) == pytest.approx(1 / 3)


def test_stability_warning_fires_above_threshold_and_names_a_remedy() -> None:
    # CV of (2, 3, 4) is exactly 1/3.
    warnings = stability_warnings({"p50 latency": [2.0, 3.0, 4.0]}, threshold=0.05)
    assert len(warnings) == 1
    w = warnings[0]
    assert w.startswith("unstable: p50 latency")
    assert "33.3%" in w
    assert "3 trials" in w
    assert "threshold 5%" in w
    assert STABILITY_REMEDY in w
    assert "--repeats" in w
    assert "\n" not in w


def test_stability_warning_silent_below_threshold() -> None:
    # CV ~ 0.5% < 5%
    per_trial = {"throughput": [1000.0, 1005.0, 995.0], "p50 latency": [1.0, 1.0, 1.0]}
    assert stability_warnings(per_trial, threshold=0.05) == []


def test_stability_warning_only_for_the_unstable_metric() -> None:
    per_trial = {"throughput": [1000.0, 1001.0], "joules per inference": [1.0, 2.0]}
    warnings = stability_warnings(per_trial, threshold=0.05)
    assert len(warnings) == 1
    assert "joules per inference" in warnings[0]


def test_stability_threshold_is_strict() -> None:
    values = [2.0, 3.0, 4.0]
    cv = coefficient_of_variation(values)
    assert cv is not None
    assert stability_warnings({"m": values}, threshold=cv) == []
    assert len(stability_warnings({"m": values}, threshold=cv * 0.99)) == 1


def test_single_trial_never_warns() -> None:
    assert stability_warnings({"throughput": [123.0]}, threshold=1e-9) == []


def test_latency_histogram_counts_every_query_in_fixed_log_bins() -> None:
    from wattbench.core.stats import latency_histogram

    lat_ns = [1_000_000] * 5 + [1_100_000] * 3 + [10_000_000] * 2  # 1 ms, 1.1 ms, 10 ms
    hist = latency_histogram(lat_ns)
    assert sum(c for _, c in hist) == 10
    edges = [e for e, _ in hist]
    assert edges == sorted(edges)
    # 1 ms sits exactly on an edge (10**0); 1.1 ms falls in the next bin (edge 10**(1/20))
    assert hist[0] == (pytest.approx(1.0), 5)
    assert hist[1] == (pytest.approx(10 ** (1 / 20)), 3)
    assert hist[-1] == (pytest.approx(10.0), 2)
    assert latency_histogram([]) == []


def test_median_ci_is_the_binomial_order_statistic_interval() -> None:
    # n = 20: the textbook 95 % interval is [x(6), x(15)], coverage 1 - 2 P(Bin(20, 1/2) <= 5).
    iv = median_ci(np.random.default_rng(1).permutation(np.arange(1.0, 21.0)))
    assert (iv.n, iv.median, iv.low, iv.high) == (20, 10.5, 6.0, 15.0)
    assert iv.coverage == pytest.approx(0.958611, abs=1e-6)
    assert iv.half_width == pytest.approx(4.5 / 10.5)
    assert min_trials_for_median_ci(0.95) == 6 and min_trials_for_median_ci(0.99) == 8
    few = median_ci([1.0, 2.0, 3.0, 4.0, 5.0])  # 5 values: at most 93.75 % coverage
    assert few.median == 3.0 and few.low is None and few.half_width is None
    assert median_ci([]).median is None


def test_one_outlier_moves_the_median_ci_by_one_rank_at_most() -> None:
    quiet = [10.0, 10.1, 9.9, 10.05, 9.95, 10.02, 9.98, 10.03, 9.97]
    iv = median_ci(quiet)
    hit = median_ci([*quiet[:-1], 25.0])  # one disturbed trial
    assert (iv.low, iv.high) == (9.95, 10.05)
    # 25 replaced 9.97: the upper end moved up one rank (10.05 -> 10.1), no further
    assert (hit.low, hit.high, hit.median) == (9.95, 10.1, 10.02)
    assert hit.half_width is not None and hit.half_width < 0.01


def test_robust_cv_ignores_one_outlier_and_reads_like_a_cv() -> None:
    b = [2.8, 2.95, 3.0, 3.1, 4.7]
    cv = coefficient_of_variation(b)
    assert cv is not None and cv > 0.2
    rcv = robust_cv(b)
    assert rcv is not None and rcv == pytest.approx(1.4826 * 0.1 / 3.0)
    normal = np.random.default_rng(2).normal(100.0, 2.0, 20000)
    assert robust_cv(normal.tolist()) == pytest.approx(0.02, rel=0.05)
    assert robust_cv([1.0]) is None and robust_cv([0.0, 0.0, 1.0]) is None
