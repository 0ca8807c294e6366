"""The leaderboard aggregated in SQL (the default views of big databases): the sidebar's
:class:`Facets` of a group and :func:`configurations_sql`, with :class:`Filters` as SQL.

One row per configuration comes back instead of one per run; the figures equal those of
:func:`wattbench.dashboard.queries.leaderboard.configurations` (tested).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, func, literal, select, type_coerce

from wattbench.dashboard.queries.common import (
    METRIC_COLUMNS,
    Filters,
    config_label,
    empty_configs,
    energy_badge,
    labels_text,
)
from wattbench.results_db.readonly import OPTIONAL_RUN_COLUMNS, Database
from wattbench.results_db.schema import Device, ModelArtifactRow, Run, SuiteRow

if TYPE_CHECKING:
    import pandas as pd


def _hardware_expr() -> Any:
    return func.coalesce(Device.accelerator, Device.cpu_model)


def _where(q: Any, suite_id: Any, scenario: str, f: Filters | None) -> Any:
    """The group (valid runs of one suite version and scenario) and ``f`` as SQL."""
    q = q.where(Run.suite_id == suite_id, Run.scenario == scenario, Run.valid.is_(True))
    if f is None:
        return q
    q = q.where(Run.mode == f.mode)
    if f.devices:
        q = q.where(Device.name.in_(f.devices))
    if f.hardware:
        q = q.where(_hardware_expr().in_(f.hardware))
    if f.runtimes:
        q = q.where(Run.adapter.in_(f.runtimes))
    if f.precisions:
        q = q.where(Run.precision.in_(f.precisions))
    if f.hide_estimated:
        q = q.where(func.coalesce(Run.energy_method, "") != "estimated")
    if f.since is not None:
        q = q.where(Run.started_at >= datetime.combine(f.since, time(), timezone.utc))
    if f.until is not None:
        end = datetime.combine(f.until, time(), timezone.utc) + timedelta(days=1)
        q = q.where(Run.started_at < end)
    for label in f.labels:  # an element of the JSON list, quotes included
        q = q.where(labels_text().contains(json.dumps(label), autoescape=True))
    return q


def _suite_id(conn: Any, suite: str, suite_version: str) -> Any:
    return conn.scalar(
        select(SuiteRow.id).where(SuiteRow.name == suite, SuiteRow.version == suite_version)
    )


@dataclass(frozen=True)
class Facets:
    """What the sidebar offers for one group of valid runs, read without reading the runs."""

    devices: tuple[str, ...]
    hardware: tuple[str, ...]
    runtimes: tuple[str, ...]
    precisions: tuple[str, ...]
    modes: tuple[str, ...]
    labels: tuple[str, ...]
    first_run: date | None
    last_run: date | None
    has_tokens: bool


def facets(db: Database, suite: str, suite_version: str, scenario: str) -> Facets:
    """Distinct devices, hardware, runtimes, precisions, modes, the 200 most frequent labels
    and the date span of one group's valid runs: two grouped queries."""
    has_tokens_col = "tokens_per_joule" in db.optional_columns
    tokens = func.count(Run.tokens_per_joule) if has_tokens_col else func.count(None)
    with db.engine.connect() as conn:
        sid = _suite_id(conn, suite, suite_version)
        q = _where(
            select(
                Device.name,
                _hardware_expr(),
                Run.adapter,
                Run.precision,
                Run.mode,
                func.min(type_coerce(Run.started_at, String)),
                func.max(type_coerce(Run.started_at, String)),
                tokens,
            )
            .join(Device, Run.device_id == Device.id)
            .group_by(Device.name, _hardware_expr(), Run.adapter, Run.precision, Run.mode),
            sid,
            scenario,
            None,
        )
        rows = [tuple(r) for r in conn.execute(q)]
        labels = [str(v) for v, _n in conn.execute(_label_count_query(db, sid, scenario))]
    stamps = [_to_datetime(x) for r in rows for x in (r[5], r[6]) if x is not None]
    return Facets(
        devices=tuple(sorted({r[0] for r in rows})),
        hardware=tuple(sorted({r[1] for r in rows if r[1] is not None})),
        runtimes=tuple(sorted({r[2] for r in rows})),
        precisions=tuple(sorted({r[3] for r in rows})),
        modes=tuple(sorted({r[4] or "edge" for r in rows}, key=_mode_order)),
        labels=tuple(labels),
        first_run=min(stamps).date() if stamps else None,
        last_run=max(stamps).date() if stamps else None,
        has_tokens=any(r[7] for r in rows),
    )


