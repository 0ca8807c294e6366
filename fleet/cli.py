"""``wattbench campaign ...`` and ``wattbench worker``: lab campaigns over a broker.

Registered through the ``wattbench.commands`` entry point (nothing imports the fleet, the
CLI included). Importing this module imports neither Celery nor the store.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from wattbench.core.errors import ConfigError
from wattbench.harness.cli.common import DbOpt, out, print_rows

BROKER_ENV = "WATTBENCH_BROKER"
PREFIX_ENV = "WATTBENCH_QUEUE_PREFIX"

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker", envvar=BROKER_ENV, help="AMQP URL, e.g. amqp://user:pass@broker:5672/lab."
    ),
]
PrefixOpt = Annotated[
    str,
    typer.Option(
        "--queue-prefix", envvar=PREFIX_ENV, help="Prefix of the broker queues (one per lab)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]

campaign_app = typer.Typer(
    help="Lab campaigns: a matrix of runs across device racks (docs/fleet.md).",
    no_args_is_help=True,
)


def _broker(url: str | None) -> str:
    if not url:
        raise ConfigError(f"no broker: pass --broker amqp://... or set {BROKER_ENV}")
    return url


def _store(db: str | None) -> Any:
    from wattbench.results_db.store import Store

    return Store.open(db)


def _dump(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@campaign_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="Campaign file (TOML).")],
    broker_url: BrokerOpt = None,
    db: DbOpt = None,
    queue_prefix: PrefixOpt = "wattbench",
    as_json: JsonOpt = False,
) -> None:
    """Record the campaign's cells in the store and queue them for the devices."""
    from wattbench.fleet import broker, ledger
    from wattbench.fleet.spec import load_campaign

    spec = load_campaign(file)
    url = _broker(broker_url)
    store = _store(db)
    try:
        sub = ledger.create_campaign(store.engine, spec, queue_prefix)
        try:
            broker.publish_cells(url, queue_prefix, sub.messages)
        except Exception:
            ledger.cancel(store.engine, sub.campaign_id)  # nothing half-queued stays active
            raise
    finally:
        store.close()
    data = {"campaign_id": sub.campaign_id, "cells": sub.cells, "skipped": sub.skipped}
    if as_json:
        _dump(data)
    else:
        out.print(
            f"campaign {sub.campaign_id}: {sub.cells} cells queued"
            + (f" ({sub.skipped} skipped: adapter not available there)" if sub.skipped else "")
        )


