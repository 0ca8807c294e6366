"""A measured reading without an uncertainty is not kept as if fine: the harness marks the
reader's trial readings invalid with the remedy, and the store refuses the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.power import EnergyMethod, EnergyReading, PowerReader
from wattbench.core.results import RunResult
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.core.validation import missing_uncertainty, validate_result
from wattbench.harness.protocol import Runner


class ForgetfulReader(FakePowerReader):
    """An out-of-tree reader whose author forgot the sensor's accuracy."""

    name: ClassVar[str] = "forgetful"

    def stop(self) -> EnergyReading:
        return super().stop().model_copy(update={"uncertainty_j": None})


def _run(tmp_path: Path, readers: list[PowerReader], clock: FakeClock) -> RunResult:
    cfg = RunConfig(
        suite="fake",
        adapter="fake",
        duration_s=1.0,
        min_queries=10,
        repeats=2,
        warmup_s=0.01,
        warmup_queries=5,
        idle_s=1.0,
        cooldown_s=0.5,
        power=tuple(r.name for r in readers),
    )
    return Runner(
        cfg,
        FakeSuite(),
        FakeAdapter(clock, 0.001),
        readers,
        ModelCache(tmp_path / "cache"),
        clock_ns=clock,
        sleep=clock.advance,
    ).execute()


def test_the_fakes_make_a_valid_storable_run(tmp_path: Path) -> None:
    clock = FakeClock()
    result = _run(tmp_path, [FakePowerReader(clock)], clock)
    assert result.valid and result.energy[0].uncertainty_j is not None
    assert validate_result(result) == []


def test_a_measured_reading_without_uncertainty_invalidates_its_reader(tmp_path: Path) -> None:
    clock = FakeClock()
    result = _run(tmp_path, [FakePowerReader(clock), ForgetfulReader(clock)], clock)
    why = missing_uncertainty("forgetful")
    for t in result.trials:
        good, bad = t.energy
        assert good.valid and good.invalid_reasons == []
        assert not bad.valid and bad.invalid_reasons == [why]
    assert not result.valid
    assert result.invalid_reasons == [f"forgetful trial {t.index}: {why}" for t in result.trials]
    assert "must report its accuracy" in why and "docs/measurement.md" in why
    # ... and the store would refuse it (the summary has no uncertainty to show).
    assert [p.path for p in validate_result(result)] == ["energy[1].uncertainty_j"]


def test_an_estimate_without_uncertainty_is_an_estimate(tmp_path: Path) -> None:
    clock = FakeClock()
    reader: Any = ForgetfulReader(clock, method=EnergyMethod.ESTIMATED)
    result = _run(tmp_path, [reader], clock)
    assert result.valid and result.energy[0].uncertainty_j is None
    assert validate_result(result) == []
