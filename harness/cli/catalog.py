"""What is installed here: ``wattbench adapters``, ``suites``, ``power list|measure``, ``db``."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from wattbench.core import plugins
from wattbench.core.errors import ConfigError, UnavailableError
from wattbench.harness.cli.common import (
    DbOpt,
    PowerOptOpt,
    SysfsOpt,
    energy_label,
    err,
    jsonable,
    out,
    print_rows,
    reader_options,
    targets_text,
)
from wattbench.harness.cli.progress import CliProgress

power_app = typer.Typer(help="Power readers.", no_args_is_help=True)
db_app = typer.Typer(help="Results database.", no_args_is_help=True)


def adapters(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Runtime adapters installed here, and why any is unavailable."""
    rows = []
    for name in plugins.names(plugins.ADAPTERS):
        try:
            cls = plugins.load(plugins.ADAPTERS, name)
        except UnavailableError as exc:  # a broken plug-in package: listed, not fatal
            rows.append({"name": name, "available": False, "reason": str(exc)})
            continue
        ok, reason = cls.is_available(cls.default_device)
        rows.append(
            {
                "name": name,
                "device": cls.default_device,
                "available": ok,
                "runtime_version": cls.runtime_version(),
                "reason": reason,
            }
        )
    print_rows(rows, as_json, ("name", "device", "available", "runtime_version", "reason"))


def suites(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Standard suites, their versions and models."""
    rows = []
    for name in plugins.names(plugins.SUITES):
        cls = plugins.load(plugins.SUITES, name)
        inst = cls()
        rows.append(
            {
                "name": name,
                "version": cls.version,
                "task": cls.task,
                "models": ", ".join(
                    f"{r.name} [{'/'.join(r.formats)}] {r.weights}" for r in inst.recipes()
                ),
                "scenarios": ", ".join(cls.scenarios),
                "quality_targets": jsonable(cls.quality_targets),
            }
        )
    if not as_json:
        for r in rows:
            targets = r["quality_targets"]
            r["quality_targets"] = targets_text(targets) or "sanity"
    print_rows(rows, as_json, ("name", "version", "task", "models", "scenarios", "quality_targets"))


@power_app.command("list")
def power_list(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tdp_w: Annotated[float | None, typer.Option(help="CPU TDP in W for the estimate.")] = None,
    sysfs_root: SysfsOpt = None,
    power_opt: PowerOptOpt = None,
) -> None:
    """Power readers found here: method, scope, availability and why not."""
    from wattbench.power.select import reader_classes

    options = reader_options(tdp_w, sysfs_root, power_opt)
    rows = []
    for name, cls in reader_classes().items():
        ok, reason = cls.is_available(options)
        row: dict[str, Any] = {
            "name": name,
            "method": cls.method.value,
            "available": ok,
            "scope": None,
            "component": None,
            "reason": reason,
        }
        if ok:
            reader = cls(options)
            try:
                info = reader.info()
            finally:
                reader.close()
            # The instance knows what it will actually use (an hwmon energy counter is
            # a counter even though the class defaults to polling).
            row.update(
                method=info.method.value,
                scope=info.scope.value,
                component=info.component,
                details=info.details,
            )
        rows.append(row)
    print_rows(rows, as_json, ("name", "method", "scope", "component", "available", "reason"))


@power_app.command("measure")
def power_measure(
    reader: Annotated[str, typer.Option(help="Reader name (see `wattbench power list`).")],
    seconds: Annotated[float, typer.Option(help="Window length in seconds.")] = 5.0,
    sysfs_root: SysfsOpt = None,
    power_opt: PowerOptOpt = None,
    tdp_w: Annotated[float | None, typer.Option(help="CPU TDP in W for the estimate.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure the machine as it is for SECONDS with one reader."""
    import time

    from wattbench.power.select import select_readers

    if seconds <= 0:
        raise ConfigError("--seconds must be > 0")
    (meter,), warnings = select_readers((reader,), reader_options(tdp_w, sysfs_root, power_opt))
    for w in warnings:
        err.print(f"warning: {w}")
    try:
        meter.start()
        with CliProgress(err) as progress:
            progress.phase(f"measuring ({reader})", seconds)
            t_end = time.monotonic() + seconds
            while (left := t_end - time.monotonic()) > 0:
                time.sleep(min(0.1, left))
                progress.update(seconds - max(left, 0.0))
        reading = meter.stop()
    finally:
        meter.close()
    data = {
        "reader": reading.reader,
        "method": reading.method.value,
        "scope": reading.scope.value,
        "component": reading.component,
        "energy_j": reading.energy_j,
        "duration_s": reading.duration_s,
        "mean_power_w": reading.mean_power_w,
        "peak_power_w": reading.peak_power_w,
        "samples": reading.samples,
        "sample_rate_hz": reading.sample_rate_hz,
        "update_period_s": reading.update_period_s,
        "uncertainty_j": reading.uncertainty_j,
        "estimated": reading.method.value == "estimated",
        "valid": reading.valid,
        "invalid_reasons": reading.invalid_reasons,
        "details": reading.details,
    }
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        est = " (ESTIMATED)" if data["estimated"] else ""
        unc = f" ± {reading.uncertainty_j:.3g}" if reading.uncertainty_j is not None else ""
        out.print(
            f"{reading.reader} [{energy_label(reading.method.value, reading.scope.value)}] "
            f"{reading.component}: {reading.energy_j:.4g}{unc} J over {reading.duration_s:.2f} s, "
            f"mean {reading.mean_power_w:.3g} W{est}, {reading.samples} samples"
            + ("" if reading.valid else f" — INVALID: {'; '.join(reading.invalid_reasons)}")
        )
    if not reading.valid:
        sys.exit(1)


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = None) -> None:
    """Create or migrate the results database schema to this version."""
    from wattbench.results_db.store import Store

    store = Store.open(db, check_schema=False)
    before, after = store.upgrade()
    out.print(f"{store.display_url}: schema {before or 'empty'} -> {after}")
