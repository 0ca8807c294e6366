"""One run: the picker's recent runs, the stored run and the figures of its row that the
payload lacks, and the run-detail page's frames (trials, power traces, latency histogram)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from wattbench.results_db.readonly import Database
from wattbench.results_db.schema import Device, Run, SuiteRow

if TYPE_CHECKING:
    import pandas as pd

    from wattbench.core.results import RunResult


def recent_runs(db: Database, limit: int = 200, prefix: str = "") -> pd.DataFrame:
    """The most recent runs (or those whose id starts with ``prefix``), for pickers."""
    import pandas as pd

    q = (
        select(Run.uuid, SuiteRow.name, Run.scenario, Device.name, Run.adapter, Run.started_at)
        .join(SuiteRow, Run.suite_id == SuiteRow.id)
        .join(Device, Run.device_id == Device.id)
        .order_by(Run.started_at.desc(), Run.id.desc())
        .limit(limit)
    )
    if prefix:
        q = q.where(Run.uuid.startswith(prefix.strip().lower(), autoescape=True))
    with db.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(q)]
    return pd.DataFrame(
        rows, columns=["run_id", "suite", "scenario", "device", "adapter", "started_at"]
    )


def load_run(db: Database, run_id: str) -> RunResult | None:
    """The stored run (payload as recorded, or rebuilt from the rows)."""
    if db.store is None:
        return None
    return db.store.load_result(run_id)


def run_extras(db: Database, run_id: str) -> dict[str, Any]:
    """Figures of a run's row that the RunResult payload does not carry (columns of later
    migrations: network energy, time to first token, ...); only those that are set."""
    if not db.optional_columns:
        return {}
    cols = [getattr(Run, c) for c in db.optional_columns]
    with db.engine.connect() as conn:
        row = conn.execute(select(*cols).where(Run.uuid == run_id)).first()
    if row is None:
        return {}
    return {c: v for c, v in zip(db.optional_columns, row, strict=True) if v is not None}


def trial_table(result: RunResult) -> pd.DataFrame:
    """Per-trial figures of a run, headline reader's energy."""
    import pandas as pd

    rows = []
    for t in result.trials:
        e = t.energy[0] if t.energy else None
        rows.append(
            {
                "trial": t.index,
                "queries": t.queries,
                "inferences": t.inferences,
                "duration_s": t.duration_s,
                "throughput_ips": t.throughput_ips,
                "p50_ms": t.latency.p50_ms,
                "p90_ms": t.latency.p90_ms,
                "p99_ms": t.latency.p99_ms,
                "gross_j": e.gross_j if e else None,
                "idle_w": e.idle_w if e else None,
                "net_j": e.net_j if e else None,
                "mean_power_w": e.mean_power_w if e else None,
                "j_per_inference": e.gross_j / t.inferences if e and t.inferences else None,
                "uncertainty_j": e.uncertainty_j if e else None,
                "energy_valid": e.valid if e else None,
                "energy_invalid_reasons": "; ".join(e.invalid_reasons) if e else "",
            }
        )
        if result.thermal is not None:  # sampled: the thermal monitor's verdict per trial
            rows[-1] |= {
                "throttled": t.throttled,
                "max_temp_c": t.max_temp_c,
                "throttle_reasons": "; ".join(t.throttle_reasons),
            }
    return pd.DataFrame(rows)


def trace_frame(result: RunResult) -> pd.DataFrame:
    """Power traces, long form: trial, reader, method, t_s (from the window start), power_w,
    idle_w, window_s (the measured window's length)."""
    import pandas as pd

    rows = []
    for t in result.trials:
        for e in t.energy:
            for ts, w in e.trace:
                rows.append((t.index, e.reader, e.method.value, ts, w, e.idle_w, e.duration_s))
    return pd.DataFrame(
        rows, columns=["trial", "reader", "method", "t_s", "power_w", "idle_w", "window_s"]
    )


def latency_frame(result: RunResult) -> pd.DataFrame:
    """The run's latency histogram with the CDF: upper_ms, lower_ms, count, cdf."""
    import pandas as pd

    hist = list(result.latency_histogram)
    df = pd.DataFrame(hist, columns=["upper_ms", "count"])
    if df.empty:
        return df.assign(lower_ms=[], cdf=[])
    df["lower_ms"] = df["upper_ms"] / 10 ** (1 / 20)  # fixed log-spaced edges (20 / decade)
    df["cdf"] = df["count"].cumsum() / df["count"].sum()
    return df
