"""The leaderboard: runs ranked by inferences per joule, like with like.

Runs rank only within one *rank group*: suite version, scenario, mode, energy scope
(chip/module/board/wall) and measured-vs-estimated. A chip-only RAPL figure never
"beats" a wall-plug figure; each group has its own rank 1.

A query of its own (not a read of whole runs) because ``wattbench leaderboard``, the
dashboard and the central store rank many runs and must stay cheap as runs pile up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session, sessionmaker

from wattbench.results_db.schema import Device, DeviceProfile, ModelArtifactRow, Run, SuiteRow

#: Most SELECTs in one UNION ALL (SQLite allows 500 terms in a compound SELECT).
_UNION_TERMS = 200


class LeaderboardRow(BaseModel):
    """One ranked configuration; the JSON shape of `wattbench leaderboard --format json`."""

    rank: int
    run_id: str
    suite: str
    suite_version: str
    scenario: str
    model: str
    weights: str
    adapter: str
    runtime_version: str
    execution_provider: str
    device: str
    hardware: str | None
    precision: str
    batch: int
    threads: int | None
    inferences_per_joule: float | None
    joules_per_inference: float | None
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    throughput_ips: float
    energy_method: str | None
    energy_scope: str | None
    energy_estimated: bool
    energy_uncertainty_pct: float | None
    valid: bool
    labels: list[str]
    created_at: datetime
    quality: dict[str, Any] = Field(default_factory=dict)
    mode: str = "edge"
    latency_e2e_p90_ms: float | None = None
    ttft_ms: float | None = Field(default=None, description="slm: median time to first token.")
    tpot_ms: float | None = Field(default=None, description="slm: median time per output token.")
    tokens_per_joule: float | None = None
    network_j_per_inference: float | None = Field(
        default=None, description="MODELLED from measured bytes (see docs/network.md)."
    )
    energy_to_solution_j_per_inference: float | None = None
    rank_group: str = Field(
        default="",
        description="The group ranked together: suite version · scenario · mode · "
        "energy scope · measured/estimated.",
    )
    confidence: dict[str, Any] | None = Field(
        default=None,
        description="The run's 95% CIs of the medians across trials (inferences per joule, "
        "p90 latency), its trials and why measuring stopped (`wattbench run --target-ci`).",
    )
    device_validation: str | None = Field(
        default=None,
        description="The outcome of the device's `wattbench doctor --save` profile current "
        "when the run was stored: validated, failed or estimate_only; None: never profiled.",
    )
    device_validation_at: datetime | None = Field(
        default=None, description="When that profile was made."
    )
    throttled_trials: int | None = Field(
        default=None,
        description="How many of the run's trials the device throttled in (its `thermal` "
        "section); None: the run recorded no thermal section (no sensor sampled), not 0.",
    )
    thermal_trials: int | None = Field(
        default=None,
        description="Trials the thermal section covers (the denominator of throttled_trials); "
        "None without a thermal section.",
    )


#: Energy scopes, narrowest first (what a figure includes: chip < module < board < wall).
ENERGY_SCOPES = ("chip", "module", "board", "wall")


def rank_group(
    suite: str,
    suite_version: str,
    scenario: str,
    mode: str,
    energy_scope: str | None,
    energy_estimated: bool,
) -> str:
    """A rank group's label: ``mobilenet_v2 1.1 · single-stream · edge · wall · measured``."""
    how = "estimated" if energy_estimated else "measured"
    return f"{suite} {suite_version} · {scenario} · {mode} · {energy_scope or 'no scope'} · {how}"


def _group_key(row: Any) -> tuple[str, str, str, str, bool]:
    return (
        row.suite,
        row.suite_version,
        row.scenario,
        row.energy_scope or "",
        row.energy_method == "estimated",
    )


