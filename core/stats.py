"""Latency statistics and the trial-stability check."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


class LatencyStats(BaseModel):
    """Per-query latency summary in milliseconds (from nanosecond samples)."""

    count: int
    mean_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    cv: float | None  # sample standard deviation / mean; None for a single query


def latency_stats(latencies_ns: Sequence[int] | np.ndarray) -> LatencyStats:
    """Summarise latencies; percentiles interpolate linearly between order statistics."""
    a = np.asarray(latencies_ns, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latencies to summarise")
    ms = a / 1e6
    p = np.percentile(ms, PERCENTILES)
    mean = float(ms.mean())
    cv = float(ms.std(ddof=1) / mean) if a.size > 1 and mean > 0 else None
    return LatencyStats(
        count=int(a.size),
        mean_ms=mean,
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        p50_ms=float(p[0]),
        p90_ms=float(p[1]),
        p95_ms=float(p[2]),
        p99_ms=float(p[3]),
        p999_ms=float(p[4]),
        cv=cv,
    )


#: Histogram bins per decade of latency: fixed edges, so histograms of different runs align.
HISTOGRAM_BINS_PER_DECADE = 20


def latency_histogram(latencies_ns: Sequence[int] | np.ndarray) -> list[tuple[float, int]]:
    """Non-empty log-spaced bins as ``(upper_edge_ms, count)``.

    Edges are ``10 ** (k / 20)`` ms for integer k (about 12 % wide), the same for every run,
    so histograms can be summed and compared; the size is bounded by the latency range
    (at most 20 bins per decade), not by the query count.
    """
    ms = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    ms = ms[ms > 0]
    if ms.size == 0:
        return []
    k = np.ceil(np.log10(ms) * HISTOGRAM_BINS_PER_DECADE).astype(np.int64)
    ks, counts = np.unique(k, return_counts=True)
    return [
        (float(10 ** (kk / HISTOGRAM_BINS_PER_DECADE)), int(c))
        for kk, c in zip(ks, counts, strict=True)
    ]


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Sample CV of per-trial values; None with fewer than two or a zero mean."""
    a = np.asarray(values, dtype=np.float64)
    if a.size < 2 or not np.all(np.isfinite(a)) or a.mean() == 0:
        return None
    return float(a.std(ddof=1) / abs(a.mean()))


STABILITY_REMEDY = (
    "close other programs, set the CPU governor to 'performance', keep the device "
    "cool and on mains power, or lengthen --duration / raise --repeats"
)


def stability_warnings(per_trial: Mapping[str, Sequence[float]], threshold: float) -> list[str]:
    """One warning per metric whose trials disagree by more than ``threshold`` (CV)."""
    warnings = []
    for metric, values in per_trial.items():
        cv = coefficient_of_variation(values)
        if cv is not None and cv > threshold:
            warnings.append(
                f"unstable: {metric} varies {cv * 100:.1f}% across {len(values)} trials "
                f"(threshold {threshold * 100:.0f}%): {STABILITY_REMEDY}"
            )
    return warnings


# -- robust figures across trials --------------------------------------------------------------
#: MAD x this estimates the standard deviation of normal data (so a robust CV reads like a CV).
MAD_TO_SD = 1.4826


def robust_cv(values: Sequence[float]) -> float | None:
    """Outlier-resistant spread of per-trial values: 1.4826 x MAD / |median|.

    Equals the CV for normal data; one disturbed trial out of three or more barely moves it
    (the median absolute deviation ignores the largest deviations). None with fewer than two
    values, a non-finite one or a zero median.
    """
    a = np.asarray(values, dtype=np.float64)
    if a.size < 2 or not np.all(np.isfinite(a)):
        return None
    med = float(np.median(a))
    if med == 0:
        return None
    return float(MAD_TO_SD * np.median(np.abs(a - med)) / abs(med))


class MedianInterval(BaseModel):
    """A distribution-free confidence interval of the median of per-trial values.

    ``low``/``high`` are order statistics: with ``n`` values sorted, ``[x(j), x(n+1-j)]``
    covers the true median with probability ``1 - 2 P(Binomial(n, 1/2) < j)`` (``coverage``),
    whatever the distribution, for the largest ``j`` whose coverage is at least the level asked
    for. One outlier can move an end by at most one order statistic. Fewer values than that
    needs (6 at 95 %) give no interval: ``low``/``high``/``half_width`` are None.
    """

    n: int
    median: float | None
    low: float | None = None
    high: float | None = None
    coverage: float | None = None
    half_width: float | None = None  # max(median - low, high - median) / median


def median_ci(values: Sequence[float], confidence: float = 0.95) -> MedianInterval:
    """The order-statistic (binomial) confidence interval of the median of ``values``."""
    a = np.sort(np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64))
    n = int(a.size)
    if n == 0:
        return MedianInterval(n=0, median=None)
    med = float(np.median(a))
    # P(Binomial(n, 1/2) <= i), cumulated; the interval [x(j), x(n+1-j)] misses the median
    # with probability 2 P(B <= j - 1).
    best: tuple[int, float] | None = None
    cdf = 0.0
    for j in range(1, n // 2 + 1):
        cdf += math.comb(n, j - 1) / 2.0**n
        coverage = 1.0 - 2.0 * cdf
        if coverage < confidence:
            break
        best = (j, coverage)
    if best is None:
        return MedianInterval(n=n, median=med)
    j, coverage = best
    low, high = float(a[j - 1]), float(a[n - j])
    half = max(med - low, high - med) / abs(med) if med != 0 else None
    return MedianInterval(n=n, median=med, low=low, high=high, coverage=coverage, half_width=half)


def min_trials_for_median_ci(confidence: float = 0.95) -> int:
    """Fewest values for which :func:`median_ci` gives an interval (6 at 95 %)."""
    n = 1
    while 1.0 - 2.0 / 2.0**n < confidence:
        n += 1
    return n
