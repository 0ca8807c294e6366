"""`wattbench models`: the registry of pretrained artifacts and the local cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

models_app = typer.Typer(
    help="Pretrained model artifacts (registry and cache).", no_args_is_help=True
)


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, width=None if sys.stdout.isatty() else 200)


@models_app.command("list")
def list_models(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Known pretrained artifacts, their sha256 and whether they are cached here."""
    from wattbench.core.cache import ModelCache
    from wattbench.suites.models.registry import REGISTRY

    cache = ModelCache()
    rows: list[dict[str, Any]] = [
        {
            "name": e.name,
            "kind": e.kind,
            "format": e.format,
            "precision": e.precision,
            "sha256": e.sha256,
            "cached": cache.lookup(e.sha256, e.suffix) is not None,
            "url": e.url,
        }
        for e in REGISTRY.values()
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    out = _console()
    for r in rows:
        mark = "cached" if r["cached"] else "-"
        out.print(f"{r['name']:<45} {r['kind']:<7} {r['format']:<8} {mark:<7} {r['sha256'][:12]}")


@models_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="Registry name (see `wattbench models list`).")],
    base_url: Annotated[
        str | None,
        typer.Option(help="A mirror folder (http://… or file:///…) instead of upstream."),
    ] = None,
) -> None:
    """Download one artifact into the cache, verifying its sha256; prints its path."""
    from rich.progress import DownloadColumn, Progress

    from wattbench.core.cache import ModelCache
    from wattbench.suites.models.registry import fetch_pretrained

    with Progress(
        *Progress.get_default_columns(), DownloadColumn(), console=_console(True), transient=True
    ) as bar:
        task = bar.add_task(f"fetching {name}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        path = fetch_pretrained(name, ModelCache(), base_url=base_url, progress=progress)
    sys.stdout.write(f"{path}\n")


@models_app.command("import")
def import_(
    directory: Annotated[Path, typer.Argument(help="Folder holding downloaded artifact files.")],
) -> None:
    """Copy registry artifacts found in DIRECTORY into the cache (for offline machines)."""
    from wattbench.core.cache import ModelCache
    from wattbench.core.errors import ConfigError
    from wattbench.suites.models.registry import import_dir

    imported = import_dir(directory, ModelCache())
    if not imported:
        raise ConfigError(
            f"no file in {directory} matches a registry sha256: download them from the URLs in "
            f"`wattbench models list --json` and retry"
        )
    for name, path in imported.items():
        sys.stdout.write(f"{name}\t{path}\n")
