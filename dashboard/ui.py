"""Shared app-layer pieces: the read-only database, cached queries, the sidebar selection.

Every query the pages run goes through a ``st.cache_data`` wrapper here, keyed on the
database URL and the query's arguments, with a short TTL so that new runs show up
without a restart while a big database is read once, not on every widget change.
"""

from __future__ import annotations

import os
import re
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from wattbench.core.errors import WattbenchError
from wattbench.dashboard.queries import (
    aggregated,
    compare,
    device_profile,
    escalation,
    leaderboard,
    run_detail,
    settings_sweep,
)
from wattbench.dashboard.queries.common import Filters
from wattbench.results_db.readonly import DB_ENV, Database, open_readonly

if TYPE_CHECKING:
    from wattbench.core.results import RunResult

#: Seconds a cached query result is reused (new runs appear after at most this long).
CACHE_TTL_S = 30

ESTIMATE_NOTE = (
    "**≈ ESTIMATED** energy is a model (TDP × CPU utilisation), not a measurement; "
    "measured figures name their method (counter, polled, external). Scopes (chip ⊂ module "
    "⊂ board ⊂ wall) are not comparable with each other."
)


#: Characters that open a markdown construct anywhere in a line (emphasis, code, links,
#: raw HTML, headings, maths, strikethrough, tables, entities, Streamlit's `:color[..]`).
_MD_INLINE = re.compile(r"([\\`*_\[\]<>#$~|&:{}])")
#: Constructs that open only at a line's start: list items, setext underlines, ordered lists.
_MD_LINE_START = re.compile(r"^([ \t]*)(?:([-+=])|(\d+)([.)]))", re.MULTILINE)


def md(text: object) -> str:
    """``text`` (stored, so anyone's: device names, labels, model and suite names) escaped
    for Streamlit's markdown, so that it shows literally: ``**x**``, ``# x``,
    ``[x](javascript:..)`` or ``<script>`` stay text.

    Use it wherever stored text meets an element that renders markdown (``st.subheader``,
    ``st.caption``, ``st.warning``, ``st.markdown``, radio options, metric labels).
    """
    s = _MD_INLINE.sub(r"\\\1", str(text))
    return _MD_LINE_START.sub(
        lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"),
        s,
    )


def db_url() -> str:
    """The URL ``wattbench dashboard`` handed over (or WATTBENCH_DB / the default)."""
    from wattbench.results_db.store import default_db_url

    return os.environ.get(DB_ENV) or default_db_url()


@st.cache_resource(show_spinner=False)
def _database(url: str) -> Database:
    return open_readonly(url)


