"""Settings sweeps (``wattbench sweep settings``): the sweeps in the database and one
sweep's points, read through SQL from the runs' labels and columns.

A settings sweep's runs share ``sweep:<id>``, name their settings with
``setting:<key>=<value>`` (the baseline: ``setting:baseline``) and carry
``sweep-meta:search=<search>,grid=<n>,<pct>[<=<bound>ms]``. Throttling and the hottest
temperature come from each run's ``thermal`` section (``runs.extras``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, Text, select, type_coerce

from wattbench.dashboard.queries.common import energy_badge, labels_text
from wattbench.results_db.readonly import Database
from wattbench.results_db.schema import Device, Run, SuiteRow

if TYPE_CHECKING:
    import pandas as pd

SWEEP_PREFIX = "sweep:"
SETTING_PREFIX = "setting:"
META_PREFIX = "sweep-meta:"
_BOUND = re.compile(r"^(p\d+)(?:<=([0-9.eE+-]+)ms)?$")


def _items(labels: Any) -> list[str]:
    return [str(x) for x in (json.loads(labels) if isinstance(labels, str) else labels or [])]


def parse_labels(labels: Any) -> dict[str, Any]:
    """A run's sweep id, settings ({key: value}), whether it is the baseline, and the
    sweep's meta (search, grid, percentile, bound_ms) from its labels."""
    out: dict[str, Any] = {"sweep": None, "settings": {}, "baseline": False, "meta": {}}
    for x in _items(labels):
        if x.startswith(SWEEP_PREFIX):
            out["sweep"] = x[len(SWEEP_PREFIX) :]
        elif x == f"{SETTING_PREFIX}baseline":
            out["baseline"] = True
        elif x.startswith(SETTING_PREFIX) and "=" in x:
            key, _, value = x[len(SETTING_PREFIX) :].partition("=")
            out["settings"][key] = value
        elif x.startswith(META_PREFIX):
            out["meta"] = parse_meta(x[len(META_PREFIX) :])
    return out


def parse_meta(text: str) -> dict[str, Any]:
    """``search=coordinate,grid=48,p90<=20ms`` -> {search, grid, percentile, bound_ms}."""
    meta: dict[str, Any] = {}
    for part in text.split(","):
        m = _BOUND.match(part)
        if m:
            meta["percentile"] = m.group(1)
            meta["bound_ms"] = float(m.group(2)) if m.group(2) else None
        elif part.startswith("search="):
            meta["search"] = part.removeprefix("search=")
        elif part.startswith("grid="):
            grid = part.removeprefix("grid=")
            if grid.isdigit():
                meta["grid"] = int(grid)
    return meta


def is_settings_sweep(labels: Any) -> bool:
    """A run of a settings sweep (not an escalation or payload sweep)."""
    return any(x.startswith(SETTING_PREFIX) for x in _items(labels))


def _thermal(extras: Any) -> tuple[bool, float | None]:
    extras = json.loads(extras) if isinstance(extras, str) else (extras or {})
    th = extras.get("thermal") or {}
    return bool(th.get("throttled_trials")), th.get("max_temp_c")


def sweeps(db: Database) -> pd.DataFrame:
    """One row per settings sweep: sweep, suite, device, runs, search, grid, percentile,
    bound_ms, throttled (runs), first, last; the latest first."""
    import pandas as pd

    q = (
        select(
            type_coerce(Run.labels, Text),
            SuiteRow.name,
            Device.name,
            Run.extras,
            type_coerce(Run.started_at, String),
        )
        .join(SuiteRow, Run.suite_id == SuiteRow.id)
        .join(Device, Run.device_id == Device.id)
        .where(labels_text().contains(f'"{SETTING_PREFIX}', autoescape=True))
        .where(labels_text().contains(f'"{SWEEP_PREFIX}', autoescape=True))
    )
    rows = []
    with db.engine.connect() as conn:
        for labels, suite, device, extras, started in conn.execute(q):
            info = parse_labels(labels)
            if info["sweep"] is None:
                continue
            meta = info["meta"]
            throttled, _ = _thermal(extras)
            rows.append(
                (
                    info["sweep"], suite, device, meta.get("search", "exhaustive"),
                    meta.get("grid"), meta.get("percentile", "p90"), meta.get("bound_ms"),
                    throttled, started,
                )
            )  # fmt: skip
    cols = ["sweep", "suite", "device", "search", "grid", "percentile", "bound_ms"]
    df = pd.DataFrame(rows, columns=[*cols, "throttled", "started_at"])
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    out = (
        df.groupby("sweep")
        .agg(
            suite=("suite", "first"),
            device=("device", lambda s: ", ".join(sorted(set(s)))),
            runs=("suite", "size"),
            search=("search", "first"),
            grid=("grid", "first"),
            percentile=("percentile", "first"),
            bound_ms=("bound_ms", "first"),
            throttled=("throttled", "sum"),
            first=("started_at", "min"),
            last=("started_at", "max"),
        )
        .reset_index()
    )
    return out.sort_values(["last", "sweep"], ascending=[False, True]).reset_index(drop=True)