def leaderboard(
    session: sessionmaker[Session],
    suite: str | None = None,
    *,
    include_invalid: bool = False,
    hide_estimated: bool = False,
    limit: int | None = None,
    mode: str = "edge",
    scope: str | None = None,
) -> list[LeaderboardRow]:
    """Runs ranked by inferences per joule within each rank group (see :func:`rank_group`).

    ``scope`` keeps only runs whose energy scope is that one (chip, module, board, wall).

    Only runs of one ``mode`` are ranked together: a cloud-mode run's own energy is
    the device's encoding only, so it would rank falsely high among edge runs
    (compare those on energy-to-solution, which includes the network and the cloud).

    With ``limit`` (top N per suite version and scenario) each group is read from
    the ``ix_runs_leaderboard`` index, so the cost does not grow with the number of
    stored runs; without it every matching run is ranked.
    """
    if limit is not None:
        return _leaderboard_top(
            session, suite, include_invalid, hide_estimated, max(limit, 0), mode, scope
        )
    dialect = _dialect(session)
    q = _leaderboard_select(dialect).where(Run.mode == mode)
    if scope:
        q = q.where(Run.energy_scope == scope)
    if suite:
        q = q.where(SuiteRow.name == suite)
    if not include_invalid:
        q = q.where(Run.valid.is_(True))
    if hide_estimated:
        q = q.where(Run.energy_method != "estimated")
    q = q.order_by(
        SuiteRow.name,
        SuiteRow.version,
        Run.scenario,
        Run.inferences_per_joule.desc().nulls_last(),
        Run.id,
    )
    groups: dict[tuple[str, str, str, str, bool], list[Any]] = {}
    with session() as s:
        for row in s.execute(q):
            groups.setdefault(_group_key(row), []).append(row)
    rows: list[LeaderboardRow] = []
    for key in sorted(groups, key=_group_order):
        rows += [_leaderboard_row(i + 1, r) for i, r in enumerate(groups[key])]
    return rows


def _dialect(session: sessionmaker[Session]) -> str:
    with session() as s:  # no connection is opened for this
        return s.get_bind().dialect.name


def _group_order(key: tuple[str, str, str, str, bool]) -> tuple[Any, ...]:
    """Groups in suite, version, scenario order; widest scope first, measured before estimated."""
    suite, version, scenario, scope, estimated = key
    width = ENERGY_SCOPES.index(scope) if scope in ENERGY_SCOPES else -1
    return (suite, version, scenario, -width, scope, estimated)


def _leaderboard_select(dialect: str) -> Any:  # a Select; its form differs across SA 2.x
    return (
        select(
            Run.id,
            Run.uuid,
            Run.suite_id,
            SuiteRow.name.label("suite"),
            SuiteRow.version.label("suite_version"),
            Run.scenario,
            ModelArtifactRow.name.label("model"),
            ModelArtifactRow.weights,
            Run.adapter,
            Run.runtime_version,
            Run.execution_provider,
            Device.name.label("device"),
            Device.accelerator,
            Device.cpu_model,
            Run.precision,
            Run.batch,
            Run.threads,
            Run.inferences_per_joule,
            Run.joules_per_inference,
            Run.inferences,
            Run.latency_p50_ms,
            Run.latency_p90_ms,
            Run.latency_p99_ms,
            Run.throughput_ips,
            Run.energy_method,
            Run.energy_scope,
            Run.energy_uncertainty_j,
            Run.valid,
            Run.labels,
            Run.created_at,
            Run.quality,
            Run.mode,
            Run.latency_e2e_p90_ms,
            Run.ttft_ms,
            Run.tpot_ms,
            Run.tokens_per_joule,
            Run.network_j_per_inference,
            Run.energy_to_solution_j_per_inference,
            Run.extras["confidence"].label("confidence"),
            *thermal_count_columns(dialect),
            DeviceProfile.outcome.label("profile_outcome"),
            DeviceProfile.created_at.label("profile_created_at"),
        )
        .join(SuiteRow, Run.suite_id == SuiteRow.id)
        .join(Device, Run.device_id == Device.id)
        .join(ModelArtifactRow, Run.model_artifact_id == ModelArtifactRow.id)
        .outerjoin(DeviceProfile, Run.device_profile_id == DeviceProfile.id)
    )


