"""Campaigns: a lab campaign's progress per device, its failures with their reason, and its
results as a leaderboard restricted to it (``wattbench campaign``, docs/fleet.md)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from wattbench.dashboard import ui
from wattbench.dashboard.queries import campaigns as q

_COLORS = {
    "done": "#2ca02c",
    "running": "#1f77b4",
    "failed": "#d62728",
    "skipped": "#7f7f7f",
    "pending": "#c7c7c7",
    "cancelled": "#ff7f0e",
}


@st.cache_data(ttl=5, show_spinner=False)  # progress moves: a short TTL
def _campaigns(url: str) -> pd.DataFrame:
    return q.campaigns(ui.database())


@st.cache_data(ttl=5, show_spinner=False)
def _progress(url: str, campaign_id: str) -> pd.DataFrame:
    return q.progress(ui.database(), campaign_id)


@st.cache_data(ttl=5, show_spinner=False)
def _problems(url: str, campaign_id: str) -> pd.DataFrame:
    return q.problems(ui.database(), campaign_id)


@st.cache_data(ttl=ui.CACHE_TTL_S, show_spinner="Ranking…")
def _results(url: str, campaign_id: str) -> pd.DataFrame:
    return q.results(ui.database(), campaign_id)


def progress_figure(prog: pd.DataFrame) -> go.Figure:
    """Cells per status, stacked, one bar per device."""
    fig = go.Figure()
    for status in q.STATUS_ORDER:
        if prog[status].sum():
            fig.add_trace(
                go.Bar(
                    y=prog["device"],
                    x=prog[status],
                    name=status,
                    orientation="h",
                    marker_color=_COLORS[status],
                )
            )
    fig.update_layout(
        barmode="stack",
        height=120 + 32 * len(prog),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis_title="cells",
        legend={"orientation": "h"},
    )
    return fig


def render() -> None:
    st.title("Campaigns")
    url = ui.db_url()
    camps = _campaigns(url)
    if camps.empty:
        st.info("No campaign in this store yet.")
        st.code("wattbench campaign submit lab.toml --broker amqp://… --db postgresql://…")
        return
    labels = {
        r.campaign_id: f"{r.name} · {r.state} · {r.done}/{r.cells} done · {r.campaign_id[:8]}"
        for r in camps.itertuples()
    }
    wanted = st.query_params.get("campaign")
    ids = list(labels)
    index = next((i for i, c in enumerate(ids) if wanted and c.startswith(wanted)), 0)
    cid = str(
        st.selectbox("Campaign", ids, index=index, format_func=lambda c: labels[c], key="camp_id")
    )
    row = camps[camps["campaign_id"] == cid].iloc[0]
    st.caption(f"campaign {ui.md(cid)} · created {row['created_at']:%Y-%m-%d %H:%M} UTC")
    cols = st.columns(6)
    for col, status in zip(cols, q.STATUS_ORDER, strict=True):
        col.metric(status, int(row[status]))
    total = int(row["cells"])
    finished = int(row["done"] + row["failed"] + row["skipped"] + row["cancelled"])
    st.progress(finished / total if total else 0.0, text=f"{finished}/{total} cells finished")

    st.subheader("Progress per device")
    prog = _progress(url, cid)
    st.plotly_chart(progress_figure(prog), width="stretch")
    st.dataframe(
        prog,
        hide_index=True,
        width="stretch",
        column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
    )
    offline = prog[prog["state"] == "offline"]["device"].tolist()
    if offline:
        st.warning(
            f"offline (no heartbeat for {q.OFFLINE_AFTER_S:.0f} s): {ui.md(', '.join(offline))}"
        )

    bad = _problems(url, cid)
    st.subheader("Failures and skips")
    if bad.empty:
        st.caption("No cell failed or was skipped.")
    else:
        st.dataframe(bad, hide_index=True, width="stretch")
        st.caption(
            "Failed cells run again with `wattbench campaign retry ID --failed`; skipped ones "
            "are cells a device cannot run (adapter not installed, no accelerator)."
        )

    st.subheader("Results")
    res = _results(url, cid)
    if res.empty:
        st.caption("No valid run stored yet for this campaign.")
        return
    st.caption(
        "Valid runs of this campaign's done cells, ranked by inferences per joule within each "
        "group (like with like). " + ui.ESTIMATE_NOTE
    )
    st.dataframe(
        res,
        hide_index=True,
        width="stretch",
        column_config={
            "inf/J": st.column_config.NumberColumn(format="%.4g"),
            "J/inf": st.column_config.NumberColumn(format="%.4g"),
            "p90 ms": st.column_config.NumberColumn(format="%.3g"),
            "inf/s": st.column_config.NumberColumn(format="%.4g"),
            "detail": st.column_config.LinkColumn("detail", display_text="open run"),
        },
    )
    st.download_button(
        "Download CSV",
        res.to_csv(index=False).encode(),
        file_name=f"campaign-{cid[:8]}.csv",
        mime="text/csv",
    )
