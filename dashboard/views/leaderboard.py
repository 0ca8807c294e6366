"""Leaderboard: configurations ranked like with like.

Within one suite version, scenario and mode, and one rank group: energy scope (chip,
module, board, wall) × measured or estimated; the group is chosen above the table.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from wattbench.dashboard import ui
from wattbench.dashboard.queries.leaderboard import (
    RANKINGS,
    group_label,
    labels_of,
    rank,
    rankings_for,
    run_intervals,
    run_throttling,
    run_validation,
    scope_order,
)
from wattbench.results_db.readonly import Database

#: (column, header) shown, in order; the CSV has every column of the ranking.
_SHOWN = (
    ("rank", "#"),
    ("rank_group", "group (scope · energy)"),
    ("hardware", "hardware"),
    ("runtime", "runtime"),
    ("execution_provider", "provider"),
    ("model", "model"),
    ("precision", "precision"),
    ("batch", "batch"),
    ("energy", "energy (method · scope)"),
    ("inferences_per_joule", "inf/J"),
    ("joules_per_inference", "J/inf"),
    ("uncertainty_pct", "± %"),
    ("ci", "95% CI inf/J"),
    ("ci_stop", "CI stop"),
    ("throttled", "throttled"),
    ("validated", "validated"),
    ("tokens_per_joule", "tokens/J"),
    ("energy_to_solution_j_per_inference", "energy-to-solution J/inf"),
    ("network_j_per_inference", "network J/inf (modelled)"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p90_ms", "p90 ms"),
    ("latency_p99_ms", "p99 ms"),
    ("throughput_ips", "inf/s"),
    ("runs", "runs"),
    ("devices", "devices"),
    ("device", "device"),
    ("last_run", "last run"),
    ("started_at", "started"),
    ("labels", "labels"),
    ("detail", "detail"),
)
MAX_SHOWN_ROWS = 1000


def with_run_columns(db: Database, ranked: pd.DataFrame) -> pd.DataFrame:
    """``ranked`` with each row's run's 95 % interval, throttled trials and device
    validation (read per run: the per-configuration summaries keep none of them, so a
    configuration row gets its latest run's)."""
    ids = ranked["run_id"].astype(str).tolist()
    out = ranked
    for extra in (run_intervals, run_throttling, run_validation):
        out = out.merge(extra(db, ids), on="run_id", how="left")
    return out


def csv_text(db: Database, ranked: pd.DataFrame) -> str:
    """The CSV of every ranked row: every column of the ranking plus the table's per-run
    ones (95 % CI, CI stop, throttled, validated, with their figures)."""
    full = with_run_columns(db, ranked).drop(columns=["run_ids", "run_pk"], errors="ignore")
    return full.to_csv(index=False)


def table(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked rows as shown: known columns only, empty optional figures dropped."""
    df = ranked.copy()
    df["detail"] = "run?run=" + df["run_id"].astype(str)
    if "labels_json" in df:
        df["labels"] = labels_of(df)
    cols = [c for c, _ in _SHOWN if c in df.columns]
    for optional in (
        "tokens_per_joule",
        "network_j_per_inference",
        "energy_to_solution_j_per_inference",
    ):
        if optional in cols and df[optional].isna().all():
            cols.remove(optional)
    return df[cols].rename(columns=dict(_SHOWN))


def pick_group(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows of one rank group (energy scope × measured/estimated), chosen by the user.

    Runs rank only like with like: a chip-only figure never "beats" a wall-plug one.
    """
    scopes = rows["energy_scope"].astype("string").fillna("").tolist()
    present = sorted(set(scopes), key=lambda x: (scope_order(x), x))
    if st.session_state.get("lb_scope") not in present:
        st.session_state["lb_scope"] = present[0]
    c1, c2 = st.columns([3, 2])
    scope = c1.radio(
        "Energy scope",
        present,
        format_func=lambda x: ui.md(x) if x else "no scope",
        horizontal=True,
        key="lb_scope",
        help="What the energy figure covers: chip < module < board < wall. Runs rank only "
        "against runs of the same scope.",
    )
    in_scope = rows[[s == scope for s in scopes]]
    kinds = sorted({bool(e) for e in in_scope["estimated"]})
    est_names = ["measured" if not k else "estimated" for k in kinds]
    if st.session_state.get("lb_estimated") not in est_names:
        st.session_state["lb_estimated"] = est_names[0]
    how = c2.radio(
        "Energy",
        est_names,
        horizontal=True,
        key="lb_estimated",
        help="Measured and ≈ estimated figures rank separately.",
    )
    want = how == "estimated"
    chosen = in_scope[[bool(e) == want for e in in_scope["estimated"]]]
    return chosen, group_label(scope, want)


def render() -> None:
    st.title("Leaderboard")
    db = ui.database()
    sel = ui.sidebar_selection(db)
    if sel is None:
        st.info("No valid runs to rank yet; invalid runs are never ranked.")
        return
    c1, c2 = st.columns([3, 2])
    fc = ui.facets(sel.url, sel.suite, sel.version, sel.scenario)
    mode = sel.filters.mode
    options = rankings_for(sel.suite, has_tokens=fc.has_tokens, mode=mode)
    # Another mode (or suite) brings its own default ranking: energy-to-solution for
    # cloud/hybrid runs, whose own J/inference is only the device's share.
    context = (sel.suite, mode)
    if (
        st.session_state.get("lb_context") != context
        or st.session_state.get("lb_metric") not in options
    ):
        st.session_state["lb_metric"] = options[0]
    st.session_state["lb_context"] = context
    metric = c1.radio(
        "Rank by",
        options,
        format_func=lambda m: RANKINGS[m].label,
        horizontal=True,
        key="lb_metric",
    )
    per = c2.radio(
        "One row per",
        ["configuration", "run"],
        horizontal=True,
        key="lb_per",
        help="configuration: the mean of its valid runs (hardware × runtime × model × "
        "precision × batch × threads × energy method and scope; exact medians on the Compare "
        "page); run: every valid run.",
    )
    rows = sel.runs() if per == "run" else sel.configurations()
    if rows.empty:
        st.subheader(f"{ui.md(sel.title)} · ranked by {RANKINGS[str(metric)].label}")
        st.warning("No runs match the filters.")
        return
    rows, group = pick_group(rows)
    st.subheader(f"{ui.md(sel.title)} · {ui.md(group)} · ranked by {RANKINGS[str(metric)].label}")
    ranked = rank(rows, str(metric))
    n_est = int(ranked["estimated"].sum())
    st.caption(
        f"{len(ranked)} {per}s · {n_est} with ≈ ESTIMATED energy"
        + (" (hidden: toggle in the sidebar)" if sel.filters.hide_estimated else "")
        + " · invalid runs are excluded"
    )
    if mode != "edge":
        st.info(
            f"**{mode} mode:** inf/J and J/inf are the device's own share of the work (its "
            "readers over its windows). Energy-to-solution adds the network (bytes measured, "
            "joules **modelled**) and the cloud's compute (measured or estimated, see the run): "
            "rank these runs by it, never against edge runs."
        )
    shown = table(with_run_columns(db, ranked.head(MAX_SHOWN_ROWS)))
    st.dataframe(
        # Estimated rows are tinted. A rank group is all measured or all estimated, so a
        # measured one (the default) goes without the Styler: its per-cell styles cost
        # the browser ~1 s at a few hundred rows on a busy machine.
        ui.highlight_estimates(shown) if n_est else shown,
        hide_index=True,
        width="stretch",
        column_config={
            "inf/J": st.column_config.NumberColumn(format="%.3g"),
            "J/inf": st.column_config.NumberColumn(format="%.3g"),
            "± %": st.column_config.NumberColumn(format="%.0f"),
            "tokens/J": st.column_config.NumberColumn(format="%.3g"),
            "network J/inf (modelled)": st.column_config.NumberColumn(format="%.3g"),
            "energy-to-solution J/inf": st.column_config.NumberColumn(format="%.3g"),
            "p50 ms": st.column_config.NumberColumn(format="%.3f"),
            "p90 ms": st.column_config.NumberColumn(format="%.3f"),
            "p99 ms": st.column_config.NumberColumn(format="%.3f"),
            "inf/s": st.column_config.NumberColumn(format="%.1f"),
            "detail": st.column_config.LinkColumn("detail", display_text="open run"),
        },
    )
    if len(ranked) > MAX_SHOWN_ROWS:
        st.caption(f"Showing the top {MAX_SHOWN_ROWS} of {len(ranked)}; the CSV has them all.")
    ui.estimate_legend()
    st.caption(
        "95% CI inf/J: half-width of the run's 95 % interval of the median inferences per "
        "joule across its trials (`wattbench run --target-ci`); CI stop: why it stopped "
        "measuring. throttled: the run's trials in which the device throttled (its figures "
        "are worse than the setting can do cool). validated: the device's `wattbench doctor "
        "--save` profile when the run was stored (✓ and its date; ✗ failed; estimate only). "
        "A configuration row shows its latest run's. — : no interval recorded, no temperature "
        "sampled, or the device never profiled."
    )
    st.download_button(
        "Download CSV",
        # Built on click (every ranked row's interval, thermal and validation are read
        # then), not on every render.
        lambda: csv_text(db, ranked),
        file_name=f"wattbench-{sel.suite}-{sel.version}-{sel.scenario}-{metric}.csv",
        mime="text/csv",
        key="lb_csv",
    )
