"""Settings sweep: every point of a `wattbench sweep settings` run, latency against
J/inference, with the Pareto front, the energy-optimal point within the latency bound,
the baseline, and throttled points marked.

The points are normal runs labelled ``sweep:<id>`` and ``setting:<k>=<v>``; the front,
optimum and gain are recomputed here with :mod:`wattbench.analysis.sweep`, as the CLI
computes them, for the bound and percentile chosen on the page (the sweep's own by default).
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from wattbench.dashboard import ui
from wattbench.dashboard.queries.settings_sweep import analyse

PERCENTILES = ("p50", "p90", "p95", "p99")

TABLE_HEADERS = {
    "key": "setting",
    "j_per_inference": "J/inf",
    "inferences_per_joule": "inf/J",
    "p50_ms": "p50 ms",
    "p90_ms": "p90 ms",
    "p99_ms": "p99 ms",
    "throughput_ips": "inf/s",
    "feasible": "within bound",
    "mark": "",
    "throttled": "throttled",
    "max_temp_c": "max °C",
    "valid": "valid",
    "detail": "detail",
}


def figure(points: pd.DataFrame, percentile: str, bound_ms: float | None) -> go.Figure:
    """J/inference against the chosen latency percentile: every point, the front as a
    line, the optimum as a star, the baseline as a diamond, throttled points ringed red."""
    lat = f"{percentile}_ms"
    df = points.dropna(subset=["j_per_inference", lat])
    fig = go.Figure()
    hover = (
        "%{customdata[0]}<br>J/inf %{y:.4g} · " + percentile + " %{x:.4g} ms"
        "<br>%{customdata[1]}<extra></extra>"
    )

    def trace(part: pd.DataFrame, name: str, **marker: object) -> None:
        if part.empty:
            return
        notes = [
            ", ".join(
                n
                for n, on in (
                    ("THROTTLED", r.throttled),
                    ("over the bound", r.feasible is False),
                    ("INVALID", not r.valid),
                )
                if on
            )
            or "ok"
            for r in part.itertuples()
        ]
        fig.add_trace(
            go.Scatter(
                x=part[lat],
                y=part["j_per_inference"],
                mode="markers",
                name=name,
                marker={"size": 11, **marker},
                customdata=list(zip(part["key"], notes, strict=True)),
                hovertemplate=hover,
            )
        )

    base = df["baseline"]
    others = df[~base]
    feasible = others["feasible"] != False  # noqa: E712 (None: no bound)
    trace(others[feasible & others["valid"]], "point", color="#1f77b4")
    trace(others[~feasible & others["valid"]], "over the latency bound", color="#b0b0b0")
    trace(others[~others["valid"]], "INVALID", color="#7f7f7f", symbol="x")
    front = df[df["pareto"]].sort_values(lat)
    if not front.empty:
        fig.add_trace(
            go.Scatter(
                x=front[lat],
                y=front["j_per_inference"],
                mode="lines",
                name="Pareto front",
                line={"color": "#2ca02c", "dash": "dot"},
                hoverinfo="skip",
            )
        )
    trace(df[base], "baseline", color="#ff7f0e", symbol="diamond", size=14)
    trace(df[df["optimal"]], "energy-optimal", color="#d62728", symbol="star", size=20)
    throttled = df[df["throttled"]]
    if not throttled.empty:
        fig.add_trace(
            go.Scatter(
                x=throttled[lat],
                y=throttled["j_per_inference"],
                mode="markers",
                name="THROTTLED",
                marker={
                    "size": 22,
                    "symbol": "circle-open",
                    "color": "#d62728",
                    "line": {"width": 2},
                },
                hoverinfo="skip",
            )
        )
    if bound_ms is not None:
        fig.add_vline(
            x=bound_ms,
            line_dash="dash",
            line_color="#7f7f7f",
            annotation_text=f"bound {percentile} ≤ {bound_ms:g} ms",
        )
    fig.update_layout(
        height=480,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "x": 0, "y": 1.12},
        xaxis_title=f"{percentile} latency, ms",
        yaxis_title="J/inference (lower is better)",
    )
    return fig


def table(points: pd.DataFrame) -> pd.DataFrame:
    df = points.copy()
    df["mark"] = [
        " ".join(
            m
            for m, on in (("OPTIMAL", r.optimal), ("pareto", r.pareto), ("baseline", r.baseline))
            if on
        )
        for r in df.itertuples()
    ]
    df["throttled"] = ["THROTTLED" if t else "no" for t in df["throttled"]]
    df["feasible"] = [
        "-" if f is None or (isinstance(f, float) and math.isnan(f)) else ("yes" if f else "no")
        for f in df["feasible"]
    ]
    df["detail"] = "run?run=" + df["run_id"].astype(str)
    return df[list(TABLE_HEADERS)].rename(columns=TABLE_HEADERS)


def render() -> None:
    st.title("Settings sweep")
    db = ui.database()
    sw = ui.settings_sweeps(db.url)
    if sw.empty:
        st.info(
            "No settings sweeps stored yet. A sweep measures runtime and device settings "
            "(batch, threads, precision, CPU frequency, power mode, GPU power limit) as normal "
            "runs labelled `sweep:<id>`; record one with"
        )
        st.code(
            "wattbench sweep settings --config sweep.toml   # see docs/sweeps.md",
            language="bash",
        )
        return
    ids = list(sw["sweep"])
    wanted = st.query_params.get("sweep")
    info = {r.sweep: r for r in sw.itertuples()}
    sweep_id = str(
        st.selectbox(
            "Sweep",
            ids,
            index=ids.index(wanted) if wanted in ids else 0,
            format_func=lambda s: (
                f"{s} · {info[s].suite} on {info[s].device} · {info[s].search} · "
                f"{info[s].runs} runs · {info[s].last:%Y-%m-%d %H:%M}"
            ),
            key="sw_sweep",
        )
    )
    row = info[sweep_id]
    points = ui.settings_sweep_points(db.url, sweep_id)
    if points.empty:
        st.warning("This sweep has no runs any more.")
        return
    c1, c2 = st.columns(2)
    default_pct = row.percentile if row.percentile in PERCENTILES else "p90"
    percentile = str(
        c1.radio(
            "latency percentile",
            PERCENTILES,
            index=PERCENTILES.index(default_pct),
            horizontal=True,
            key=f"sw_pct_{sweep_id}",
        )
    )
    stored_bound = None if pd.isna(row.bound_ms) else float(row.bound_ms)
    bound_in = c2.number_input(
        "latency bound, ms (0: none)",
        min_value=0.0,
        value=stored_bound or 0.0,
        key=f"sw_bound_{sweep_id}",
        help="The sweep's own bound by default; feasible points meet it on the percentile.",
    )
    bound_ms = float(bound_in) if bound_in else None
    marked, ans = analyse(points, bound_ms, percentile)
    measured = int((~marked["baseline"]).sum())
    grid = "?" if pd.isna(row.grid) else int(row.grid)
    badges = ", ".join(sorted(set(marked["energy"])))
    st.caption(
        f"**{ui.md(row.search)}** search: measured **{measured}** of **{grid}** grid points "
        "(+ the baseline: the run as configured, device settings as found). "
        f"Energy: {ui.md(badges)}."
    )
    best = marked[marked["optimal"]]
    cols = st.columns(3)
    if best.empty:
        cols[0].metric("energy-optimal", "none within the bound")
    else:
        b = best.iloc[0]
        cols[0].metric("energy-optimal", b["key"])
        cols[1].metric("J/inference", f"{b['j_per_inference']:.4g}")
    if ans.gain is not None and ans.saving is not None:
        cols[2].metric(
            "vs the baseline", f"{ans.gain:.2f}× inf/J", delta=f"{ans.saving:.0%} less energy"
        )
    n_throttled = int(marked["throttled"].sum())
    if n_throttled:
        hot = ", ".join(marked.loc[marked["throttled"], "key"])
        st.warning(
            f"**{n_throttled} THROTTLED point(s)**: {ui.md(hot)}. The device slowed down during a "
            f"trial (a thermal trip point, a throttle flag or a clock below the one set): "
            f"their figures include it. Cool the device (`--cooldown-until-temp`) and re-measure."
        )
        if not best.empty and bool(best.iloc[0]["throttled"]):
            st.error("The energy-optimal point itself was THROTTLED.")
    if marked["energy"].str.startswith("≈").any():
        st.warning("≈ ESTIMATED energy in this sweep: J/inference is a model (TDP × CPU use).")
    st.plotly_chart(figure(marked, percentile, bound_ms), width="stretch", key="sw_chart")
    st.markdown(
        "**Pareto front** (latency vs J/inference, both lower is better): "
        + (", ".join(ui.md(k) for k in ans.pareto) or "none")
    )
    st.dataframe(
        table(marked),
        hide_index=True,
        width="stretch",
        column_config={
            "J/inf": st.column_config.NumberColumn(format="%.4g"),
            "inf/J": st.column_config.NumberColumn(format="%.3g"),
            "p50 ms": st.column_config.NumberColumn(format="%.3g"),
            "p90 ms": st.column_config.NumberColumn(format="%.3g"),
            "p99 ms": st.column_config.NumberColumn(format="%.3g"),
            "inf/s": st.column_config.NumberColumn(format="%.1f"),
            "max °C": st.column_config.NumberColumn(format="%.1f"),
            "detail": st.column_config.LinkColumn("detail", display_text="open run"),
        },
    )
    st.download_button(
        "Download CSV",
        marked.drop(columns=["settings"]).assign(sweep=sweep_id).to_csv(index=False),
        file_name=f"wattbench-settings-sweep-{sweep_id}.csv",
        mime="text/csv",
        key="sw_csv",
    )
