"""Run detail: one run's power trace, latency distribution, trials, configuration, energy."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from wattbench.dashboard import ui
from wattbench.dashboard.queries.common import energy_badge
from wattbench.dashboard.queries.device_profile import validation_text
from wattbench.dashboard.queries.run_detail import latency_frame, trace_frame, trial_table
from wattbench.results_db.readonly import Database

if TYPE_CHECKING:
    from wattbench.core.results import RunResult


def trace_figure(traces: pd.DataFrame, reader: str) -> go.Figure:
    """Power over each trial's window, the idle baseline and the measured window marked."""
    df = traces[traces["reader"] == reader]
    fig = go.Figure()
    for trial, part in df.groupby("trial"):
        fig.add_trace(
            go.Scatter(
                x=part["t_s"], y=part["power_w"], mode="lines", name=f"trial {int(trial) + 1}"
            )
        )
    window = float(df["window_s"].max())
    idle = float(df["idle_w"].iloc[0])
    fig.add_vrect(
        x0=0,
        x1=window,
        fillcolor="#2ca02c",
        opacity=0.08,
        line_width=0,
        annotation_text="measured window",
        annotation_position="top left",
    )
    fig.add_hline(
        y=idle,
        line_dash="dash",
        line_color="#555",
        annotation_text=f"idle baseline {idle:.3g} W",
        annotation_position="bottom right",
    )
    fig.update_xaxes(title="seconds from the start of the trial's window")
    fig.update_yaxes(title="power, W", rangemode="tozero")
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def latency_figure(hist: pd.DataFrame) -> go.Figure:
    """Per-query latency histogram (log bins) with the CDF on a second axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=(hist["lower_ms"] * hist["upper_ms"]) ** 0.5,
            y=hist["count"],
            width=hist["upper_ms"] - hist["lower_ms"],
            name="queries",
            marker_color="#1f77b4",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=hist["upper_ms"],
            y=hist["cdf"],
            mode="lines+markers",
            name="CDF",
            line={"color": "#ff7f0e", "shape": "hv"},
        ),
        secondary_y=True,
    )
    fig.update_xaxes(type="log", title="latency, ms")
    fig.update_yaxes(title="queries", secondary_y=False)
    fig.update_yaxes(title="cumulative fraction", range=[0, 1.02], secondary_y=True)
    fig.update_layout(height=340, margin={"l": 10, "r": 10, "t": 30, "b": 10}, bargap=0)
    return fig


def _pick_run(db: Database) -> str | None:
    wanted = st.query_params.get("run", "")
    recent = ui.recent_runs(db.url)
    options = list(recent["run_id"])
    if wanted and wanted not in options:
        options.insert(0, wanted)
    if not options:
        return None
    labels = {
        r.run_id: f"{r.run_id[:8]} · {r.suite} · {r.scenario} · {r.device} · {r.adapter} · "
        f"{pd.Timestamp(r.started_at):%Y-%m-%d %H:%M}"
        for r in recent.itertuples()
    }
    choice = st.selectbox(
        "Run",
        options,
        index=options.index(wanted) if wanted in options else 0,
        format_func=lambda r: labels.get(r, r),
        key="rd_run",
        help="The 200 most recent runs; the leaderboard's *open run* links open any run.",
    )
    if choice and choice != wanted:
        st.query_params["run"] = choice
    return str(choice) if choice else None


def _energy_table(r: RunResult) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for i, e in enumerate(r.energy):
        rows.append(
            {
                "reader": e.reader + (" (headline)" if i == 0 else ""),
                "energy": energy_badge(e.method.value, e.scope.value),
                "component": e.component,
                "gross J": e.gross_j,
                "idle W": e.idle_w,
                "net J": e.net_j,
                "mean W": e.mean_power_w,
                "peak W": e.peak_power_w,
                "inf/J": e.inferences_per_joule,
                "J/inf": e.joules_per_inference,
                "uncertainty J": e.uncertainty_j,
                "± %": e.uncertainty_j / e.gross_j * 100
                if e.uncertainty_j is not None and e.gross_j
                else None,
            }
        )
    return pd.DataFrame(rows)


def render() -> None:
    st.title("Run detail")
    db = ui.database()
    run_id = _pick_run(db)
    if run_id is None:
        st.info("No runs yet.")
        return
    r = ui.run_result(db.url, run_id)
    if r is None:
        st.error(f"No run {run_id} in this database.")
        return
    head = r.headline
    badge = energy_badge(head.method.value, head.scope.value) if head else "no energy"
    st.subheader(  # stored text, anyone's: shown literally (ui.md)
        ui.md(
            f"{r.suite} {r.suite_version} · {r.scenario} · {r.device.get('name')} · "
            f"{r.adapter.adapter} {r.adapter.runtime_version} · {r.model.name} "
            f"{r.adapter.precision}"
        )
    )
    if not r.valid:
        st.error("INVALID run (never ranked): " + ui.md("; ".join(r.invalid_reasons)))
    if head is not None and head.estimated:
        st.warning(
            "≈ ESTIMATED energy: a model (TDP × CPU utilisation), not a measurement. "
            + ui.ESTIMATE_NOTE.split(";")[0].split("not a measurement")[-1]
        )
    cols = st.columns(5)
    unc = (
        f"± {head.uncertainty_j / head.gross_j * 100:.0f} %"
        if head and head.uncertainty_j is not None and head.gross_j
        else "± unknown"
    )
    prefix = "≈ " if head is not None and head.estimated else ""
    ipj = head.inferences_per_joule if head else None
    cols[0].metric("inferences / J", f"{prefix}{ipj:.4g}" if ipj else "—", unc, delta_color="off")
    cols[1].metric("p90 latency", f"{r.latency.p90_ms:.3f} ms")
    cols[2].metric("throughput", f"{r.throughput_ips:.1f} inf/s")
    cols[3].metric("energy", badge)
    cols[4].metric(
        "quality", "passed" if r.quality.passed else "FAILED", r.quality.kind, delta_color="off"
    )
    device = r.device.get("name")
    st.caption(
        validation_text(ui.run_device_profile(db.url, run_id), ui.md(device) if device else None)
    )
    extras = ui.run_extras(db.url, run_id)
    if extras.get("network_j_per_inference") is not None:
        st.info(
            f"Network energy: {extras['network_j_per_inference']:.4g} J/inference — "
            "**modelled** from measured bytes, not measured (see docs/network.md)."
        )

    st.markdown("#### Power trace")
    traces = trace_frame(r)
    if traces.empty:
        st.caption("No power trace was recorded for this run.")
    else:
        readers = list(dict.fromkeys(traces["reader"]))
        reader = (
            st.radio("Reader", readers, horizontal=True, format_func=ui.md, key="rd_reader")
            if len(readers) > 1
            else readers[0]
        )
        st.plotly_chart(trace_figure(traces, str(reader)), width="stretch", key="rd_trace")

    left, right = st.columns(2)
    with left:
        st.markdown("#### Latency distribution")
        hist = latency_frame(r)
        if hist.empty:
            st.caption("No latency histogram stored.")
        else:
            st.plotly_chart(latency_figure(hist), width="stretch", key="rd_latency")
        lat = r.latency
        st.caption(
            f"{lat.count} queries · p50 {lat.p50_ms:.3f} · p90 {lat.p90_ms:.3f} · "
            f"p99 {lat.p99_ms:.3f} · p99.9 {lat.p999_ms:.3f} ms"
        )
    with right:
        st.markdown("#### Energy")
        st.dataframe(_energy_table(r), hide_index=True, width="stretch")
        st.caption(
            "gross = what the reader measured over the windows; net = gross − idle × time. "
            "Ranking uses gross."
        )
        if r.carbon is not None:
            st.caption(
                f"Carbon: {r.carbon.g_co2e_per_1000_inferences:.4g} g CO2e / 1000 inferences "
                f"at {r.carbon.intensity_g_per_kwh:.0f} g/kWh ({r.carbon.intensity_source}; "
                f"energy {r.carbon.energy_method})"
            )

    st.markdown("#### Trials")
    if r.thermal is not None and r.thermal.throttled_trials:
        st.warning(
            f"THROTTLED in trial(s) {', '.join(str(i + 1) for i in r.thermal.throttled_trials)} "
            f"(hottest {r.thermal.max_temp_c} °C): the figures include the slowdown."
        )
    st.dataframe(trial_table(r), hide_index=True, width="stretch")
    st.markdown("#### Quality check")
    st.json(r.quality.model_dump(mode="json"), expanded=True)
    if r.warnings:
        st.warning("\n".join(f"- {ui.md(w)}" for w in r.warnings))
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("#### Configuration")
        st.json(
            {
                "run_id": r.run_id,
                "labels": r.labels,
                "config": r.config.model_dump(mode="json"),
                "adapter": r.adapter.model_dump(mode="json"),
                "model": r.model.model_dump(mode="json"),
                "inputs": r.inputs,
                "started_at": r.started_at.isoformat(),
            },
            expanded=False,
        )
    with c2:
        st.markdown("#### Environment fingerprint")
        st.json({"device": r.device, "environment": r.environment}, expanded=False)
    st.download_button(
        "Download run JSON",
        json.dumps(r.model_dump(mode="json"), indent=1),
        file_name=f"run-{r.run_id}.json",
        mime="application/json",
        key="rd_json",
    )
