"""``wattbench tune list|show|restore``: the device-setting tuners and their journal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from wattbench.harness.cli.common import out

tune_app = typer.Typer(
    help="Device settings a sweep changes (CPU frequency, power mode, GPU power limit).",
    no_args_is_help=True,
)

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
    from wattbench.core.tuning import journal_path, read_journal

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
    if as_json:
        sys.stdout.write(json.dumps({"journal": str(path), "entries": rows}, indent=2) + "\n")
        return
    out.print(
        f"tune journal {path} (pid {data.get('pid')}, {data.get('created_at')}):", markup=False
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
