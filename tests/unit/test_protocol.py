"""The run protocol with fake time, a fake runtime, a fake sensor and a fake suite."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError, ModelError, UnavailableError
from wattbench.core.power import EnergyReading
from wattbench.core.results import RunResult
from wattbench.core.stats import STABILITY_REMEDY
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness.protocol import MIN_UPDATE_PERIODS_PER_WINDOW, Runner, timed_loop

# Energy figures come from integrating sampled power; allow float round-off only.
EXACT = 1e-9


def make_config(**overrides: Any) -> RunConfig:
    base: dict[str, Any] = {
        "suite": "fake",
        "adapter": "fake",
        "duration_s": 1.0,
        "min_queries": 10,
        "repeats": 3,
        "warmup_s": 0.01,
        "warmup_queries": 5,
        "idle_s": 1.0,
        "cooldown_s": 0.5,
        "power": ("fake",),
    }
    base.update(overrides)
    return RunConfig(**base)


def execute(
    tmp_path: Path,
    cfg: RunConfig,
    clock: FakeClock,
    adapter: FakeAdapter | None = None,
    readers: list[Any] | None = None,
    sleep: Any = None,
) -> RunResult:
    return Runner(
        cfg,
        FakeSuite(),
        adapter or FakeAdapter(clock, 0.001),
        readers if readers is not None else [FakePowerReader(clock, 5.0)],
        ModelCache(tmp_path / "cache"),
        clock_ns=clock,
        sleep=sleep or clock.advance,
    ).execute()


class StepReader(FakePowerReader):
    """``idle_w`` during its first window (the idle baseline), ``load_w`` afterwards."""

    def __init__(self, clock: FakeClock, idle_w: float, load_w: float) -> None:
        super().__init__(clock, idle_w)
        self.load_w = load_w

    def stop(self) -> EnergyReading:
        reading = super().stop()
        self.power_w = self.load_w
        return reading


class ClosingReader(FakePowerReader):
    def __init__(self, clock: FakeClock, power_w: float = 5.0) -> None:
        super().__init__(clock, power_w)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class SlowingAdapter(FakeAdapter):
    """Each pause (idle baseline, cooldown) leaves every query 1 ms slower afterwards."""

    def pause(self, seconds: float) -> None:
        assert self.clock is not None
        self.clock.advance(seconds)
        for s in self.sessions:
            s.latency_s += 0.001


# -- headline figures --------------------------------------------------------------------


def test_throughput_and_inferences_per_joule(tmp_path: Path) -> None:
    c = FakeClock()
    reader = FakePowerReader(c, 5.0)
    r = execute(tmp_path, make_config(), c, readers=[reader])
    assert r.valid, r.invalid_reasons
    assert r.throughput_ips == 1000.0
    assert r.inferences == 3000
    assert r.latency.p50_ms == 1.0
    assert r.latency.count == 3000
    assert r.quality.passed
    for t in r.trials:
        assert t.queries == 1000
        assert t.inferences == 1000
        assert t.duration_s == 1.0
        assert t.throughput_ips == 1000.0
        assert t.energy[0].gross_j == pytest.approx(5.0, rel=EXACT)
        assert t.energy[0].idle_w == pytest.approx(5.0, rel=EXACT)
    (e,) = r.energy
    assert e.gross_j == pytest.approx(15.0, rel=EXACT)
    assert e.duration_s == pytest.approx(3.0, rel=EXACT)
    assert e.mean_power_w == pytest.approx(5.0, rel=EXACT)
    assert e.inferences_per_joule == pytest.approx(200.0, rel=EXACT)
    assert e.joules_per_inference == pytest.approx(0.005, rel=EXACT)
    assert e.net_j == pytest.approx(0.0, abs=1e-9)
    assert not e.estimated
    assert r.headline == e
    assert r.adapter.runtime == "fake"
    assert r.suite == "fake" and r.suite_version == "0.1"
    assert r.load_ms == 0.0
    assert r.first_inference_ms == 1.0


def test_steady_run_gives_no_stability_or_window_warnings(tmp_path: Path) -> None:
    c = FakeClock()
    r = execute(tmp_path, make_config(), c)
    assert not [w for w in r.warnings if w.startswith("unstable:") or "lengthened" in w]


def test_constant_power_gives_no_warnings(tmp_path: Path) -> None:
    c = FakeClock()
    r = execute(tmp_path, make_config(), c)
    assert r.energy[0].net_j == pytest.approx(0.0, abs=1e-9)
    assert r.warnings == []


def test_net_energy_subtracts_the_idle_baseline(tmp_path: Path) -> None:
    c = FakeClock()
    r = execute(tmp_path, make_config(), c, readers=[StepReader(c, idle_w=2.0, load_w=5.0)])
    for t in r.trials:
        (te,) = t.energy
        assert te.idle_w == pytest.approx(2.0, rel=EXACT)
        assert te.gross_j == pytest.approx(5.0, rel=EXACT)
        assert te.net_j == pytest.approx(3.0, rel=EXACT)
    (e,) = r.energy
    assert e.idle_w == pytest.approx(2.0, rel=EXACT)
    assert e.gross_j == pytest.approx(15.0, rel=EXACT)
    assert e.net_j == pytest.approx(9.0, rel=EXACT)
    assert e.inferences_per_joule == pytest.approx(200.0, rel=EXACT)
    assert e.inferences_per_joule_net == pytest.approx(3000 / 9.0, rel=EXACT)
    assert r.warnings == []


def test_net_energy_with_a_power_function_of_time(tmp_path: Path) -> None:
    """Power rises linearly with time: the baseline is the idle window's mean power."""
    c = FakeClock()
    reader = FakePowerReader(c, lambda t: 1.0 + t)
    r = execute(tmp_path, make_config(repeats=1), c, readers=[reader])
    (idle_t0, idle_t1), (t0, t1) = reader.windows
    idle_mean = 1.0 + (idle_t0 + idle_t1) / 2
    (te,) = r.trials[0].energy
    assert te.idle_w == pytest.approx(idle_mean, rel=EXACT)
    assert te.gross_j == pytest.approx((1.0 + (t0 + t1) / 2) * (t1 - t0), rel=EXACT)
    assert te.net_j == pytest.approx(te.gross_j - idle_mean * (t1 - t0), rel=EXACT)
    assert te.net_j > 0


