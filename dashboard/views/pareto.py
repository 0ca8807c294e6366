"""Pareto: energy per inference against p90 latency; the configurations nothing beats."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from wattbench.analysis.pareto import pareto_mask
from wattbench.dashboard import ui
from wattbench.dashboard.queries.leaderboard import group_label, run_intervals, scope_order

FRONT_HEADERS = {
    "config": "configuration",
    "energy": "energy (method · scope)",
    "joules_per_inference": "J/inf",
    "latency_p90_ms": "p90 ms",
    "throughput_ips": "inf/s",
}


#: Marker per energy scope (open when the energy is ≈ estimated).
SCOPE_SYMBOLS = {"wall": "circle", "board": "square", "module": "diamond", "chip": "triangle-up"}
_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def with_fronts(configs: pd.DataFrame) -> pd.DataFrame:
    """Plottable configurations with ``rank_group`` and ``front``: one Pareto front per
    rank group (energy scope × measured/estimated), never one across groups."""
    df = configs.dropna(subset=["joules_per_inference", "latency_p90_ms"]).copy()
    df["rank_group"] = [
        group_label(s, e) for s, e in zip(df["energy_scope"], df["estimated"], strict=True)
    ]
    df["front"] = False
    for _, idx in df.groupby("rank_group", sort=False).groups.items():
        part = df.loc[idx]
        mask = pareto_mask(list(part["joules_per_inference"]), list(part["latency_p90_ms"]))
        df.loc[idx, "front"] = mask
    df["_order"] = [
        (scope_order(s), bool(e)) for s, e in zip(df["energy_scope"], df["estimated"], strict=True)
    ]
    return df.sort_values("_order", kind="stable").drop(columns="_order")


def figure(configs: pd.DataFrame) -> go.Figure:
    """Log-log scatter of J/inference vs p90 latency with one front per rank group (energy
    scope × measured/estimated), markers by scope, estimated energy as open markers."""
    df = with_fronts(configs)
    fig = go.Figure()
    hover = (
        "%{customdata[0]}<br>energy: %{customdata[1]}<br>J/inf %{x:.4g} · p90 %{y:.4g} ms"
        "<br>%{customdata[2]:.1f} inf/s · %{customdata[3]} run(s)"
        "<br>latest run's 95% CI inf/J %{customdata[4]} (%{customdata[5]})<extra></extra>"
    )
    for c in ("ci", "ci_stop"):  # no interval known: —, never 0
        df[c] = df[c].fillna("—") if c in df else "—"
    for i, (group, part) in enumerate(df.groupby("rank_group", sort=False)):
        color = _COLORS[i % len(_COLORS)]
        scope = part["energy_scope"].iloc[0]
        symbol = SCOPE_SYMBOLS.get(scope, "x")
        if bool(part["estimated"].iloc[0]):
            symbol += "-open"
        for on_front in (True, False):
            pts = part[part["front"] == on_front]
            if pts.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=pts["joules_per_inference"],
                    y=pts["latency_p90_ms"],
                    mode="markers",
                    name=f"{group} · {'front' if on_front else 'dominated'}",
                    legendgroup=str(group),
                    opacity=1.0 if on_front else 0.45,
                    marker={
                        "symbol": symbol,
                        "color": color,
                        "size": 12 if on_front else 9,
                        "line": {"width": 2},
                    },
                    customdata=pts[
                        ["config", "energy", "throughput_ips", "runs", "ci", "ci_stop"]
                    ].to_numpy(),
                    hovertemplate=hover,
                )
            )
        front = part[part["front"]].sort_values("joules_per_inference")
        if len(front) > 1:
            fig.add_trace(
                go.Scatter(
                    x=front["joules_per_inference"],
                    y=front["latency_p90_ms"],
                    mode="lines",
                    line={"color": color, "dash": "dot", "shape": "hv"},
                    name=f"{group} front",
                    legendgroup=str(group),
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
    fig.update_xaxes(type="log", title="joules per inference (lower is better)")
    fig.update_yaxes(type="log", title="p90 latency, ms (lower is better)")
    fig.update_layout(
        height=560, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"}
    )
    return fig


def render() -> None:
    st.title("Pareto front")
    db = ui.database()
    sel = ui.sidebar_selection(db)
    if sel is None:
        st.info("No valid runs yet.")
        return
    ui.mode_note(sel)
    configs = sel.configurations()
    if not configs.empty:  # each point's latest run's achieved interval, for the hover text
        configs = configs.merge(
            run_intervals(db, configs["run_id"].astype(str).tolist()), on="run_id", how="left"
        )
    st.subheader(f"{ui.md(sel.title)} · joules per inference vs p90 latency")
    usable = configs.dropna(subset=["joules_per_inference", "latency_p90_ms"])
    if usable.empty:
        st.warning("No configuration here has both an energy figure and a latency.")
        return
    st.plotly_chart(figure(configs), width="stretch", key="pareto_chart")
    st.caption(
        "A configuration is on the front when no other one *of its group* is both more "
        "frugal and faster. Groups are energy scope (marker: ● wall, ■ board, ◆ module, "
        "▲ chip) × measured or ≈ estimated (open markers): figures of different scopes are "
        "not comparable, so each group has its own front and there is no combined one."
    )
    df = with_fronts(usable)
    st.markdown(f"**On the fronts** ({int(df['front'].sum())} of {len(df)} configurations)")
    for group, part in df.groupby("rank_group", sort=False):
        front = part[part["front"]]
        st.markdown(f"**{ui.md(group)}** ({len(front)} of {len(part)} on its front)")
        shown = front.sort_values("joules_per_inference")[
            ["config", "energy", "joules_per_inference", "latency_p90_ms", "throughput_ips", "runs"]
        ].rename(columns=FRONT_HEADERS)
        st.dataframe(ui.highlight_estimates(shown), hide_index=True, width="stretch")
