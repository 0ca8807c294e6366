"""The leaderboard aggregated in SQL (the default views of big databases): the sidebar's
:class:`Facets` of a group and :func:`configurations_sql`, with :class:`Filters` as SQL.

One row per configuration comes back instead of one per run; the figures (means over the
configuration's runs) equal those of
:func:`wattbench.dashboard.queries.leaderboard.configurations` (tested). The default view
reads the per-configuration summaries the store keeps as runs arrive
(:mod:`wattbench.results_db.summaries`, one row per configuration and device), not the
runs; :func:`configuration_medians` is the drill-down with exact medians.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, String, and_, case, func, literal, or_, select, type_coerce

from wattbench.dashboard.queries.common import (
    CONFIG_KEY,
    METRIC_COLUMNS,
    Filters,
    config_label,
    empty_configs,
    energy_badge,
    labels_text,
)
from wattbench.results_db.readonly import OPTIONAL_RUN_COLUMNS, Database
from wattbench.results_db.schema import ConfigSummary, Device, ModelArtifactRow, Run, SuiteRow
from wattbench.results_db.summaries import SUMMARY_METRICS, uncertainty_pct_sql

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


def facets(
    db: Database, suite: str, suite_version: str, scenario: str, *, summaries: bool | None = None
) -> Facets:
    """Distinct devices, hardware, runtimes, precisions, modes, the 200 most frequent labels
    and the date span of one group's valid runs: two grouped queries (the first over the
    per-configuration summaries when they count every run, :func:`summaries_complete`;
    ``summaries`` forces one way, for tests)."""
    with db.engine.connect() as conn:
        sid = _suite_id(conn, suite, suite_version)
        if summaries is None:
            summaries = summaries_complete(conn, sid, scenario)
        if summaries:  # one row per configuration and device
            S = ConfigSummary
            q = _where_summaries(
                select(
                    Device.name,
                    _hardware_expr(),
                    S.adapter,
                    S.precision,
                    S.mode,
                    func.min(type_coerce(S.first_started_at, String)),
                    func.max(type_coerce(S.last_started_at, String)),
                    func.sum(S.tokens_per_joule_n),
                )
                .join(Device, S.device_id == Device.id)
                .group_by(Device.name, _hardware_expr(), S.adapter, S.precision, S.mode),
                sid,
                scenario,
                None,
            )
        else:
            has_tokens_col = "tokens_per_joule" in db.optional_columns
            tokens = func.count(Run.tokens_per_joule) if has_tokens_col else func.count(None)
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


def summaries_answer(f: Filters | None) -> bool:
    """Whether the per-configuration summaries can answer ``f``: their key holds the device
    (so hardware, too), the runtime, precision, energy method and mode, but not run dates
    or labels; filtering on those reads the runs."""
    return f is None or (f.since is None and f.until is None and not f.labels)


def summaries_complete(conn: Any, suite_id: Any, scenario: str) -> bool:
    """Whether ``config_summaries`` counts every valid run of the group (one statement, so
    one snapshot; cheap: the runs are counted in the leaderboard index). False for runs
    written past the store (a bulk load) until ``summaries.rebuild``: the pages then read
    the runs, as before the summaries existed."""
    S = ConfigSummary
    runs = (
        select(func.count())
        .select_from(Run)
        .where(Run.suite_id == suite_id, Run.scenario == scenario, Run.valid.is_(True))
        .scalar_subquery()
    )
    summed = (
        select(func.coalesce(func.sum(S.runs), 0))
        .where(S.suite_id == suite_id, S.scenario == scenario)
        .scalar_subquery()
    )
    counted, summarised = conn.execute(select(runs, summed)).one()
    return int(counted) == int(summarised)


def _where_summaries(q: Any, suite_id: Any, scenario: str, f: Filters | None) -> Any:
    """:func:`_where` on ``config_summaries`` (valid runs only; no dates, no labels)."""
    S = ConfigSummary
    q = q.where(S.suite_id == suite_id, S.scenario == scenario)
    if f is None:
        return q
    assert summaries_answer(f), f
    q = q.where(S.mode == f.mode)
    if f.devices:
        q = q.where(Device.name.in_(f.devices))
    if f.hardware:
        q = q.where(_hardware_expr().in_(f.hardware))
    if f.runtimes:
        q = q.where(S.adapter.in_(f.runtimes))
    if f.precisions:
        q = q.where(S.precision.in_(f.precisions))
    if f.hide_estimated:
        q = q.where(func.coalesce(S.energy_method, "") != "estimated")
    return q


#: Figures whose per-configuration mean is computed (the uncertainty is derived per run).
def _metric_exprs(db: Database) -> dict[str, Any]:
    out: dict[str, Any] = {
        "inferences_per_joule": Run.inferences_per_joule,
        "joules_per_inference": Run.joules_per_inference,
        "latency_p50_ms": Run.latency_p50_ms,
        "latency_p90_ms": Run.latency_p90_ms,
        "latency_p99_ms": Run.latency_p99_ms,
        "throughput_ips": Run.throughput_ips,
        "uncertainty_pct": uncertainty_pct_sql(),
    }
    for c in db.optional_columns:
        if c in METRIC_COLUMNS:
            out[c] = getattr(Run, c)
    return out


def _key_exprs(source: Any) -> dict[str, Any]:
    """:data:`~.common.CONFIG_KEY` as SQL over ``runs`` or ``config_summaries``."""
    return {
        "hardware": _hardware_expr(),
        "adapter": source.adapter,
        "runtime_version": source.runtime_version,
        "execution_provider": source.execution_provider,
        "device_target": source.device_target,
        "model": ModelArtifactRow.name,
        "weights": ModelArtifactRow.weights,
        "precision": source.precision,
        "batch": source.batch,
        "threads": source.threads,
        "energy_method": source.energy_method,
        "energy_scope": source.energy_scope,
        "mode": source.mode,
    }


#: Between a start and a uuid in SQLite's "latest run" aggregate (in neither of them).
_SEP = "|"


def _latest(pg: bool, started: Any, uuid: Any) -> Any:
    """The aggregate naming a configuration's latest run (by start, then uuid), without a
    window over its rows: PostgreSQL's first uuid of an ordered ``array_agg``; on SQLite the
    greatest ``start|uuid`` (starts are stored as ISO text), split by :func:`_split_latest`."""
    if pg:
        from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

        ordered = aggregate_order_by(uuid, started.desc(), uuid.desc())
        return func.array_agg(ordered, type_=ARRAY(String))[1]
    return func.max(type_coerce(started, String) + _SEP + uuid)


def _split_latest(pg: bool, latest: Any, last_started: Any) -> tuple[Any, Any]:
    """(uuid, start) of the latest run from the row's :func:`_latest` and max start."""
    if pg or latest is None:
        return latest, last_started
    started, _, uuid = str(latest).rpartition(_SEP)
    return uuid, started


