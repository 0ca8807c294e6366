"""Procurement: the buyer's workload and prices in, devices, cost and CO2e per configuration out.

Like with like: one table per energy group (scope × measured/estimated; wall and board
first), each with its own rank 1 — a chip-only figure's electricity cost is a lower bound
and never ranks against a wall-plug one.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from wattbench.analysis.procurement import BuyerInputs, plan_all, plans_frame
from wattbench.core.errors import WattbenchError
from wattbench.dashboard import ui
from wattbench.dashboard.queries.procurement import candidates as make_candidates


def _intensity() -> tuple[float | None, str]:
    how = st.radio(
        "Grid carbon intensity",
        ["country (codecarbon data, offline)", "my figure"],
        horizontal=True,
        key="pr_carbon_how",
    )
    if how == "my figure":
        g = st.number_input("g CO2e per kWh", min_value=0.0, value=250.0, key="pr_carbon_g")
        return float(g), "your figure"
    country = st.text_input("Country (ISO 3166 alpha-3)", value="DEU", key="pr_country")
    try:
        from wattbench.core.carbon import intensity_for_country

        ci = intensity_for_country(country.strip())
    except WattbenchError as exc:
        st.warning(f"{exc}; CO2e is left out.")
        return None, ""
    return ci.g_per_kwh, ci.source


def _group_table(rows: pd.DataFrame, group: str, currency: str) -> None:
    """One group's ranked table and its cost chart (no chart spans groups)."""
    basis = str(rows["energy basis"].iloc[0])
    st.markdown(f"**{ui.md(group)}** · {len(rows)} configurations · electricity cost: {basis}")
    st.dataframe(
        ui.highlight_estimates(rows),
        hide_index=True,
        width="stretch",
        key=f"pr_table_{group}",
        column_config={
            "utilisation": st.column_config.ProgressColumn(
                min_value=0, max_value=1, format="percent"
            ),
            f"capex {currency}": st.column_config.NumberColumn(format="%.0f"),
            "kWh / year": st.column_config.NumberColumn(format="%.1f"),
            f"energy {currency} / year": st.column_config.NumberColumn(format="%.0f"),
            "kg CO2e / year": st.column_config.NumberColumn(format="%.1f"),
            f"total {currency} / million inferences": st.column_config.NumberColumn(format="%.4f"),
        },
    )
    costed = rows.dropna(subset=[f"total {currency} / million inferences"]).head(15)
    if not costed.empty:
        fig = px.bar(
            costed,
            x=f"total {currency} / million inferences",
            y="config",
            orientation="h",
            color="energy",
            height=120 + 28 * len(costed),
        )
        fig.update_yaxes(autorange="reversed", title=None)
        st.plotly_chart(fig, width="stretch", key=f"pr_chart_{group}")


def render() -> None:
    st.title("Procurement")
    db = ui.database()
    sel = ui.sidebar_selection(db)
    if sel is None:
        st.info("No valid runs yet.")
        return
    ui.mode_note(sel)
    configs = sel.configurations()
    if configs.empty:
        st.warning("No configurations match the filters.")
        return
    st.caption(f"Configurations of {ui.md(sel.title)} (the sidebar's selection and filters).")
    with st.form("pr_inputs"):
        c1, c2, c3 = st.columns(3)
        required = c1.number_input(
            "Required throughput, inferences/s", min_value=0.001, value=1000.0, key="pr_ips"
        )
        bound = c2.number_input("Latency bound, ms", min_value=0.001, value=50.0, key="pr_bound")
        pct = c3.radio("on", ["p90", "p99"], horizontal=True, key="pr_pct")
        c4, c5, c6 = st.columns(3)
        price = c4.number_input(
            "Electricity price per kWh", min_value=0.0, value=0.30, key="pr_price"
        )
        years = c5.number_input("Lifetime, years", min_value=0.1, value=4.0, key="pr_years")
        currency = c6.text_input("Currency", value="EUR", max_chars=3, key="pr_currency")
        intensity, source = _intensity()
        st.markdown("Device prices (from the devices table where known; edit as quoted to you)")
        prices = configs.groupby("hardware", dropna=False)["purchase_price"].median().reset_index()
        prices.columns = ["hardware", "price"]
        edited = st.data_editor(
            prices, hide_index=True, disabled=["hardware"], key="pr_prices", width="stretch"
        )
        st.form_submit_button("Compute")
    inp = BuyerInputs(
        required_ips=float(required),
        latency_bound_ms=float(bound),
        electricity_price_per_kwh=float(price),
        lifetime_years=float(years),
        carbon_g_per_kwh=intensity,
        latency_percentile="p99" if pct == "p99" else "p90",
        currency=currency or "EUR",
    )
    problems = inp.problems()
    if problems:
        st.error("; ".join(problems))
        return
    price_of = dict(zip(edited["hardware"], edited["price"], strict=True))
    power = ui.headline_power(sel.url, tuple(configs["run_id"]))
    idle_of = dict(zip(power["run_id"], power["idle_w"], strict=True))
    candidates = make_candidates(configs, idle_of, price_of)
    plans = plan_all(candidates, inp)
    st.subheader(f"{len(plans)} of {len(candidates)} configurations meet {pct} ≤ {bound:g} ms")
    if not plans:
        st.info("None meets the latency bound: relax it or widen the filters.")
        return
    table = plans_frame(plans, inp.currency)
    groups = list(dict.fromkeys(table["group"]))
    if len(groups) > 1:
        st.caption(
            f"{len(groups)} groups of the same energy scope and measured/estimated, each "
            "ranked on its own: costs from different scopes are not comparable."
        )
    for group in groups:
        _group_table(table[table["group"] == group], group, inp.currency)
    st.caption(
        "devices = ⌈required ÷ throughput per device⌉; energy/year = required × J/inference × "
        "s/year + idle power of the spare capacity; kg CO2e = kWh × g/kWh ÷ 1000; total per "
        "million = (capex + lifetime × energy cost) ÷ lifetime inferences × 10⁶."
        + (f" Carbon intensity: {intensity:.0f} g/kWh ({source})." if intensity else "")
        + " Electricity cost is what the meter bills only for wall (or board) scope figures; "
        "a chip or module figure leaves the rest of the system out, so its energy cost, "
        "kWh and CO2e are a LOWER BOUND (see the energy basis column). Configurations rank "
        "only within their group (energy scope × measured/estimated)."
    )
    ui.estimate_legend()
    st.download_button(
        "Download CSV",
        table.to_csv(index=False),
        file_name="wattbench-procurement.csv",
        mime="text/csv",
        key="pr_csv",
    )