def test_net_energy_negative_warns(tmp_path: Path) -> None:
    c = FakeClock()
    r = execute(tmp_path, make_config(), c, readers=[StepReader(c, idle_w=6.0, load_w=5.0)])
    assert r.energy[0].net_j == pytest.approx(-3.0, rel=EXACT)
    assert r.energy[0].inferences_per_joule_net is None
    assert any("net energy is negative" in w and "--idle-s" in w for w in r.warnings)


def test_two_readers_each_get_their_own_summary(tmp_path: Path) -> None:
    c = FakeClock()
    readers = [FakePowerReader(c, 5.0), StepReader(c, idle_w=1.0, load_w=10.0)]
    r = execute(tmp_path, make_config(), c, readers=readers)
    first, second = r.energy
    assert first.inferences_per_joule == pytest.approx(200.0, rel=EXACT)
    assert second.gross_j == pytest.approx(30.0, rel=EXACT)
    assert second.net_j == pytest.approx(27.0, rel=EXACT)
    assert second.inferences_per_joule == pytest.approx(100.0, rel=EXACT)
    assert r.headline == first
    assert all(len(t.energy) == 2 for t in r.trials)


# -- the measured window -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_s", "min_queries", "queries", "window_s"),
    [
        (1.0, 10, 1000, 1.0),  # the duration is the binding limit
        (0.01, 50, 50, 0.05),  # the query count is the binding limit
        (0.05, 50, 50, 0.05),  # both met at the same query
    ],
)
def test_window_lasts_until_duration_and_queries_are_met(
    tmp_path: Path, duration_s: float, min_queries: int, queries: int, window_s: float
) -> None:
    c = FakeClock()
    reader = FakePowerReader(c, 5.0)
    cfg = make_config(duration_s=duration_s, min_queries=min_queries, repeats=2)
    r = execute(tmp_path, cfg, c, readers=[reader])
    for t in r.trials:
        assert t.queries == queries
        assert t.duration_s == pytest.approx(window_s, rel=EXACT)
        assert t.energy[0].duration_s == pytest.approx(window_s, rel=EXACT)
    # the reader's windows are exactly the loop: nothing else is measured inside
    for t0, t1 in reader.windows[1:]:
        assert t1 - t0 == pytest.approx(window_s, rel=EXACT)