def database() -> Database:
    """The read-only database; stops the page with one error line when it is unusable."""
    url = db_url()
    try:
        db = _database(url)
    except WattbenchError as exc:
        st.error(f"error: {exc}")
        st.stop()
    if db.state != "ok":
        # It may have been filled since: look again (cheap) instead of caching "empty".
        _database.clear()
        db = _database(url)
    return db


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def groups(url: str) -> pd.DataFrame:
    return leaderboard.groups(_database(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Loading runs…")
def runs(url: str, suite: str, version: str, scenario: str) -> pd.DataFrame:
    return leaderboard.runs_frame(_database(url), suite, version, scenario)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Grouping runs…")
def configurations(url: str, suite: str, version: str, scenario: str, f: Filters) -> Any:
    # Grouped by the database: one row per configuration comes back, not every run.
    return aggregated.configurations_sql(_database(url), suite, version, scenario, f)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def facets(url: str, suite: str, version: str, scenario: str) -> aggregated.Facets:
    return aggregated.facets(_database(url), suite, version, scenario)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def sweeps(url: str) -> pd.DataFrame:
    return escalation.sweeps(_database(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Loading sweep…")
def sweep_points(url: str, sweep_id: str) -> pd.DataFrame:
    return escalation.sweep_points(_database(url), sweep_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def settings_sweeps(url: str) -> pd.DataFrame:
    return settings_sweep.sweeps(_database(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Loading sweep…")
def settings_sweep_points(url: str, sweep_id: str) -> pd.DataFrame:
    return settings_sweep.sweep_points(_database(url), sweep_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def recent_runs(url: str, prefix: str = "") -> pd.DataFrame:
    return run_detail.recent_runs(_database(url), prefix=prefix)


@st.cache_data(ttl=300, show_spinner="Loading run…")
def run_result(url: str, run_id: str) -> RunResult | None:
    return run_detail.load_run(_database(url), run_id)


@st.cache_data(ttl=300, show_spinner=False)
def run_extras(url: str, run_id: str) -> dict[str, Any]:
    return run_detail.run_extras(_database(url), run_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def run_device_profile(url: str, run_id: str) -> dict[str, Any] | None:
    return device_profile.run_profile(_database(url), run_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Pooling trials…")
def trial_samples(url: str, run_ids: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    return compare.trial_samples(_database(url), run_ids)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def headline_power(url: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    return compare.headline_power(_database(url), run_ids)


# -- the shared selection --------------------------------------------------------------------
#: Session-state keys of the sidebar selection, kept while pages without it are shown.
SELECTION_KEYS = (
    "sel_group",
    "sel_hide_est",
    "sel_mode",
    "sel_devices",
    "sel_hardware",
    "sel_runtimes",
    "sel_precisions",
    "sel_labels",
    "sel_dates",
)


def keep_selection() -> None:
    """Streamlit drops a widget's state on a run that does not draw it (a page without the
    sidebar); writing the values back keeps them."""
    for key in SELECTION_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


class Selection:
    """One suite version and scenario, the filters, and the runs that pass them."""

    def __init__(self, url: str, suite: str, version: str, scenario: str, filters: Filters) -> None:
        self.url = url
        self.suite = suite
        self.version = version
        self.scenario = scenario
        self.filters = filters

    @property
    def title(self) -> str:
        mode = "" if self.filters.mode == "edge" else f" · {self.filters.mode} mode"
        return f"{self.suite} {self.version} · {self.scenario}{mode}"

    def runs(self) -> pd.DataFrame:
        """Every run passing the filters (reads the whole group: the per-run view only)."""
        return leaderboard.filter_runs(
            runs(self.url, self.suite, self.version, self.scenario), self.filters
        )

    def configurations(self) -> pd.DataFrame:
        return configurations(self.url, self.suite, self.version, self.scenario, self.filters)


def _group_label(row: Any) -> str:
    return f"{row.suite} {row.suite_version} · {row.scenario}  ({row.valid_runs} valid runs)"


def sidebar_selection(db: Database) -> Selection | None:
    """Suite version, scenario and filters in the sidebar; None when nothing is valid."""
    g = groups(db.url)
    g = g[g["valid_runs"] > 0].reset_index(drop=True)
    sb = st.sidebar
    if g.empty:
        sb.warning("No valid runs yet.")
        return None
    keys = [f"{r.suite}\x1f{r.suite_version}\x1f{r.scenario}" for r in g.itertuples()]
    labels = dict(zip(keys, (_group_label(r) for r in g.itertuples()), strict=True))
    default = keys[int(g["valid_runs"].idxmax())]
    if st.session_state.get("sel_group") not in labels:
        st.session_state["sel_group"] = default
    choice = sb.selectbox(
        "Suite version · scenario",
        keys,
        format_func=labels.__getitem__,
        key="sel_group",
        help="Runs of different suite versions or scenarios are never ranked together.",
    )
    suite, version, scenario = str(choice).split("\x1f")
    hide_est = sb.toggle(
        "Hide estimated energy",
        key="sel_hide_est",
        help="Show only measured energy (counter, polled, external); estimates are TDP × "
        "CPU utilisation.",
    )
    fc = facets(db.url, suite, version, scenario)
    modes = list(fc.modes) or ["edge"]
    if st.session_state.get("sel_mode") not in modes:
        st.session_state["sel_mode"] = modes[0]  # edge when there are edge runs
    mode = sb.radio(
        "Mode",
        modes,
        horizontal=True,
        key="sel_mode",
        help="Runs of one mode are ranked together: a cloud or hybrid run's own energy is "
        "only the device's share, so compare those by energy-to-solution (edge + network, "
        "modelled + cloud).",
    )
    with sb.expander("Filters", expanded=False):
        devices = st.multiselect("Device", list(fc.devices), key="sel_devices")
        hardware = st.multiselect(
            "Hardware (accelerator or CPU)", list(fc.hardware), key="sel_hardware"
        )
        runtimes = st.multiselect("Runtime", list(fc.runtimes), key="sel_runtimes")
        precisions = st.multiselect("Precision", list(fc.precisions), key="sel_precisions")
        label_sel = st.multiselect(
            "Labels (runs carrying all of them)", list(fc.labels), key="sel_labels"
        )
        lo, hi = fc.first_run, fc.last_run
        dates = st.date_input(
            "Run date (from, to)",
            value=[],  # empty: every date (a range kept from another suite would hide all)
            key="sel_dates",
            help=f"Runs here span {lo} to {hi}; leave empty for all.",
        )
    since, until = _date_range(dates)
    filters = Filters(
        devices=tuple(devices),
        hardware=tuple(hardware),
        runtimes=tuple(runtimes),
        precisions=tuple(precisions),
        labels=tuple(label_sel),
        since=since,
        until=until,
        hide_estimated=bool(hide_est),
        mode=str(mode),
    )
    sb.caption(f"Database: `{db.display_url}` (read-only)")
    return Selection(db.url, suite, version, scenario, filters)


def _date_range(value: Any) -> tuple[date | None, date | None]:
    if isinstance(value, date):
        return value, value
    if isinstance(value, (tuple, list)):
        vals = [v for v in value if isinstance(v, date)]
        if len(vals) == 2:
            return vals[0], vals[1]
        if len(vals) == 1:
            return vals[0], None
    return None, None


def mode_note(sel: Selection) -> None:
    """Pages that use J/inference: in cloud/hybrid mode it is only the device's share."""
    if sel.filters.mode != "edge":
        st.warning(
            f"{sel.filters.mode} mode: J/inference here is the device's own share; network "
            "(modelled) and cloud energy are not in it. See the leaderboard's "
            "energy-to-solution and the Escalation sweep page."
        )


def estimate_legend() -> None:
    st.caption(ESTIMATE_NOTE)


def highlight_estimates(df: pd.DataFrame) -> Any:
    """A Styler that tints rows whose energy is estimated (the ``energy`` column says so)."""

    def tint(row: pd.Series) -> list[str]:
        est = str(row.get("energy", "")).startswith("≈")
        return ["background-color: rgba(255, 193, 7, 0.18)" if est else "" for _ in row]

    return df.style.apply(tint, axis=1)