def _leaderboard_top(
    session: sessionmaker[Session],
    suite: str | None,
    include_invalid: bool,
    hide_estimated: bool,
    limit: int,
    mode: str = "edge",
    scope: str | None = None,
) -> list[LeaderboardRow]:
    """Top ``limit`` per group; the cost follows the rows returned, not the runs stored.

    1. the (suite, scenario) groups, found by seeking through ``ix_runs_leaderboard``
       (see :func:`_groups`);
    2. one UNION ALL of a ``LIMIT`` query per group (and validity) over the runs with
       an energy figure, read in index order;
    3. only for groups with places left, the runs without one (they rank last).

    Each (suite, scenario) group is then split by energy scope and measured/estimated;
    one query per split (scope, estimated) keeps top N per rank group.
    """
    if limit <= 0:
        return []
    dialect = _dialect(session)
    with session() as s:
        groups = _split_groups(s, _groups(s, suite, include_invalid), include_invalid, mode)
        if scope:
            groups = [g for g in groups if g[2] == scope]
        if hide_estimated:
            groups = [g for g in groups if not g[3]]
        if not groups:
            return []
        valid_values = (True, False) if include_invalid else (True,)

        def query(group: _Group, valid: bool, ranked: bool, n: int) -> Any:
            q = _leaderboard_select(dialect).where(
                Run.suite_id == group[0],
                Run.scenario == group[1],
                Run.valid.is_(valid),
                Run.mode == mode,
            )
            scope_col = Run.energy_scope
            q = q.where(scope_col.is_(None) if group[2] == "" else scope_col == group[2])
            if group[3]:
                q = q.where(Run.energy_method == "estimated")
            else:
                q = q.where((Run.energy_method != "estimated") | Run.energy_method.is_(None))
            if hide_estimated:  # as the unlimited path: no figure without a method either
                q = q.where(Run.energy_method != "estimated")
            if ranked:  # plain DESC: the index order on both dialects
                q = q.where(Run.inferences_per_joule.is_not(None)).order_by(
                    Run.inferences_per_joule.desc(), Run.id
                )
            else:
                q = q.where(Run.inferences_per_joule.is_(None)).order_by(Run.id)
            return select(q.limit(n).subquery())

        picked: dict[_Group, list[Any]] = {g: [] for g in groups}

        def fetch(queries: list[Any]) -> None:
            # SQLite allows 500 terms in a compound SELECT: stay well below.
            for i in range(0, len(queries), _UNION_TERMS):
                for row in s.execute(union_all(*queries[i : i + _UNION_TERMS])):
                    key = (
                        row.suite_id,
                        row.scenario,
                        row.energy_scope or "",
                        row.energy_method == "estimated",
                    )
                    picked[key].append(row)

        fetch([query(g, v, True, limit) for g in groups for v in valid_values])
        # Runs without an energy figure rank last: read them only where places are left.
        short = [(g, limit - len(picked[g])) for g in groups if len(picked[g]) < limit]
        fetch([query(g, v, False, n) for g, n in short for v in valid_values])
    out: list[LeaderboardRow] = []
    for group in groups:
        rows = sorted(picked[group], key=_rank_key)
        out += [_leaderboard_row(i + 1, r) for i, r in enumerate(rows[:limit])]
    return out


_Group = tuple[int, str, str, bool]  # suite_id, scenario, energy scope ("" = none), estimated


def _split_groups(
    s: Session, groups: list[tuple[int, str]], include_invalid: bool, mode: str
) -> list[_Group]:
    """Each (suite_id, scenario) group split by energy scope and measured/estimated."""
    out: list[_Group] = []
    for suite_id, scenario in groups:
        q = select(Run.energy_scope, Run.energy_method == "estimated").where(
            Run.suite_id == suite_id, Run.scenario == scenario, Run.mode == mode
        )
        if not include_invalid:
            q = q.where(Run.valid.is_(True))
        splits = {(sc or "", bool(est)) for sc, est in s.execute(q.distinct())}
        ordered = sorted(splits, key=lambda k: _group_order(("", "", "", k[0], k[1])))
        out += [(suite_id, scenario, sc, est) for sc, est in ordered]
    return out


