"""What the ``wattbench`` commands share: consoles, option types, parsing, formatting."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wattbench.core.errors import ConfigError

# Wide tables when piped (CI logs, files); a terminal keeps its own width.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: WATTBENCH_DB or SQLite in the data dir)."),
]


SysfsOpt = Annotated[
    Path | None,
    typer.Option(
        "--sysfs-root",
        help="Read sysfs/procfs under this root (a recorded tree); "
        "default WATTBENCH_SYSFS_ROOT or /.",
    ),
]
PowerOptOpt = Annotated[
    list[str] | None,
    typer.Option("--power-opt", help="Reader setting READER.KEY=VALUE (repeatable)."),
]


AdapterOptOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--adapter-opt",
        help="Runtime setting KEY=VALUE (repeatable), e.g. performance_hint=THROUGHPUT; "
        "each adapter lists the keys it knows.",
    ),
]


def parse_adapter_opts(items: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"invalid --adapter-opt {item!r}: use KEY=VALUE, e.g. performance_hint=THROUGHPUT"
            )
        params[key.strip()] = value.strip()
    return params


def parse_power_opts(items: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        reader, dot, name = key.partition(".")
        if not sep or not dot or not reader or not name:
            raise ConfigError(
                f"invalid --power-opt {item!r}: use READER.KEY=VALUE, e.g. shelly.url=http://10.0.0.5"
            )
        params[key.strip()] = value.strip()
    return params


def sysfs_root_dir(option: Path | None) -> Path:
    root = option if option is not None else Path(os.environ.get("WATTBENCH_SYSFS_ROOT") or "/")
    if not root.is_dir():
        raise ConfigError(f"--sysfs-root {root} is not a directory")
    return root


def reader_options(
    tdp_w: float | None, sysfs_root: Path | None, power_opt: list[str] | None
) -> Any:
    from wattbench.core.power import ReaderOptions

    try:
        return ReaderOptions(
            tdp_w=tdp_w, sysfs_root=sysfs_root_dir(sysfs_root), params=parse_power_opts(power_opt)
        )
    except ValidationError as exc:
        raise ConfigError(validation_message(exc)) from None


def run_labels(given: list[str], git: bool) -> tuple[str, ...]:
    """User labels, plus the git sha/branch unless the user gave their own."""
    from wattbench.core.fingerprint import git_labels

    labels = list(given)
    if git:
        for auto in git_labels():
            prefix = auto.split(":", 1)[0] + ":"
            if not any(lbl.startswith(prefix) for lbl in labels):
                labels.append(auto)
    return tuple(labels)


def validation_message(exc: ValidationError) -> str:
    e = exc.errors()[0]
    loc = ".".join(str(x) for x in e["loc"]) or "value"
    return f"invalid --{loc.replace('_', '-')}: {e['msg']}"


def fmt_num(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 10**-digits):
        return f"{v:.{digits}e}"
    return f"{v:.{digits}f}"


def energy_label(method: str | None, scope: str | None) -> str:
    if method is None:
        return "none"
    tag = "ESTIMATED" if method == "estimated" else method
    return f"{tag}/{scope}"


def jsonable(v: Any) -> Any:
    if hasattr(v, "model_dump"):
        return v.model_dump(mode="json")
    if isinstance(v, dict) or hasattr(v, "items"):
        return {str(k): jsonable(x) for k, x in v.items()}
    return v


def targets_text(targets: Any) -> str:
    """{"fp32": {"top1_agreement": 0.99}} → "fp32: top1_agreement ≥ 0.99"."""
    if hasattr(targets, "model_dump"):
        targets = targets.model_dump()
    if isinstance(targets, dict):
        parts = []
        for k, v in targets.items():
            if isinstance(v, (int, float)):
                parts.append(f"{k} ≥ {v:g}")
            else:
                parts.append(f"{k}: {targets_text(v)}")
        return "; ".join(parts)
    return str(targets)


def print_rows(rows: list[dict[str, Any]], as_json: bool, cols: tuple[str, ...]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    t = Table()
    for c in cols:
        t.add_column(c)
    for r in rows:
        # escape: values like "[onnx/torchscript]" are data, not rich markup
        t.add_row(*("" if r.get(c) is None else escape(str(r.get(c))) for c in cols))
    out.print(t)


def run_reader_options(cfg: Any) -> Any:
    """ReaderOptions of a RunConfig (its TDP, sysfs root and reader settings)."""
    from wattbench.core.power import ReaderOptions

    try:
        return ReaderOptions(
            tdp_w=cfg.tdp_w, sysfs_root=sysfs_root_dir(cfg.sysfs_root), params=cfg.power_options
        )
    except ValidationError as exc:
        raise ConfigError(validation_message(exc)) from None
