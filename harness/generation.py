"""The text-generation protocol: prefill and decode measured in separate energy windows.

Same skeleton as :class:`~wattbench.harness.protocol.Runner` — model, tokenized prompts
(timed apart), load, first prefill, warm-up, quality check, idle baseline, ``repeats``
trials with cooldowns — but each trial opens **two** energy windows:

* **prefill window**: prompts prefilled back to back (prompt → KV cache → first token),
  each timed as the time to first token (TTFT), until ``duration_s`` has passed and at
  least ``max(min_queries, prompts)`` prompts were prefilled;
* **decode window**: the KV caches are built *before* the window opens (one per prompt
  the window will need, sized from the warm-up's decode speed); inside it only decode
  steps run, each timed as the time per output token (TPOT), whole prompts at a time
  (``output_tokens - 1`` steps each), until ``duration_s`` has passed and every prompt
  was decoded once. A window that ran out of prepared caches before ``duration_s`` is
  discarded and redone with more.

So joules per prefill token and joules per decode token are each measured, not derived
by subtracting one phase from a total.

The classic :class:`RunResult` fields describe the **decode** phase: one inference = one
decode step (an output token after the first); ``trials`` are the decode windows,
``latency`` is TPOT, ``throughput_ips`` is decode tokens/s and ``energy`` the decode
windows' energy. The prefill windows are in ``generation.prefill_trials`` and
``generation.prefill_energy``. ``generation.tokens_per_joule`` composes one standard
request from the two measurements: ``(prompt + output tokens) / (prefill J per prompt +
(output - 1) × decode J per token)``, so it does not depend on how long each window ran.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from wattbench.core.adapter import Adapter, AdapterOptions, ModelArtifact, Precision, Session
from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError
from wattbench.core.generative import GenerationState, GenerativeAdapter, GenerativeSession
from wattbench.core.power import EnergyReading, PowerReader
from wattbench.core.results import EnergySummary, GenerationMetrics, RunResult, TrialResult
from wattbench.core.stats import latency_stats, stability_warnings
from wattbench.core.suite import InputSet, QualityResult, Suite
from wattbench.harness.protocol import (
    Progress,
    Runner,
    summarize_energy,
)
from wattbench.harness.scenarios import WindowResult

__all__ = ["MAX_DECODE_STATES", "GenerationRunner", "GenerationSuite"]

#: Upper bound on KV caches prepared for one decode window (memory); the run warns at it.
MAX_DECODE_STATES = 4096
#: Prepared caches cover this multiple of the expected decode time, so the window ends
#: on time rather than running out.
DECODE_MARGIN = 1.3
#: A redone decode window prepares this multiple of the caches the short one lacked.
RETRY_MARGIN = 1.5
#: Attempts at a decode window before the run settles for a short one (and warns).
DECODE_ATTEMPTS = 3


@runtime_checkable
class GenerationSuite(Protocol):
    """What the generation protocol needs of a suite beyond :class:`Suite`."""

    prompt_tokens: int
    output_tokens: int
    quality_tokens: int

    @property
    def run_version(self) -> str: ...

    def encode_prompts(self, artifact: ModelArtifact, inputs: InputSet) -> list[np.ndarray]: ...

    def tokenizer(self, artifact: ModelArtifact) -> Any: ...

    def encode(self, tokenizer: Any, text: str) -> np.ndarray: ...

    reference_adapter: str

    def reference_tokens(
        self,
        artifact: ModelArtifact,
        prompts: Sequence[np.ndarray],
        cache: ModelCache,
        open_reference: Callable[[ModelArtifact], GenerativeSession],
    ) -> list[np.ndarray] | None: ...

    def check_quality(
        self,
        outputs: Sequence[np.ndarray],
        inputs: InputSet,
        reference: Sequence[np.ndarray] | None = None,
        *,
        precision: Precision | None = None,
    ) -> QualityResult: ...


def open_reference(adapter_name: str, artifact: ModelArtifact) -> GenerativeSession:
    """A session of the generative adapter ``adapter_name`` on ``artifact``, fp32 on the CPU:
    how a generative suite's reference outputs are computed."""
    from wattbench.core import plugins

    adapter = plugins.load(plugins.ADAPTERS, adapter_name)()
    if not isinstance(adapter, GenerativeAdapter):
        raise ConfigError(f"reference adapter {adapter_name!r} is not a generative adapter")
    return adapter.load(artifact, AdapterOptions(device="cpu", precision="fp32"))


