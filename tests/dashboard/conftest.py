"""Fixtures of the dashboard tests: seeded lab databases and an AppTest runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("streamlit", reason="dashboard tests need the dashboard extra")

from seed import seed_url

from wattbench.core.results import RunResult


@pytest.fixture(scope="session")
def lab_sqlite(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[RunResult]]:
    """A lab-sized SQLite database (180 runs), seeded once per session; never written to
    by the dashboard (the tests check that)."""
    d = tmp_path_factory.mktemp("lab-db")
    url = f"sqlite:///{d / 'lab.db'}"
    return url, seed_url(url, d)


def page_script(page: str) -> None:
    """The script AppTest runs for one page (AppTest.from_function runs its source)."""
    from wattbench.dashboard.app import render_page

    render_page(page)


@pytest.fixture
def run_page(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``run_page(url, page, query=None)``: an AppTest of one page on ``url``, after one run."""
    from streamlit.testing.v1 import AppTest

    def run(url: str, page: str, query: dict[str, str] | None = None) -> AppTest:
        monkeypatch.setenv("WATTBENCH_DASHBOARD_DB", url)
        at = AppTest.from_function(page_script, args=(page,), default_timeout=60)
        for k, v in (query or {}).items():
            at.query_params[k] = v
        return at.run()

    return run
