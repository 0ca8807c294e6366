"""``wattbench sweep settings``: the energy-optimal runtime and device settings."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from wattbench.core.errors import ConfigError, UnavailableError
from wattbench.harness.cli.common import DbOpt, err, fmt_num, out


def settings(
    config: Annotated[
        Path, typer.Option("--config", help="Sweep file: [run] (run options) and [sweep] lists.")
    ],
    latency_bound_ms: Annotated[
        float | None,
        typer.Option(help="Feasible points meet this latency (the [sweep] percentile, p90)."),
    ] = None,
    percentile: Annotated[
        str | None, typer.Option(help="Latency percentile of the bound: p50, p90, p95, p99.")
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            help="exhaustive (every grid point) or coordinate (alias bisect: coordinate "
            "descent, golden-section along ordered axes; a fraction of the grid)."
        ),
    ] = None,
    cooldown_until_temp: Annotated[
        float | None,
        typer.Option(
            help="Before each point wait until the hottest sensor is at or below this (deg C)."
        ),
    ] = None,
    cooldown_timeout: Annotated[
        float | None,
        typer.Option(help="Longest wait for --cooldown-until-temp, s (default 600)."),
    ] = None,
    cooldown_sensor: Annotated[
        str | None,
        typer.Option(help="Only sensors whose name contains this count for the cooldown."),
    ] = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the sweep as JSON.")] = False,
    sysfs_root: Annotated[
        Path | None,
        typer.Option("--sysfs-root", help="Tune sysfs under this root (a test tree); default /."),
    ] = None,
    git_labels: Annotated[
        bool, typer.Option(help="Add git:<sha> and branch:<name> labels to the runs.")
    ] = True,
) -> None:
    """Measure the baseline and every point of a settings grid; print the Pareto front
    (latency vs J/inference) and the energy-optimal point within the latency bound.

    Device settings are restored at the end, on errors and on Ctrl-C/SIGTERM; after a
    SIGKILL or a power cut the next wattbench command restores them (or `wattbench tune
    restore`).
    """
    from wattbench.core import plugins
    from wattbench.core.cache import ModelCache
    from wattbench.core.config import RunConfig, config_error
    from wattbench.core.suite import SuiteOptions
    from wattbench.core.tuning import TuneSession, load_tuner
    from wattbench.harness.cli.common import run_labels, run_reader_options
    from wattbench.harness.cli.run import default_adapter
    from wattbench.harness.protocol import create_runner
    from wattbench.harness.settings_sweep import (
        TUNER_KEYS,
        check_spec,
        config_builder,
        load_sweep_file,
        run_sweep,
    )
    from wattbench.power.select import select_readers
    from wattbench.power.thermal import ThermalMonitor
    from wattbench.results_db.store import Store

    spec = load_sweep_file(config)
    if latency_bound_ms is not None:
        spec.latency_bound_ms = latency_bound_ms
    if percentile is not None:
        spec.percentile = percentile
    if search is not None:
        spec.search = search
    if cooldown_until_temp is not None:
        spec.cooldown_until_c = cooldown_until_temp
    if cooldown_timeout is not None:
        spec.cooldown_timeout_s = cooldown_timeout
    if cooldown_sensor is not None:
        spec.cooldown_sensor = cooldown_sensor
    check_spec(spec)  # a bad search or option fails before anything is measured

    def resolve(fields: dict[str, Any]) -> RunConfig:
        if not fields.get("suite"):
            raise ConfigError(f"no suite: set suite in the [run] table of {config}")
        suite_cls = plugins.load(plugins.SUITES, fields["suite"])
        if not fields.get("adapter"):
            fields["adapter"] = default_adapter(suite_cls)
        adapter_cls = plugins.load(plugins.ADAPTERS, fields["adapter"])
        fields.setdefault("device", None)
        if not fields["device"]:
            fields["device"] = adapter_cls.default_device
        env_data = os.environ.get("WATTBENCH_DATA_DIR")
        if fields.get("data_dir") is None and env_data:
            fields["data_dir"] = Path(env_data)
        fields["labels"] = run_labels(list(fields.get("labels", ())), git=git_labels)
        try:
            return RunConfig(**fields)
        except ValidationError as exc:
            raise config_error(exc, lambda k: f"key {k!r} in {config}") from None

    build = config_builder(spec, resolve)
    probe = build({})  # a bad [run] table fails before any setting changes
    store = Store.open(db)
    adapter_cls = plugins.load(plugins.ADAPTERS, probe.adapter)
    ok, reason = adapter_cls.is_available(probe.device)
    if not ok:
        raise UnavailableError(f"adapter {probe.adapter!r} is not available: {reason}")
    cache = ModelCache()
    shown_warnings: set[str] = set()
    thermal = ThermalMonitor(sysfs_root)

    def measure(cfg: RunConfig) -> Any:
        readers, warnings = select_readers(cfg.power, run_reader_options(cfg))
        for w in warnings:
            if w not in shown_warnings:
                shown_warnings.add(w)
                err.print(f"warning: {w}", markup=False)
        suite_obj = plugins.load(plugins.SUITES, cfg.suite)(
            SuiteOptions(data_dir=cfg.data_dir, seed=cfg.seed, weights=cfg.weights)
        )
        result = create_runner(
            cfg,
            suite_obj,
            plugins.load(plugins.ADAPTERS, cfg.adapter)(),
            readers,
            cache,
            warnings=warnings,
            thermal=thermal,
        ).execute()
        store.save_run(result)
        return result

    options = {"jetson": {"jetson_clocks": True}} if spec.jetson_clocks else {}
    tuners = {
        TUNER_KEYS[k]: load_tuner(TUNER_KEYS[k], sysfs_root, options.get(TUNER_KEYS[k]))
        for k in spec.axes
        if k in TUNER_KEYS
    }
    with TuneSession(tuners, sysfs_root=sysfs_root) as session:
        result = run_sweep(
            spec,
            base_config=build,
            measure=measure,
            tuners=tuners,
            session=session,
            say=lambda s: err.print(s, markup=False),
            thermal=thermal,
        )
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
        return
    _print(result)


def _print(result: Any) -> None:
    from rich.table import Table

    ans = result.answer
    pct = ans.percentile
    bound = f", bound {pct} <= {ans.latency_bound_ms:g} ms" if ans.latency_bound_ms else ""
    table = Table(title=f"sweep {result.sweep_id} ({result.search}{bound})")
    cols = ["setting", "J/inference", "inferences/J", "p90 ms", "p99 ms", "feasible"]
    temps = any(p.max_temp_c is not None for p in result.points)
    cols += ["max C", "throttled", ""] if temps else ["throttled", ""]
    for col in cols:
        table.add_column(col)
    for p in result.points:
        marks = []
        if p.key in ans.pareto:
            marks.append("pareto")
        if p.key == ans.optimal:
            marks.append("OPTIMAL")
        row = [
            p.key,
            fmt_num(p.j_per_inference, 4),
            fmt_num(p.inferences_per_joule),
            fmt_num(p.latency_ms.get("p90")),
            fmt_num(p.latency_ms.get("p99")),
            "-" if p.feasible is None else ("yes" if p.feasible else "no"),
        ]
        if temps:
            row.append(fmt_num(p.max_temp_c, 1))
        row += ["THROTTLED" if p.throttled else "no", " ".join(marks)]
        table.add_row(*row)
    out.print(table)
    out.print(
        f"measured {result.measured} of {result.grid} grid points (+ the baseline)", markup=False
    )
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    throttled = [p.key for p in result.points if p.throttled]
    if throttled:
        out.print(
            f"THROTTLED during a trial: {', '.join(throttled)} (their figures include the "
            f"slowdown; cool the device or use --cooldown-until-temp and re-measure)",
            markup=False,
        )
    out.print(f"pareto front ({pct} latency vs J/inference): {', '.join(ans.pareto)}", markup=False)
    best = result.by_key(ans.optimal)
    if best is None:
        out.print("no point meets the latency bound", markup=False)
        return
    gain = ""
    if ans.gain is not None and ans.saving is not None:
        gain = f"; {ans.gain:.2f}x the baseline's inferences/J ({ans.saving:.0%} less energy)"
    out.print(
        f"energy-optimal: {best.key}: {fmt_num(best.j_per_inference, 4)} J/inference, "
        f"{pct} {fmt_num(best.latency_ms.get(pct))} ms{gain}",
        markup=False,
    )
