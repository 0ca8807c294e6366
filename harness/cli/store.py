"""CLI commands of the lab store: ``serve``, ``upload``, ``export``, ``import``, ``token …``.

Registered in :mod:`wattbench.harness.cli` (``app.command()(store.serve)``, ...).

Importing this module is cheap: FastAPI, uvicorn, pandas and pyarrow are imported
only by the command that needs them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from wattbench.core.errors import ConfigError

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: WATTBENCH_DB or SQLite in the data dir)."),
]

token_app = typer.Typer(
    help="Upload tokens of devices (run on the central store).", no_args_is_help=True
)


def _out() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def serve(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_body_mb: Annotated[
        float, typer.Option(help="Largest accepted run upload in MiB (larger: HTTP 413).")
    ] = 8.0,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    workers: Annotated[
        int, typer.Option(help="Server processes (use about one per CPU core).")
    ] = 1,
    read_timeout: Annotated[
        float,
        typer.Option(help="Seconds a client has for a request's headers, then for its body."),
    ] = 30.0,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds an idle kept-alive connection stays open.")
    ] = 5.0,
    max_connections: Annotated[
        int, typer.Option(help="Connections per server process; beyond: HTTP 503.")
    ] = 256,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key.")] = None,
) -> None:
    """Serve the ingest API (POST /api/v1/runs) and the leaderboard over HTTP(S)."""
    from wattbench.results_db.store import Store

    try:
        from wattbench.results_db.server import run_server
    except ImportError as exc:
        raise ConfigError(
            f"`wattbench serve` needs the server extra: pip install 'wattbench[server]' "
            f"({exc.name} is missing)"
        ) from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"invalid --port {port}: use 1-65535")
    if max_body_mb <= 0:
        raise ConfigError("--max-body-mb must be > 0")
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if read_timeout <= 0 or idle_timeout <= 0:
        raise ConfigError("--read-timeout and --idle-timeout must be > 0 seconds")
    if max_connections < 1:
        raise ConfigError("--max-connections must be at least 1")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("HTTPS needs both --tls-cert and --tls-key")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise ConfigError(f"TLS file not found: {path}")
    store = Store.open(db)
    scheme = "https" if tls_cert else "http"
    _err().print(
        f"wattbench: serving {store.display_url} on {scheme}://{host}:{port} "
        f"(POST /api/v1/runs, GET /api/v1/leaderboard)"
    )
    run_server(
        store,
        host,
        port,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        access_log=access_log,
        workers=workers,
        read_timeout_s=read_timeout,
        idle_timeout_s=idle_timeout,
        max_connections=max_connections,
        tls_certfile=str(tls_cert) if tls_cert else None,
        tls_keyfile=str(tls_key) if tls_key else None,
    )


def upload(
    to: Annotated[
        str,
        typer.Option(
            "--to", help="Ingest API (http://host:8000) or a database URL (trusted lab machines)."
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(envvar="WATTBENCH_TOKEN", help="Device token (`wattbench token create`)."),
    ] = None,
    db: DbOpt = None,
    max_attempts: Annotated[
        int, typer.Option(help="Tries per run while the server is unavailable.")
    ] = 5,
    backoff: Annotated[
        float, typer.Option(help="First wait between tries in seconds; doubles each time.")
    ] = 1.0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one response.")] = 30.0,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Runs per request (POST /api/v1/runs/batch); 1 sends them one by one. "
            "An older server without batches gets single posts by itself."
        ),
    ] = 100,
) -> None:
    """Send the runs recorded here that the central store has not acknowledged yet."""
    from wattbench.results_db.errors import UploadError
    from wattbench.results_db.store import Store
    from wattbench.results_db.upload import upload_pending

    store = Store.open(db)
    report = upload_pending(
        store,
        to,
        token,
        max_attempts=max_attempts,
        backoff_s=backoff,
        timeout_s=timeout,
        batch_size=batch_size,
    )
    for run_id, reason in report.rejected:
        _err().print(f"warning: run {run_id} rejected: {reason}", markup=False)
    for run_id, reason in report.conflicts:
        _err().print(
            f"conflict: run {run_id} stays pending here, the stored one is unchanged: {reason}",
            markup=False,
        )
    _err().print(f"wattbench: {report.summary()}", markup=False)
    if report.ok:
        return
    why = report.stopped or (
        f"{len(report.rejected) + len(report.conflicts)} rejected or in conflict "
        f"(see the lines above)"
    )
    raise UploadError(
        f"{report.pending} run(s) still pending in {store.display_url}: {why}; they stay "
        f"queued: run `wattbench upload` again"
    )


def export(
    fmt: Annotated[str, typer.Option("--format", help="csv, json or parquet.")] = "csv",
    db: DbOpt = None,
    suite: Annotated[str | None, typer.Option(help="Only this suite.")] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="Only runs with this label (repeatable: all).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only runs started on/after this date (2026-11-01).")
    ] = None,
    valid_only: Annotated[bool, typer.Option(help="Leave out invalid runs.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Export stored runs, one row per run, for spreadsheets and notebooks."""
    from wattbench.results_db import export as exp
    from wattbench.results_db.store import Store

    if fmt not in exp.FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}: use csv, json or parquet")
    since_dt = exp.parse_since(since)
    store = Store.open(db)
    n = exp.export(
        store,
        fmt,
        output,
        suite=suite,
        labels=tuple(label or ()),
        since=since_dt,
        include_invalid=not valid_only,
    )
    if output is not None:
        _err().print(f"wattbench: {n} run(s) written to {output}", markup=False)


