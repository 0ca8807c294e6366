"""``wattbench run``: benchmark a suite on a runtime, store the result, print a summary."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from wattbench.core import plugins
from wattbench.core.errors import ConfigError, UnavailableError, WattbenchError
from wattbench.harness.cli import store as cli_store
from wattbench.harness.cli.common import (
    AdapterOptOpt,
    DbOpt,
    PowerOptOpt,
    SysfsOpt,
    err,
    run_labels,
    run_reader_options,
)
from wattbench.harness.cli.progress import CliProgress, planned_seconds
from wattbench.harness.cli.summary import print_run_summary

if TYPE_CHECKING:  # the config (and numpy under it) loads when a run starts, not at CLI start
    from wattbench.core.config import RunConfig


def run(
    ctx: typer.Context,
    suite: Annotated[
        str | None, typer.Option(help="Suite name (see `wattbench suites`); required.")
    ] = None,
    adapter: Annotated[
        str | None,
        typer.Option(help="Runtime adapter (see `wattbench adapters`; default: the suite's)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Run file (TOML): keys are these options' long names; options given here "
            "override it.",
        ),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option("--print-config", help="Print the run as a run file (TOML) and exit."),
    ] = False,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Benchmark this model file instead (distilbert: also a Hugging Face "
            "checkpoint folder)."
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="Adapter device: cpu, cuda, edgetpu, ... (default: the adapter's)."),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Runtime intra-op threads.")] = None,
    precision: Annotated[
        str | None, typer.Option(help="fp32, fp16, int8 or int4 (default: the model's own).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Samples per query.")] = 1,
    duration: Annotated[float, typer.Option(help="Minimum seconds per measured trial.")] = 10.0,
    min_queries: Annotated[int, typer.Option(help="Minimum queries per trial.")] = 100,
    repeats: Annotated[
        int, typer.Option(help="Number of measured trials (the minimum with --target-ci).")
    ] = 3,
    target_ci: Annotated[
        float | None,
        typer.Option(
            "--target-ci",
            metavar="PCT",
            help="Add trials until the 95% CI of the median of inferences per joule and of "
            "p90 latency is within PCT % of the median (or --max-duration ends).",
        ),
    ] = None,
    max_duration: Annotated[
        float | None,
        typer.Option(
            "--max-duration",
            metavar="S",
            help="--target-ci: measuring budget in seconds (trials + pauses; default 600).",
        ),
    ] = None,
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
    weights: Annotated[
        str | None,
        typer.Option(
            help="The suite's model weights: pretrained or random (seeded by --seed, for quick "
            "smoke runs); default: the suite's (pretrained where it has them)."
        ),
    ] = None,
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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve live Prometheus metrics (power W, energy J, inferences, temperature, "
            "up) at http://HOST:PORT/metrics while the run lasts (the fleet extra).",
        ),
    ] = None,
) -> None:
    """Benchmark SUITE on ADAPTER, store the result and print a summary.

    The run is a config: --config FILE loads one (keys as these options), --print-config
    writes one. Without --adapter the suite's default runtime runs.
    """
    from wattbench.core.cache import ModelCache
    from wattbench.core.suite import SuiteOptions
    from wattbench.harness.journal import RunJournal, store_result
    from wattbench.harness.protocol import create_runner
    from wattbench.power.select import select_readers
    from wattbench.power.thermal import ThermalMonitor
    from wattbench.results_db.store import Store

    # a printed run file stays reproducible: git labels are added when it runs
    cfg, adapter_cls = resolve_run_config(ctx, config, git_labels=git_labels and not print_config)
    if print_config:
        sys.stdout.write(cfg.to_toml())
        return
    from wattbench.core.confidence import check_config

    check_config(cfg)  # --target-ci / --max-duration, before minutes of measuring
    if cfg.mode == "edge" and (
        cfg.payload or cfg.network_model or cfg.cloud_j_per_request is not None
    ):
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
    readers, warnings = select_readers(cfg.power, run_reader_options(cfg))
    for w in warnings:
        err.print(f"warning: {w}")
    suite_obj = suite_cls(SuiteOptions(data_dir=cfg.data_dir, seed=cfg.seed, weights=cfg.weights))
    metrics = None
    if metrics_port is not None:
        from wattbench.harness.metrics import PowerMetrics

        metrics = PowerMetrics(cfg.device_name or "local", metrics_port, up_name="wattbench_run_up")
        metrics.start_sampler(tuple(cfg.power), interval_s=1.0)
    # The journal follows the run phase by phase: a kill leaves it behind, so the next
    # start reports the run as aborted (and where); the store write is one transaction.
    try:
        with RunJournal.recording(
            suite=cfg.suite, adapter=cfg.adapter, device_name=cfg.device_name, db=store.display_url
        ) as journal:
            with CliProgress(err, planned_seconds(cfg)) as bar:
                result = create_runner(
                    cfg,
                    suite_obj,
                    adapter_cls(),
                    readers,
                    ModelCache(),
                    progress=journal.progress(bar),
                    warnings=warnings,
                    thermal=ThermalMonitor(cfg.sysfs_root),  # temperatures + throttling per trial
                ).execute()
            store_result(result, store, journal)  # implausible figures: one error line
        if metrics is not None:
            metrics.inferences.labels(metrics.device).inc(result.inferences)
    finally:
        if metrics is not None:
            metrics.close()
    for w in result.warnings[len(warnings) :]:
        err.print(f"warning: {w}")
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        print_run_summary(result, store.display_url)
    if upload_to:
        # The run is committed locally first; an unreachable server leaves it pending.
        cli_store.upload(to=upload_to, token=token, db=db)


#: `wattbench run` parameters that are not part of the run itself (where it is stored, how
#: it is printed): never read from or written to a run file.
_NOT_RUN_PARAMS = frozenset(
    {"config", "print_config", "db", "git_labels", "upload_to", "token", "as_json", "metrics_port"}
)


def _option_values(ctx: typer.Context) -> dict[str, Any]:
    """The run options the user gave on the command line (or by env var), by long name."""
    given: dict[str, Any] = {}
    for param in ctx.command.params:
        name = param.name or ""
        if name in _NOT_RUN_PARAMS or name == "ctx":
            continue
        source = ctx.get_parameter_source(name)
        # by name: typer vendors its own click, whose enum is not click's
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        long = max((o for o in param.opts if o.startswith("--")), key=len).removeprefix("--")
        given[long] = ctx.params[name]
    return given


def default_adapter(suite_cls: Any) -> str:
    """The suite's default runtime: its first ``default_adapters`` entry available here."""
    names: tuple[str, ...] = getattr(suite_cls, "default_adapters", ()) or ("onnxruntime",)
    reasons = []
    for name in names:
        try:
            cls = plugins.load(plugins.ADAPTERS, name)
        except WattbenchError as exc:
            reasons.append(str(exc))
            continue
        ok, reason = cls.is_available(cls.default_device)
        if ok:
            return name
        reasons.append(f"{name}: {reason}")
    raise UnavailableError(
        f"no default runtime of suite {suite_cls.name!r} is available ({'; '.join(reasons)}); "
        f"install one or pass --adapter (see `wattbench adapters`)"
    )


