"""A fast adapter and suite for the fleet tests, registered by entry point (the dist-info
beside this package) so that worker processes find them like any installed plug-in."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from wattbench.core.adapter import AdapterOptions, ModelArtifact, Precision, Session
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError
from wattbench.core.suite import InputSet
from wattbench.core.testing import FakeAdapter, FakeSession, FakeSuite


class _SleepySession(FakeSession):
    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        time.sleep(self.latency_s)  # real time: a cell lasts as long as its windows
        return super().run(prepared)


class FleetFakeAdapter(FakeAdapter):
    name: ClassVar[str] = "fleet-fake"

    def __init__(self) -> None:
        super().__init__(clock=None, latency_s=0.002)

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        return _SleepySession(None, self.latency_s, self.outputs_fn, options)


class FleetFakeSuite(FakeSuite):
    """Fails while its ``--data-dir`` does not exist (a failure that a retry can fix)."""

    name: ClassVar[str] = "fleet-fake"
    default_adapters: ClassVar[tuple[str, ...]] = ("fleet-fake",)

    def load_inputs(self) -> InputSet:
        d = self.options.data_dir
        if d is not None and not d.is_dir():
            raise ConfigError(f"no inputs: {d} does not exist")
        return super().load_inputs()

    def build_model(
        self, fmt: str, cache: ModelCache, precision: Precision = "fp32"
    ) -> ModelArtifact:
        """The fake model, whose ``weights`` says which weights the run asked for."""
        w = self.options.weights
        weights = f"random(seed={self.options.seed})" if w == "random" else (w or "none")
        return ModelArtifact(
            path=Path("/dev/null"), sha256="0" * 64, format=fmt, weights=weights, name="fake"
        )
