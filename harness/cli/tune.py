"""``wattbench tune list|show|restore``: the device-setting tuners and their journal.

:func:`restore_stale` runs at every ``wattbench`` start (but ``tune show`` and ``tune
restore``): it puts back the settings of a sweep that was killed (SIGKILL, power cut).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from wattbench.harness.cli.common import err, out

tune_app = typer.Typer(
    help="Device settings a sweep changes (CPU frequency, power mode, GPU power limit).",
    no_args_is_help=True,
)

#: tune commands that read the journal themselves: no restore at their start
_JOURNAL_COMMANDS = ("show", "restore")


def restore_stale() -> None:
    """Restore the journal of a killed sweep (its process gone), with one ``warning:`` line
    naming what came back; or one line naming the cause and `wattbench tune restore`.
    Never raises: commands that do not need the device must still run."""
    from wattbench.core.tuning import TuneRestoreError, journal_path, restore_stale_journal

    path = journal_path()
    try:
        found = restore_stale_journal(path)
    except TuneRestoreError as exc:
        err.print(
            f"warning: a killed wattbench sweep left device settings changed; {exc}: "
            f"fix that, then run `wattbench tune restore` (`wattbench tune show` lists them)",
            markup=False,
        )
        return
    except Exception as exc:  # an unreadable or corrupt journal
        msg = " ".join(str(exc).split())
        err.print(
            f"warning: cannot check the tune journal {path}: {msg}; "
            f"`wattbench tune restore` puts its settings back once it is readable",
            markup=False,
        )
        return
    if found is None:
        return
    data, done = found
    what = ", ".join(f"{name} {json.dumps(saved)}" for name, saved in done) or "nothing"
    err.print(
        f"warning: restored the device settings of a killed wattbench sweep "
        f"(pid {data.get('pid')}, {data.get('created_at')}): {what}; removed {path}",
        markup=False,
    )


@tune_app.callback()
def _at_start(ctx: typer.Context) -> None:
    # `wattbench tune ...` is skipped by the app's start-up hook: only here is the
    # subcommand known, and show/restore must see the journal as it is
    if ctx.invoked_subcommand not in _JOURNAL_COMMANDS:
        restore_stale()


TuneSysfsOpt = Annotated[
    Path | None,
    typer.Option(
        "--sysfs-root",
        help="Tune sysfs under this root (a test tree); default: the journal's or /.",
    ),
]


def _tuner(name: str, root: Path | None) -> Any:
    from wattbench.core.tuning import load_tuner

    return load_tuner(name, root)


@tune_app.command("list")
def tune_list(sysfs_root: TuneSysfsOpt = None) -> None:
    """Each tuner: whether it can work here (or the remedy), its value and unit."""
    from wattbench.core import plugins

    for name in plugins.names(plugins.TUNERS):
        tuner = _tuner(name, sysfs_root)
        ok, reason = tuner.is_available()
        current = "?"
        try:
            current = json.dumps(tuner.read_current())
        except Exception as exc:
            current = f"unreadable ({str(exc).splitlines()[0][:80]})"
        state = "ok" if ok else f"unavailable: {reason}"
        out.print(f"{name} ({tuner.sweep_key}, {tuner.unit}): {current} - {state}", markup=False)


@tune_app.command("show")
def tune_show(
    sysfs_root: TuneSysfsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The journal of an unfinished sweep: each saved value against the current one."""
    from wattbench.core.tuning import journal_path, read_journal, writer_alive

    path = journal_path()
    data = read_journal(path)
    if data is None:
        if as_json:
            sys.stdout.write(json.dumps({"journal": str(path), "entries": {}}) + "\n")
        else:
            out.print(f"no tune journal at {path}: every setting is as wattbench found it")
        return
    root = sysfs_root or (Path(data["sysfs_root"]) if data.get("sysfs_root") else None)
    rows: dict[str, Any] = {}
    for name, entry in data["entries"].items():
        try:
            current: Any = _tuner(name, root).read_current()
        except Exception as exc:
            current = f"unreadable: {exc}"
        rows[name] = {"saved": entry["saved"], "current": current, "unit": entry.get("unit")}
    alive = writer_alive(data)
    if as_json:
        body = {"journal": str(path), "writer_alive": alive, "entries": rows}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return
    state = "running" if alive else "gone: the next wattbench command restores it"
    out.print(
        f"tune journal {path} (pid {data.get('pid')}, {data.get('created_at')}; {state}):",
        markup=False,
    )
    for name, row in rows.items():
        out.print(
            f"  {name} [{row['unit']}]: current {json.dumps(row['current'])}, "
            f"saved {json.dumps(row['saved'])}",
            markup=False,
        )
    out.print("put the saved values back with `wattbench tune restore`", markup=False)


@tune_app.command("restore")
def tune_restore(sysfs_root: TuneSysfsOpt = None) -> None:
    """Restore the settings the journal saved (after a killed sweep), then remove it."""
    from wattbench.core.tuning import journal_path, restore_from_journal

    path = journal_path()
    done = restore_from_journal(path, sysfs_root=sysfs_root)
    if not done:
        out.print(f"no tune journal at {path}: nothing to restore")
        return
    for name, saved in done:
        out.print(f"restored {name}: {json.dumps(saved)}", markup=False)
    out.print(f"removed {path}", markup=False)