def import_runs(
    source: Annotated[
        str,
        typer.Argument(
            help="A run file (`wattbench run --json`, a JSON array or JSON Lines) or the "
            "database URL of another store."
        ),
    ],
    db: DbOpt = None,
) -> None:
    """Import whole runs from a file or another store (duplicates skipped, conflicts kept out)."""
    from wattbench.results_db.errors import UploadError
    from wattbench.results_db.store import Store
    from wattbench.results_db.transfer import import_runs as do_import

    store = Store.open(db)
    report = do_import(store, source, on_problem=lambda line: _err().print(line, markup=False))
    _err().print(f"wattbench: {report.summary()}", markup=False)
    if not report.ok:
        raise UploadError(
            f"{len(report.conflicts) + len(report.invalid)} run(s) of {report.source} not "
            f"imported into {store.display_url} (see the lines above); the stored runs are "
            f"unchanged"
        )


@token_app.command("create")
def token_create(
    device: Annotated[str, typer.Option(help="Device name its runs carry (--device-name).")],
    db: DbOpt = None,
) -> None:
    """Create an upload token for DEVICE and print it (once: only its hash is stored)."""
    from wattbench.results_db.store import Store
    from wattbench.results_db.tokens import create_token

    store = Store.open(db)
    token = create_token(store, device)
    sys.stdout.write(token + "\n")
    _err().print(
        f"wattbench: token for device {device!r} created; it is shown only now. On the device: "
        f"wattbench upload --to http://<this-host>:8000 --token <token>",
        markup=False,
    )


@token_app.command("list")
def token_list(
    db: DbOpt = None,
    device: Annotated[str | None, typer.Option(help="Only this device's tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Tokens (id, device, hash fingerprint, created, revoked); never the tokens themselves."""
    from wattbench.results_db.store import Store
    from wattbench.results_db.tokens import list_tokens

    tokens = list_tokens(Store.open(db), device)
    if as_json:
        sys.stdout.write(json.dumps([t.model_dump(mode="json") for t in tokens], indent=2) + "\n")
        return
    t = Table()
    for col in ("id", "device", "fingerprint", "created", "revoked"):
        t.add_column(col)
    for tok in tokens:
        t.add_row(
            str(tok.id),
            tok.device,
            tok.fingerprint,
            tok.created_at.isoformat(timespec="seconds"),
            tok.revoked_at.isoformat(timespec="seconds") if tok.revoked_at else "",
        )
    _out().print(t)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[
        int | None, typer.Argument(help="Token id (`wattbench token list`).")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Revoke every active token of this device.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Revoke a token by id, or all of a device's; its uploads are refused from now on."""
    from wattbench.results_db.store import Store
    from wattbench.results_db.tokens import revoke_tokens

    n = revoke_tokens(Store.open(db), token_id=token_id, device=device)
    _err().print(f"wattbench: {n} token(s) revoked", markup=False)
