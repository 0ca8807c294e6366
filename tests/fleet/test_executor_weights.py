"""The harness executor passes a cell's ``weights`` run key through to the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattbench.fleet.executor import HarnessExecutor

FAKEPLUG = Path(__file__).parent / "fakeplug"


class _Progress:
    def phase(self, name: str, total: float | None = None) -> None:
        pass

    def update(self, completed: float) -> None:
        pass


@pytest.mark.parametrize(
    ("weights", "expected"),
    [("random", "random(seed=3)"), ("pretrained", "pretrained"), (None, "none")],
)
def test_cell_weights_reach_the_run(
    weights: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(FAKEPLUG))  # the fake suite's entry points
    options: dict[str, object] = {
        "suite": "fleet-fake",
        "seed": 3,
        "duration": 0.05,
        "warmup": 0.0,
        "power": "estimate",
    }
    if weights is not None:
        options["weights"] = weights
    ex = HarnessExecutor()
    cfg = ex.config(options, device="lab-1", labels=[])
    assert cfg.weights == weights
    result = ex.run(cfg, _Progress())
    assert result.model.weights == expected