def test_repeats_idle_and_cooldown(tmp_path: Path) -> None:
    c = FakeClock()
    reader = FakePowerReader(c, 5.0)
    cfg = make_config(repeats=4, idle_s=2.0, cooldown_s=0.5)
    r = execute(tmp_path, cfg, c, readers=[reader])
    assert [t.index for t in r.trials] == [0, 1, 2, 3]
    assert r.inferences == 4000
    assert len(reader.windows) == 1 + 4
    idle = reader.windows[0]
    assert idle[1] - idle[0] == pytest.approx(2.0)
    trials = reader.windows[1:]
    assert trials[0][0] == pytest.approx(idle[1])  # no cooldown before the first trial
    for prev, nxt in itertools.pairwise(trials):
        assert nxt[0] - prev[1] == pytest.approx(0.5)
    assert r.energy[0].gross_j == pytest.approx(20.0, rel=EXACT)


def test_batch_multiplies_inferences(tmp_path: Path) -> None:
    c = FakeClock()
    r = execute(tmp_path, make_config(batch=4, repeats=2), c)
    assert r.valid, r.invalid_reasons
    for t in r.trials:
        assert t.queries == 1000
        assert t.inferences == 4000
        assert t.throughput_ips == 4000.0
    assert r.inferences == 8000
    assert r.throughput_ips == 4000.0
    assert r.energy[0].inferences_per_joule == pytest.approx(800.0, rel=EXACT)
    assert r.energy[0].joules_per_inference == pytest.approx(5.0 / 4000, rel=EXACT)


def test_batch_larger_than_the_input_set_wraps_around(tmp_path: Path) -> None:
    c = FakeClock()
    seen: list[np.ndarray] = []

    def outputs(x: np.ndarray) -> np.ndarray:
        seen.append(np.asarray(x).copy())
        return np.asarray(x, dtype=np.float32) * 2.0

    r = execute(
        tmp_path, make_config(batch=6, repeats=1), c, adapter=FakeAdapter(c, 0.001, outputs)
    )
    assert r.trials[0].inferences == 6 * r.trials[0].queries
    assert seen[0].shape == (6, 4)
    assert seen[0][:, 0].tolist() == [0, 1, 2, 3, 0, 1]


def test_slow_sensor_lengthens_the_window_with_a_warning(tmp_path: Path) -> None:
    c = FakeClock()
    reader = FakePowerReader(c, 5.0, update_period_s=1.0)
    r = execute(tmp_path, make_config(duration_s=2.0, repeats=1), c, readers=[reader])
    assert MIN_UPDATE_PERIODS_PER_WINDOW == 10
    (t,) = r.trials
    assert t.duration_s == pytest.approx(10.0, rel=EXACT)
    assert t.queries == 10_000
    assert reader.windows[1][1] - reader.windows[1][0] == pytest.approx(10.0, rel=EXACT)
    (w,) = [w for w in r.warnings if "lengthened" in w]
    assert "10.0 s" in w
    assert "1.00 s" in w


