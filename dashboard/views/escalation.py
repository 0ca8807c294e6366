"""Escalation sweep: energy-to-solution against the escalation threshold, with quality.

A sweep is the runs sharing a ``sweep:<id>`` label (``wattbench sweep escalation|payload``);
each run is one point. Energy-to-solution per inference = edge compute (the run's headline
reader) + network (bytes measured, joules modelled) + cloud compute (the server's reader, or
a configured figure): the parts are stacked per point with their labels.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from wattbench.dashboard import ui

TABLE_HEADERS = {
    "value": "value",
    "escalation_rate": "escalation rate",
    "energy_to_solution_j": "energy-to-solution J/inf",
    "edge_j": "edge J/inf",
    "edge_energy": "edge energy",
    "network_j": "network J/inf (modelled)",
    "network_j_low": "network low",
    "network_j_high": "network high",
    "cloud_j": "cloud J/inf",
    "cloud_energy": "cloud energy",
    "agreement_with_cloud": "agreement with cloud",
    "bytes_per_inference": "bytes/inf",
    "e2e_p50_ms": "e2e p50 ms",
    "escalated": "escalated",
    "escalation_failures": "failed escalations",
    "valid": "valid",
    "detail": "detail",
}


def _x(points: pd.DataFrame, axis: str) -> tuple[pd.Series, str]:
    if axis == "escalation rate":
        return points["escalation_rate"], "escalation rate (share of queries sent to the cloud)"
    if points["x"].notna().all():
        return points["x"], "threshold (escalate when confidence is below)"
    return points["value"], "swept value"


def curve(points: pd.DataFrame, axis: str) -> go.Figure:
    """Energy-to-solution (left, log) and agreement with the cloud (right) per point."""
    x, title = _x(points, axis)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    custom = points[
        ["value", "edge_j", "network_j", "cloud_j", "cloud_energy", "escalation_rate", "run_id"]
    ].to_numpy()
    hover = (
        "value %{customdata[0]} · escalation rate %{customdata[5]:.1%}<br>"
        "energy-to-solution %{y:.4g} J/inf<br>edge %{customdata[1]:.3g} · network "
        "%{customdata[2]:.3g} (modelled) · cloud %{customdata[3]:.3g} (%{customdata[4]})"
        "<extra></extra>"
    )
    valid = points["valid"]
    for mask, name, symbol in ((valid, "valid", "circle"), (~valid, "INVALID", "x")):
        part = points[mask]
        if part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=x[mask],
                y=part["energy_to_solution_j"],
                mode="lines+markers" if name == "valid" else "markers",
                name=f"energy-to-solution J/inf ({name})",
                marker={"symbol": symbol, "size": 10, "color": "#1f77b4"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": part["energy_to_solution_high_j"] - part["energy_to_solution_j"],
                    "arrayminus": part["energy_to_solution_j"] - part["energy_to_solution_low_j"],
                    "thickness": 1,
                },
                customdata=custom[mask.to_numpy()],
                hovertemplate=hover,
            ),
            secondary_y=False,
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=points["agreement_with_cloud"],
            mode="lines+markers",
            name="agreement with cloud (quality)",
            line={"dash": "dot", "color": "#2ca02c"},
            marker={"symbol": "diamond", "size": 9},
            hovertemplate="agreement %{y:.1%}<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.update_xaxes(title=title)
    fig.update_yaxes(title="energy-to-solution, J/inference (log)", type="log", secondary_y=False)
    fig.update_yaxes(
        title="agreement with the cloud (quality)",
        tickformat=".0%",
        range=[0, 1.02],
        dtick=0.2,
        showgrid=False,
        secondary_y=True,
    )
    fig.update_layout(
        height=460,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "x": 0, "y": 1.12},  # above: clear of the axis title
    )
    return fig


def stack(points: pd.DataFrame) -> go.Figure:
    """Edge / network / cloud joules per inference stacked per point, each part labelled."""
    x = [f"{v} ({r:.1%})" for v, r in zip(points["value"], points["escalation_rate"], strict=True)]
    edge_kinds = ", ".join(sorted(set(points["edge_energy"])))
    cloud_kinds = ", ".join(sorted(set(points["cloud_energy"].fillna("none"))))
    fig = go.Figure()
    for col, name, color in (
        ("edge_j", f"edge compute ({edge_kinds})", "#1f77b4"),
        ("network_j", "network (bytes measured, joules MODELLED)", "#ff7f0e"),
        ("cloud_j", f"cloud compute ({cloud_kinds})", "#9467bd"),
    ):
        fig.add_trace(
            go.Bar(
                x=x,
                y=points[col].fillna(0.0),
                name=name,
                marker_color=color,
                hovertemplate=f"{name}: %{{y:.4g}} J/inf<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        height=380,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "x": 0, "y": 1.15},
        xaxis_title="swept value (escalation rate)",
        yaxis_title="J/inference",
    )
    return fig


def table(points: pd.DataFrame) -> pd.DataFrame:
    df = points.copy()
    df["detail"] = "run?run=" + df["run_id"].astype(str)
    return df[list(TABLE_HEADERS)].rename(columns=TABLE_HEADERS)


def render() -> None:
    st.title("Escalation sweep")
    db = ui.database()
    sw = ui.sweeps(db.url)
    if sw.empty:
        st.info("No sweeps stored yet. A sweep's runs share a `sweep:<id>` label; record one with")
        st.code(
            "wattbench sweep escalation --suite mobilenet_v2 --adapter onnxruntime \\\n"
            "    --cloud-url http://127.0.0.1:8765/ --thresholds 0,0.25,0.5,0.75,1",
            language="bash",
        )
        return
    ids = list(sw["sweep"])
    wanted = st.query_params.get("sweep")
    labels = {
        r.sweep: f"{r.sweep} · {r.kind} · {r.suite} on {r.device} · {r.runs} runs · "
        f"{r.last:%Y-%m-%d %H:%M}"
        for r in sw.itertuples()
    }
    sweep_id = st.selectbox(
        "Sweep",
        ids,
        index=ids.index(wanted) if wanted in ids else 0,
        format_func=labels.__getitem__,
        key="esc_sweep",
    )
    points = ui.sweep_points(db.url, str(sweep_id))
    if points.empty:
        st.warning("This sweep has no runs any more.")
        return
    n_bad = int((~points["valid"]).sum())
    st.caption(
        "Energy-to-solution per inference = edge compute (the run's own reader: "
        "measured or ≈ estimated) + network (bytes **measured** at the socket × a "
        "**modelled** J/byte, error bars: the model's low–high range) + cloud compute "
        "(the server's reader: measured, estimated, or none). Quality: the share of final "
        "answers equal to the cloud model's."
        + (f" **{n_bad} invalid run(s)** are drawn as ×." if n_bad else "")
    )
    axes = ["threshold", "escalation rate"] if points["x"].notna().all() else ["value"]
    axis = st.radio("x axis", axes, horizontal=True, key="esc_axis")
    st.plotly_chart(curve(points, str(axis)), width="stretch", key="esc_curve")
    st.markdown("#### Where the joules go, per point")
    st.plotly_chart(stack(points), width="stretch", key="esc_stack")
    if points["edge_energy"].str.startswith("≈").any():
        st.warning("≈ ESTIMATED edge energy in this sweep: the edge part is a model, too.")
    st.dataframe(
        table(points),
        hide_index=True,
        width="stretch",
        column_config={
            "escalation rate": st.column_config.NumberColumn(format="percent"),
            "agreement with cloud": st.column_config.NumberColumn(format="percent"),
            "energy-to-solution J/inf": st.column_config.NumberColumn(format="%.4g"),
            "edge J/inf": st.column_config.NumberColumn(format="%.3g"),
            "network J/inf (modelled)": st.column_config.NumberColumn(format="%.3g"),
            "network low": st.column_config.NumberColumn(format="%.3g"),
            "network high": st.column_config.NumberColumn(format="%.3g"),
            "cloud J/inf": st.column_config.NumberColumn(format="%.3g"),
            "bytes/inf": st.column_config.NumberColumn(format="%.0f"),
            "e2e p50 ms": st.column_config.NumberColumn(format="%.2f"),
            "detail": st.column_config.LinkColumn("detail", display_text="open run"),
        },
    )
    st.download_button(
        "Download CSV",
        points.assign(sweep=sweep_id).to_csv(index=False),
        file_name=f"wattbench-sweep-{sweep_id}.csv",
        mime="text/csv",
        key="esc_csv",
    )