def _mode_order(mode: str) -> tuple[int, str]:
    return (
        ("edge", "hybrid", "cloud").index(mode) if mode in ("edge", "hybrid", "cloud") else 3,
        mode,
    )


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    out = datetime.fromisoformat(str(value))
    return out if out.tzinfo else out.replace(tzinfo=timezone.utc)


#: Label options are counted over this many of the group's latest runs: counting every
#: run's labels costs a pass over the whole group (seconds at 100 k runs), and the labels
#: worth offering (nightly, a recent commit, a sweep) are on recent runs.
LABEL_SAMPLE_RUNS = 5000


def _label_count_query(db: Database, suite_id: Any, scenario: str, limit: int = 200) -> Any:
    recent = (
        _where(select(Run.labels), suite_id, scenario, None)
        .order_by(Run.started_at.desc(), Run.id.desc())
        .limit(LABEL_SAMPLE_RUNS)
        .subquery()
    )
    # The JSON list's elements as rows, counted by the database (json_each on SQLite,
    # json_array_elements_text on PostgreSQL: a function in FROM may refer to runs there).
    if db.engine.dialect.name == "postgresql":
        elems = func.json_array_elements_text(recent.c.labels).table_valued("value")
    else:
        elems = func.json_each(recent.c.labels).table_valued("value")
    n = func.count().label("n")
    q = select(elems.c.value, n).select_from(recent).join(elems, literal(True))
    return q.group_by(elems.c.value).order_by(n.desc(), elems.c.value).limit(limit)


#: Figures whose per-configuration median is computed (the uncertainty is derived per run).
def _metric_exprs(db: Database) -> dict[str, Any]:
    out: dict[str, Any] = {
        "inferences_per_joule": Run.inferences_per_joule,
        "joules_per_inference": Run.joules_per_inference,
        "latency_p50_ms": Run.latency_p50_ms,
        "latency_p90_ms": Run.latency_p90_ms,
        "latency_p99_ms": Run.latency_p99_ms,
        "throughput_ips": Run.throughput_ips,
        "uncertainty_pct": Run.energy_uncertainty_j
        * 100.0
        / func.nullif(Run.joules_per_inference * Run.inferences, 0),
        "purchase_price": Device.purchase_price,
    }
    for c in db.optional_columns:
        if c in METRIC_COLUMNS:
            out[c] = getattr(Run, c)
    return out


