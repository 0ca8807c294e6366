"""The ``wattbench`` command line."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wattbench.core import plugins
from wattbench.core.errors import ConfigError, UnavailableError, WattbenchError
from wattbench.harness import cli_dashboard, cli_network, cli_store
from wattbench.harness.cli_gate import gate
from wattbench.harness.cli_models import models_app

app = typer.Typer(
    name="wattbench",
    help="Benchmark edge AI inference per joule and rank it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
power_app = typer.Typer(help="Power readers.", no_args_is_help=True)
db_app = typer.Typer(help="Results database.", no_args_is_help=True)
app.add_typer(power_app, name="power")
app.add_typer(db_app, name="db")
# Commands that live in their own modules; their heavy imports stay inside the bodies.
app.command("gate")(gate)
app.command()(cli_store.serve)
app.command()(cli_store.upload)
app.command()(cli_store.export)
app.add_typer(cli_store.token_app, name="token")
app.add_typer(models_app, name="models")
cli_network.register(app)  # cloud serve, sweep escalation|payload|frames
cli_dashboard.register(app)  # dashboard

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


def _parse_adapter_opts(items: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"invalid --adapter-opt {item!r}: use KEY=VALUE, e.g. performance_hint=THROUGHPUT"
            )
        params[key.strip()] = value.strip()
    return params


def _parse_power_opts(items: list[str] | None) -> dict[str, str]:
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


def _sysfs_root(option: Path | None) -> Path:
    root = option if option is not None else Path(os.environ.get("WATTBENCH_SYSFS_ROOT") or "/")
    if not root.is_dir():
        raise ConfigError(f"--sysfs-root {root} is not a directory")
    return root


def _reader_options(
    tdp_w: float | None, sysfs_root: Path | None, power_opt: list[str] | None
) -> Any:
    from wattbench.core.power import ReaderOptions

    try:
        return ReaderOptions(
            tdp_w=tdp_w, sysfs_root=_sysfs_root(sysfs_root), params=_parse_power_opts(power_opt)
        )
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc)) from None


def _labels(given: list[str], git: bool) -> tuple[str, ...]:
    """User labels, plus the git sha/branch unless the user gave their own."""
    from wattbench.core.fingerprint import git_labels

    labels = list(given)
    if git:
        for auto in git_labels():
            prefix = auto.split(":", 1)[0] + ":"
            if not any(lbl.startswith(prefix) for lbl in labels):
                labels.append(auto)
    return tuple(labels)


def _validation_message(exc: ValidationError) -> str:
    e = exc.errors()[0]
    loc = ".".join(str(x) for x in e["loc"]) or "value"
    return f"invalid --{loc.replace('_', '-')}: {e['msg']}"


class _CliProgress:
    """A rich progress bar on a terminal; one line per phase otherwise (CI logs)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.bar: Progress | None = None
        self.task: Any = None

    def __enter__(self) -> _CliProgress:
        if self.live:
            self.bar = Progress(
                TextColumn("{task.description:<18}"),
                BarColumn(),
                TextColumn("{task.completed:>6.1f}/{task.total:.1f} s"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def phase(self, name: str, total: float | None = None) -> None:
        if self.bar is None:
            self.console.print(f"wattbench: {name}")
            return
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(name, total=total or 1.0, completed=0)

    def update(self, completed: float) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=completed)


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 10**-digits):
        return f"{v:.{digits}e}"
    return f"{v:.{digits}f}"


def _energy_label(method: str | None, scope: str | None) -> str:
    if method is None:
        return "none"
    tag = "ESTIMATED" if method == "estimated" else method
    return f"{tag}/{scope}"


