"""CLI of the edge/cloud work: ``cloud serve`` and ``sweep escalation|payload|frames``.

Registered in :mod:`wattbench.harness.cli` with ``network.register(app)``.
Heavy imports (runtimes, numpy, the store) stay inside the command bodies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wattbench.core.errors import ConfigError

if TYPE_CHECKING:
    from wattbench.core.config import RunConfig
    from wattbench.core.results import RunResult

cloud_app = typer.Typer(help="The cloud side of hybrid runs.", no_args_is_help=True)
sweep_app = typer.Typer(help="Sweeps of the edge/cloud trade-off.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``cloud`` and ``sweep`` to the main app."""
    app.add_typer(cloud_app, name="cloud")
    app.add_typer(sweep_app, name="sweep")


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _readers(power: str, tdp_w: float | None) -> tuple[list[Any], list[str]]:
    from wattbench.core.power import ReaderOptions
    from wattbench.power.select import select_readers

    root = Path(os.environ.get("WATTBENCH_SYSFS_ROOT") or "/")
    specs = tuple(p.strip() for p in power.split(",") if p.strip())
    return select_readers(specs or ("auto",), ReaderOptions(tdp_w=tdp_w, sysfs_root=root))


@cloud_app.command("serve")
def serve(
    suite: Annotated[str, typer.Option(help="Suite whose model the cloud serves.")] = (
        "mobilenet_v2"
    ),
    adapter: Annotated[str, typer.Option(help="Runtime adapter of the cloud.")] = "onnxruntime",
    model: Annotated[
        Path | None, typer.Option(help="Serve this model file (e.g. a bigger one).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port; the URL is printed).")] = 8765,
    threads: Annotated[int | None, typer.Option(help="Runtime intra-op threads.")] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the random weights (another seed: another model).")
    ] = 0,
    weights: Annotated[
        str | None,
        typer.Option(help="The suite's weights: pretrained or random (default: the suite's)."),
    ] = None,
    power: Annotated[
        str,
        typer.Option(help="Readers that meter each request (auto, estimate, rapl, ... or none)."),
    ] = "auto",
    tdp_w: Annotated[float | None, typer.Option(help="CPU TDP in W for the estimate.")] = None,
    max_requests: Annotated[
        int | None, typer.Option(help="Exit after answering this many inferences.")
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Log every request.")] = False,
    read_timeout: Annotated[
        float, typer.Option(help="Seconds a client has to send a whole request.")
    ] = 30.0,
    max_connections: Annotated[
        int, typer.Option(help="Connections served at once; beyond: HTTP 503.")
    ] = 64,
) -> None:
    """Serve SUITE's model over HTTP: POST /v1/infer, GET /v1/health (docs/network.md)."""
    from wattbench.core import plugins
    from wattbench.core.cache import ModelCache
    from wattbench.core.suite import SuiteOptions
    from wattbench.harness.network.server import CloudModel, CloudServer

    if not 0 <= port <= 65535:
        raise ConfigError(f"invalid --port {port}: use 0-65535")
    if max_requests is not None and max_requests < 1:
        raise ConfigError("--max-requests must be at least 1")
    if read_timeout <= 0 or max_connections < 1:
        raise ConfigError("--read-timeout must be > 0 and --max-connections at least 1")
    if weights not in (None, "pretrained", "random"):
        raise ConfigError(f"invalid --weights {weights!r}: use pretrained or random")
    suite_cls = plugins.load(plugins.SUITES, suite)
    adapter_cls = plugins.load(plugins.ADAPTERS, adapter)
    ok, reason = adapter_cls.is_available(adapter_cls.default_device)
    if not ok:
        from wattbench.core.errors import UnavailableError

        raise UnavailableError(f"adapter {adapter!r} is not available: {reason}")
    readers: list[Any] = []
    if power.strip().lower() != "none":
        readers, warnings = _readers(power, tdp_w)
        for w in warnings:
            _say(f"warning: {w}")
    cm = CloudModel.load(
        suite_cls(SuiteOptions(seed=seed, weights=weights)),  # type: ignore[arg-type]
        adapter_cls(),
        ModelCache(),
        model=model,
        threads=threads,
        device=adapter_cls.default_device,
        readers=readers,
    )
    try:
        server = CloudServer(
            (host, port),
            cm,
            max_requests=max_requests,
            verbose=verbose,
            read_timeout_s=read_timeout,
            max_connections=max_connections,
        )
    except OSError as exc:
        cm.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}: pick another --port"
        ) from None
    d = cm.describe()
    # stdout, one line, flushed: scripts and tests read the URL from it
    sys.stdout.write(
        f"wattbench cloud: serving {d['suite']} {d['suite_version']} ({d['model']}, "
        f"{d['weights']}) on {d['runtime']} at {server.url}\n"
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        cm.close()
    _say(f"wattbench cloud: stopped after {server.answered} inferences")


# -- sweeps ------------------------------------------------------------------------------
SuiteOpt = Annotated[str, typer.Option(help="Suite name (see `wattbench suites`).")]
AdapterOpt = Annotated[str, typer.Option(help="Edge runtime adapter.")]
CloudUrlOpt = Annotated[str, typer.Option(help="Cloud endpoint (`wattbench cloud serve`).")]


def _base_config(**kw: Any) -> RunConfig:
    from pydantic import ValidationError

    from wattbench.core.config import RunConfig

    try:
        return RunConfig(**kw)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"]) or "value"
        raise ConfigError(f"invalid --{loc.replace('_', '-')}: {e['msg']}") from None


def _executor(
    payload: str | None,
    network_model: Path | None,
    cloud_j_per_request: float | None,
    tdp_w: float | None,
) -> Any:
    from wattbench.core import plugins
    from wattbench.core.cache import ModelCache
    from wattbench.core.suite import SuiteOptions
    from wattbench.harness.network.energy_model import load_model
    from wattbench.harness.network.hybrid import HybridRunner

    model = load_model(network_model)

    def execute(cfg: RunConfig, value: str = "") -> RunResult:
        suite_cls = plugins.load(plugins.SUITES, cfg.suite)
        adapter_cls = plugins.load(plugins.ADAPTERS, cfg.adapter)
        readers, _ = _readers(",".join(cfg.power), tdp_w)
        return HybridRunner(
            cfg,
            suite_cls(SuiteOptions(data_dir=cfg.data_dir, seed=cfg.seed, weights=cfg.weights)),
            adapter_cls(),
            readers,
            ModelCache(),
            payload=payload,
            network_model=model,
            cloud_j_per_request=cloud_j_per_request,
        ).execute()

    return execute


def _common(
    suite: str,
    adapter: str,
    cloud_url: str,
    *,
    threads: int | None,
    duration: float,
    repeats: int,
    warmup: float,
    idle: float,
    cooldown: float,
    min_queries: int,
    power: str,
    tdp_w: float | None,
    network_link: str,
    label: list[str] | None,
    seed: int,
    data_dir: Path | None,
    model: Path | None = None,
) -> RunConfig:
    if model is not None and not model.is_file():
        raise ConfigError(f"model file not found: {model} (check the --model path)")
    return _base_config(
        suite=suite,
        adapter=adapter,
        model=model,
        threads=threads,
        duration_s=duration,
        repeats=repeats,
        warmup_s=warmup,
        idle_s=idle,
        cooldown_s=cooldown,
        min_queries=min_queries,
        power=tuple(p.strip() for p in power.split(",") if p.strip()) or ("auto",),
        tdp_w=tdp_w,
        labels=tuple(label or ()),
        seed=seed,
        data_dir=data_dir,
        mode="hybrid",
        cloud_url=cloud_url,
        network_link=network_link,
        e2e_queries=0,
    )


def _emit(sweep: Any, out: Path | None, as_json: bool, db_url: str) -> None:
    if out is not None:
        sweep.write(out)
        _say(f"wattbench: curve written to {out}")
    sys.stdout.write(sweep.to_json() + "\n" if as_json else sweep.to_csv())
    _say(f"wattbench: runs stored in {db_url} with label sweep:{sweep.id}")


Threads = Annotated[int | None, typer.Option(help="Runtime intra-op threads.")]
Duration = Annotated[float, typer.Option(help="Minimum seconds per measured trial.")]
Repeats = Annotated[int, typer.Option(help="Trials per point.")]
Warmup = Annotated[float, typer.Option(help="Warm-up seconds.")]
Idle = Annotated[float, typer.Option("--idle-s", help="Idle-baseline seconds.")]
Cooldown = Annotated[float, typer.Option(help="Seconds between trials.")]
MinQ = Annotated[int, typer.Option(help="Minimum queries per trial.")]
Power = Annotated[str, typer.Option(help="Edge power readers (first = headline).")]
Tdp = Annotated[float | None, typer.Option(help="CPU TDP in W for the estimate.")]
Link = Annotated[str, typer.Option(help="Access link of the energy model: wifi, ethernet, ...")]
NetModel = Annotated[
    Path | None, typer.Option(help="JSON file overriding energy-model coefficients.")
]
CloudJ = Annotated[
    float | None,
    typer.Option(help="Cloud J per request when the server meters none (labelled estimated)."),
]
Labels = Annotated[list[str] | None, typer.Option(help="Extra label on every run (repeatable).")]
Seed = Annotated[int, typer.Option(help="Seed of random weights/synthetic inputs.")]
DataDir = Annotated[Path | None, typer.Option(help="Real inputs for the suite.")]
EdgeModel = Annotated[
    Path | None, typer.Option("--model", help="Edge model file instead of the suite's build.")
]
Out = Annotated[Path | None, typer.Option(help="Also write the curve to this .csv or .json.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the curve as JSON (default CSV).")]
Db = Annotated[str | None, typer.Option("--db", help="Database URL.")]


@sweep_app.command("escalation")
def sweep_escalation(
    suite: SuiteOpt,
    adapter: AdapterOpt,
    cloud_url: CloudUrlOpt,
    thresholds: Annotated[
        str, typer.Option(help="Confidences 0..1, comma-separated.")
    ] = "0,0.25,0.5,0.75,1",
    payload: Annotated[
        str | None, typer.Option(help="raw, npy, png, jpeg:Q@SIDE (default: jpeg:90 / npy).")
    ] = None,
    network_link: Link = "wifi",
    network_model: NetModel = None,
    cloud_j_per_request: CloudJ = None,
    threads: Threads = None,
    duration: Duration = 2.0,
    repeats: Repeats = 2,
    warmup: Warmup = 0.5,
    idle: Idle = 1.0,
    cooldown: Cooldown = 0.0,
    min_queries: MinQ = 20,
    power: Power = "auto",
    tdp_w: Tdp = None,
    label: Labels = None,
    seed: Seed = 0,
    data_dir: DataDir = None,
    model: EdgeModel = None,
    db: Db = None,
    out: Out = None,
    as_json: AsJson = False,
) -> None:
    """Hybrid runs at each threshold: energy-to-solution vs agreement with the cloud."""
    from wattbench.harness.network.sweep import escalation_config, parse_thresholds, run_sweep
    from wattbench.results_db.store import Store

    values = parse_thresholds(thresholds)
    base = _common(
        suite,
        adapter,
        cloud_url,
        threads=threads,
        duration=duration,
        repeats=repeats,
        warmup=warmup,
        idle=idle,
        cooldown=cooldown,
        min_queries=min_queries,
        power=power,
        tdp_w=tdp_w,
        network_link=network_link,
        label=label,
        seed=seed,
        data_dir=data_dir,
        model=model,
    )
    store = Store.open(db)
    execute = _executor(payload, network_model, cloud_j_per_request, tdp_w)
    sweep = run_sweep(
        "escalation",
        base,
        [f"{v:g}" for v in values],
        escalation_config,
        execute,
        store.save_run,
        on_point=lambda p: _say(
            f"wattbench: threshold {p.value}: escalation {p.escalation_rate or 0:.0%}, "
            f"energy-to-solution {p.energy_to_solution_j} J/inference, agreement "
            f"{p.agreement_with_cloud}"
        ),
    )
    _emit(sweep, out, as_json, store.display_url)


@sweep_app.command("payload")
def sweep_payload(
    suite: SuiteOpt,
    adapter: AdapterOpt,
    cloud_url: CloudUrlOpt,
    payloads: Annotated[
        str, typer.Option(help="Payloads, comma-separated.")
    ] = "raw,png,jpeg:90,jpeg:50@112",
    mode: Annotated[str, typer.Option(help="cloud (every query) or hybrid.")] = "cloud",
    escalate_below: Annotated[float | None, typer.Option(help="Hybrid threshold.")] = None,
    network_link: Link = "wifi",
    network_model: NetModel = None,
    cloud_j_per_request: CloudJ = None,
    threads: Threads = None,
    duration: Duration = 2.0,
    repeats: Repeats = 2,
    warmup: Warmup = 0.5,
    idle: Idle = 1.0,
    cooldown: Cooldown = 0.0,
    min_queries: MinQ = 20,
    power: Power = "auto",
    tdp_w: Tdp = None,
    label: Labels = None,
    seed: Seed = 0,
    data_dir: DataDir = None,
    model: EdgeModel = None,
    db: Db = None,
    out: Out = None,
    as_json: AsJson = False,
) -> None:
    """On-device payload reduction: bytes, network energy and agreement per payload."""
    from wattbench.harness.network.payload import PayloadSpec
    from wattbench.harness.network.sweep import run_sweep
    from wattbench.results_db.store import Store

    if mode not in ("cloud", "hybrid"):
        raise ConfigError(f"invalid --mode {mode!r}: use cloud or hybrid")
    specs = [str(PayloadSpec.parse(p)) for p in payloads.split(",") if p.strip()]
    if not specs:
        raise ConfigError("--payloads is empty: e.g. raw,jpeg:90,jpeg:50@112")
    base = _common(
        suite,
        adapter,
        cloud_url,
        threads=threads,
        duration=duration,
        repeats=repeats,
        warmup=warmup,
        idle=idle,
        cooldown=cooldown,
        min_queries=min_queries,
        power=power,
        tdp_w=tdp_w,
        network_link=network_link,
        label=label,
        seed=seed,
        data_dir=data_dir,
        model=model,
    ).model_copy(update={"mode": mode, "escalate_below": escalate_below})
    store = Store.open(db)

    def execute(cfg: RunConfig, value: str) -> RunResult:
        run = _executor(value, network_model, cloud_j_per_request, tdp_w)
        return run(cfg)

    sweep = run_sweep(
        "payload",
        base,
        specs,
        lambda cfg, _value: cfg,
        execute,
        store.save_run,
        on_point=lambda p: _say(
            f"wattbench: payload {p.value}: {p.bytes_per_inference:.0f} B/inference, network "
            f"{p.network_j} J/inference (modelled), agreement {p.agreement_with_cloud}"
        ),
    )
    _emit(sweep, out, as_json, store.display_url)


@sweep_app.command("frames")
def sweep_frames(
    suite: SuiteOpt,
    adapter: AdapterOpt,
    detector_thresholds: Annotated[
        str, typer.Option(help="Change-detector thresholds (mean abs diff 0..1), comma-separated.")
    ] = "0.01,0.03,0.1",
    scenes: Annotated[int, typer.Option(help="Scenes in the synthetic stream.")] = 4,
    frames_per_scene: Annotated[int, typer.Option(help="Frames per scene.")] = 12,
    duration: Annotated[float, typer.Option(help="Minimum seconds per measured pass.")] = 1.0,
    threads: Threads = None,
    power: Power = "auto",
    tdp_w: Tdp = None,
    seed: Seed = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the report to this .json.")] = None,
) -> None:
    """Smart sampling: infer only when a cheap change detector fires; energy saved vs quality."""
    from wattbench.core import plugins
    from wattbench.core.cache import ModelCache
    from wattbench.core.suite import SuiteOptions
    from wattbench.harness.network.frames import run_frame_stream
    from wattbench.harness.protocol import Runner

    try:
        ths = [float(t) for t in detector_thresholds.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"invalid --detector-thresholds {detector_thresholds!r}") from None
    if not ths or any(t < 0 for t in ths):
        raise ConfigError("--detector-thresholds: give values >= 0, comma-separated")
    if scenes < 1 or frames_per_scene < 1:
        raise ConfigError("--scenes and --frames-per-scene must be at least 1")
    cfg = _base_config(
        suite=suite,
        adapter=adapter,
        threads=threads,
        power=tuple(p.strip() for p in power.split(",") if p.strip()) or ("auto",),
        tdp_w=tdp_w,
        seed=seed,
    )
    suite_cls = plugins.load(plugins.SUITES, suite)
    adapter_cls = plugins.load(plugins.ADAPTERS, adapter)
    readers, warnings = _readers(power, tdp_w)
    for w in warnings:
        _say(f"warning: {w}")
    runner = Runner(cfg, suite_cls(SuiteOptions(seed=seed)), adapter_cls(), readers, ModelCache())
    report = run_frame_stream(
        runner, ths, scenes=scenes, frames_per_scene=frames_per_scene, min_s=duration
    )
    text = report.model_dump_json(indent=2)
    if out is not None:
        out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


def main() -> None:
    """``python -m wattbench.harness.cli.network``: the wattbench CLI with these commands."""
    from wattbench.harness import cli

    if not any(g.name == "cloud" for g in cli.app.registered_groups):
        register(cli.app)
    cli.main()


if __name__ == "__main__":
    main()