def configurations_sql(
    db: Database, suite: str, suite_version: str, scenario: str, f: Filters
) -> pd.DataFrame:
    """:func:`~.leaderboard.configurations` of the runs passing ``f``, grouped by the database.

    One row per configuration comes back instead of one per run: PostgreSQL computes the
    medians (``percentile_cont``); SQLite, which has no median, hands each group's
    non-null values over as one JSON array (``json_group_array``) and Python takes the
    median. The same figures as :func:`~.leaderboard.configurations` on
    :func:`~.leaderboard.runs_frame` (tested).
    """
    import pandas as pd

    pg = db.engine.dialect.name == "postgresql"
    keys = {
        "hardware": _hardware_expr(),
        "adapter": Run.adapter,
        "runtime_version": Run.runtime_version,
        "execution_provider": Run.execution_provider,
        "device_target": Run.device_target,
        "model": ModelArtifactRow.name,
        "weights": ModelArtifactRow.weights,
        "precision": Run.precision,
        "batch": Run.batch,
        "threads": Run.threads,
        "energy_method": Run.energy_method,
        "energy_scope": Run.energy_scope,
        "mode": Run.mode,
    }
    metrics = _metric_exprs(db)
    aggs: list[Any]
    ids: Any
    if pg:
        from sqlalchemy.dialects.postgresql import aggregate_order_by

        aggs = [func.percentile_cont(0.5).within_group(e) for e in metrics.values()]
        ids = func.array_agg(aggregate_order_by(Run.uuid, Run.started_at))
    else:
        aggs = [func.json_group_array(e).filter(e.is_not(None)) for e in metrics.values()]
        ids = func.json_group_array(func.json_array(type_coerce(Run.started_at, String), Run.uuid))
    q = (
        select(
            *keys.values(),
            *aggs,
            func.count().label("runs"),
            func.count(func.distinct(Run.device_id)),
            func.max(Device.currency),
            ids,
        )
        .join(Device, Run.device_id == Device.id)
        .join(ModelArtifactRow, Run.model_artifact_id == ModelArtifactRow.id)
        .group_by(*keys.values())
    )
    with db.engine.connect() as conn:
        q = _where(q, _suite_id(conn, suite, suite_version), scenario, f)
        rows = [tuple(r) for r in conn.execute(q)]
    if not rows:
        return empty_configs(pd.DataFrame())
    nk, nm = len(keys), len(metrics)
    cols: dict[str, Any] = {k: [r[i] for r in rows] for i, k in enumerate(keys)}
    for j, name in enumerate(metrics):
        vals = [r[nk + j] for r in rows]
        cols[name] = vals if pg else [_median_of_json(v) for v in vals]
    rest = nk + nm
    cols["runs"] = [r[rest] for r in rows]
    cols["devices"] = [r[rest + 1] for r in rows]
    cols["currency"] = [r[rest + 2] for r in rows]
    if pg:
        cols["run_ids"] = [list(r[rest + 3]) for r in rows]
    else:  # [[started_at, uuid], ...] in no particular order
        cols["run_ids"] = [[u for _t, u in sorted(json.loads(r[rest + 3]))] for r in rows]
    df = pd.DataFrame(cols)
    for c in OPTIONAL_RUN_COLUMNS:
        if c in METRIC_COLUMNS and c not in df:
            df[c] = math.nan
    for c in (*METRIC_COLUMNS, "purchase_price"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["run_id"] = [ids[-1] for ids in df["run_ids"]]
    df = df.merge(_started_of(db, list(df["run_id"])), on="run_id", how="left")
    df["estimated"] = df["energy_method"].eq("estimated")
    df["energy"] = [
        energy_badge(m, s) for m, s in zip(df["energy_method"], df["energy_scope"], strict=True)
    ]
    df["runtime"] = df["adapter"] + " " + df["runtime_version"]
    df["suite"], df["suite_version"], df["scenario"] = suite, suite_version, scenario
    df["config"] = [config_label(r) for r in df.itertuples()]
    return df


def _median_of_json(text: str | None) -> float:
    values = json.loads(text) if text else []
    return float(statistics.median(values)) if values else math.nan


def _started_of(db: Database, run_ids: list[str]) -> pd.DataFrame:
    """``last_run``: when each configuration's latest run started (few rows, by uuid)."""
    import pandas as pd

    out: list[tuple[str, Any]] = []
    with db.engine.connect() as conn:
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i : i + 500]
            out += [
                (u, t)
                for u, t in conn.execute(
                    select(Run.uuid, type_coerce(Run.started_at, String)).where(Run.uuid.in_(chunk))
                )
            ]
    df = pd.DataFrame(out, columns=["run_id", "last_run"])
    df["last_run"] = pd.to_datetime(df["last_run"], utc=True)
    return df
