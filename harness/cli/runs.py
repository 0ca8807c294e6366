"""``wattbench runs``: runs in progress and runs that were killed (the run journal).

Registered by :func:`register`, which also tells the user, once, at the next
``wattbench`` start, about every run that was killed since (see
:mod:`wattbench.harness.journal`).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from wattbench.harness.cli.common import DbOpt, err, out


def _stored_checker(db: str | None) -> Any:
    """``is_stored(journal data)``: is the journal's run id in the store it was written to?"""
    from wattbench.core.errors import WattbenchError
    from wattbench.results_db.store import Store

    stores: dict[str, Any] = {}

    def is_stored(data: dict[str, Any]) -> bool | None:
        url = str(data.get("db") or "")
        if not url or "***" in url:  # the password is not journalled: use --db
            url = db or ""
        try:
            if url not in stores:
                stores[url] = Store.open(url or None)
            return stores[url].run_device_name(str(data["run_id"])) is not None
        except WattbenchError:
            return None

    return is_stored


def runs(
    aborted: Annotated[
        bool, typer.Option("--aborted", help="Only runs that were killed before they were stored.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    clear: Annotated[
        bool, typer.Option("--clear", help="Forget the aborted runs listed (remove their journal).")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Runs in progress and runs killed before they were stored (with the phase they died in)."""
    from wattbench.harness import journal

    entries = journal.scan(is_stored=_stored_checker(db))
    entries = [e for e in entries if e.status != journal.STORED]
    if aborted:
        entries = [e for e in entries if e.status == journal.ABORTED]
    if as_json:
        sys.stdout.write(json.dumps([e.as_dict() for e in entries], indent=2) + "\n")
    elif not entries:
        err.print(
            f"wattbench: no {'aborted ' if aborted else ''}runs in {journal.journal_dir()}",
            markup=False,
        )
    else:
        from rich.table import Table

        t = Table()
        for col in ("status", "phase", "suite", "adapter", "started", "pid", "run id"):
            t.add_column(col)
        for e in entries:
            d = e.data
            t.add_row(
                e.status,
                e.phase,
                str(d.get("suite")),
                str(d.get("adapter")),
                str(d.get("started_at")),
                str(d.get("pid")),
                str(d.get("run_id") or "-"),
            )
        out.print(t)
    for e in entries:
        if e.status == journal.ABORTED:
            if clear:
                journal.forget(e)
            else:
                journal.mark_announced(e)


def announce_aborted(ctx: typer.Context) -> None:
    """At each ``wattbench`` start: one warning line per run killed since the last start."""
    if ctx.invoked_subcommand in (None, "runs"):
        return
    try:
        from wattbench.harness import journal

        fresh = [
            e
            for e in journal.scan(is_stored=_stored_checker(None))
            if e.status == journal.ABORTED and not e.data.get("announced")
        ]
        for e in fresh:
            err.print(
                f"warning: {e.describe()}; nothing of it was stored "
                f"(`wattbench runs --aborted` lists such runs)",
                markup=False,
            )
            journal.mark_announced(e)
    except Exception as exc:  # never stop a command because the journal is unreadable
        err.print(f"warning: cannot read the run journal: {exc}", markup=False)


def register(app: typer.Typer) -> None:
    """``wattbench runs``, and the start-up notice of aborted runs."""
    app.command("runs")(runs)
    app.callback()(announce_aborted)
