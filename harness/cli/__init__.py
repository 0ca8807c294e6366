"""The ``wattbench`` command line: one module per group of commands.

``main`` is the console-script entry point; user errors become one ``error:`` line.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from wattbench.core.errors import WattbenchError

# Modules, not their functions: a function named like its module (gate, run) would shadow
# the submodule on the package.
from wattbench.harness.cli import (
    catalog,
    dashboard,
    doctor,
    gate,
    leaderboard,
    models,
    network,
    run,
    runs,
    store,
    sweep_settings,
    tune,
)
from wattbench.harness.cli.common import err

app = typer.Typer(
    name="wattbench",
    help="Benchmark edge AI inference per joule and rank it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Each command lives in its own module; heavy imports stay inside the command bodies.
app.command("run")(run.run)
app.command("leaderboard")(leaderboard.leaderboard)
app.command("adapters")(catalog.adapters)
app.command("suites")(catalog.suites)
app.add_typer(catalog.power_app, name="power")
app.add_typer(catalog.db_app, name="db")
app.command("doctor")(doctor.doctor)  # doctor: onboarding checks of the power readers
app.command("gate")(gate.gate)
app.command()(store.serve)
app.command()(store.upload)
app.command()(store.export)
app.command("import")(store.import_runs)
runs.register(app)  # runs [--aborted], and the start-up notice of killed runs


def _at_start(ctx: typer.Context) -> None:
    # Typer keeps one app callback: this one replaces the one runs.register set and calls it.
    runs.announce_aborted(ctx)
    # a killed sweep's device settings come back at the next start, whatever the command;
    # `tune` does it in its own callback, which knows whether it is `tune show|restore`
    if ctx.invoked_subcommand not in (None, "tune"):
        tune.restore_stale()


app.callback()(_at_start)
app.add_typer(store.token_app, name="token")
app.add_typer(models.models_app, name="models")
network.register(app)  # cloud serve, sweep escalation|payload|frames
network.sweep_app.command("settings")(sweep_settings.settings)  # sweep settings
app.add_typer(tune.tune_app, name="tune")
dashboard.register(app)  # dashboard
# Parts that nothing may import add their commands by entry point: campaign, worker (fleet).
for _ep in entry_points(group="wattbench.commands"):
    _ep.load()(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one ``error:`` line and a non-zero exit."""
    command = typer.main.get_command(app)
    try:
        rc = command.main(args=argv, prog_name="wattbench", standalone_mode=False)
    except WattbenchError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors from the (vendored) click parser
        if type(exc).__name__.startswith("NoArgsIsHelp"):  # help was printed; not an error
            sys.exit(0)
        fmt = getattr(exc, "format_message", None)
        message = fmt() if callable(fmt) else str(exc)
        err.print(f"error: {message} (see `wattbench --help`)", markup=False)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("error: interrupted; nothing was stored", markup=False)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
