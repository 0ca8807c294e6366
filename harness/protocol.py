"""The run protocol.

load (timed) → first inference (timed) → warm-up → quality check → idle-power
baseline → ``repeats`` measured windows, each lasting until both the minimum
duration and the minimum query count are met, with a cooldown between them (with
``target_ci_pct``, more windows until the figures' 95 % intervals are narrow enough or the
budget ends: core/confidence.py).

Inside a measured window the only thing between the two clock reads is
``session.run(prepared)``: inputs are preprocessed and prepared beforehand,
latencies are appended after the second clock read.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from wattbench.core import fingerprint
from wattbench.core.adapter import Adapter, AdapterOptions, ModelArtifact, Session
from wattbench.core.cache import ModelCache
from wattbench.core.carbon import CarbonIntensity, footprint, intensity_for_country
from wattbench.core.confidence import StoppingRule, check_config
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError, ModelError
from wattbench.core.power import EnergyMethod, EnergyReading, PowerReader
from wattbench.core.results import (
    EnergySummary,
    RunResult,
    TrialEnergy,
    TrialResult,
)
from wattbench.core.stats import latency_histogram, latency_stats, stability_warnings
from wattbench.core.suite import InputSet, Suite
from wattbench.core.validation import missing_uncertainty
from wattbench.harness.scenarios import WindowResult, make_driver, timed_loop

if TYPE_CHECKING:
    from wattbench.power.thermal import ThermalMonitor, ThermalWindow

__all__ = ["Runner", "create_runner", "summarize_energy", "timed_loop"]

#: A measured window is at least this many sensor update periods long.
MIN_UPDATE_PERIODS_PER_WINDOW = 10


class Progress(Protocol):
    """Where the protocol reports progress (the CLI shows a bar)."""

    def phase(self, name: str, total: float | None = None) -> None: ...

    def update(self, completed: float) -> None: ...


class _NoProgress:
    def phase(self, name: str, total: float | None = None) -> None:
        pass

    def update(self, completed: float) -> None:
        pass


ClockNs = Callable[[], int]


def _first_output_rows(outputs: Sequence[np.ndarray], batch: int) -> list[np.ndarray]:
    first = np.asarray(outputs[0])
    if first.shape[0] != batch:
        raise ModelError(
            f"model output has batch dimension {first.shape[0]}, expected {batch}: "
            f"the model has a fixed batch size; use --batch {first.shape[0]}"
        )
    return [first[i] for i in range(batch)]


class Runner:
    """Executes the protocol for one suite × adapter × readers combination."""

    def __init__(
        self,
        config: RunConfig,
        suite: Suite,
        adapter: Adapter,
        readers: Sequence[PowerReader],
        cache: ModelCache,
        *,
        progress: Progress | None = None,
        clock_ns: ClockNs = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
        warnings: Sequence[str] = (),
    ) -> None:
        if not readers:
            raise ConfigError("no power reader selected: use --power auto")
        self.config = config
        self.suite = suite
        self.adapter = adapter
        self.readers = list(readers)
        self.cache = cache
        self.progress = progress or _NoProgress()
        self.clock_ns = clock_ns
        self.sleep = sleep
        self.warnings: list[str] = list(warnings)
        self._driver = make_driver(config)  # a bad scenario fails before anything loads
        check_config(config)  # --target-ci / --max-duration
        #: Samples temperatures/throttling in every window (create_runner sets it).
        self.thermal: ThermalMonitor | None = None
        self._thermal_window: ThermalWindow | None = None

    # -- steps ---------------------------------------------------------------------------
    def _check_precision(self, precision: str) -> None:
        runs = self.adapter.precisions
        if precision not in runs:
            raise ConfigError(
                f"{self.adapter.name} runs {', '.join(runs)}, not {precision}: drop "
                f"--precision {precision} or pick another adapter (`wattbench adapters`)"
            )

    def _artifact(self) -> ModelArtifact:
        cfg = self.config
        if cfg.model is not None:
            art = self.suite.user_model(cfg.model)
            precision = cfg.precision or self.adapter.model_precision(art)
            self._check_precision(precision)
            art = art.model_copy(update={"precision": precision})
            self.suite.bind(art)
            return art
        if not self.adapter.runs_suite_builds:
            raise ConfigError(
                f"{self.adapter.name} cannot run the models {self.suite.name} builds (they are "
                f"not compiled for its accelerator): pass a compiled one with --model"
            )
        # A format the adapter loads that one of the suite's recipes can build (the suite picks).
        if cfg.precision is not None:
            self._check_precision(cfg.precision)
        choice = self.suite.pick_build(self.adapter.formats, cfg.precision)
        if choice is not None:
            art = self.suite.build_model(choice[0], self.cache, choice[1])
            self.suite.bind(art)
            return art
        buildable = {f for r in self.suite.recipes() for f in r.formats}
        raise ConfigError(
            f"{self.suite.name} cannot build a model for this adapter (it loads "
            f"{', '.join(self.adapter.formats)}; the suite builds {', '.join(sorted(buildable))}): "
            f"pass one with --model"
        )

    def _batches(self, session: Session, inputs: InputSet) -> tuple[list[Any], float]:
        """Preprocess every sample (timed apart), stack into batches, prepare them."""
        specs = session.inputs()
        rows: list[dict[str, np.ndarray]] = []
        t_ns = 0
        for raw in inputs.samples:
            sample = self.suite.acquire(raw)  # timed apart in the end-to-end pass
            t0 = self.clock_ns()
            rows.append(self.suite.preprocess_feed(sample, specs))
            t_ns += self.clock_ns() - t0
        pre_ms = t_ns / 1e6 / len(rows)
        b = self.config.batch
        n_batches = max(1, -(-len(rows) // b))
        feeds = [
            {
                s.name: np.stack([rows[(k * b + j) % len(rows)][s.name] for j in range(b)])
                for s in specs
            }
            for k in range(n_batches)
        ]
        prepared = [session.prepare(f) for f in feeds]
        return prepared, pre_ms

    def _end_to_end(self, session: Session, inputs: InputSet) -> tuple[list[int], dict[str, float]]:
        """Time whole queries: acquisition + preprocessing + inference + post-processing.

        One sample per query, outside every energy window, so the inference-only
        figures stay free of Python pre/post-processing.
        """
        n = self.config.e2e_queries
        if n <= 0:
            return [], {}
        specs = session.inputs()
        clock = self.clock_ns
        acquire = self.suite.acquire
        stages = {"acquisition": 0, "preprocess": 0, "inference": 0, "postprocess": 0}
        totals: list[int] = []
        samples = inputs.samples
        for i in range(n):
            t0 = clock()
            sample = acquire(samples[i % len(samples)])
            t1 = clock()
            feed = self.suite.preprocess_feed(sample, specs)
            prepared = session.prepare({k: v[None, ...] for k, v in feed.items()})
            t2 = clock()
            out = session.run(prepared)
            t3 = clock()
            self.suite.postprocess([np.asarray(o)[0] for o in out])
            t4 = clock()
            stages["acquisition"] += t1 - t0
            stages["preprocess"] += t2 - t1
            stages["inference"] += t3 - t2
            stages["postprocess"] += t4 - t3
            totals.append(t4 - t0)
        return totals, {k: v / n / 1e6 for k, v in stages.items()}

    def _window(self, fn: Callable[[], Any]) -> tuple[Any, list[EnergyReading]]:
        if self.thermal is not None:
            self.thermal.start()
        try:
            return self._window_energy(fn)
        finally:
            if self.thermal is not None:
                self._thermal_window = self.thermal.stop()

    def _window_energy(self, fn: Callable[[], Any]) -> tuple[Any, list[EnergyReading]]:
        for i, r in enumerate(self.readers):
            try:
                r.start()
            except Exception:
                for started in self.readers[:i]:  # leave none of them sampling
                    started.close()
                raise
        try:
            out = fn()
        finally:
            # Stop every reader even if one fails, so none is left sampling.
            readings: list[EnergyReading] = []
            failure: BaseException | None = None
            for r in self.readers:
                try:
                    readings.append(r.stop())
                except Exception as exc:
                    failure = failure or exc
            if failure is not None:
                raise failure
        return out, readings

    def execute(self) -> RunResult:
        cfg = self.config
        started = datetime.now(timezone.utc)
        try:
            self.progress.phase("preparing model")
            artifact = self._artifact()
            inputs = self.suite.load_inputs()

            self.progress.phase("loading")
            opts = AdapterOptions(
                device=cfg.device,
                threads=cfg.threads,
                precision=cfg.precision or artifact.precision,
                extra=cfg.adapter_options,
            )
            t0 = self.clock_ns()
            session = self.adapter.load(artifact, opts)
            load_ms = (self.clock_ns() - t0) / 1e6
            try:
                return self._with_thermal(
                    self._measure(session, artifact, inputs, started, load_ms)
                )
            finally:
                session.close()
        finally:
            for r in self.readers:
                r.close()
            if self.thermal is not None:
                self.thermal.close()

    def _with_thermal(self, result: RunResult) -> RunResult:
        """The run's thermal section and a warning per throttled trial (power/thermal.py)."""
        if self.thermal is None:
            return result
        from wattbench.power.thermal import summarize

        summary = summarize(
            result.trials,
            self.thermal.windows,
            period_s=self.thermal.period_s,
            sources=self.thermal.sources(),
        )
        warnings = list(result.warnings)
        for t in result.trials:
            if t.throttled:
                warnings.append(f"trial {t.index + 1} throttled: {'; '.join(t.throttle_reasons)}")
        return result.model_copy(update={"thermal": summary, "warnings": warnings})

    def _measure(
        self,
        session: Session,
        artifact: ModelArtifact,
        inputs: InputSet,
        started: datetime,
        load_ms: float,
    ) -> RunResult:
        cfg = self.config
        prepared, pre_ms = self._batches(session, inputs)
        driver = self._driver

        t0 = self.clock_ns()
        first_out = session.run(prepared[0])
        first_ms = (self.clock_ns() - t0) / 1e6
        _first_output_rows(first_out, cfg.batch)

        self.progress.phase("warm-up", cfg.warmup_s)
        timed_loop(
            session, prepared, cfg.warmup_s, cfg.warmup_queries, self.clock_ns, self.progress.update
        )

        # Quality on the whole input set, outside every measured window.
        rows: list[np.ndarray] = []
        for p in prepared:
            rows.extend(_first_output_rows(session.run(p), cfg.batch))
        self.progress.phase("reference outputs")
        reference = self.suite.reference_outputs(inputs, self.cache)
        quality = self.suite.check_quality(rows[: len(inputs.samples)], inputs, reference)

        self.progress.phase(f"{driver.scenario}: calibrating")
        scenario_details = driver.calibrate(session, prepared, self.clock_ns)

        idle, idle_w, min_s = self._idle_baseline()

        trials: list[TrialResult] = []
        all_lat: list[int] = []
        windows: list[dict[str, Any]] = []  # what the driver saw per trial (bound met, ...)
        rule = StoppingRule(cfg)  # --target-ci: trials past `repeats` until the CIs are narrow
        t_trials = self.clock_ns()
        k = 0
        while rule.more(trials, (self.clock_ns() - t_trials) / 1e9):
            if k and cfg.cooldown_s:
                self.progress.phase(f"cooldown {k}/{cfg.repeats}")
                self.sleep(cfg.cooldown_s)
            self.progress.phase(rule.label(k), min_s)
            win, readings = self._window(
                lambda: driver.window(
                    session, prepared, min_s, cfg.min_queries, self.clock_ns, self.progress.update
                )
            )
            trials.append(self._trial(k, win, readings, idle_w))
            all_lat.extend(win.latencies_ns)
            for w in win.details.get("warnings", []):
                self.warnings.append(f"trial {k + 1}: {w}")
            if win.details:
                windows.append({"trial": k, **win.details})
            k += 1
        confidence = rule.record(trials, (self.clock_ns() - t_trials) / 1e9)

        self.progress.phase("end-to-end latency")
        e2e, e2e_stages = self._end_to_end(session, inputs)
        result = self._assemble(
            session,
            artifact,
            inputs,
            started,
            load_ms,
            first_ms,
            pre_ms,
            quality,
            trials,
            all_lat,
            idle,
        )
        return result.model_copy(
            update={
                "scenario": driver.scenario,
                "scenario_details": (
                    {**scenario_details, "windows": windows} if windows else scenario_details
                ),
                "artifacts": driver.artifacts(),
                "latency_e2e": latency_stats(e2e) if e2e else None,
                "e2e_breakdown_ms": e2e_stages,
                "confidence": confidence,
            }
        )

    def _idle_baseline(self) -> tuple[list[EnergyReading], list[float], float]:
        """Measure the idle baseline; returns readings, mean idle W per reader and the
        measured-window length (never under 10 update periods of the slowest sensor)."""
        cfg = self.config
        self.progress.phase("idle baseline", cfg.idle_s)
        _, idle = self._window(lambda: self.sleep(cfg.idle_s))
        idle_w = [r.energy_j / r.duration_s for r in idle]
        periods = [r.info().update_period_s or 0.0 for r in self.readers]
        min_s = max(cfg.duration_s, MIN_UPDATE_PERIODS_PER_WINDOW * max(periods))
        if min_s > cfg.duration_s:
            self.warnings.append(
                f"measured window lengthened to {min_s:.1f} s: the slowest power sensor updates "
                f"every {max(periods):.2f} s and a window needs {MIN_UPDATE_PERIODS_PER_WINDOW}"
            )
        return idle, idle_w, min_s

    def _trial(
        self,
        index: int,
        win: WindowResult,
        readings: Sequence[EnergyReading],
        idle_w: Sequence[float],
    ) -> TrialResult:
        energy = [
            TrialEnergy(
                reader=r.reader,
                method=r.method,
                scope=r.scope,
                component=r.component,
                gross_j=r.energy_j,
                idle_w=iw,
                net_j=r.energy_j - iw * r.duration_s,
                duration_s=r.duration_s,
                mean_power_w=r.mean_power_w,
                peak_power_w=r.peak_power_w,
                samples=r.samples,
                sample_rate_hz=r.sample_rate_hz,
                update_period_s=r.update_period_s,
                uncertainty_j=r.uncertainty_j,
                valid=r.valid,
                invalid_reasons=r.invalid_reasons,
                details=r.details,
                trace=r.trace,
            )
            for r, iw in zip(map(_require_uncertainty, readings), idle_w, strict=True)
        ]
        trial = TrialResult(
            index=index,
            queries=win.queries,
            inferences=win.samples,
            duration_s=win.duration_ns / 1e9,
            throughput_ips=win.samples / (win.duration_ns / 1e9),
            latency=latency_stats(win.latencies_ns),
            energy=energy,
        )
        if self._thermal_window is not None:  # what the thermal monitor saw in this window
            from wattbench.power.thermal import trial_with

            trial = trial_with(trial, self._thermal_window)
        return trial

    def _assemble(
        self,
        session: Session,
        artifact: ModelArtifact,
        inputs: InputSet,
        started: datetime,
        load_ms: float,
        first_ms: float,
        pre_ms: float,
        quality: Any,
        trials: list[TrialResult],
        all_lat: list[int],
        idle: list[EnergyReading],
    ) -> RunResult:
        cfg = self.config
        total_inf = sum(t.inferences for t in trials)
        total_s = sum(t.duration_s for t in trials)
        summaries = [
            summarize_energy([t.energy[i] for t in trials], total_inf)
            for i in range(len(self.readers))
        ]
        reasons: list[str] = []
        if not quality.passed:
            reasons.append(f"quality check failed: {quality.detail}")
        for r in idle:
            if not r.valid:
                reasons.append(f"{r.reader} idle baseline: {'; '.join(r.invalid_reasons)}")
        for t in trials:
            for e in t.energy:
                if not e.valid:
                    reasons.append(f"{e.reader} trial {t.index}: {'; '.join(e.invalid_reasons)}")
        warnings = list(self.warnings)
        per_trial: dict[str, list[float]] = {
            "p50 latency": [t.latency.p50_ms for t in trials],
            "throughput": [t.throughput_ips for t in trials],
        }
        per_trial["joules per inference"] = [
            t.energy[0].gross_j / t.inferences for t in trials if t.inferences
        ]
        warnings.extend(stability_warnings(per_trial, cfg.stability_threshold))
        for s in summaries:
            # below zero by more than the reading's own uncertainty (not float round-off)
            if s.net_j < -(s.uncertainty_j or 1e-9 * s.gross_j):
                warnings.append(
                    f"{s.reader}: net energy is negative (idle baseline above the workload): "
                    f"the baseline is unstable; lengthen --idle-s"
                )
        carbon = None
        head = summaries[0]
        if head.joules_per_inference is not None and (
            cfg.carbon_intensity_g_per_kwh is not None or cfg.country
        ):
            intensity = (
                CarbonIntensity(g_per_kwh=cfg.carbon_intensity_g_per_kwh, source="user")
                if cfg.carbon_intensity_g_per_kwh is not None
                else intensity_for_country(str(cfg.country))
            )
            carbon = footprint(head.joules_per_inference, intensity, head.method.value)
        desc = session.describe()
        runtime_versions = {desc.runtime: desc.runtime_version, "numpy": np.__version__}
        return RunResult(
            run_id=str(uuid.uuid4()),
            suite=self.suite.name,
            suite_version=self.suite.version,
            config=cfg,
            model=artifact,
            adapter=desc,
            device=fingerprint.host_info() | {"name": cfg.device_name},
            environment=fingerprint.environment(runtime_versions),
            inputs=inputs.description,
            started_at=started,
            finished_at=datetime.now(timezone.utc),
            load_ms=load_ms,
            first_inference_ms=first_ms,
            preprocess_ms_mean=pre_ms,
            latency=latency_stats(all_lat),
            latency_histogram=latency_histogram(all_lat),
            throughput_ips=total_inf / total_s,
            inferences=total_inf,
            trials=trials,
            energy=summaries,
            quality=quality,
            carbon=carbon,
            valid=not reasons,
            invalid_reasons=reasons,
            warnings=warnings,
            labels=list(cfg.labels),
        )