def _runs_query(
    db: Database, pg: bool, suite_id: Any, scenario: str, f: Filters
) -> tuple[Any, list[str]]:
    """One row per configuration, from every run passing ``f``: means (``avg``)."""
    keys = _key_exprs(Run)
    metrics = _metric_exprs(db)
    q = (
        select(
            *keys.values(),
            *(func.avg(e) for e in metrics.values()),
            func.count(),
            func.count(func.distinct(Run.device_id)),
            func.max(Device.currency),
            func.avg(Device.purchase_price),
            _latest(pg, Run.started_at, Run.uuid),
            func.max(type_coerce(Run.started_at, String)),
        )
        .join(Device, Run.device_id == Device.id)
        .join(ModelArtifactRow, Run.model_artifact_id == ModelArtifactRow.id)
        .group_by(*keys.values())
    )
    return _where(q, suite_id, scenario, f), list(metrics)


def _summaries_query(pg: bool, suite_id: Any, scenario: str, f: Filters) -> tuple[Any, list[str]]:
    """:func:`_runs_query` from ``config_summaries``: one row per configuration and device
    is read instead of every run; the means are sums over counts."""
    S = ConfigSummary
    keys = _key_exprs(S)
    price = Device.purchase_price
    priced = func.sum(case((price.is_not(None), S.runs), else_=0))
    q = (
        select(
            *keys.values(),
            *(
                func.sum(getattr(S, f"{m}_sum"))
                / func.nullif(func.cast(func.sum(getattr(S, f"{m}_n")), Float), 0)
                for m in SUMMARY_METRICS
            ),
            func.sum(S.runs),
            func.count(func.distinct(S.device_id)),
            func.max(Device.currency),
            func.sum(S.runs * price) / func.nullif(func.cast(priced, Float), 0),
            _latest(pg, S.last_started_at, S.last_run_uuid),
            func.max(type_coerce(S.last_started_at, String)),
        )
        .join(Device, S.device_id == Device.id)
        .join(ModelArtifactRow, S.model_artifact_id == ModelArtifactRow.id)
        .group_by(*keys.values())
    )
    return _where_summaries(q, suite_id, scenario, f), list(SUMMARY_METRICS)


