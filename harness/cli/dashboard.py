"""``wattbench dashboard``: the Streamlit leaderboard, read-only against the database.

Registered in :mod:`wattbench.harness.cli` with ``dashboard.register(app)``. Importing
this module imports neither Streamlit nor pandas: the command checks that the
``dashboard`` extra is installed and that the database can be read at the current
schema (one ``error:`` line otherwise), then runs ``streamlit run`` on ``dashboard/app.py``
(through ``python -m wattbench.dashboard.serve``, which imports the app's modules before the
server answers) with the URL in ``WATTBENCH_DASHBOARD_DB``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from typing import Annotated

import typer

from wattbench.core.errors import ConfigError, UnavailableError

DASHBOARD_HINT = "the dashboard needs the dashboard extra: pip install 'wattbench[dashboard]'"


def _require_extra() -> None:
    for module in ("streamlit", "plotly", "pandas"):
        if importlib.util.find_spec(module) is None:
            raise UnavailableError(f"{DASHBOARD_HINT} ({module} is missing)")


def streamlit_command(port: int, host: str, headless: bool) -> list[str]:
    """The ``streamlit run`` command line for the app."""
    # Located, not imported: the runner never imports the dashboard (docs/architecture.md);
    # Streamlit runs the app in its own process.
    spec = importlib.util.find_spec("wattbench.dashboard")
    if spec is None or not spec.submodule_search_locations:
        raise UnavailableError("wattbench.dashboard is not installed: reinstall wattbench")
    app = os.path.join(next(iter(spec.submodule_search_locations)), "app.py")
    return [
        sys.executable,
        "-m",
        # `streamlit run`, with the app's modules imported before the server answers (the
        # first visitor after a start does not wait for them): dashboard/serve.py
        "wattbench.dashboard.serve",
        "run",
        app,
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true" if headless else "false",
        # Nobody needs the usage statistics, and a lab machine may have no way out.
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",  # no "Deploy" button: this is a lab's read-only board
    ]


def dashboard(
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: WATTBENCH_DB or SQLite in the data dir)."
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open a web browser on start.")
    ] = False,
) -> None:
    """Browse the leaderboard, Pareto fronts, runs, comparisons and a procurement view."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"invalid --port {port}: use 1-65535")
    _require_extra()
    from wattbench.results_db.readonly import DB_ENV, open_readonly
    from wattbench.results_db.store import default_db_url

    url = db or default_db_url()
    database = open_readonly(url)  # unreachable or stale: one error line, before launching
    state = {"ok": "", "empty": " (no runs yet)", "missing": " (does not exist yet)"}
    typer.echo(
        f"wattbench: dashboard on http://{host}:{port} reading {database.display_url} "
        f"read-only{state[database.state]}",
        err=True,
    )
    database.close()
    env = {**os.environ, DB_ENV: url}
    cmd = streamlit_command(port, host, headless=not browser)
    rc = launch(cmd, env)
    if rc not in (0, 130):
        raise typer.Exit(rc)


def launch(cmd: list[str], env: dict[str, str]) -> int:
    """Run the Streamlit server; returns its exit status (on POSIX it replaces this process)."""
    sys.stderr.flush()
    if os.name == "posix":
        # Become Streamlit: signals (Ctrl-C, a supervisor's SIGTERM) reach the server itself.
        os.execve(cmd[0], cmd, env)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0


def register(app: typer.Typer) -> None:
    """Add the ``dashboard`` command to ``app``."""
    app.command("dashboard")(dashboard)