def _require_uncertainty(r: EnergyReading) -> EnergyReading:
    """``r``, made invalid (with the reason and remedy) when it is a measurement without
    an uncertainty: a figure nobody vouches for is not kept as if fine, and an out-of-tree
    reader that forgot its accuracy learns it here (the store refuses such a run too, see
    :func:`wattbench.core.validation.missing_uncertainty`)."""
    if r.uncertainty_j is not None or r.method is EnergyMethod.ESTIMATED:
        return r
    why = missing_uncertainty(r.reader)
    if why in r.invalid_reasons:  # the reader said so itself (PolledReader does)
        return r.model_copy(update={"valid": False})
    return r.model_copy(update={"valid": False, "invalid_reasons": [*r.invalid_reasons, why]})


def summarize_energy(per_trial: Sequence[TrialEnergy], inferences: int) -> EnergySummary:
    """Sum one reader's trial windows; uncertainties add linearly (systematic)."""
    first = per_trial[0]
    gross = sum(e.gross_j for e in per_trial)
    net = sum(e.net_j for e in per_trial)
    dur = sum(e.duration_s for e in per_trial)
    unc = (
        None
        if any(e.uncertainty_j is None for e in per_trial)
        else sum(e.uncertainty_j or 0.0 for e in per_trial)
    )
    peaks = [e.peak_power_w for e in per_trial if e.peak_power_w is not None]
    rates = [e.sample_rate_hz for e in per_trial if e.sample_rate_hz is not None]
    return EnergySummary(
        reader=first.reader,
        method=first.method,
        scope=first.scope,
        component=first.component,
        gross_j=gross,
        net_j=net,
        idle_w=first.idle_w,
        duration_s=dur,
        # A reading of 0 J means the reader saw nothing, not free inference.
        inferences_per_joule=inferences / gross if gross > 0 else None,
        joules_per_inference=gross / inferences if gross > 0 and inferences else None,
        inferences_per_joule_net=inferences / net if net > 0 else None,
        mean_power_w=gross / dur,
        peak_power_w=max(peaks) if peaks else None,
        uncertainty_j=unc,
        sample_rate_hz=min(rates) if rates else None,
        estimated=first.method == EnergyMethod.ESTIMATED,
        details=first.details,
    )


