"""Procurement: the buyer's workload and prices in, devices, cost and CO2e per configuration out."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from wattbench.analysis.procurement import BuyerInputs, Candidate, plan_all, plans_frame
from wattbench.core.errors import WattbenchError
from wattbench.dashboard import ui


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


#: Scopes whose energy figure covers what the electricity meter bills.
BILLED_SCOPES = ("wall", "board")


def energy_basis(energy: str) -> str:
    """What the electricity cost rests on: the whole device (wall, board) or a LOWER BOUND."""
    scope = str(energy).rsplit(" · ", 1)[-1].strip()
    if scope == "wall":
        return "wall: as billed"
    if scope == "board":
        return "board: near billed (no PSU loss)"
    return f"{scope}: LOWER BOUND ({scope} only)"


def with_energy_basis(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with an ``energy basis`` column after ``energy``: electricity cost from a
    chip or module figure leaves the rest of the system out, so it is a lower bound."""
    out = table.copy()
    out.insert(
        out.columns.get_loc("energy") + 1,
        "energy basis",
        [energy_basis(e) for e in out["energy"]],
    )
    return out


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
    st.caption(f"Configurations of {sel.title} (the sidebar's selection and filters).")
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
    candidates = [
        Candidate(
            config=r.config,
            throughput_ips=float(r.throughput_ips),
            latency_p90_ms=float(r.latency_p90_ms),
            latency_p99_ms=float(r.latency_p99_ms),
            joules_per_inference=None
            if pd.isna(r.joules_per_inference)
            else float(r.joules_per_inference),
            idle_w=idle_of.get(r.run_id),
            device_price=None if pd.isna(price_of.get(r.hardware)) else price_of.get(r.hardware),
            energy=str(r.energy),
            estimated=bool(r.estimated),
        )
        for r in configs.itertuples()
    ]
    plans = plan_all(candidates, inp)
    st.subheader(f"{len(plans)} of {len(candidates)} configurations meet {pct} ≤ {bound:g} ms")
    if not plans:
        st.info("None meets the latency bound: relax it or widen the filters.")
        return
    table = with_energy_basis(plans_frame(plans, inp.currency))
    st.dataframe(
        ui.highlight_estimates(table),
        hide_index=True,
        width="stretch",
        column_config={
            "utilisation": st.column_config.ProgressColumn(
                min_value=0, max_value=1, format="percent"
            ),
            f"capex {inp.currency}": st.column_config.NumberColumn(format="%.0f"),
            "kWh / year": st.column_config.NumberColumn(format="%.1f"),
            f"energy {inp.currency} / year": st.column_config.NumberColumn(format="%.0f"),
            "kg CO2e / year": st.column_config.NumberColumn(format="%.1f"),
            f"total {inp.currency} / million inferences": st.column_config.NumberColumn(
                format="%.4f"
            ),
        },
    )
    costed = table.dropna(subset=[f"total {inp.currency} / million inferences"]).head(15)
    if not costed.empty:
        fig = px.bar(
            costed,
            x=f"total {inp.currency} / million inferences",
            y="config",
            orientation="h",
            color="energy",
            height=120 + 28 * len(costed),
        )
        fig.update_yaxes(autorange="reversed", title=None)
        st.plotly_chart(fig, width="stretch", key="pr_chart")
    st.caption(
        "devices = ⌈required ÷ throughput per device⌉; energy/year = required × J/inference × "
        "s/year + idle power of the spare capacity; kg CO2e = kWh × g/kWh ÷ 1000; total per "
        "million = (capex + lifetime × energy cost) ÷ lifetime inferences × 10⁶."
        + (f" Carbon intensity: {intensity:.0f} g/kWh ({source})." if intensity else "")
        + " Electricity cost is what the meter bills only for wall (or board) scope figures; "
        "a chip or module figure leaves the rest of the system out, so its energy cost, "
        "kWh and CO2e are a LOWER BOUND (see the energy basis column)."
    )
    ui.estimate_legend()
    st.download_button(
        "Download CSV",
        table.to_csv(index=False),
        file_name="wattbench-procurement.csv",
        mime="text/csv",
        key="pr_csv",
    )