def resolve_run_config(
    ctx: typer.Context, config: Path | None, *, git_labels: bool
) -> tuple[RunConfig, Any]:
    """The run's config: the file's keys, then the options given, then the defaults (the
    suite's adapter, the adapter's device, WATTBENCH_DATA_DIR, git labels)."""
    from wattbench.core.config import RunConfig, config_error, fields_from_options, load_run_file

    options: dict[str, Any] = {}
    source = "options"
    base_dir = None
    if config is not None:
        options = load_run_file(config)
        source, base_dir = str(config), config.resolve().parent
    given = _option_values(ctx)
    merged = {**fields_from_options(options, source=source, base_dir=base_dir)}
    merged.update(fields_from_options(given, source="options"))
    if not merged.get("suite"):
        raise ConfigError("no suite: pass --suite NAME or set suite in the --config file")
    suite_cls = plugins.load(plugins.SUITES, merged["suite"])
    merged.setdefault("adapter", None)
    if not merged["adapter"]:
        merged["adapter"] = default_adapter(suite_cls)
    adapter_cls = plugins.load(plugins.ADAPTERS, merged["adapter"])
    if not merged.get("device"):
        merged["device"] = adapter_cls.default_device
    env_data = os.environ.get("WATTBENCH_DATA_DIR")
    if merged.get("data_dir") is None and env_data:
        merged["data_dir"] = Path(env_data)
    merged["labels"] = run_labels(list(merged.get("labels", ())), git=git_labels)
    try:
        cfg = RunConfig(**merged)
    except ValidationError as exc:
        # name the option when the bad value came from the command line, else the file's key
        raise config_error(
            exc,
            lambda key: (
                f"--{key}" if key in given or config is None else f"key {key!r} in {config}"
            ),
        ) from None
    return cfg, adapter_cls