def create_runner(
    config: RunConfig,
    suite: Suite,
    adapter: Adapter,
    readers: Sequence[PowerReader],
    cache: ModelCache,
    *,
    progress: Progress | None = None,
    warnings: Sequence[str] = (),
    thermal: ThermalMonitor | None = None,
) -> Runner:
    """The runner for this configuration: generation suites and cloud/hybrid modes differ.
    ``thermal`` samples temperatures and throttling during every trial."""
    from wattbench.core.generative import GenerativeAdapter

    if isinstance(adapter, GenerativeAdapter) and suite.task != "text-generation":
        raise ConfigError(
            f"adapter {config.adapter!r} generates text: it runs text-generation suites (slm), "
            f"not {suite.name}"
        )
    cls: type[Runner] = Runner
    if config.target_ci_pct is not None and (
        suite.task == "text-generation" or config.mode != "edge"
    ):
        raise ConfigError(
            "--target-ci applies to edge runs of single-output suites, not to text generation "
            "or --mode cloud|hybrid: fix the trials with --repeats"
        )
    if suite.task == "text-generation":
        from wattbench.harness.generation import GenerationRunner

        cls = GenerationRunner
    elif config.mode != "edge":
        from wattbench.harness.network.hybrid import HybridRunner

        cls = HybridRunner
    runner = cls(config, suite, adapter, readers, cache, progress=progress, warnings=warnings)
    runner.thermal = thermal
    return runner