def _groups(s: Session, suite: str | None, include_invalid: bool) -> list[tuple[int, str]]:
    """(suite_id, scenario) pairs that have runs, in leaderboard order.

    Suites are few (a small table); each suite's scenarios are found by seeking to
    the next larger scenario in ``ix_runs_leaderboard``: a few index probes, not a
    scan of the suite's runs.
    """
    suites_q = select(SuiteRow.id).order_by(SuiteRow.name, SuiteRow.version)
    if suite:
        suites_q = suites_q.where(SuiteRow.name == suite)
    groups: list[tuple[int, str]] = []
    for suite_id in list(s.scalars(suites_q)):
        scenario: str | None = None
        while True:
            q = select(Run.scenario).where(Run.suite_id == suite_id)
            if not include_invalid:
                q = q.where(Run.valid.is_(True))
            if scenario is not None:
                q = q.where(Run.scenario > scenario)
            scenario = s.scalar(q.order_by(Run.scenario).limit(1))
            if scenario is None:
                break
            groups.append((suite_id, scenario))
    return groups


def _rank_key(row: Any) -> tuple[bool, float, int]:
    """Leaderboard order within a group: inferences per joule, highest first, NULLs last."""
    ipj = row.inferences_per_joule
    return (ipj is None, -(ipj or 0.0), row.id)


def _leaderboard_row(rank: int, row: Any) -> LeaderboardRow:
    unc = (
        row.energy_uncertainty_j / (row.joules_per_inference * row.inferences) * 100
        if row.energy_uncertainty_j is not None and row.joules_per_inference and row.inferences
        else None
    )
    throttled, trials = thermal_counts(row.throttled_trials, row.thermal_trials)
    return LeaderboardRow(
        rank=rank,
        run_id=row.uuid,
        suite=row.suite,
        suite_version=row.suite_version,
        scenario=row.scenario,
        model=row.model,
        weights=row.weights,
        adapter=row.adapter,
        runtime_version=row.runtime_version,
        execution_provider=row.execution_provider,
        device=row.device,
        hardware=row.accelerator or row.cpu_model,
        precision=row.precision,
        batch=row.batch,
        threads=row.threads,
        inferences_per_joule=row.inferences_per_joule,
        joules_per_inference=row.joules_per_inference,
        latency_p50_ms=row.latency_p50_ms,
        latency_p90_ms=row.latency_p90_ms,
        latency_p99_ms=row.latency_p99_ms,
        throughput_ips=row.throughput_ips,
        energy_method=row.energy_method,
        energy_scope=row.energy_scope,
        energy_estimated=row.energy_method == "estimated",
        energy_uncertainty_pct=unc,
        valid=row.valid,
        labels=list(row.labels or []),
        created_at=row.created_at,
        quality=dict(row.quality or {}),
        mode=row.mode,
        latency_e2e_p90_ms=row.latency_e2e_p90_ms,
        ttft_ms=row.ttft_ms,
        tpot_ms=row.tpot_ms,
        tokens_per_joule=row.tokens_per_joule,
        network_j_per_inference=row.network_j_per_inference,
        energy_to_solution_j_per_inference=row.energy_to_solution_j_per_inference,
        rank_group=rank_group(
            row.suite,
            row.suite_version,
            row.scenario,
            row.mode,
            row.energy_scope,
            row.energy_method == "estimated",
        ),
        confidence=row.confidence or None,
        device_validation=row.profile_outcome,
        device_validation_at=row.profile_created_at,
        throttled_trials=throttled,
        thermal_trials=trials,
    )


