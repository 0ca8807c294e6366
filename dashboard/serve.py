"""The server process of ``wattbench dashboard``: ``python -m wattbench.dashboard.serve run
APP [streamlit options]``, what ``python -m streamlit run …`` does, with the app's modules
imported first.

Streamlit runs the app's script in the server process on each visit; what the script
imports stays in ``sys.modules``. Importing the pages, their queries, pandas, plotly,
SQLAlchemy and alembic here, and opening the database, before the server answers, spares
the first visitor after a start that work (1–3 s on a busy 2-core machine,
docs/dashboard.md#responsiveness).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pkgutil
import sys


def preload() -> None:
    """Import every page module (and so the queries, pandas, plotly and the store), and
    open the database read-only into the app's resource cache (Streamlit's resource caches
    are the process's, so the first visit finds it open: no schema check then)."""
    from streamlit.runtime.caching import cache_data_api

    from wattbench.core.errors import WattbenchError

    # Caches declared before the server runs warn "No runtime found" (harmless: each
    # cache takes the runtime's storage when first used); that logger exists by now.
    quiet = logging.getLogger(cache_data_api.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from wattbench.dashboard import ui, views

        for info in pkgutil.iter_modules(views.__path__):
            importlib.import_module(f"{views.__name__}.{info.name}")
    finally:
        quiet.setLevel(level)
    # The cache_resource the pages read through. When it fails, the page says what is
    # wrong (and tries again) when someone opens it.
    with contextlib.suppress(WattbenchError):
        ui._database(ui.db_url())


def main() -> None:
    preload()
    from streamlit.web.cli import main as streamlit_main

    # The same command line as ``python -m streamlit``, which the server reports.
    streamlit_main(args=sys.argv[1:], prog_name="streamlit")


if __name__ == "__main__":
    main()
