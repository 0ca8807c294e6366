"""Compare: 2–4 configurations side by side, deltas against the first with bootstrap CIs."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from wattbench.core.errors import UnavailableError
from wattbench.dashboard import ui
from wattbench.dashboard.queries import aggregated
from wattbench.dashboard.queries.common import Filters
from wattbench.dashboard.queries.leaderboard import rank

#: (per-trial sample key, label, higher is better)
METRICS = (
    ("joules_per_inference", "J / inference", False),
    ("latency_p90_ms", "p90 latency ms", False),
    ("throughput_ips", "throughput inf/s", True),
)
#: At most this many runs of a configuration are pooled (the most recent ones).
MAX_POOLED_RUNS = 50
#: Figures shown side by side: exact medians over the configurations' runs.
MEDIAN_COLUMNS = (
    "inferences_per_joule",
    "joules_per_inference",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "throughput_ips",
    "uncertainty_pct",
)


@st.cache_data(ttl=ui.CACHE_TTL_S, show_spinner="Reading their runs…")
def medians(
    url: str, suite: str, version: str, scenario: str, f: Filters, keys: tuple[Any, ...]
) -> pd.DataFrame:
    """The chosen configurations' exact medians and latest runs (reads those
    configurations' runs; the leaderboard's rows are means the store keeps)."""
    return aggregated.configuration_medians(
        ui._database(url), suite, version, scenario, f, keys, recent=MAX_POOLED_RUNS
    )


def delta(
    baseline: tuple[float, ...], other: tuple[float, ...]
) -> tuple[float | None, float | None, float | None, str]:
    """Change of the median of ``other`` vs ``baseline`` in %, with a 95 % bootstrap CI
    (percentile, samples resampled apart; harness.gate's). Returns (change, low, high, note)."""
    b = [v for v in baseline if math.isfinite(v)]
    o = [v for v in other if math.isfinite(v)]
    if not b or not o:
        return None, None, None, "no values"
    mb = float(pd.Series(b).median())
    if mb == 0:
        return None, None, None, "baseline median is 0"
    change = (float(pd.Series(o).median()) / mb - 1) * 100
    if len(b) < 2 or len(o) < 2:
        return change, None, None, "too few trials for a CI"
    try:
        from wattbench.analysis.gate import median_ratio_ci

        lo, hi = median_ratio_ci(b, o)
    except UnavailableError:
        return change, None, None, "CI needs scipy (pip install 'wattbench[gate]')"
    return change, (lo - 1) * 100, (hi - 1) * 100, ""


def comparison(configs: pd.DataFrame, samples: list[dict[str, tuple[float, ...]]]) -> pd.DataFrame:
    """Rows: metric × configuration; medians, per-trial counts, change vs the first and CI."""
    rows: list[dict[str, Any]] = []
    base = samples[0]
    for key, label, higher in METRICS:
        for i, (cfg, s) in enumerate(zip(configs.itertuples(), samples, strict=True)):
            values = [v for v in s.get(key, ()) if math.isfinite(v)]
            change, lo, hi, note = (
                (None, None, None, "baseline")
                if i == 0
                else delta(base.get(key, ()), s.get(key, ()))
            )
            verdict = ""
            if lo is not None and hi is not None:
                better = (lo > 0) if higher else (hi < 0)
                worse = (hi < 0) if higher else (lo > 0)
                verdict = "better" if better else "worse" if worse else "no clear difference"
            rows.append(
                {
                    "metric": label,
                    "configuration": cfg.config,
                    "energy": cfg.energy,
                    "median": float(pd.Series(values).median()) if values else None,
                    "trials": len(values),
                    "Δ vs first %": change,
                    "CI low %": lo,
                    "CI high %": hi,
                    "verdict (95 %)": verdict or note,
                }
            )
    return pd.DataFrame(rows)


def render() -> None:
    st.title("Compare configurations")
    db = ui.database()
    sel = ui.sidebar_selection(db)
    if sel is None:
        st.info("No valid runs yet.")
        return
    ui.mode_note(sel)
    configs = rank(sel.configurations(), "inferences_per_joule")
    if len(configs) < 2:
        st.info("Fewer than two configurations match the filters: nothing to compare.")
        return
    labels = list(configs["config"])
    picked = st.multiselect(
        "Configurations (the first is the baseline)",
        labels,
        default=labels[:2],
        max_selections=4,
        key="cmp_configs",
    )
    if len(picked) < 2:
        st.info("Pick 2 to 4 configurations.")
        return
    chosen = configs.set_index("config").loc[picked].reset_index()
    # The drill-down: these configurations' runs, exact medians and the latest run ids.
    keys = tuple(aggregated.config_key(r) for r in chosen.itertuples())
    detail = medians(sel.url, sel.suite, sel.version, sel.scenario, sel.filters, keys)
    for c in ("runs", *MEDIAN_COLUMNS):  # one row per key, in their order
        chosen[c] = detail[c].to_numpy()
    samples = [ui.trial_samples(sel.url, tuple(ids)) for ids in detail["run_ids"]]
    scopes = set(chosen["energy_scope"].fillna("?"))
    if len(scopes) > 1:
        st.warning(
            "These configurations measure energy over different scopes "
            f"({ui.md(', '.join(sorted(scopes)))}): their energy figures are not comparable."
        )
    if chosen["estimated"].any():
        st.warning(
            "≈ ESTIMATED energy is part of this comparison: treat its energy deltas as such."
        )
    side = chosen.set_index("config")[
        [
            "energy",
            "inferences_per_joule",
            "joules_per_inference",
            "latency_p50_ms",
            "latency_p90_ms",
            "latency_p99_ms",
            "throughput_ips",
            "uncertainty_pct",
            "runs",
            "devices",
        ]
    ].T
    st.markdown("#### Side by side (exact medians over their runs)")
    st.dataframe(side.astype(str), width="stretch")
    st.markdown("#### Deltas against the first, from per-trial values")
    table = comparison(chosen, samples)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "median": st.column_config.NumberColumn(format="%.4g"),
            "Δ vs first %": st.column_config.NumberColumn(format="%+.1f"),
            "CI low %": st.column_config.NumberColumn(format="%+.1f"),
            "CI high %": st.column_config.NumberColumn(format="%+.1f"),
        },
    )
    st.caption(
        "Δ: change of the median per-trial value against the first configuration; CI: 95 % "
        f"percentile bootstrap of the ratio of medians (trials of up to {MAX_POOLED_RUNS} "
        "recent runs per configuration pooled). 'no clear difference': the CI includes 0."
    )
    ui.estimate_legend()
