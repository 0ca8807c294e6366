"""Pareto: energy per inference against p90 latency; the configurations nothing beats."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from wattbench.analysis.pareto import pareto_mask
from wattbench.dashboard import ui

FRONT_HEADERS = {
    "config": "configuration",
    "energy": "energy (method · scope)",
    "joules_per_inference": "J/inf",
    "latency_p90_ms": "p90 ms",
    "throughput_ips": "inf/s",
}


def figure(configs: pd.DataFrame) -> go.Figure:
    """Log-log scatter of J/inference vs p90 latency, the front highlighted and joined,
    estimated energy drawn as open markers; hover shows the configuration."""
    df = configs.dropna(subset=["joules_per_inference", "latency_p90_ms"]).copy()
    df["front"] = pareto_mask(list(df["joules_per_inference"]), list(df["latency_p90_ms"]))
    fig = go.Figure()
    hover = (
        "%{customdata[0]}<br>energy: %{customdata[1]}<br>J/inf %{x:.4g} · p90 %{y:.4g} ms"
        "<br>%{customdata[2]:.1f} inf/s · %{customdata[3]} run(s)<extra></extra>"
    )
    groups: list[tuple[str, Any, str, str]] = [
        ("Pareto front · measured", df["front"] & ~df["estimated"], "circle", "#d62728"),
        ("Pareto front · ≈ estimated", df["front"] & df["estimated"], "circle-open", "#d62728"),
        ("dominated · measured", ~df["front"] & ~df["estimated"], "circle", "#7f7f7f"),
        ("dominated · ≈ estimated", ~df["front"] & df["estimated"], "circle-open", "#7f7f7f"),
    ]
    for name, mask, symbol, color in groups:
        part = df[mask]
        if part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=part["joules_per_inference"],
                y=part["latency_p90_ms"],
                mode="markers",
                name=name,
                marker={"symbol": symbol, "color": color, "size": 11, "line": {"width": 2}},
                customdata=part[["config", "energy", "throughput_ips", "runs"]].to_numpy(),
                hovertemplate=hover,
            )
        )
    front = df[df["front"]].sort_values("joules_per_inference")
    if len(front) > 1:
        fig.add_trace(
            go.Scatter(
                x=front["joules_per_inference"],
                y=front["latency_p90_ms"],
                mode="lines",
                line={"color": "#d62728", "dash": "dot", "shape": "hv"},
                name="front",
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
    st.subheader(f"{sel.title} · joules per inference vs p90 latency")
    usable = configs.dropna(subset=["joules_per_inference", "latency_p90_ms"])
    if usable.empty:
        st.warning("No configuration here has both an energy figure and a latency.")
        return
    st.plotly_chart(figure(configs), width="stretch", key="pareto_chart")
    st.caption(
        "A configuration is on the front when no other one is both more frugal and faster. "
        "Open markers are ≈ ESTIMATED energy (hide them in the sidebar); points of different "
        "scopes (chip, module, board, wall) are not comparable, so read the front within one."
    )
    front = usable[
        pareto_mask(list(usable["joules_per_inference"]), list(usable["latency_p90_ms"]))
    ]
    st.markdown(f"**On the front** ({len(front)} of {len(usable)} configurations)")
    shown = front.sort_values("joules_per_inference")[
        ["config", "energy", "joules_per_inference", "latency_p90_ms", "throughput_ips", "runs"]
    ].rename(columns=FRONT_HEADERS)
    st.dataframe(ui.highlight_estimates(shown), hide_index=True, width="stretch")