@app.command()
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
            labels=_labels(label or [], git=git_labels),
            data_dir=data_dir or (Path(env_data) if env_data else None),
            seed=seed,
            device_name=device_name,
            carbon_intensity_g_per_kwh=carbon_intensity,
            country=country,
            sysfs_root=sysfs_root,
            power_options=_parse_power_opts(power_opt),
            adapter_options=_parse_adapter_opts(adapter_opt),
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
        raise ConfigError(_validation_message(exc)) from None
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
        cfg.power, _reader_options(cfg.tdp_w, cfg.sysfs_root, power_opt)
    )
    for w in warnings:
        err.print(f"warning: {w}")
    suite_obj = suite_cls(SuiteOptions(data_dir=cfg.data_dir, seed=cfg.seed))
    with _CliProgress(err) as progress:
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
        _print_run_summary(result, store.display_url)
    if upload_to:
        # The run is committed locally first; an unreachable server leaves it pending.
        cli_store.upload(to=upload_to, token=token, db=db)


def _print_run_summary(result: Any, where: str) -> None:
    head = result.headline
    t = Table(
        title=f"{result.suite} {result.suite_version} — run {result.run_id}", show_header=False
    )
    t.add_column(style="bold")
    t.add_column()
    a = result.adapter
    t.add_row("model", f"{result.model.name} ({result.model.format}, {result.model.weights})")
    t.add_row("runtime", f"{a.runtime} {a.runtime_version} on {a.device} ({a.execution_provider})")
    t.add_row("inputs", result.inputs)
    t.add_row(
        "load / first inference", f"{result.load_ms:.1f} ms / {result.first_inference_ms:.2f} ms"
    )
    lat = result.latency
    t.add_row(
        "latency p50/p90/p99",
        f"{lat.p50_ms:.3f} / {lat.p90_ms:.3f} / {lat.p99_ms:.3f} ms (n={lat.count})",
    )
    t.add_row("scenario", f"{result.scenario} ({result.config.driver} driver)")
    for k, v in result.scenario_details.items():
        if not isinstance(v, (list, dict)):
            t.add_row(f"  {k}", str(v))
    t.add_row("throughput", f"{result.throughput_ips:.1f} inferences/s")
    if result.latency_e2e is not None:
        e = result.latency_e2e
        stages = " + ".join(f"{k} {v:.2f}" for k, v in result.e2e_breakdown_ms.items())
        t.add_row("end-to-end p50/p90", f"{e.p50_ms:.3f} / {e.p90_ms:.3f} ms ({stages} ms mean)")
    if result.generation is not None:
        g = result.generation
        t.add_row("time to first token p50", f"{g.ttft_ms.p50_ms:.2f} ms")
        t.add_row("time per output token p50", f"{g.tpot_ms.p50_ms:.3f} ms")
        t.add_row(
            "prefill / decode tokens/s",
            f"{g.prefill_tokens_per_s:.1f} / {g.decode_tokens_per_s:.1f}",
        )
        t.add_row(
            "J/token prefill / decode",
            f"{_fmt(g.prefill_j_per_token, 5)} / {_fmt(g.decode_j_per_token, 5)}",
        )
        t.add_row("tokens per joule", _fmt(g.tokens_per_joule))
    if result.network is not None:
        n = result.network
        t.add_row(
            "network",
            f"{n.mode}: {n.escalated}/{n.queries} escalated ({n.escalation_failures} failed), "
            f"{n.bytes_per_inference:.0f} B/inference on the wire, "
            f"{_fmt(n.network_j_per_inference, 5)} J/inference MODELLED ({n.link})",
        )
        t.add_row(
            "energy to solution",
            f"{_fmt(n.energy_to_solution_j_per_inference, 5)} J/inference = edge "
            f"{_fmt(n.edge_j_per_inference, 5)} ({n.edge_energy_method or '?'}) + network "
            f"{_fmt(n.network_j_per_inference, 5)} (modelled) + cloud "
            f"{_fmt(n.cloud_j_per_inference, 5)} ({n.cloud_energy})",
        )
        if n.agreement_with_cloud is not None:
            t.add_row("agreement with cloud", f"{n.agreement_with_cloud:.3f}")
    if head is not None:
        est = " (ESTIMATED)" if head.estimated else ""
        unc = (
            f" ± {head.uncertainty_j / head.gross_j * 100:.0f}%"
            if head.uncertainty_j is not None and head.gross_j > 0
            else ""
        )
        t.add_row(
            "energy",
            f"{_energy_label(head.method.value, head.scope.value)}: "
            f"{head.component} via {head.reader}",
        )
        t.add_row("inferences per joule", f"{_fmt(head.inferences_per_joule)}{unc}{est}")
        t.add_row("joules per inference", f"{_fmt(head.joules_per_inference, 4)}{est}")
        t.add_row(
            "power mean/peak/idle",
            f"{head.mean_power_w:.2f} / {_fmt(head.peak_power_w)} / {head.idle_w:.2f} W{est}",
        )
    if result.carbon is not None:
        c = result.carbon
        est = " (ESTIMATED energy)" if c.energy_method == "estimated" else ""
        t.add_row(
            "carbon",
            f"{c.g_co2e_per_1000_inferences:.4g} gCO2e per 1000 inferences at "
            f"{c.intensity_g_per_kwh:.0f} g/kWh ({c.intensity_source}){est}",
        )
    t.add_row("quality", f"{'pass' if result.quality.passed else 'FAIL'}: {result.quality.detail}")
    t.add_row("valid", "yes" if result.valid else "NO: " + "; ".join(result.invalid_reasons))
    out.print(t)
    out.print(f"stored in {where}; see `wattbench leaderboard`")


