"""The generation protocol on real runtimes: separate prefill and decode energy windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wattbench.adapters.onnxruntime_genai import OnnxGenAiAdapter
from wattbench.adapters.transformers_lm import TransformersAdapter
from wattbench.core.adapter import AdapterOptions, ModelArtifact, Precision
from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError
from wattbench.core.generative import GenerationState, GenerativeSession
from wattbench.core.power import EnergyReading, ReaderOptions
from wattbench.core.results import RunResult
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader
from wattbench.harness import generation
from wattbench.harness.generation import GenerationRunner
from wattbench.harness.protocol import create_runner
from wattbench.power.estimated import EstimatedCpuReader
from wattbench.suites.slm import GENAI_DIR, SlmTinySuite

P_IN, P_OUT = 16, 8
POWER_W = 5.0


class SpyReader(FakePowerReader):
    """A fake reader that logs when its windows open and close."""

    def __init__(self, clock: FakeClock, events: list[str]) -> None:
        super().__init__(clock, POWER_W)
        self.events = events

    def start(self) -> None:
        self.events.append("start")
        super().start()

    def stop(self) -> EnergyReading:
        self.events.append("stop")
        return super().stop()


class SpySession(GenerativeSession):
    def __init__(self, inner: GenerativeSession, events: list[str]) -> None:
        self.inner = inner
        self.events = events

    def prefill(self, prompt_ids: np.ndarray, max_new_tokens: int) -> GenerationState:
        self.events.append("prefill")
        return self.inner.prefill(prompt_ids, max_new_tokens)

    def step(self, state: GenerationState) -> int:
        self.events.append("step")
        return self.inner.step(state)

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int) -> np.ndarray:
        self.events.append("generate")
        return self.inner.generate(prompt_ids, max_new_tokens)

    @property
    def max_context(self) -> int | None:
        return self.inner.max_context

    def describe(self) -> Any:
        return self.inner.describe()


class SpyAdapter(OnnxGenAiAdapter):
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Any:
        return SpySession(super().load(artifact, options), self.events)


def _config(**kw: Any) -> RunConfig:
    base: dict[str, Any] = {
        "suite": "slm",
        "adapter": "onnxruntime-genai",
        "duration_s": 0.01,
        "repeats": 2,
        "warmup_s": 0.001,
        "idle_s": 0.01,
        "cooldown_s": 0,
        "min_queries": 5,
        "threads": 1,
    }
    return RunConfig(**{**base, **kw})


def _fake_run(
    cache: ModelCache, suite: SlmTinySuite | None = None, **kw: Any
) -> tuple[RunResult, list[str]]:
    clock = FakeClock(step_ns=50_000)
    events: list[str] = []
    runner = GenerationRunner(
        _config(**kw),
        suite or SlmTinySuite(prompt_tokens=P_IN, output_tokens=P_OUT),
        SpyAdapter(events),
        [SpyReader(clock, events)],
        cache,
        clock_ns=clock,
        sleep=clock.advance,
    )
    return runner.execute(), events


def _windows(events: list[str]) -> list[list[str]]:
    out: list[list[str]] = []
    current: list[str] | None = None
    for e in events:
        if e == "start":
            current = []
        elif e == "stop":
            assert current is not None
            out.append(current)
            current = None
        elif current is not None:
            current.append(e)
    return out


def test_prefill_and_decode_are_measured_in_separate_windows(
    slm_cache: ModelCache, genai_model: ModelArtifact
) -> None:
    result, events = _fake_run(slm_cache)
    wins = _windows(events)
    assert len(wins) == 1 + 2 * 2  # idle, then prefill + decode per trial
    assert wins[0] == []
    for pre, dec in (wins[1:3], wins[3:5]):
        assert pre and set(pre) == {"prefill"}
        assert dec and set(dec) == {"step"} and len(dec) % (P_OUT - 1) == 0
    # every decode window's caches were prefilled before it opened, none inside
    stop_of_prefill = [i for i, e in enumerate(events) if e == "stop"][1]
    next_start = events.index("start", stop_of_prefill)
    assert events[stop_of_prefill + 1 : next_start].count("prefill") >= len(wins[2]) // (P_OUT - 1)

    g = result.generation
    assert g is not None and result.valid, result.invalid_reasons
    assert result.quality.passed and result.quality.kind == "agreement"
    assert result.suite_version == "2.0+p16o8"
    assert (g.prompt_tokens, g.output_tokens) == (P_IN, P_OUT)
    pre_tokens = sum(len(w) for w in (wins[1], wins[3])) * P_IN
    dec_tokens = len(wins[2]) + len(wins[4])
    assert [t.inferences for t in g.prefill_trials] == [len(wins[1]) * P_IN, len(wins[3]) * P_IN]
    assert [t.inferences for t in result.trials] == [len(wins[2]), len(wins[4])]
    assert result.inferences == dec_tokens == g.tpot_ms.count == result.latency.count
    assert g.ttft_ms.count == pre_tokens // P_IN
    # energy: constant power over each window, per phase, from that phase's windows only
    pre_j = sum(t.energy[0].gross_j for t in g.prefill_trials)
    dec_j = sum(t.energy[0].gross_j for t in result.trials)
    pre_s = sum(t.duration_s for t in g.prefill_trials)
    assert pre_j == pytest.approx(POWER_W * sum(t.energy[0].duration_s for t in g.prefill_trials))
    assert g.prefill_j_per_token == pytest.approx(pre_j / pre_tokens)
    assert g.decode_j_per_token == pytest.approx(dec_j / dec_tokens)
    assert g.prefill_tokens_per_s == pytest.approx(pre_tokens / pre_s)
    request_j = pre_j / (pre_tokens / P_IN) + (P_OUT - 1) * dec_j / dec_tokens
    assert g.tokens_per_joule == pytest.approx((P_IN + P_OUT) / request_j)
    assert g.details["request_energy_j"] == pytest.approx(request_j)
    assert g.prefill_energy[0].gross_j == pytest.approx(pre_j)
    assert g.decode_energy[0].gross_j == pytest.approx(dec_j) == result.energy[0].gross_j
    # the windows lasted at least the duration asked for
    assert min(t.duration_s for t in [*g.prefill_trials, *result.trials]) >= 0.01


def test_decode_window_is_redone_when_the_caches_run_out(
    slm_cache: ModelCache, genai_model: ModelArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generation, "DECODE_MARGIN", 0.05)  # far too few caches at first
    result, _ = _fake_run(slm_cache, repeats=1, duration_s=0.2)
    details = result.generation.details["decode_windows"][0]  # type: ignore[union-attr]
    assert details["attempt"] >= 2
    assert result.trials[0].duration_s >= 0.2
    assert not any("decode window" in w for w in result.warnings)


class BrokenSlm(SlmTinySuite):
    """The suite's random model, but the GenAI folder has a corrupted weight tensor."""

    broken: Path

    def build_model(self, fmt: str, cache: ModelCache, precision: Precision = "fp32") -> Any:
        art = super().build_model(fmt, cache, precision)
        return art.model_copy(update={"path": self.broken}) if fmt == GENAI_DIR else art