class GenerationRunner(Runner):
    """Executes the text-generation protocol for one suite × generative adapter × readers."""

    def __init__(
        self,
        config: RunConfig,
        suite: Suite,
        adapter: Adapter | GenerativeAdapter,
        readers: Sequence[PowerReader],
        cache: ModelCache,
        *,
        progress: Progress | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
        warnings: Sequence[str] = (),
    ) -> None:
        if not isinstance(adapter, GenerativeAdapter):
            raise ConfigError(
                f"adapter {config.adapter!r} does not generate text: the {suite.name} suite runs "
                f"on transformers or onnxruntime-genai (see `wattbench adapters`)"
            )
        if not isinstance(suite, GenerationSuite):
            raise ConfigError(f"suite {suite.name!r} is not a text-generation suite")
        for field, value, ok in (
            ("--scenario", config.scenario, "single-stream"),
            ("--driver", config.driver, "builtin"),
            ("--mode", config.mode, "edge"),
        ):
            if value != ok:
                raise ConfigError(f"{suite.name} runs {field} {ok} only: drop {field} {value}")
        if config.batch != 1:
            raise ConfigError(f"{suite.name} generates one prompt at a time: drop --batch")
        if suite.output_tokens < 2:
            raise ConfigError(f"{suite.name}: output_tokens must be at least 2 to measure decode")
        # Runner._artifact only reads `formats` and `model_precision`, which a
        # GenerativeAdapter has too; everything else here uses self.generator.
        super().__init__(
            config,
            suite,
            cast(Adapter, adapter),
            readers,
            cache,
            progress=progress,
            clock_ns=clock_ns,
            sleep=sleep,
            warnings=warnings,
        )
        self.generator: GenerativeAdapter = adapter
        self.gen_suite: GenerationSuite = suite

    # -- protocol ------------------------------------------------------------------------
    def execute(self) -> RunResult:
        cfg = self.config
        started = datetime.now(timezone.utc)
        try:
            self.progress.phase("preparing model")
            artifact = self._artifact()
            inputs = self.suite.load_inputs()
            t0 = self.clock_ns()
            prompts = self.gen_suite.encode_prompts(artifact, inputs)
            pre_ms = (self.clock_ns() - t0) / 1e6 / len(prompts)

            self.progress.phase("loading")
            opts = AdapterOptions(
                device=cfg.device,
                threads=cfg.threads,
                precision=cfg.precision or artifact.precision,
                extra=cfg.adapter_options,
            )
            t0 = self.clock_ns()
            session = self.generator.load(artifact, opts)
            load_ms = (self.clock_ns() - t0) / 1e6
            try:
                return self._with_thermal(
                    self._generate(
                        session, artifact, opts, inputs, prompts, started, load_ms, pre_ms
                    )
                )
            finally:
                session.close()
        finally:
            for r in self.readers:
                r.close()
            if self.thermal is not None:
                self.thermal.close()

    def _generate(
        self,
        session: GenerativeSession,
        artifact: ModelArtifact,
        opts: AdapterOptions,
        inputs: InputSet,
        prompts: list[np.ndarray],
        started: datetime,
        load_ms: float,
        pre_ms: float,
    ) -> RunResult:
        cfg = self.config
        suite = self.gen_suite
        n_in, n_out = suite.prompt_tokens, suite.output_tokens
        ctx = session.max_context
        if ctx is not None and n_in + n_out > ctx:
            raise ConfigError(
                f"{self.suite.name} needs {n_in} + {n_out} tokens of context but the model "
                f"takes {ctx}: use a model with a longer context"
            )

        t0 = self.clock_ns()
        session.prefill(prompts[0], n_out)
        first_ms = (self.clock_ns() - t0) / 1e6

        self.progress.phase("warm-up", cfg.warmup_s)
        step_s = self._warmup(session, prompts)

        self.progress.phase("quality check")
        outputs = [session.generate(p, suite.quality_tokens) for p in prompts]
        self.progress.phase("reference outputs")
        reference = suite.reference_tokens(
            artifact,
            prompts,
            self.cache,
            functools.partial(open_reference, suite.reference_adapter),
        )
        quality = suite.check_quality(outputs, inputs, reference, precision=opts.precision)
        assess = getattr(self.suite, "assess_session", None)
        if callable(assess):  # optional: task quality (answers, perplexity) of this session
            self.progress.phase("task quality")
            quality = assess(session, artifact, quality, precision=opts.precision)

        idle, idle_w, min_s = self._idle_baseline()

        prefill_trials: list[TrialResult] = []
        decode_trials: list[TrialResult] = []
        ttft: list[int] = []
        tpot: list[int] = []
        decode_details: list[dict[str, Any]] = []
        for k in range(cfg.repeats):
            self._cooldown(k > 0, f"cooldown {k}/{cfg.repeats}")
            self.progress.phase(f"trial {k + 1}/{cfg.repeats}: prefill", min_s)
            win, readings = self._window(lambda: self._prefill_window(session, prompts, min_s))
            prefill_trials.append(self._trial(k, win, readings, idle_w))
            ttft.extend(win.latencies_ns)

            self._cooldown(True, f"cooldown {k + 1}/{cfg.repeats} (prefill → decode)")
            win, readings, step_s = self._decode_trial(session, prompts, min_s, step_s, k)
            decode_trials.append(self._trial(k, win, readings, idle_w))
            tpot.extend(win.latencies_ns)
            decode_details.append(win.details)

        # Runner._assemble only calls describe() on the session.
        result = self._assemble(
            cast(Session, session),
            artifact,
            inputs,
            started,
            load_ms,
            first_ms,
            pre_ms,
            quality,
            decode_trials,
            tpot,
            idle,
        )
        self.progress.phase("end-to-end latency")
        e2e, stages = self._end_to_end(session, artifact, inputs)
        result = result.model_copy(
            update={
                "latency_e2e": latency_stats(e2e) if e2e else None,
                "e2e_breakdown_ms": stages,
            }
        )
        return self._with_generation(result, prefill_trials, ttft, tpot, decode_details)

    def _end_to_end(  # type: ignore[override]  # a generation is the query here
        self, session: GenerativeSession, artifact: ModelArtifact, inputs: InputSet
    ) -> tuple[list[int], dict[str, float]]:
        """Whole requests: tokenise the prompt text → generate → detokenise.

        One request per prompt at most (``e2e_queries`` caps it): a real SLM takes
        seconds per request. Outside every energy window.
        """
        n = min(self.config.e2e_queries, len(inputs.samples))
        if n <= 0:
            return [], {}
        suite = self.gen_suite
        tok = suite.tokenizer(artifact)
        clock = self.clock_ns
        stages = {"tokenize": 0, "generate": 0, "detokenize": 0}
        totals: list[int] = []
        for i in range(n):
            t0 = clock()
            ids = suite.encode(tok, str(inputs.samples[i]))
            t1 = clock()
            out = session.generate(ids, suite.output_tokens)
            t2 = clock()
            tok.decode([int(t) for t in out])
            t3 = clock()
            stages["tokenize"] += t1 - t0
            stages["generate"] += t2 - t1
            stages["detokenize"] += t3 - t2
            totals.append(t3 - t0)
        return totals, {k: v / n / 1e6 for k, v in stages.items()}

    def _cooldown(self, needed: bool, label: str) -> None:
        if needed and self.config.cooldown_s:
            self.progress.phase(label)
            self.sleep(self.config.cooldown_s)

    def _warmup(self, session: GenerativeSession, prompts: list[np.ndarray]) -> float:
        """Whole generations until ``warmup_s`` has passed (one at least); returns the median
        decode step in seconds, which sizes the decode windows."""
        cfg = self.config
        n_out = self.gen_suite.output_tokens
        clock = self.clock_ns
        steps: list[int] = []
        start = clock()
        i = 0
        while True:
            state = session.prefill(prompts[i % len(prompts)], n_out)
            for _ in range(n_out - 1):
                t0 = clock()
                session.step(state)
                steps.append(clock() - t0)
            i += 1
            elapsed = clock() - start
            self.progress.update(elapsed / 1e9)
            if elapsed >= cfg.warmup_s * 1e9 and i >= min(cfg.warmup_queries, 1):
                break
        return float(np.median(steps)) / 1e9

    # -- windows -------------------------------------------------------------------------
    def _prefill_window(
        self, session: GenerativeSession, prompts: list[np.ndarray], min_s: float
    ) -> WindowResult:
        n_out = self.gen_suite.output_tokens
        need = max(self.config.min_queries, len(prompts))
        min_ns = int(min_s * 1e9)
        prefill = session.prefill
        clock = self.clock_ns
        lat: list[int] = []
        i = 0
        start = clock()
        while True:
            t0 = clock()
            prefill(prompts[i % len(prompts)], n_out)  # the state is dropped: its cost counts
            t1 = clock()
            lat.append(t1 - t0)
            i += 1
            if i >= need and t1 - start >= min_ns:
                break
            if not i & 7:
                self.progress.update((t1 - start) / 1e9)
        return WindowResult(
            lat, t1 - start, i * self.gen_suite.prompt_tokens, details={"prompts": i}
        )

    def _decode_trial(
        self,
        session: GenerativeSession,
        prompts: list[np.ndarray],
        min_s: float,
        step_s: float,
        index: int,
    ) -> tuple[WindowResult, list[EnergyReading], float]:
        """One decode window, redone with more prepared caches if they ran out early."""
        n_steps = self.gen_suite.output_tokens - 1
        per_prompt_s = max(step_s * n_steps, 1e-9)
        count = min(
            max(math.ceil(min_s * DECODE_MARGIN / per_prompt_s), len(prompts)), MAX_DECODE_STATES
        )
        for attempt in range(1, DECODE_ATTEMPTS + 1):
            self.progress.phase(f"trial {index + 1}: preparing {count} KV caches", count)
            states: list[GenerationState] = []
            for i in range(count):  # outside the window: prefill is not decode
                states.append(session.prefill(prompts[i % len(prompts)], n_steps + 1))
                if not i & 15:
                    self.progress.update(i)
            self.progress.phase(f"trial {index + 1}/{self.config.repeats}: decode", min_s)
            window = functools.partial(self._decode_window, session, states, min_s, len(prompts))
            win, readings = self._window(window)
            states.clear()  # free the caches outside the window
            win.details.update(states_prepared=count, attempt=attempt)
            step_s = win.duration_ns / 1e9 / max(win.samples, 1)
            if win.duration_ns >= min_s * 1e9 or count >= MAX_DECODE_STATES:
                break
            # every cache was used up in the window: scale by the shortfall, with room
            shortfall = min_s * 1e9 / max(win.duration_ns, 1)
            count = min(math.ceil(count * shortfall * RETRY_MARGIN), MAX_DECODE_STATES)
        if win.duration_ns < min_s * 1e9:
            self.warnings.append(
                f"decode window {index + 1} lasted {win.duration_ns / 1e9:.2f} s, under the "
                f"{min_s:.2f} s asked for: {count} prepared KV caches ran out; its energy is "
                f"measured over the shorter window"
            )
        return win, readings, step_s

    def _decode_window(
        self,
        session: GenerativeSession,
        states: list[GenerationState],
        min_s: float,
        n_prompts: int,
    ) -> WindowResult:
        """Decode whole prompts from prefilled ``states`` until ``min_s`` has passed, every
        prompt was decoded once and ``min_queries`` tokens were produced."""
        n_steps = self.gen_suite.output_tokens - 1
        need_prompts = min(len(states), n_prompts)
        need_tokens = self.config.min_queries
        min_ns = int(min_s * 1e9)
        step = session.step
        clock = self.clock_ns
        lat: list[int] = []
        append = lat.append
        used = 0
        start = t1 = clock()
        for state in states:
            for _ in range(n_steps):
                t0 = clock()
                step(state)
                t1 = clock()
                append(t1 - t0)
            used += 1
            if used >= need_prompts and len(lat) >= need_tokens and t1 - start >= min_ns:
                break
            self.progress.update((t1 - start) / 1e9)
        return WindowResult(lat, t1 - start, len(lat), details={"prompts": used})

    # -- result ----------------------------------------------------------------------------
    def _with_generation(
        self,
        result: RunResult,
        prefill_trials: list[TrialResult],
        ttft: list[int],
        tpot: list[int],
        decode_details: list[dict[str, Any]],
    ) -> RunResult:
        cfg = self.config
        suite = self.gen_suite
        n_in, n_out = suite.prompt_tokens, suite.output_tokens
        prefill_tokens = sum(t.inferences for t in prefill_trials)
        prefill_prompts = sum(t.queries for t in prefill_trials)
        prefill_energy: list[EnergySummary] = [
            summarize_energy([t.energy[i] for t in prefill_trials], prefill_tokens)
            for i in range(len(self.readers))
        ]
        decode_energy = result.energy
        pre, dec = prefill_energy[0], decode_energy[0]
        pre_jpt = pre.joules_per_inference
        dec_jpt = dec.joules_per_inference
        request_j = (
            pre.gross_j / prefill_prompts + (n_out - 1) * dec_jpt
            if pre_jpt is not None and dec_jpt is not None
            else None
        )
        reasons = list(result.invalid_reasons)
        for t in prefill_trials:
            for e in t.energy:
                if not e.valid:
                    reasons.append(
                        f"{e.reader} prefill trial {t.index}: {'; '.join(e.invalid_reasons)}"
                    )
        warnings = list(result.warnings)
        warnings.extend(
            stability_warnings(
                {
                    "prefill p50 time to first token": [t.latency.p50_ms for t in prefill_trials],
                    "prefill joules per token": [
                        t.energy[0].gross_j / t.inferences for t in prefill_trials if t.inferences
                    ],
                },
                cfg.stability_threshold,
            )
        )
        generation = GenerationMetrics(
            prompt_tokens=n_in,
            output_tokens=n_out,
            ttft_ms=latency_stats(ttft),
            tpot_ms=latency_stats(tpot),
            prefill_tokens_per_s=prefill_tokens / sum(t.duration_s for t in prefill_trials),
            decode_tokens_per_s=result.throughput_ips,
            prefill_j_per_token=pre_jpt,
            decode_j_per_token=dec_jpt,
            tokens_per_joule=(n_in + n_out) / request_j if request_j else None,
            prefill_energy=prefill_energy,
            decode_energy=decode_energy,
            prefill_trials=prefill_trials,
            details={
                "energy_reader": pre.reader,
                "energy_estimated": pre.estimated,
                "request_energy_j": request_j,
                "output_tokens_per_joule": n_out / request_j if request_j else None,
                "prefill_prompts": prefill_prompts,
                "decode_windows": decode_details,
                "quality_tokens": suite.quality_tokens,
                "inference_unit": "decode step (an output token after the first): trials, "
                "latency, throughput and energy describe the decode windows",
            },
        )
        return result.model_copy(
            update={
                "suite_version": suite.run_version,
                "generation": generation,
                "invalid_reasons": reasons,
                "valid": not reasons,
                "warnings": warnings,
            }
        )
