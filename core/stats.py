"""Latency statistics and the trial-stability check."""

from __future__ import annotations

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