@app.command()
def leaderboard(
    db: DbOpt = None,
    suite: Annotated[str | None, typer.Option(help="Only this suite.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    include_invalid: Annotated[bool, typer.Option(help="Show invalid runs too.")] = False,
    hide_estimated: Annotated[bool, typer.Option(help="Hide estimated energy.")] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            help="Top N per suite version and scenario (table default 50; csv/json: all)."
        ),
    ] = None,
    mode: Annotated[
        str, typer.Option(help="Rank runs of this mode: edge, cloud or hybrid.")
    ] = "edge",
) -> None:
    """Rank stored runs by inferences per joule within each suite version."""
    from wattbench.results_db.store import Store

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"unknown --format {fmt!r}: use table, csv or json")
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    if limit is None and fmt == "table":
        limit = 50  # a terminal table of every run of a big database helps nobody
    store = Store.open(db)
    if mode not in ("edge", "cloud", "hybrid"):
        raise ConfigError(f"unknown --mode {mode!r}: use edge, cloud or hybrid")
    rows = store.leaderboard(
        suite,
        include_invalid=include_invalid,
        hide_estimated=hide_estimated,
        limit=limit,
        mode=mode,
    )
    data = [r.model_dump(mode="json") for r in rows]
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        fields = list(rows[0].model_fields) if rows else []
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        for d in data:
            d["labels"] = ";".join(d["labels"])
            w.writerow(d)
        sys.stdout.write(buf.getvalue())
        return
    if not rows:
        out.print(
            "no results yet: run `wattbench run --suite mobilenet_v2 --adapter onnxruntime` "
            f"(database: {store.display_url})"
        )
        return
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for r in rows:
        groups.setdefault((r.suite, r.suite_version, r.scenario), []).append(r)
    for (s, v, sc), items in groups.items():
        where = "" if mode == "edge" else f" · {mode} mode (device energy only; see --format json)"
        t = Table(title=f"{s} {v} · {sc}{where} · ranked by inferences per joule")
        for col in (
            "#",
            "device",
            "hardware",
            "runtime",
            "model",
            "prec",
            "batch",
            "inf/J",
            "J/inf",
            "p50 ms",
            "p90 ms",
            "inf/s",
            "energy",
            "±%",
            "run",
        ):
            t.add_column(
                col,
                justify="right"
                if col in ("#", "batch", "inf/J", "J/inf", "p50 ms", "p90 ms", "inf/s", "±%")
                else "left",
            )
        for r in items:
            est = r.energy_estimated
            t.add_row(
                str(r.rank),
                r.device,
                r.hardware or "",
                f"{r.adapter} {r.runtime_version} ({r.execution_provider})",
                r.model,
                r.precision,
                str(r.batch),
                ("≈" if est else "") + _fmt(r.inferences_per_joule),
                ("≈" if est else "") + _fmt(r.joules_per_inference, 4),
                f"{r.latency_p50_ms:.3f}",
                f"{r.latency_p90_ms:.3f}",
                f"{r.throughput_ips:.1f}",
                _energy_label(r.energy_method, r.energy_scope),
                _fmt(r.energy_uncertainty_pct, 0),
                r.run_id[:8] + ("" if r.valid else " INVALID"),
            )
        out.print(t)
    if any(r.energy_estimated for r in rows):
        out.print(
            "\n≈ ESTIMATED energy (TDP x CPU utilisation), not measured; --hide-estimated hides it"
        )


