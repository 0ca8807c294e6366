"""Read-only queries of the dashboard, returning pandas DataFrames.

Nothing here imports Streamlit: the app layer (:mod:`wattbench.dashboard.app`) wraps
these functions in ``st.cache_data``, and the tests call them directly.

The database is opened **read-only** (:func:`open_readonly`): SQLite through a
``mode=ro`` URI plus ``PRAGMA query_only``, PostgreSQL with
``default_transaction_read_only`` set on every connection. The dashboard never creates
a schema, never migrates and never writes; an empty or missing database is a state
the app explains, not an error.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from itertools import chain
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Integer,
    String,
    Text,
    func,
    literal,
    select,
    type_coerce,
)

from wattbench.results_db.schema import (
    Device,
    EnergyMeasurement,
    ModelArtifactRow,
    Run,
    SuiteRow,
    Trial,
)

if TYPE_CHECKING:
    import pandas as pd

    from wattbench.core.results import RunResult

from wattbench.results_db.readonly import (  # noqa: F401  (re-exported for the pages)
    DB_ENV,
    OPTIONAL_RUN_COLUMNS,
    Database,
    DbState,
    open_readonly,
)


# -- leaderboard data ------------------------------------------------------------------------
def groups(db: Database) -> pd.DataFrame:
    """(suite, suite_version, scenario) with their counts of valid and of all runs."""
    import pandas as pd

    # Counted per suite id first (the leaderboard index covers it: no table rows are
    # read), named after.
    per_suite = (
        select(
            Run.suite_id,
            Run.scenario,
            func.count().label("runs"),
            func.sum(func.cast(Run.valid, Integer)).label("valid_runs"),
        )
        .group_by(Run.suite_id, Run.scenario)
        .subquery()
    )
    q = (
        select(
            SuiteRow.name.label("suite"),
            SuiteRow.version.label("suite_version"),
            per_suite.c.scenario,
            func.sum(per_suite.c.runs),
            func.sum(per_suite.c.valid_runs),
        )
        .join(SuiteRow, per_suite.c.suite_id == SuiteRow.id)
        .group_by(SuiteRow.name, SuiteRow.version, per_suite.c.scenario)
        .order_by(SuiteRow.name, SuiteRow.version, per_suite.c.scenario)
    )
    with db.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(q)]
    df = pd.DataFrame(rows, columns=["suite", "suite_version", "scenario", "runs", "valid_runs"])
    df["runs"] = df["runs"].astype(int)
    df["valid_runs"] = df["valid_runs"].fillna(0).astype(int)
    return df


#: Run columns of :func:`runs_frame`, in order (plus the optional ones present).
RUN_COLUMNS = (
    "run_pk",
    "run_id",
    "suite",
    "suite_version",
    "scenario",
    "device",
    "hardware",
    "accelerator",
    "cpu_model",
    "purchase_price",
    "currency",
    "nameplate_power_w",
    "model",
    "weights",
    "adapter",
    "runtime_version",
    "execution_provider",
    "device_target",
    "precision",
    "batch",
    "threads",
    "valid",
    "labels_json",
    "started_at",
    "inferences",
    "throughput_ips",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "inferences_per_joule",
    "joules_per_inference",
    "energy_method",
    "energy_scope",
    "energy_uncertainty_j",
)


def runs_frame(
    db: Database,
    suite: str,
    suite_version: str,
    scenario: str,
    *,
    include_invalid: bool = False,
) -> pd.DataFrame:
    """One row per run of one suite version and scenario (valid runs only by default).

    The filter is on indexed columns (``ix_runs_leaderboard``); the other filters of the
    page are applied in pandas by :func:`filter_runs` on this (cached) frame.
    """
    import pandas as pd

    optional = [getattr(Run, c) for c in db.optional_columns]
    run_cols = [
        Run.id,
        Run.uuid,
        Run.device_id,
        Run.model_artifact_id,
        Run.adapter,
        Run.runtime_version,
        Run.execution_provider,
        Run.device_target,
        Run.precision,
        Run.batch,
        Run.threads,
        # Raw values, converted column-wise in _derive: SQLAlchemy's per-row JSON and
        # (SQLite) datetime parsing costs seconds over 100 k runs.
        type_coerce(Run.valid, Integer),
        type_coerce(Run.labels, Text),
        type_coerce(Run.started_at, String),
        Run.inferences,
        Run.throughput_ips,
        Run.latency_p50_ms,
        Run.latency_p90_ms,
        Run.latency_p99_ms,
        Run.inferences_per_joule,
        Run.joules_per_inference,
        Run.energy_method,
        Run.energy_scope,
        Run.energy_uncertainty_j,
        *optional,
    ]
    names = [
        "run_pk",
        "run_id",
        "device_pk",
        "model_pk",
        *RUN_COLUMNS[RUN_COLUMNS.index("adapter") :],
        *db.optional_columns,
    ]
    with db.engine.connect() as conn:
        suite_id = conn.scalar(
            select(SuiteRow.id).where(SuiteRow.name == suite, SuiteRow.version == suite_version)
        )
        # Devices and models are few: read them once and join in pandas, so each of the
        # (many) run rows carries only its own columns.
        q = select(*run_cols).where(Run.suite_id == suite_id, Run.scenario == scenario)
        if not include_invalid:
            q = q.where(Run.valid.is_(True))
        rows = [tuple(r) for r in conn.execute(q)]
        devices = pd.DataFrame(
            [
                tuple(r)
                for r in conn.execute(
                    select(
                        Device.id,
                        Device.name,
                        func.coalesce(Device.accelerator, Device.cpu_model),
                        Device.accelerator,
                        Device.cpu_model,
                        Device.purchase_price,
                        Device.currency,
                        Device.nameplate_power_w,
                    )
                )
            ],
            columns=[
                "device_pk",
                "device",
                "hardware",
                "accelerator",
                "cpu_model",
                "purchase_price",
                "currency",
                "nameplate_power_w",
            ],
        )
        models = pd.DataFrame(
            [
                tuple(r)
                for r in conn.execute(
                    select(ModelArtifactRow.id, ModelArtifactRow.name, ModelArtifactRow.weights)
                )
            ],
            columns=["model_pk", "model", "weights"],
        )
    df = pd.DataFrame(rows, columns=names)
    df = df.merge(devices, on="device_pk", how="left").merge(models, on="model_pk", how="left")
    df["suite"], df["suite_version"], df["scenario"] = suite, suite_version, scenario
    for c in OPTIONAL_RUN_COLUMNS:  # absent from this schema: present, empty
        if c not in df.columns:
            df[c] = None
    return _derive(df)


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    df["valid"] = df["valid"].astype(bool)
    df["estimated"] = df["energy_method"].eq("estimated")
    df["energy"] = [
        energy_badge(m, s) for m, s in zip(df["energy_method"], df["energy_scope"], strict=True)
    ]
    total_j = df["joules_per_inference"] * df["inferences"]
    df["uncertainty_pct"] = (df["energy_uncertainty_j"] / total_j * 100).where(total_j > 0)
    df["runtime"] = df["adapter"] + " " + df["runtime_version"]
    # PostgreSQL's driver decodes JSON itself; keep one form, JSON text, parsed on demand.
    df["labels_json"] = [
        x if isinstance(x, str) else json.dumps(x or []) for x in df["labels_json"]
    ]
    for c in METRIC_COLUMNS:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df


def energy_badge(method: str | None, scope: str | None) -> str:
    """``≈ ESTIMATED · chip`` or ``measured: counter · board``; honest at a glance."""
    if method is None:
        return "no energy figure"
    if method == "estimated":
        return f"≈ ESTIMATED · {scope or '?'}"
    return f"measured: {method} · {scope or '?'}"


@dataclass(frozen=True)
class Filters:
    """The leaderboard's filters; empty collections mean "all"."""

    devices: tuple[str, ...] = ()
    hardware: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    hide_estimated: bool = False
    #: One mode at a time, as ``wattbench leaderboard``: a cloud or hybrid run's own energy
    #: is only the device's share of the work, so it never ranks among edge runs.
    mode: str = "edge"


