"""Latency statistics and the trial-stability check."""

from __future__ import annotations

import numpy as np
import pytest

from wattbench.core.stats import (
    PERCENTILES,
    STABILITY_REMEDY,
    coefficient_of_variation,
    latency_stats,
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
