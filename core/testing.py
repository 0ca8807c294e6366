"""First-class test doubles: a fake adapter, a fake power reader and a fake suite.

They follow the real contracts exactly, so the protocol, the store and the CLI
can be tested without a runtime or a power sensor, and third-party plug-ins can
use them in their own tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from wattbench.core.adapter import (
    Adapter,
    AdapterDescription,
    AdapterOptions,
    ModelArtifact,
    Precision,
    Session,
    TensorSpec,
)
from wattbench.core.availability import Availability
from wattbench.core.cache import ModelCache
from wattbench.core.power import (
    EnergyMethod,
    EnergyReading,
    EnergyScope,
    PowerReader,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.core.suite import InputSet, ModelRecipe, QualityResult, Suite


class FakeClock:
    """A monotonic nanosecond clock that advances only when told (or per read)."""

    def __init__(self, step_ns: int = 0) -> None:
        self.now_ns = 0
        self.step_ns = step_ns

    def __call__(self) -> int:
        self.now_ns += self.step_ns
        return self.now_ns

    def seconds(self) -> float:
        return self.now_ns / 1e9

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)


class FakeSession(Session):
    """Returns ``outputs_fn(batch)``; each run advances ``clock`` by ``latency_s``."""

    def __init__(
        self,
        clock: FakeClock | None,
        latency_s: float,
        outputs_fn: Callable[[np.ndarray], np.ndarray],
        options: AdapterOptions,
    ) -> None:
        self.clock = clock
        self.latency_s = latency_s
        self.outputs_fn = outputs_fn
        self.options = options
        self.runs = 0
        self.closed = False

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(name="x", shape=["N", 4], dtype="float32")]

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(name="y", shape=["N", 4], dtype="float32")]

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Any:
        return feed["x"]

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        self.runs += 1
        if self.clock is not None:
            self.clock.advance(self.latency_s)
        return [self.outputs_fn(prepared)]

    def describe(self) -> AdapterDescription:
        return AdapterDescription(
            adapter="fake",
            runtime="fake",
            runtime_version="0",
            device=self.options.device,
            execution_provider="none",
            precision=self.options.precision,
            options={"threads": self.options.threads},
        )

    def close(self) -> None:
        self.closed = True


class FakeAdapter(Adapter):
    """An adapter whose "inference" costs ``latency_s`` of fake time."""

    name: ClassVar[str] = "fake"
    formats: ClassVar[tuple[str, ...]] = ("fake",)

    def __init__(
        self,
        clock: FakeClock | None = None,
        latency_s: float = 0.001,
        outputs_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.clock = clock
        self.latency_s = latency_s
        self.outputs_fn = outputs_fn or (lambda x: np.asarray(x, dtype=np.float32) * 2.0)
        self.sessions: list[FakeSession] = []

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        return Availability.yes("fake adapter")

    @classmethod
    def runtime_version(cls) -> str | None:
        return "0"

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        s = FakeSession(self.clock, self.latency_s, self.outputs_fn, options)
        self.sessions.append(s)
        return s


class FakePowerReader(PowerReader):
    """Integrates ``power_w(t)`` exactly over the fake clock's window.

    ``power_w`` maps seconds on ``clock`` to watts; the default is constant.
    """

    name: ClassVar[str] = "fake"
    method: ClassVar[EnergyMethod] = EnergyMethod.COUNTER

    def __init__(
        self,
        clock: FakeClock,
        power_w: float | Callable[[float], float] = 5.0,
        *,
        method: EnergyMethod = EnergyMethod.COUNTER,
        scope: EnergyScope = EnergyScope.BOARD,
        update_period_s: float | None = None,
        uncertainty_rel: float = 0.01,
        invalid_reason: str | None = None,
        options: ReaderOptions | None = None,
    ) -> None:
        super().__init__(options)
        self.clock = clock
        self.power_w = power_w
        self._method = method
        self.scope = scope
        self.update_period_s = update_period_s
        self.uncertainty_rel = uncertainty_rel
        self.invalid_reason = invalid_reason
        self._t0: float | None = None
        self.windows: list[tuple[float, float]] = []

    @classmethod
    def is_available(cls, options: ReaderOptions) -> Availability:
        return Availability.yes("fake reader")

    def _p(self, t: float) -> float:
        return self.power_w(t) if callable(self.power_w) else float(self.power_w)

    def info(self) -> ReaderInfo:
        return ReaderInfo(
            name=self.name,
            method=self._method,
            scope=self.scope,
            component="fake rail",
            update_period_s=self.update_period_s,
        )

    def start(self) -> None:
        self._t0 = self.clock.seconds()

    def stop(self) -> EnergyReading:
        assert self._t0 is not None, "stop() without start()"
        t0, t1 = self._t0, self.clock.seconds()
        self._t0 = None
        self.windows.append((t0, t1))
        ts = np.linspace(t0, t1, 201)
        ps = np.array([self._p(t) for t in ts])
        energy = float(np.sum((ps[1:] + ps[:-1]) / 2 * np.diff(ts)))
        dur = max(t1 - t0, 1e-9)
        return EnergyReading(
            reader=self.name,
            method=self._method,
            scope=self.scope,
            component="fake rail",
            energy_j=energy,
            duration_s=dur,
            samples=len(ts),
            sample_rate_hz=len(ts) / dur,
            update_period_s=self.update_period_s,
            mean_power_w=energy / dur,
            peak_power_w=float(ps.max()),
            uncertainty_j=energy * self.uncertainty_rel,
            valid=self.invalid_reason is None,
            invalid_reasons=[self.invalid_reason] if self.invalid_reason else [],
            trace=[(float(t - t0), float(p)) for t, p in zip(ts[::20], ps[::20], strict=True)],
        )


class FakeSuite(Suite):
    """Four 4-float samples; quality passes when outputs are finite."""

    name: ClassVar[str] = "fake"
    version: ClassVar[str] = "0.1"
    task: ClassVar[str] = "fake"

    def recipes(self) -> list[ModelRecipe]:
        return [ModelRecipe(name="fake", formats=["fake"], weights="none")]

    def build_model(
        self, fmt: str, cache: ModelCache, precision: Precision = "fp32"
    ) -> ModelArtifact:
        return ModelArtifact(
            path=Path("/dev/null"), sha256="0" * 64, format=fmt, weights="none", name="fake"
        )

    def load_inputs(self) -> InputSet:
        samples = [np.full(4, i, dtype=np.float32) for i in range(4)]
        return InputSet(
            source="synthetic",
            description="fake(n=4)",
            samples=samples,
            names=[str(i) for i in range(4)],
        )

    def preprocess(self, sample: Any, spec: TensorSpec) -> np.ndarray:
        return np.asarray(sample, dtype=np.float32)

    def check_quality(
        self,
        outputs: Sequence[np.ndarray],
        inputs: InputSet,
        reference: Sequence[np.ndarray] | None = None,
    ) -> QualityResult:
        finite = bool(np.all(np.isfinite(np.stack(list(outputs)))))
        return QualityResult(
            passed=finite, kind="sanity", detail="" if finite else "non-finite outputs"
        )
