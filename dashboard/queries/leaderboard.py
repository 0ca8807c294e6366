"""The leaderboard's runs in pandas: the groups (suite version · scenario), one group's runs
(:func:`runs_frame`), the filters applied to them, configurations and ranking.

The default views of big databases group in SQL instead
(:mod:`wattbench.dashboard.queries.aggregated`); the tests check that both agree.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import timezone
from itertools import chain
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, Text, func, select, type_coerce

from wattbench.dashboard.queries.common import (
    CONFIG_KEY,
    METRIC_COLUMNS,
    Filters,
    config_label,
    empty_configs,
    energy_badge,
)
from wattbench.results_db.readonly import OPTIONAL_RUN_COLUMNS, Database
from wattbench.results_db.schema import Device, ModelArtifactRow, Run, SuiteRow

if TYPE_CHECKING:
    import pandas as pd


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
    """One row per configuration (:data:`~.common.CONFIG_KEY`): means of its runs' figures.

    ``runs``/``devices`` count what the mean is over; ``run_id`` is its latest run (by
    start, then uuid: the drill-down target). Means, not medians: they are what the store
    can keep per configuration as runs arrive (docs/dashboard.md#responsiveness).
    """
    import pandas as pd

    if runs.empty:
        return empty_configs(runs)
    key = list(CONFIG_KEY)
    df = runs.sort_values(["started_at", "run_id"])
    # One string key: grouping on 13 object columns costs seconds over 100 k runs.
    gkey = df[key[0]].astype("string").fillna("")
    for c in key[1:]:  # (NULL is a value of its own: fill, or the whole key would be NA)
        gkey = gkey + "\x1f" + df[c].astype("string").fillna("")
    g = df.groupby(gkey.to_numpy(), sort=False)
    metrics = g[[c for c in METRIC_COLUMNS if c in df]].mean()
    out = pd.concat(
        [
            g[key].first(),
            metrics,
            g.size().rename("runs"),
            g["device"].nunique().rename("devices"),
            g["run_id"].last().rename("run_id"),
            g["started_at"].last().rename("last_run"),
            g["estimated"].first().rename("estimated"),
            g["energy"].first().rename("energy"),
            g["runtime"].first().rename("runtime"),
            g["suite"].first().rename("suite"),
            g["suite_version"].first().rename("suite_version"),
            g["scenario"].first().rename("scenario"),
            g["purchase_price"].mean().rename("purchase_price"),
            g["currency"].max().rename("currency"),
        ],
        axis=1,
    ).reset_index(drop=True)
    out["config"] = [config_label(r) for r in out.itertuples()]
    return out


#: Energy scopes, widest first (the order rank groups are listed in).
SCOPES_WIDEST_FIRST = ("wall", "board", "module", "chip")


def group_label(scope: Any, estimated: Any) -> str:
    """A rank group within one suite version, scenario and mode: ``wall · measured``."""
    scope_s = scope if isinstance(scope, str) and scope else "no scope"
    return f"{scope_s} · {'estimated' if bool(estimated) else 'measured'}"


def scope_order(scope: Any) -> int:
    return SCOPES_WIDEST_FIRST.index(scope) if scope in SCOPES_WIDEST_FIRST else 99


def rank(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``df`` sorted by ``metric`` (best first, missing figures last) with a ``rank`` that
    restarts per rank group (energy scope × measured/estimated: like with like), widest
    scope and measured groups first; ``rank_group`` names each row's group."""
    import pandas as pd

    r = RANKINGS[metric]
    out = df.copy()
    scope = out["energy_scope"] if "energy_scope" in out else pd.Series([None] * len(out))
    est = out["estimated"] if "estimated" in out else pd.Series([False] * len(out))
    out["rank_group"] = [
        group_label(s, e) for s, e in zip(scope.tolist(), est.tolist(), strict=True)
    ]
    out["_scope_order"] = [scope_order(s) for s in scope.tolist()]
    out["_est"] = [bool(e) for e in est.tolist()]
    out = out.sort_values(
        ["_scope_order", "rank_group", "_est", r.column, "run_id"],
        ascending=[True, True, True, not r.higher_is_better, True],
        na_position="last",
    ).reset_index(drop=True)
    ranks = out.groupby("rank_group", sort=False).cumcount() + 1
    out = out.drop(columns=["_scope_order", "_est"])
    out.insert(0, "rank", ranks.to_numpy())
    return out


def run_intervals(db: Database, run_ids: list[str]) -> pd.DataFrame:
    """The achieved 95 % interval of each run in ``run_ids`` (``wattbench run --target-ci``).

    Columns ``run_id``, ``ci`` (``±1.8 %``: the half-width of the inferences-per-joule
    interval; ``—`` without one, never 0), ``ci_half_width_pct`` (NaN without one) and
    ``ci_stop`` (``target reached``, ``budget exhausted``, ``fixed repeats``; ``—`` for a
    run that recorded no interval). Read per shown row (at most a page of runs): the
    per-configuration summaries do not keep intervals, so a configuration row shows its
    latest run's (the run its ``run_id`` and *open run* link point at).
    """
    import pandas as pd

    from wattbench.results_db.leaderboard import confidence_columns, half_width_text

    ids = list(dict.fromkeys(str(r) for r in run_ids))
    found: dict[str, Any] = {}
    with db.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            q = select(Run.uuid, Run.extras["confidence"]).where(Run.uuid.in_(ids[i : i + 500]))
            for uuid, conf in conn.execute(q):
                found[str(uuid)] = conf if isinstance(conf, dict) and conf else None
    rows = []
    for rid in ids:
        conf = found.get(rid)
        cols = confidence_columns(conf)
        hw = cols["ipj_ci_half_width_pct"]
        rows.append(
            (
                rid,
                half_width_text(hw),
                float("nan") if hw is None else float(hw),
                cols["ci_stop_reason"] if conf else "—",
            )
        )
    return pd.DataFrame(rows, columns=["run_id", "ci", "ci_half_width_pct", "ci_stop"])


def run_throttling(db: Database, run_ids: list[str]) -> pd.DataFrame:
    """How many trials of each run in ``run_ids`` throttled (issue 18; the run's ``thermal``
    section, kept in its extras).

    Columns ``run_id``, ``throttled`` (``2/5 trials``; ``—`` for a run that recorded no
    thermal section: no sensor sampled, which is not 0), ``throttled_trials`` and
    ``thermal_trials`` (NaN without one). Read per shown row, as :func:`run_intervals`: the
    per-configuration summaries keep no thermal figures, so a configuration row shows its
    latest run's.
    """
    import pandas as pd

    from wattbench.results_db.leaderboard import (
        thermal_count_columns,
        thermal_counts,
        throttled_text,
    )

    ids = list(dict.fromkeys(str(r) for r in run_ids))
    found: dict[str, tuple[int | None, int | None]] = {}
    dialect = db.engine.dialect.name
    with db.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            q = select(Run.uuid, *thermal_count_columns(dialect)).where(
                Run.uuid.in_(ids[i : i + 500])
            )
            for uuid, throttled, trials in conn.execute(q):
                found[str(uuid)] = thermal_counts(throttled, trials)
    rows = []
    for rid in ids:
        throttled, trials = found.get(rid, (None, None))
        rows.append(
            (
                rid,
                throttled_text(throttled, trials),
                float("nan") if throttled is None else float(throttled),
                float("nan") if trials is None else float(trials),
            )
        )
    return pd.DataFrame(rows, columns=["run_id", "throttled", "throttled_trials", "thermal_trials"])


#: ``device_validation`` outcomes of `wattbench doctor --save` and how the column shows them.
_VALIDATION_MARKS = {"validated": "✓", "failed": "✗ failed", "estimate_only": "estimate only"}


def validation_text(outcome: str | None, at: Any) -> str:
    """``✓ 2026-12-04`` (validated on that day), ``✗ failed 2026-12-04`` or ``estimate only
    2026-12-04`` (the profile's outcome); ``—``: the device had no profile when the run was
    stored (never validated, which is not "failed")."""
    if not outcome:
        return "—"
    day = f" {at:%Y-%m-%d}" if at is not None and hasattr(at, "strftime") else ""
    return f"{_VALIDATION_MARKS.get(outcome, outcome)}{day}"


def run_validation(db: Database, run_ids: list[str]) -> pd.DataFrame:
    """Whether the device of each run in ``run_ids`` was validated by `wattbench doctor
    --save`, and when (issue 15): the profile current when the run was stored.

    Columns ``run_id``, ``validated`` (:func:`validation_text`), ``device_validation`` (the
    outcome; None without a profile) and ``device_validation_at``. Read per shown row, as
    :func:`run_intervals`: a configuration row shows its latest run's.
    """
    import pandas as pd

    from wattbench.results_db.schema import DeviceProfile

    ids = list(dict.fromkeys(str(r) for r in run_ids))
    found: dict[str, tuple[str | None, Any]] = {}
    with db.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            q = (
                select(Run.uuid, DeviceProfile.outcome, DeviceProfile.created_at)
                .outerjoin(DeviceProfile, Run.device_profile_id == DeviceProfile.id)
                .where(Run.uuid.in_(ids[i : i + 500]))
            )
            for uuid, outcome, at in conn.execute(q):
                found[str(uuid)] = (outcome, at)
    rows = []
    for rid in ids:
        got, when = found.get(rid, (None, None))
        rows.append((rid, validation_text(got, when), got, when if got else None))
    return pd.DataFrame(
        rows, columns=["run_id", "validated", "device_validation", "device_validation_at"]
    )
