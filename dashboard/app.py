"""The wattbench dashboard: ``wattbench dashboard`` runs ``streamlit run`` on this file.

The database URL comes in through ``WATTBENCH_DASHBOARD_DB`` (see
:mod:`wattbench.results_db.readonly`); it is opened read-only. Pages are registered in
:data:`PAGES`, one module of :mod:`wattbench.dashboard.views` each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class PageSpec:
    """A page of the navigation: its view module's ``render`` and where it lives."""

    title: str
    url_path: str
    icon: str
    render: Callable[[], None]


def _pages() -> list[PageSpec]:
    from wattbench.dashboard.views import (
        campaigns,
        compare,
        escalation,
        leaderboard,
        pareto,
        procurement,
        run_detail,
        sweep,
    )

    return [
        PageSpec("Leaderboard", "leaderboard", ":material/leaderboard:", leaderboard.render),
        PageSpec("Pareto", "pareto", ":material/scatter_plot:", pareto.render),
        PageSpec("Run detail", "run", ":material/monitoring:", run_detail.render),
        PageSpec("Compare", "compare", ":material/compare_arrows:", compare.render),
        PageSpec("Procurement", "procurement", ":material/shopping_cart:", procurement.render),
        PageSpec("Escalation sweep", "escalation", ":material/call_split:", escalation.render),
        PageSpec("Settings sweep", "sweep", ":material/tune:", sweep.render),
        PageSpec("Campaigns", "campaigns", ":material/dns:", campaigns.render),
    ]


#: Page titles in navigation order (tests and docs refer to them).
PAGE_TITLES = (
    "Leaderboard",
    "Pareto",
    "Run detail",
    "Compare",
    "Procurement",
    "Escalation sweep",
    "Settings sweep",
    "Campaigns",
)


def render_page(url_path: str) -> None:
    """Draw one page on its own (what the page tests run)."""
    from wattbench.dashboard import ui

    db = ui.database()
    if db.state != "ok":
        from wattbench.dashboard.views import empty

        empty.render(db)
        return
    spec = {p.url_path: p for p in _pages()}[url_path]
    spec.render()


def main() -> None:
    st.set_page_config(page_title="wattbench", page_icon=":material/bolt:", layout="wide")
    from wattbench.dashboard import ui

    db = ui.database()
    if db.state != "ok":
        from wattbench.dashboard.views import empty

        empty.render(db)
        return
    ui.keep_selection()
    pages = [
        st.Page(p.render, title=p.title, url_path=p.url_path, icon=p.icon, default=i == 0)
        for i, p in enumerate(_pages())
    ]
    st.navigation(pages).run()


if __name__ == "__main__":
    main()