@app.command()
def adapters(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Runtime adapters installed here, and why any is unavailable."""
    rows = []
    for name in plugins.names(plugins.ADAPTERS):
        cls = plugins.load(plugins.ADAPTERS, name)
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
    _print_rows(rows, as_json, ("name", "device", "available", "runtime_version", "reason"))


@app.command()
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
                "quality_targets": _jsonable(cls.quality_targets),
            }
        )
    if not as_json:
        for r in rows:
            targets = r["quality_targets"]
            r["quality_targets"] = _targets_text(targets) or "sanity"
    _print_rows(
        rows, as_json, ("name", "version", "task", "models", "scenarios", "quality_targets")
    )


@power_app.command("list")
def power_list(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tdp_w: Annotated[float | None, typer.Option(help="CPU TDP in W for the estimate.")] = None,
    sysfs_root: SysfsOpt = None,
    power_opt: PowerOptOpt = None,
) -> None:
    """Power readers found here: method, scope, availability and why not."""
    from wattbench.power.select import reader_classes

    options = _reader_options(tdp_w, sysfs_root, power_opt)
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
    _print_rows(rows, as_json, ("name", "method", "scope", "component", "available", "reason"))


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
    (meter,), warnings = select_readers((reader,), _reader_options(tdp_w, sysfs_root, power_opt))
    for w in warnings:
        err.print(f"warning: {w}")
    try:
        meter.start()
        with _CliProgress(err) as progress:
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
            f"{reading.reader} [{_energy_label(reading.method.value, reading.scope.value)}] "
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


def _jsonable(v: Any) -> Any:
    if hasattr(v, "model_dump"):
        return v.model_dump(mode="json")
    if isinstance(v, dict) or hasattr(v, "items"):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _targets_text(targets: Any) -> str:
    """{"fp32": {"top1_agreement": 0.99}} → "fp32: top1_agreement ≥ 0.99"."""
    if hasattr(targets, "model_dump"):
        targets = targets.model_dump()
    if isinstance(targets, dict):
        parts = []
        for k, v in targets.items():
            if isinstance(v, (int, float)):
                parts.append(f"{k} ≥ {v:g}")
            else:
                parts.append(f"{k}: {_targets_text(v)}")
        return "; ".join(parts)
    return str(targets)


def _print_rows(rows: list[dict[str, Any]], as_json: bool, cols: tuple[str, ...]) -> None:
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one ``error:`` line and a non-zero exit."""
    command = typer.main.get_command(app)
    try:
        rc = command.main(args=argv, prog_name="wattbench", standalone_mode=False)
    except WattbenchError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors from the (vendored) click parser
        if type(exc).__name__.startswith("NoArgsIsHelp"):  # help was printed; not an error
            sys.exit(0)
        fmt = getattr(exc, "format_message", None)
        message = fmt() if callable(fmt) else str(exc)
        err.print(f"error: {message} (see `wattbench --help`)", markup=False)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("error: interrupted; nothing was stored", markup=False)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
