"""``wattbench run``: benchmark a suite on a runtime, store the result, print a summary."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from wattbench.core import plugins
from wattbench.core.errors import ConfigError, UnavailableError
from wattbench.harness.cli import store as cli_store
from wattbench.harness.cli.common import (
    AdapterOptOpt,
    DbOpt,
    PowerOptOpt,
    SysfsOpt,
    err,
    parse_adapter_opts,
    parse_power_opts,
    reader_options,
    run_labels,
    validation_message,
)
from wattbench.harness.cli.progress import CliProgress
from wattbench.harness.cli.summary import print_run_summary


def run(
    suite: Annotated[str, typer.Option(help="Suite name (see `wattbench suites`).")],
    adapter: Annotated[str, typer.Option(help="Runtime adapter (see `wattbench adapters`).")],
    model: Annotated[Path | None, typer.Option(help="Benchmark this model file instead.")] = None,
    device: Annotated[
        str | None,
        typer.Option(help="Adapter device: cpu, cuda, edgetpu, ... (default: the adapter's)."),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Runtime intra-op threads.")] = None,
    precision: Annotated[
        str | None, typer.Option(help="fp32, fp16 or int8 (default: the model's own).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Samples per query.")] = 1,
    duration: Annotated[float, typer.Option(help="Minimum seconds per measured trial.")] = 10.0,
    min_queries: Annotated[int, typer.Option(help="Minimum queries per trial.")] = 100,
    repeats: Annotated[int, typer.Option(help="Number of measured trials.")] = 3,
    warmup: Annotated[float, typer.Option(help="Warm-up seconds.")] = 2.0,
    idle: Annotated[float, typer.Option("--idle-s", help="Idle-baseline seconds.")] = 3.0,
    cooldown: Annotated[float, typer.Option(help="Seconds between trials.")] = 1.0,
    power: Annotated[
        str, typer.Option(help="Readers, comma-separated: auto, estimate, ... (first = headline).")
    ] = "auto",
    tdp_w: Annotated[float | None, typer.Option(help="CPU TDP in W for the estimate.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="Label the run (repeatable).")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Real inputs (default: WATTBENCH_DATA_DIR or synthetic).")
    ] = None,
    device_name: Annotated[str | None, typer.Option(help="Name of this device.")] = None,
    sysfs_root: SysfsOpt = None,
    power_opt: PowerOptOpt = None,
    adapter_opt: AdapterOptOpt = None,
    carbon_intensity: Annotated[
        float | None, typer.Option(help="Grid intensity in gCO2e/kWh for the carbon figure.")
    ] = None,
    country: Annotated[
        str | None, typer.Option(help="ISO alpha-3 country: grid intensity from codecarbon.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for random weights/synthetic inputs.")] = 0,
    db: DbOpt = None,
    git_labels: Annotated[
        bool, typer.Option(help="Add git:<sha> and branch:<name> of the current git tree.")
    ] = True,
    upload_to: Annotated[
        str | None,
        typer.Option("--upload", help="After storing, push pending runs to this ingest API/DB."),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="WATTBENCH_TOKEN", help="Device token for --upload.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    scenario: Annotated[
        str, typer.Option(help="single-stream, offline or server (MLPerf semantics).")
    ] = "single-stream",
    target_qps: Annotated[
        float | None, typer.Option(help="Server: arrival rate (default: search the highest).")
    ] = None,
    latency_bound_ms: Annotated[
        float | None, typer.Option(help="Server: p99 latency bound in ms.")
    ] = None,
    driver: Annotated[
        str, typer.Option(help="builtin, or loadgen (MLPerf LoadGen, the loadgen extra).")
    ] = "builtin",
    concurrency: Annotated[
        int | None, typer.Option(help="Offline/server: queries in flight.")
    ] = None,
    e2e_queries: Annotated[
        int, typer.Option(help="Queries timed end to end after the trials (0 skips).")
    ] = 50,
    mode: Annotated[
        str, typer.Option(help="edge, cloud (all to --cloud-url) or hybrid (escalate).")
    ] = "edge",
    cloud_url: Annotated[
        str | None, typer.Option(help="Cloud endpoint (`wattbench cloud serve`).")
    ] = None,
    escalate_below: Annotated[
        float | None, typer.Option(help="Hybrid: escalate queries below this confidence.")
    ] = None,
    network_link: Annotated[
        str, typer.Option(help="Access link for the network energy model: wifi, ethernet, ...")
    ] = "wifi",
    payload: Annotated[
        str | None,
        typer.Option(
            help="Cloud/hybrid wire payload: raw, png@S, jpeg:Q@S or npy (default jpeg:90)."
        ),
    ] = None,
    network_model: Annotated[
        Path | None,
        typer.Option(
            help="Cloud/hybrid: JSON file of network kWh/GB coefficients (docs/network.md)."
        ),
    ] = None,
    cloud_j_per_request: Annotated[
        float | None,
        typer.Option(help="Cloud/hybrid: cloud J per request when the server meters none."),
    ] = None,
) -> None:
    """Benchmark SUITE on ADAPTER, store the result and print a summary."""
    from wattbench.core.cache import ModelCache
    from wattbench.core.config import RunConfig
    from wattbench.core.suite import SuiteOptions
    from wattbench.harness.protocol import create_runner
    from wattbench.power.select import select_readers
    from wattbench.results_db.store import Store

    env_data = os.environ.get("WATTBENCH_DATA_DIR")
    adapter_cls = plugins.load(plugins.ADAPTERS, adapter)
    device = device or adapter_cls.default_device
    try:
        cfg = RunConfig(
            suite=suite,
            adapter=adapter,
            model=model,
            device=device,
            threads=threads,
            precision=precision,  # type: ignore[arg-type]
            batch=batch,
            duration_s=duration,
            min_queries=min_queries,
            repeats=repeats,
            warmup_s=warmup,
            idle_s=idle,
            cooldown_s=cooldown,
            power=tuple(p.strip() for p in power.split(",") if p.strip()) or ("auto",),
            tdp_w=tdp_w,
            labels=run_labels(label or [], git=git_labels),
            data_dir=data_dir or (Path(env_data) if env_data else None),
            seed=seed,
            device_name=device_name,
            carbon_intensity_g_per_kwh=carbon_intensity,
            country=country,
            sysfs_root=sysfs_root,
            power_options=parse_power_opts(power_opt),
            adapter_options=parse_adapter_opts(adapter_opt),
            scenario=scenario,  # type: ignore[arg-type]
            target_qps=target_qps,
            latency_bound_ms=latency_bound_ms,
            driver=driver,  # type: ignore[arg-type]
            concurrency=concurrency,
            e2e_queries=e2e_queries,
            mode=mode,  # type: ignore[arg-type]
            cloud_url=cloud_url,
            escalate_below=escalate_below,
            network_link=network_link,
            payload=payload,
            network_model=network_model,
            cloud_j_per_request=cloud_j_per_request,
        )
    except ValidationError as exc:
        raise ConfigError(validation_message(exc)) from None
    if cfg.mode == "edge" and (payload or network_model or cloud_j_per_request is not None):
        raise ConfigError(
            "--payload, --network-model and --cloud-j-per-request apply to --mode cloud|hybrid"
        )

    # Fail fast on everything the user can get wrong, before minutes of measuring.
    store = Store.open(db)
    suite_cls = plugins.load(plugins.SUITES, cfg.suite)
    from wattbench.adapters.options import check_keys

    # before minutes of model building: a typo in --adapter-opt is one line now
    check_keys(cfg.adapter, cfg.adapter_options, adapter_cls.option_keys)
    ok, reason = adapter_cls.is_available(cfg.device)
    if not ok:
        raise UnavailableError(f"adapter {cfg.adapter!r} is not available: {reason}")
    if cfg.model is not None and not cfg.model.exists():
        raise ConfigError(f"model file not found: {cfg.model} (check the --model path)")
    if cfg.country:
        from wattbench.core.carbon import intensity_for_country

        intensity_for_country(cfg.country)  # fail now, not after the run
    readers, warnings = select_readers(
        cfg.power, reader_options(cfg.tdp_w, cfg.sysfs_root, power_opt)
    )
    for w in warnings:
        err.print(f"warning: {w}")
    suite_obj = suite_cls(SuiteOptions(data_dir=cfg.data_dir, seed=cfg.seed))
    with CliProgress(err) as progress:
        result = create_runner(
            cfg,
            suite_obj,
            adapter_cls(),
            readers,
            ModelCache(),
            progress=progress,
            warnings=warnings,
        ).execute()
    store.save_run(result)
    for w in result.warnings[len(warnings) :]:
        err.print(f"warning: {w}")
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        print_run_summary(result, store.display_url)
    if upload_to:
        # The run is committed locally first; an unreachable server leaves it pending.
        cli_store.upload(to=upload_to, token=token, db=db)