@campaign_app.command("status")
def status(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id (or a unique prefix).")],
    db: DbOpt = None,
    offline_after: Annotated[
        float,
        typer.Option(help="Seconds without a heartbeat after which a device is offline."),
    ] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Cells done/running/failed/skipped/pending per device and overall."""
    from wattbench.fleet import ledger

    store = _store(db)
    try:
        data = ledger.status(store.engine, campaign_id, offline_after)
    finally:
        store.close()
    if as_json:
        _dump(data)
        return
    o = data["overall"]
    out.print(
        f"{data['name']} ({data['campaign_id']}): {data['state']}, "
        f"{o['done']}/{o['total']} done, {o['running']} running, {o['failed']} failed, "
        f"{o['skipped']} skipped, {o['pending']} pending"
        + (f", {o['cancelled']} cancelled" if o["cancelled"] else "")
    )
    cols = ("device", "state", "done", "running", "failed", "skipped", "pending", "cancelled")
    print_rows(data["devices"], False, cols)
    for f in data["failures"]:
        out.print(f"failed: cell {f['cell']} on {f['device']}: {f['reason']}", markup=False)


@campaign_app.command("list")
def list_(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Campaigns, newest first, with their cell counts."""
    from wattbench.fleet import ledger

    store = _store(db)
    try:
        rows = ledger.list_campaigns(store.engine)
    finally:
        store.close()
    cols = ("campaign_id", "name", "state", "done", "running", "failed", "skipped", "pending")
    if as_json:
        _dump(rows)
    else:
        print_rows(rows, False, cols)


@campaign_app.command("cancel")
def cancel(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id (or a unique prefix).")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel: pending cells are dropped, running ones stop at their next phase."""
    from wattbench.fleet import ledger

    store = _store(db)
    try:
        cid = ledger.campaign(store.engine, campaign_id).id
        n = ledger.cancel(store.engine, cid)
    finally:
        store.close()
    if as_json:
        _dump({"campaign_id": cid, "cancelled": n})
    else:
        out.print(f"campaign {cid} cancelled ({n} pending cells)")


@campaign_app.command("retry")
def retry(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id (or a unique prefix).")],
    failed: Annotated[
        bool,
        typer.Option(
            "--failed", help="Only failed cells (default: every cell not done or running)."
        ),
    ] = False,
    broker_url: BrokerOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue cells again as their next attempt (a new run uuid each)."""
    from wattbench.fleet import broker, ledger

    url = _broker(broker_url)
    store = _store(db)
    try:
        c = ledger.campaign(store.engine, campaign_id)
        sub = ledger.retry(store.engine, c.id, failed_only=failed)
        broker.publish_cells(url, c.queue_prefix, sub.messages)
    finally:
        store.close()
    if as_json:
        _dump({"campaign_id": c.id, "cells": sub.cells})
    else:
        out.print(f"campaign {c.id}: {sub.cells} cells queued again")


def worker(
    device: Annotated[str, typer.Option("--device", help="Name of this device (its queue).")],
    broker_url: BrokerOpt = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="A tag of this device (repeatable): takes its cells too."),
    ] = None,
    db: DbOpt = None,
    upload_to: Annotated[
        str | None,
        typer.Option(
            "--upload-to",
            help="Ingest server URL (`wattbench serve`): no database access; results are "
            "spooled locally and uploaded, cells claimed through the server.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="WATTBENCH_TOKEN", help="This device's upload token (--upload-to)."
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of the upload spool (default: the user state directory)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on this port (live power, cells)."),
    ] = None,
    queue_prefix: PrefixOpt = "wattbench",
    heartbeat_s: Annotated[
        float, typer.Option(help="Seconds between heartbeats to the device registry.")
    ] = 10.0,
    power: Annotated[
        str, typer.Option(help="Readers of the live power metrics (comma-separated).")
    ] = "auto",
    scan_adapters: Annotated[
        bool,
        typer.Option(
            help="Report which adapters run here, so submit skips what this device cannot run."
        ),
    ] = True,
    executor: Annotated[
        str | None,
        typer.Option(hidden=True, help="module:attribute running cells (benchmarks)."),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING...")] = "INFO",
) -> None:
    """Run the campaign cells of this device (and of its tags), one at a time.

    Results go to the store (--db, PostgreSQL in a lab) or, without database access, to
    an ingest server (--upload-to URL --token T). SIGTERM finishes cleanly: the current
    cell is stopped and queued again.
    """
    from wattbench.fleet.worker import serve

    if heartbeat_s <= 0:
        raise ConfigError("--heartbeat-s must be above 0")
    if db is not None and upload_to is not None:
        raise ConfigError("pass either --db URL or --upload-to URL --token T, not both")
    if upload_to is not None:
        if not token:
            raise ConfigError(
                "--upload-to needs this device's token: pass --token (or set WATTBENCH_TOKEN); "
                "create one on the server with `wattbench token create --device NAME`"
            )
    elif db is None and not os.environ.get("WATTBENCH_DB"):
        raise ConfigError(
            "a worker stores results in the lab store: pass --db URL "
            "(or --upload-to URL --token T without database access)"
        )
    rc = serve(
        broker_url=_broker(broker_url),
        device=device,
        tags=list(tag or []),
        db=db,
        upload_to=upload_to,
        token=token,
        state_dir=state_dir,
        metrics_port=metrics_port,
        queue_prefix=queue_prefix,
        heartbeat_s=heartbeat_s,
        executor=executor,
        power=tuple(p.strip() for p in power.split(",") if p.strip()),
        loglevel=loglevel,
        scan_adapters=scan_adapters,
    )
    raise typer.Exit(rc)


def register(app: typer.Typer) -> None:
    """Add ``campaign`` and ``worker`` to the ``wattbench`` command line."""
    app.add_typer(campaign_app, name="campaign")
    app.command("worker")(worker)