def test_fast_sensor_does_not_lengthen_the_window(tmp_path: Path) -> None:
    c = FakeClock()
    reader = FakePowerReader(c, 5.0, update_period_s=0.1)
    r = execute(tmp_path, make_config(duration_s=2.0, repeats=1), c, readers=[reader])
    assert r.trials[0].duration_s == pytest.approx(2.0, rel=EXACT)
    assert not any("lengthened" in w for w in r.warnings)


# -- validity ----------------------------------------------------------------------------


def test_invalid_reading_invalidates_the_run(tmp_path: Path) -> None:
    c = FakeClock()
    readers = [FakePowerReader(c, 5.0, invalid_reason="sensor saturated")]
    r = execute(tmp_path, make_config(repeats=2), c, readers=readers)
    assert not r.valid
    assert "fake idle baseline: sensor saturated" in r.invalid_reasons
    assert "fake trial 0: sensor saturated" in r.invalid_reasons
    assert "fake trial 1: sensor saturated" in r.invalid_reasons
    assert all(not t.energy[0].valid for t in r.trials)
    assert r.quality.passed  # the run is invalid for the energy, not the outputs


def test_one_invalid_reader_among_valid_ones(tmp_path: Path) -> None:
    c = FakeClock()
    readers = [FakePowerReader(c, 5.0), FakePowerReader(c, 3.0, invalid_reason="stale")]
    r = execute(tmp_path, make_config(repeats=1), c, readers=readers)
    assert not r.valid
    assert r.invalid_reasons == ["fake idle baseline: stale", "fake trial 0: stale"]


def test_nan_outputs_fail_quality_and_invalidate_the_run(tmp_path: Path) -> None:
    c = FakeClock()
    adapter = FakeAdapter(c, 0.001, outputs_fn=lambda x: np.full_like(x, np.nan))
    r = execute(tmp_path, make_config(repeats=1), c, adapter=adapter)
    assert not r.quality.passed
    assert not r.valid
    assert "quality check failed: non-finite outputs" in r.invalid_reasons


def test_trial_to_trial_variation_warns(tmp_path: Path) -> None:
    c = FakeClock()
    adapter = SlowingAdapter(c, 0.001)
    cfg = make_config(duration_s=0.1, repeats=3)
    r = execute(tmp_path, cfg, c, adapter=adapter, sleep=adapter.pause)
    # idle baseline then two cooldowns: trials run at 2, 3 and 4 ms per query
    assert [t.latency.p50_ms for t in r.trials] == pytest.approx([2.0, 3.0, 4.0])
    unstable = [w for w in r.warnings if w.startswith("unstable:")]
    assert any(w.startswith("unstable: p50 latency varies 33.3%") for w in unstable)
    assert any(w.startswith("unstable: throughput") for w in unstable)
    assert all(STABILITY_REMEDY in w for w in unstable)
    assert r.valid  # a warning, not a failure


def test_stable_trials_do_not_warn_with_repeats(tmp_path: Path) -> None:
    c = FakeClock()
    r = execute(tmp_path, make_config(duration_s=0.1, repeats=5), c)
    assert not any(w.startswith("unstable:") for w in r.warnings)


# -- resources ---------------------------------------------------------------------------


def test_readers_and_session_are_closed(tmp_path: Path) -> None:
    c = FakeClock()
    adapter = FakeAdapter(c, 0.001)
    readers = [ClosingReader(c), ClosingReader(c)]
    execute(tmp_path, make_config(repeats=1), c, adapter=adapter, readers=readers)
    (session,) = adapter.sessions
    assert session.closed
    assert [r.closed for r in readers] == [1, 1]