#: Columns of :func:`sweep_points`.
POINT_COLUMNS = (
    "key",
    "settings",
    "baseline",
    "run_id",
    "valid",
    "j_per_inference",
    "inferences_per_joule",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "throughput_ips",
    "throttled",
    "max_temp_c",
    "energy",
    "device",
    "started_at",
)


def sweep_points(db: Database, sweep_id: str) -> pd.DataFrame:
    """One row per run of the sweep (the baseline first, then in measured order)."""
    import pandas as pd

    tag = json.dumps(f"{SWEEP_PREFIX}{sweep_id}")
    q = (
        select(
            Run.uuid,
            type_coerce(Run.labels, Text),
            type_coerce(Run.valid, Integer),
            Run.joules_per_inference,
            Run.inferences_per_joule,
            Run.latency_p50_ms,
            Run.latency_p90_ms,
            Run.latency_p95_ms,
            Run.latency_p99_ms,
            Run.throughput_ips,
            Run.energy_method,
            Run.energy_scope,
            Run.extras,
            Device.name,
            type_coerce(Run.started_at, String),
        )
        .join(Device, Run.device_id == Device.id)
        .where(labels_text().contains(tag, autoescape=True))
        .order_by(Run.started_at, Run.id)
    )
    rows = []
    with db.engine.connect() as conn:
        for r in conn.execute(q):
            info = parse_labels(r[1])
            if info["sweep"] != sweep_id:  # a longer id containing this one
                continue
            settings = info["settings"]
            throttled, max_temp = _thermal(r[12])
            rows.append(
                {
                    "key": "baseline"
                    if info["baseline"]
                    else ",".join(f"{k}={v}" for k, v in settings.items()),
                    "settings": settings,
                    "baseline": info["baseline"],
                    "run_id": r[0],
                    "valid": bool(r[2]),
                    "j_per_inference": r[3],
                    "inferences_per_joule": r[4],
                    "p50_ms": r[5],
                    "p90_ms": r[6],
                    "p95_ms": r[7],
                    "p99_ms": r[8],
                    "throughput_ips": r[9],
                    "throttled": throttled,
                    "max_temp_c": max_temp,
                    "energy": energy_badge(r[10], r[11]),
                    "device": r[13],
                    "started_at": r[14],
                }
            )
    df = pd.DataFrame(rows, columns=list(POINT_COLUMNS))
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    df = df.sort_values(["baseline", "started_at"], ascending=[False, True], kind="stable")
    return df.reset_index(drop=True)


def analyse(
    points: pd.DataFrame, bound_ms: float | None, percentile: str = "p90"
) -> tuple[pd.DataFrame, Any]:
    """The points with ``feasible``, ``pareto`` and ``optimal`` columns, and the
    :class:`~wattbench.analysis.sweep.SweepAnswer` (front, optimum, gain over the baseline)
    computed as ``wattbench sweep settings`` does."""
    from wattbench.analysis.sweep import SweepPoint, answer

    pts = [
        SweepPoint(
            key=r.key,
            settings=dict(r.settings),
            run_id=r.run_id,
            baseline=bool(r.baseline),
            j_per_inference=_num(r.j_per_inference),
            inferences_per_joule=_num(r.inferences_per_joule),
            latency_ms=_latencies(r),
            valid=bool(r.valid),
            throttled=bool(r.throttled),
            max_temp_c=_num(r.max_temp_c),
        )
        for r in points.itertuples()
    ]
    marked, ans = answer(pts, bound_ms=bound_ms, percentile=percentile)
    out = points.copy()
    out["feasible"] = [p.feasible for p in marked]
    out["pareto"] = out["key"].isin(ans.pareto)
    out["optimal"] = out["key"] == ans.optimal
    return out, ans


def _latencies(row: Any) -> dict[str, float]:
    pairs = (("p50", row.p50_ms), ("p90", row.p90_ms), ("p95", row.p95_ms), ("p99", row.p99_ms))
    return {p: f for p, v in pairs if (f := _num(v)) is not None}


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f  # NaN