def thermal_count_columns(dialect: str) -> tuple[Any, Any]:
    """``throttled_trials`` and ``thermal_trials``: the lengths of a run's
    ``extras.thermal.throttled_trials`` and ``extras.thermal.trials`` lists, NULL where the
    run has no thermal section.

    Integers computed by the database (no JSON decoded in Python per row), and only for the
    rows a query returns.
    """
    if dialect == "sqlite":
        # json_array_length(X, path) is NULL where the path is missing; SQLAlchemy's JSON
        # index would JSON_QUOTE a missing value to 'null', whose length is 0.
        def length(*path: str) -> Any:
            return func.json_array_length(Run.extras, "$." + ".".join(path))
    else:  # PostgreSQL: extras #> '{thermal,trials}' is NULL where missing

        def length(*path: str) -> Any:
            return func.json_array_length(Run.extras[path])

    return (
        length("thermal", "throttled_trials").label("throttled_trials"),
        length("thermal", "trials").label("thermal_trials"),
    )


def thermal_counts(throttled: int | None, trials: int | None) -> tuple[int | None, int | None]:
    """(throttled trials, trials covered) from :func:`thermal_count_columns`; (None, None)
    when the run has no thermal section (no sensor was sampled: unknown, which is not 0)."""
    if throttled is None:
        return None, None
    return int(throttled), (int(trials) if trials else None)


def throttled_text(throttled: int | None, trials: int | None) -> str:
    """``2/5 trials`` for a table cell (``2 trials`` when the count of trials is unknown);
    ``—`` for a run that recorded no thermal section (never 0: nothing was sampled)."""
    if throttled is None:
        return "—"
    return f"{throttled}/{trials} trials" if trials else f"{throttled} trials"


#: The flat CSV columns of a run's achieved 95 % intervals (``wattbench leaderboard --format
#: csv``), in order; empty where the run has no interval (older runs, fewer than 6 trials).
CONFIDENCE_COLUMNS = (
    "trials",
    "ipj_ci_low",
    "ipj_ci_high",
    "ipj_ci_half_width_pct",
    "p90_ci_low_ms",
    "p90_ci_high_ms",
    "p90_ci_half_width_pct",
    "ci_target_pct",
    "ci_stop_reason",
)


def _half_width_pct(iv: dict[str, Any]) -> float | None:
    hw = iv.get("half_width")
    return None if hw is None else float(hw) * 100


def confidence_columns(confidence: dict[str, Any] | None) -> dict[str, Any]:
    """The stored ``confidence`` (a ``TrialConfidence`` as JSON) as :data:`CONFIDENCE_COLUMNS`.

    Missing values are None, never 0: a run without an interval has none. ``ci_stop_reason``
    is ``fixed repeats`` when the run ran its fixed ``--repeats`` (no ``--target-ci``).
    """
    out: dict[str, Any] = dict.fromkeys(CONFIDENCE_COLUMNS)
    if not confidence:
        return out
    ipj = confidence.get("inferences_per_joule") or {}
    p90 = confidence.get("latency_p90_ms") or {}
    out["trials"] = confidence.get("trials")
    out["ipj_ci_low"] = ipj.get("low")
    out["ipj_ci_high"] = ipj.get("high")
    out["ipj_ci_half_width_pct"] = _half_width_pct(ipj)
    out["p90_ci_low_ms"] = p90.get("low")
    out["p90_ci_high_ms"] = p90.get("high")
    out["p90_ci_half_width_pct"] = _half_width_pct(p90)
    out["ci_target_pct"] = confidence.get("target_pct")
    out["ci_stop_reason"] = confidence.get("stopped") or "fixed repeats"
    return out


def half_width_text(half_width_pct: float | None) -> str:
    """``±1.8 %`` for a table cell; ``—`` where there is no interval (never 0)."""
    if half_width_pct is None or half_width_pct != half_width_pct:  # None or NaN
        return "—"
    return f"±{half_width_pct:.2g} %"