def test_readers_and_session_are_closed_on_error(tmp_path: Path) -> None:
    c = FakeClock()
    # the model answers with a batch of 3 where 1 was fed
    adapter = FakeAdapter(c, 0.001, outputs_fn=lambda x: np.zeros((3, 4), dtype=np.float32))
    readers = [ClosingReader(c)]
    with pytest.raises(ModelError, match="--batch 3"):
        execute(tmp_path, make_config(repeats=1), c, adapter=adapter, readers=readers)
    assert adapter.sessions[0].closed
    assert readers[0].closed == 1


class UnloadableAdapter(FakeAdapter):
    def load(self, artifact: Any, options: Any) -> Any:
        raise UnavailableError("CUDAExecutionProvider is not in this build: use --device cpu")


def test_readers_are_closed_when_the_adapter_cannot_load(tmp_path: Path) -> None:
    c = FakeClock()
    readers = [ClosingReader(c)]
    with pytest.raises(UnavailableError):
        execute(tmp_path, make_config(), c, adapter=UnloadableAdapter(c), readers=readers)
    assert readers[0].closed == 1


def test_no_reader_is_a_config_error(tmp_path: Path) -> None:
    c = FakeClock()
    with pytest.raises(ConfigError, match="--power"):
        execute(tmp_path, make_config(), c, readers=[])


def test_a_precision_the_adapter_does_not_run_is_refused_before_loading(tmp_path: Path) -> None:
    c = FakeClock()
    adapter = FakeAdapter(c, 0.001)
    assert "int4" not in adapter.precisions
    with pytest.raises(ConfigError, match=r"fake runs fp32, fp16, int8, not int4: drop --pre"):
        execute(tmp_path, make_config(precision="int4"), c, adapter=adapter)
    assert adapter.sessions == []


def test_gguf_weight_types_map_to_their_width() -> None:
    from wattbench.adapters.llama_cpp import FILE_TYPES, precision_of

    names = {FILE_TYPES[t]: precision_of(t) for t in FILE_TYPES}
    assert names["F32"] == "fp32" and names["F16"] == names["BF16"] == "fp16"
    assert {names[n] for n in ("Q8_0", "Q5_0", "Q5_1", "Q5_K_S", "Q5_K_M", "Q6_K")} == {"int8"}
    four = ("Q4_0", "Q4_1", "Q4_K_S", "Q4_K_M", "Q3_K_M", "Q2_K", "IQ4_XS", "IQ2_XXS", "IQ1_S")
    assert {names[n] for n in four} == {"int4"}


# -- the timed loop ----------------------------------------------------------------------


class _RecordingSession:
    def __init__(self, clock: FakeClock, events: list[str]) -> None:
        self.clock = clock
        self.events = events

    def run(self, prepared: Any) -> list[np.ndarray]:
        self.events.append(f"run {prepared}")
        self.clock.advance(0.001)
        return []


@pytest.mark.parametrize(("min_s", "min_queries", "n"), [(0.0, 1, 1), (0.0, 5, 5), (0.2, 3, 200)])
def test_timed_loop_only_runs_between_clock_reads(min_s: float, min_queries: int, n: int) -> None:
    c = FakeClock()
    events: list[str] = []

    def clock() -> int:
        events.append("clock")
        return c()

    session = _RecordingSession(c, events)
    prepared = ["a", "b", "c"]
    lat, elapsed = timed_loop(
        session,  # type: ignore[arg-type]
        prepared,
        min_s,
        min_queries,
        clock,
        on_tick=lambda s: events.append("tick"),
    )
    assert len(lat) == n
    assert lat == [1_000_000] * n
    assert elapsed == n * 1_000_000
    assert events.count("clock") == 2 * n + 1
    # strip the progress ticks, which come between queries, never inside one
    body = [e for e in events if e != "tick"]
    expected = ["clock"]
    for i in range(n):
        expected += ["clock", f"run {prepared[i % 3]}", "clock"]
    assert body == expected
    for i, e in enumerate(events):
        if e == "tick":
            assert events[i - 1] == "clock" and events[i + 1] == "clock"
            assert events[i - 2].startswith("run ")
    assert events.count("tick") == n // 64