def configurations_sql(
    db: Database,
    suite: str,
    suite_version: str,
    scenario: str,
    f: Filters,
    *,
    summaries: bool | None = None,
) -> pd.DataFrame:
    """:func:`~.leaderboard.configurations` of the runs passing ``f``, grouped by the database.

    One row per configuration comes back instead of one per run, with the **mean** of each
    figure over the configuration's runs, the count of runs and devices and the latest
    run. Read from ``config_summaries`` (kept as runs are stored: one row per configuration
    and device) when they can answer ``f`` (no run dates, no labels) and count every valid
    run of the group (:func:`summaries_complete`), else from the runs themselves; both
    give the figures of :func:`~.leaderboard.configurations` on
    :func:`~.leaderboard.runs_frame` (tested). ``summaries`` forces one way (tests).
    Exact medians: :func:`configuration_medians`.
    """
    import pandas as pd

    with db.engine.connect() as conn:
        sid = _suite_id(conn, suite, suite_version)
        if summaries is None:
            summaries = summaries_answer(f) and summaries_complete(conn, sid, scenario)
        pg = db.engine.dialect.name == "postgresql"
        q, metrics = (
            _summaries_query(pg, sid, scenario, f)
            if summaries
            else _runs_query(db, pg, sid, scenario, f)
        )
        rows = [tuple(r) for r in conn.execute(q)]
    if not rows:
        return empty_configs(pd.DataFrame())
    keys = list(CONFIG_KEY)
    nk, nm = len(keys), len(metrics)
    cols: dict[str, Any] = {k: [r[i] for r in rows] for i, k in enumerate(keys)}
    for j, name in enumerate(metrics):
        cols[name] = [r[nk + j] for r in rows]
    rest = nk + nm
    for j, name in enumerate(("runs", "devices", "currency", "purchase_price")):
        cols[name] = [r[rest + j] for r in rows]
    latest = [_split_latest(pg, r[rest + 4], r[rest + 5]) for r in rows]
    cols["run_id"] = [u for u, _t in latest]
    cols["last_run"] = [t for _u, t in latest]
    df = pd.DataFrame(cols)
    for c in OPTIONAL_RUN_COLUMNS:
        if c in METRIC_COLUMNS and c not in df:
            df[c] = math.nan
    for c in (*METRIC_COLUMNS, "purchase_price"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["runs"] = df["runs"].astype("int64")
    df["last_run"] = pd.to_datetime(df["last_run"], utc=True, format="mixed")
    df["estimated"] = df["energy_method"].eq("estimated")
    df["energy"] = [
        energy_badge(m, s) for m, s in zip(df["energy_method"], df["energy_scope"], strict=True)
    ]
    df["runtime"] = df["adapter"] + " " + df["runtime_version"]
    df["suite"], df["suite_version"], df["scenario"] = suite, suite_version, scenario
    df["config"] = [config_label(r) for r in df.itertuples()]
    return df


def config_key(values: Any) -> tuple[Any, ...]:
    """A configuration's :data:`~.common.CONFIG_KEY` values as plain, comparable Python
    (None for a missing value, ints for batch and threads): from a row of
    :func:`configurations_sql` or a mapping."""
    import pandas as pd

    out: list[Any] = []
    for k in CONFIG_KEY:
        v = values[k] if isinstance(values, Mapping) else getattr(values, k)
        if v is None or pd.isna(v):
            out.append(None)
        elif k in ("batch", "threads"):
            out.append(int(v))
        else:
            out.append(str(v))
    return tuple(out)


def configuration_medians(
    db: Database,
    suite: str,
    suite_version: str,
    scenario: str,
    f: Filters,
    configs: Sequence[tuple[Any, ...]],
    recent: int = 50,
) -> pd.DataFrame:
    """The drill-down of a few configurations (:func:`config_key` tuples): the **exact
    median** of each figure over all their runs passing ``f``, the count of runs, and
    the uuids of their ``recent`` latest runs (``run_ids``, oldest first); one row per
    configuration asked for, in that order (``runs`` 0 when none passes ``f``). Reads
    those configurations' runs (all of them): for a handful of rows, not the page.
    """
    import pandas as pd

    keys = _key_exprs(Run)
    metrics = _metric_exprs(db)
    match = [
        and_(*(e.is_(None) if v is None else e == v for e, v in zip(keys.values(), c, strict=True)))
        for c in configs
    ]
    q = (
        select(
            *keys.values(),
            *metrics.values(),
            Run.uuid,
            type_coerce(Run.started_at, String),
        )
        .join(Device, Run.device_id == Device.id)
        .join(ModelArtifactRow, Run.model_artifact_id == ModelArtifactRow.id)
    )
    columns = [*CONFIG_KEY, *metrics, "run_id", "started_at"]
    if not configs:
        return pd.DataFrame(columns=[*CONFIG_KEY, *metrics, "runs", "run_ids"])
    with db.engine.connect() as conn:
        q = _where(q, _suite_id(conn, suite, suite_version), scenario, f).where(or_(*match))
        runs = pd.DataFrame([tuple(r) for r in conn.execute(q)], columns=columns)
    runs["started_at"] = pd.to_datetime(runs["started_at"], utc=True, format="mixed")
    runs["key"] = [config_key(r) for r in runs.itertuples()]
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, part in runs.sort_values(["started_at", "run_id"]).groupby("key", sort=False):
        row: dict[str, Any] = {m: float(pd.to_numeric(part[m]).median()) for m in metrics}
        found[key] = row | {"runs": len(part), "run_ids": list(part["run_id"].iloc[-recent:])}
    none = dict.fromkeys(metrics, math.nan) | {"runs": 0, "run_ids": []}
    out = [dict(zip(CONFIG_KEY, k, strict=True)) | found.get(tuple(k), none) for k in configs]
    return pd.DataFrame(out, columns=[*CONFIG_KEY, *metrics, "runs", "run_ids"])