def test_a_broken_model_makes_the_run_invalid(
    slm_cache: ModelCache, genai_model: ModelArtifact, broken_genai_model: Path
) -> None:
    suite = BrokenSlm(prompt_tokens=P_IN, output_tokens=P_OUT)
    suite.broken = broken_genai_model
    result, _ = _fake_run(slm_cache, suite, repeats=1)
    assert not result.valid
    assert any(r.startswith("quality check failed") for r in result.invalid_reasons)
    assert result.quality.metrics["prompt_agreement"] < 1.0


def test_reference_runtime_runs_the_protocol_on_the_real_clock(
    slm_cache: ModelCache, hf_model: ModelArtifact
) -> None:
    cfg = _config(adapter="transformers", duration_s=0.05, repeats=1, power=("estimate",))
    reader = EstimatedCpuReader(ReaderOptions(tdp_w=10))
    runner = create_runner(
        cfg,
        SlmTinySuite(prompt_tokens=P_IN, output_tokens=P_OUT),
        TransformersAdapter(),
        [reader],
        slm_cache,
    )
    assert isinstance(runner, GenerationRunner)
    result = runner.execute()
    g = result.generation
    assert g is not None and result.valid and result.quality.passed
    assert result.adapter.runtime == "transformers"
    assert g.ttft_ms.p50_ms > 0 and g.tpot_ms.p50_ms > 0
    assert g.prefill_energy[0].estimated and g.tokens_per_joule is not None
    assert result.trials[0].duration_s >= 0.05 and g.prefill_trials[0].duration_s >= 0.05
    # end to end: tokenise → generate → detokenise, one request per prompt
    e2e = result.latency_e2e
    assert e2e is not None and e2e.count == len(SlmTinySuite().load_inputs().samples)
    assert set(result.e2e_breakdown_ms) == {"tokenize", "generate", "detokenize"}
    assert e2e.mean_ms >= result.e2e_breakdown_ms["generate"] > 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"batch": 2}, "one prompt at a time"),
        ({"scenario": "offline"}, "single-stream only"),
        ({"mode": "cloud", "cloud_url": "http://127.0.0.1:1"}, "--mode edge only"),
    ],
)
def test_unsupported_settings_fail_before_anything_loads(
    slm_cache: ModelCache, kw: dict[str, Any], match: str
) -> None:
    clock = FakeClock()
    with pytest.raises(ConfigError, match=match):
        GenerationRunner(
            _config(**kw), SlmTinySuite(), OnnxGenAiAdapter(), [FakePowerReader(clock)], slm_cache
        )


def test_a_tensor_adapter_is_refused(slm_cache: ModelCache) -> None:
    with pytest.raises(ConfigError, match="does not generate text"):
        create_runner(
            _config(adapter="fake"),
            SlmTinySuite(),
            FakeAdapter(),
            [FakePowerReader(FakeClock())],
            slm_cache,
        )