def filter_runs(df: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Rows of :func:`runs_frame` that pass ``f`` (labels: runs carrying all of them)."""
    import pandas as pd

    mask = df["mode"].fillna("edge").eq(f.mode)
    if f.devices:
        mask &= df["device"].isin(f.devices)
    if f.hardware:
        mask &= df["hardware"].isin(f.hardware)
    if f.runtimes:
        mask &= df["adapter"].isin(f.runtimes)
    if f.precisions:
        mask &= df["precision"].isin(f.precisions)
    if f.hide_estimated:
        mask &= ~df["estimated"]
    if f.since is not None:
        mask &= df["started_at"] >= pd.Timestamp(f.since, tz=timezone.utc)
    if f.until is not None:
        mask &= df["started_at"] < pd.Timestamp(f.until, tz=timezone.utc) + pd.Timedelta(days=1)
    if f.labels:
        wanted = set(f.labels)
        text = df["labels_json"]
        for label in f.labels:  # cheap substring test first, then the exact one
            mask &= text.str.contains(json.dumps(label)[1:-1], regex=False)
        exact = [wanted.issubset(json.loads(x)) for x in text[mask]]
        mask.loc[mask[mask].index] = exact
    return df[mask]


def label_counts(df: pd.DataFrame, limit: int = 200) -> list[str]:
    """The ``limit`` most frequent labels (a lab's per-commit labels are too many to list)."""
    counts = Counter(chain.from_iterable(json.loads(x) for x in df["labels_json"]))
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def labels_of(df: pd.DataFrame) -> list[list[str]]:
    """The labels of each row of a :func:`runs_frame` frame, as lists."""
    return [list(json.loads(x)) for x in df["labels_json"]]


#: What makes two runs the same configuration in the leaderboard. Energy method and scope
#: are part of it, so a row never mixes measured and estimated (or chip and wall) figures.
CONFIG_KEY = (
    "hardware",
    "adapter",
    "runtime_version",
    "execution_provider",
    "device_target",
    "model",
    "weights",
    "precision",
    "batch",
    "threads",
    "energy_method",
    "energy_scope",
    "mode",
)

#: Metrics summarised per configuration (median over its runs).
METRIC_COLUMNS = (
    "inferences_per_joule",
    "joules_per_inference",
    "tokens_per_joule",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_e2e_p50_ms",
    "latency_e2e_p90_ms",
    "ttft_ms",
    "tpot_ms",
    "throughput_ips",
    "uncertainty_pct",
    "network_j_per_inference",
    "energy_to_solution_j_per_inference",
)


@dataclass(frozen=True)
class Ranking:
    column: str
    label: str
    higher_is_better: bool


RANKINGS = {
    "inferences_per_joule": Ranking("inferences_per_joule", "inferences per joule", True),
    "latency_p90_ms": Ranking("latency_p90_ms", "p90 latency", False),
    "throughput_ips": Ranking("throughput_ips", "throughput", True),
    "tokens_per_joule": Ranking("tokens_per_joule", "tokens per joule (slm)", True),
    "energy_to_solution_j_per_inference": Ranking(
        "energy_to_solution_j_per_inference", "energy-to-solution J/inference", False
    ),
}


def rankings_for(suite: str, *, has_tokens: bool = False, mode: str = "edge") -> list[str]:
    """Rankings that make sense here: tokens per joule only for the slm suite (or when the
    runs carry the figure); cloud and hybrid runs first by energy-to-solution (edge +
    network + cloud), since their own energy is only the device's share."""
    out = ["inferences_per_joule", "latency_p90_ms", "throughput_ips"]
    if suite == "slm" or has_tokens:
        out.insert(0 if suite == "slm" else len(out), "tokens_per_joule")
    if mode != "edge":
        out.insert(0, "energy_to_solution_j_per_inference")
    return out


def configurations(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (:data:`CONFIG_KEY`): medians of its runs' figures.

    ``runs``/``devices`` count what the median is over; ``run_id`` is its latest run (the
    drill-down target) and ``run_ids`` all of them (the compare page pools their trials).
    """
    import pandas as pd

    if runs.empty:
        return _empty_configs(runs)
    key = list(CONFIG_KEY)
    df = runs.sort_values("started_at")
    # One string key: grouping on 13 object columns costs seconds over 100 k runs.
    gkey = df[key[0]].astype("string").fillna("")
    for c in key[1:]:  # (NULL is a value of its own: fill, or the whole key would be NA)
        gkey = gkey + "\x1f" + df[c].astype("string").fillna("")
    g = df.groupby(gkey.to_numpy(), sort=False)
    metrics = g[[c for c in METRIC_COLUMNS if c in df]].median()
    out = pd.concat(
        [
            g[key].first(),
            metrics,
            g.size().rename("runs"),
            g["device"].nunique().rename("devices"),
            g["run_id"].last().rename("run_id"),
            g["run_id"].agg(list).rename("run_ids"),
            g["started_at"].last().rename("last_run"),
            g["estimated"].first().rename("estimated"),
            g["energy"].first().rename("energy"),
            g["runtime"].first().rename("runtime"),
            g["suite"].first().rename("suite"),
            g["suite_version"].first().rename("suite_version"),
            g["scenario"].first().rename("scenario"),
            g["purchase_price"].median().rename("purchase_price"),
            g["currency"].first().rename("currency"),
        ],
        axis=1,
    ).reset_index(drop=True)
    out["config"] = [config_label(r) for r in out.itertuples()]
    return out


def _empty_configs(runs: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    cols = [
        *CONFIG_KEY,
        *METRIC_COLUMNS,
        "runs",
        "devices",
        "run_id",
        "run_ids",
        "last_run",
        "estimated",
        "energy",
        "runtime",
        "suite",
        "suite_version",
        "scenario",
        "purchase_price",
        "currency",
        "config",
    ]
    return pd.DataFrame(columns=cols)


def config_label(row: Any) -> str:
    """A short human name of a configuration: hardware · runtime · model precision."""
    est = " ≈est" if getattr(row, "estimated", False) else ""
    t = getattr(row, "threads", None)
    threads = f" ×{int(t)}t" if t is not None and _present(t) else ""
    return (
        f"{row.hardware} · {row.adapter} {row.runtime_version} ({row.execution_provider}) · "
        f"{row.model} {row.precision} b{row.batch}{threads}{est}"
    )


def _present(value: Any) -> bool:
    if value is None or value == "":
        return False
    return not (isinstance(value, float) and math.isnan(value))


def rank(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``df`` sorted by ``metric`` (best first, missing figures last) with a ``rank``."""
    r = RANKINGS[metric]
    out = df.sort_values(
        [r.column, "run_id"], ascending=[not r.higher_is_better, True], na_position="last"
    ).reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


# -- aggregated in SQL (the default views of big databases) -------------------------------------
def _hardware_expr() -> Any:
    return func.coalesce(Device.accelerator, Device.cpu_model)


def _labels_text() -> Any:
    # JSON as stored (json.dumps: ASCII, '"label"' per element) on both dialects.
    return func.cast(Run.labels, Text)


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
        q = q.where(_labels_text().contains(json.dumps(label), autoescape=True))
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
    """:func:`configurations` of the runs passing ``f``, grouped by the database.

    One row per configuration comes back instead of one per run: PostgreSQL computes the
    medians (``percentile_cont``); SQLite, which has no median, hands each group's
    non-null values over as one JSON array (``json_group_array``) and Python takes the
    median. The same figures as :func:`configurations` on :func:`runs_frame` (tested).
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
        return _empty_configs(pd.DataFrame())
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


# -- escalation sweeps -----------------------------------------------------------------------
#: Labels naming a sweep's swept value, by sweep kind (harness.network.sweep.run_sweep).
SWEEP_VALUE_KEYS = ("threshold", "payload", "frames")
SWEEP_PREFIX = "sweep:"


def _sweep_labels(labels: Any) -> tuple[str | None, str | None, str | None]:
    """(sweep id, kind, swept value) from a run's labels (JSON text or list)."""
    items = json.loads(labels) if isinstance(labels, str) else list(labels or [])
    sid = kind = value = None
    for x in items:
        x = str(x)
        if x.startswith(SWEEP_PREFIX):
            sid = x[len(SWEEP_PREFIX) :]
        else:
            key, sep, rest = x.partition(":")
            if sep and key in SWEEP_VALUE_KEYS:
                kind, value = key, rest
    return sid, kind, value


def sweeps(db: Database) -> pd.DataFrame:
    """One row per sweep (runs sharing a ``sweep:<id>`` label): sweep, kind, suite, device,
    runs, valid_runs, first, last; the latest first."""
    import pandas as pd

    q = (
        select(
            type_coerce(Run.labels, Text),
            SuiteRow.name,
            Device.name,
            type_coerce(Run.valid, Integer),
            type_coerce(Run.started_at, String),
        )
        .join(SuiteRow, Run.suite_id == SuiteRow.id)
        .join(Device, Run.device_id == Device.id)
        .where(_labels_text().contains(f'"{SWEEP_PREFIX}', autoescape=True))
    )
    rows = []
    with db.engine.connect() as conn:
        for labels, suite, device, valid, started in conn.execute(q):
            sid, kind, _value = _sweep_labels(labels)
            if sid is not None:
                rows.append((sid, kind or "?", suite, device, bool(valid), started))
    cols = ["sweep", "kind", "suite", "device", "valid", "started_at"]
    df = pd.DataFrame(rows, columns=cols)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    out = (
        df.groupby("sweep")
        .agg(
            kind=("kind", "first"),
            suite=("suite", "first"),
            device=("device", lambda s: ", ".join(sorted(set(s)))),
            runs=("valid", "size"),
            valid_runs=("valid", "sum"),
            first=("started_at", "min"),
            last=("started_at", "max"),
        )
        .reset_index()
    )
    return out.sort_values(["last", "sweep"], ascending=[False, True]).reset_index(drop=True)


#: Columns of :func:`sweep_points`.
SWEEP_POINT_COLUMNS = (
    "value",
    "x",
    "run_id",
    "mode",
    "valid",
    "escalation_rate",
    "energy_to_solution_j",
    "energy_to_solution_low_j",
    "energy_to_solution_high_j",
    "edge_j",
    "edge_energy",
    "network_j",
    "network_j_low",
    "network_j_high",
    "network_energy",
    "cloud_j",
    "cloud_energy",
    "agreement_with_cloud",
    "bytes_per_inference",
    "e2e_p50_ms",
    "escalated",
    "escalation_failures",
    "link",
    "payload",
    "device",
    "started_at",
    "invalid_reasons",
)


def sweep_points(db: Database, sweep_id: str) -> pd.DataFrame:
    """The points of one sweep, one per run, ordered by the swept value: the coordinates of
    :class:`wattbench.harness.network.sweep.SweepPoint` read from each run's stored
    ``network`` section (validated as a :class:`NetworkResult`) plus labels for the energy
    parts (edge: the reader's method; network: modelled; cloud: measured/estimated/...)."""
    import pandas as pd

    from wattbench.core.network import NetworkResult

    tag = json.dumps(f"{SWEEP_PREFIX}{sweep_id}")
    q = (
        select(
            Run.uuid,
            type_coerce(Run.labels, Text),
            Run.mode,
            type_coerce(Run.valid, Integer),
            Run.invalid_reasons,
            Run.extras,
            Run.joules_per_inference,
            Run.energy_method,
            Run.energy_scope,
            Run.latency_e2e_p50_ms,
            Device.name,
            type_coerce(Run.started_at, String),
        )
        .join(Device, Run.device_id == Device.id)
        .where(_labels_text().contains(tag, autoescape=True))
        .order_by(Run.started_at, Run.id)
    )
    rows = []
    with db.engine.connect() as conn:
        for (
            uuid_,
            labels,
            mode,
            valid,
            reasons,
            extras,
            jpi,
            method,
            scope,
            e2e,
            dev,
            t,
        ) in conn.execute(q):
            sid, _kind, value = _sweep_labels(labels)
            if sid != sweep_id:  # a longer id that merely contains this one
                continue
            extras = json.loads(extras) if isinstance(extras, str) else (extras or {})
            raw = extras.get("network")
            n = NetworkResult.model_validate(raw) if raw else None
            edge_badge = energy_badge(method, scope)
            rows.append(
                {
                    "value": value or "",
                    "run_id": uuid_,
                    "mode": mode or "edge",
                    "valid": bool(valid),
                    # An edge-only point (no network section): all of it is the edge's.
                    "escalation_rate": n.escalation_rate if n else 0.0,
                    "energy_to_solution_j": n.energy_to_solution_j_per_inference if n else jpi,
                    "energy_to_solution_low_j": n.energy_to_solution_low_j if n else jpi,
                    "energy_to_solution_high_j": n.energy_to_solution_high_j if n else jpi,
                    "edge_j": n.edge_j_per_inference if n else jpi,
                    "edge_energy": edge_badge,
                    "network_j": n.network_j_per_inference if n else 0.0,
                    "network_j_low": n.network_j_low_per_inference if n else 0.0,
                    "network_j_high": n.network_j_high_per_inference if n else 0.0,
                    "network_energy": n.network_energy_label if n else "none",
                    "cloud_j": n.cloud_j_per_inference if n else 0.0,
                    "cloud_energy": n.cloud_energy if n else "none",
                    "agreement_with_cloud": n.agreement_with_cloud if n else None,
                    "bytes_per_inference": n.bytes_per_inference if n else 0.0,
                    "e2e_p50_ms": e2e,
                    "escalated": n.escalated if n else 0,
                    "escalation_failures": n.escalation_failures if n else 0,
                    "link": n.link if n else "",
                    "payload": n.payload if n else "",
                    "device": dev,
                    "started_at": t,
                    "invalid_reasons": "; ".join(reasons or []),
                }
            )
    df = pd.DataFrame(rows, columns=[c for c in SWEEP_POINT_COLUMNS if c != "x"])
    df["x"] = pd.to_numeric(df["value"], errors="coerce")  # thresholds; NaN for payloads
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    order = ["x", "started_at"] if df["x"].notna().all() else ["started_at"]
    return df.sort_values(order).reset_index(drop=True)[list(SWEEP_POINT_COLUMNS)]


# -- one run ---------------------------------------------------------------------------------
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


# -- compare ---------------------------------------------------------------------------------
def trial_samples(db: Database, run_ids: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Pooled per-trial values of ``run_ids``: joules_per_inference (headline reader's gross
    energy / inferences), latency_p90_ms, throughput_ips (see harness.gate.trial_samples)."""
    from wattbench.analysis.gate import trial_samples as gate_samples

    if not run_ids:
        return {}
    headline = (
        select(EnergyMeasurement.run_id, EnergyMeasurement.trial_index, EnergyMeasurement.gross_j)
        .where(EnergyMeasurement.is_headline.is_(True), EnergyMeasurement.trial_index.is_not(None))
        .subquery()
    )
    q = (
        select(Trial.inferences, Trial.latency, Trial.throughput_ips, headline.c.gross_j)
        .join(Run, Run.id == Trial.run_id)
        .outerjoin(
            headline,
            (headline.c.run_id == Trial.run_id) & (headline.c.trial_index == Trial.index),
        )
        .where(Run.uuid.in_(list(run_ids)))
        .order_by(Run.id, Trial.index)
    )
    with db.engine.connect() as conn:
        rows = [
            (int(inf), float((lat or {}).get("p90_ms", math.nan)), float(ips), gross, None)
            for inf, lat, ips, gross in conn.execute(q)
        ]
    return gate_samples(rows)


def headline_power(db: Database, run_ids: Iterable[str]) -> pd.DataFrame:
    """Headline reader's run totals: run_id, idle_w, mean_power_w (for procurement)."""
    import pandas as pd

    ids = list(run_ids)
    if not ids:
        return pd.DataFrame(columns=["run_id", "idle_w", "mean_power_w"])
    q = (
        select(Run.uuid, EnergyMeasurement.idle_w, EnergyMeasurement.mean_power_w)
        .join(Run, Run.id == EnergyMeasurement.run_id)
        .where(
            EnergyMeasurement.is_headline.is_(True),
            EnergyMeasurement.trial_index.is_(None),
            Run.uuid.in_(ids),
        )
    )
    with db.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(q)]
    return pd.DataFrame(rows, columns=["run_id", "idle_w", "mean_power_w"])


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
