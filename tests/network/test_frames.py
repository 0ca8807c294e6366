"""Smart sampling: the frame stream, the change detector, energy saved vs quality lost."""

from __future__ import annotations

import numpy as np
import pytest

from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.power import ReaderOptions
from wattbench.harness.network.frames import ChangeDetector, run_frame_stream, synthetic_stream
from wattbench.harness.protocol import Runner
from wattbench.power.estimated import EstimatedCpuReader


def test_stream_is_deterministic_and_scenes_differ() -> None:
    a, scenes = synthetic_stream(seed=3, scenes=3, frames_per_scene=4, size=64)
    b, _ = synthetic_stream(seed=3, scenes=3, frames_per_scene=4, size=64)
    assert scenes == [0] * 4 + [1] * 4 + [2] * 4
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))  # jitter + noise


@pytest.mark.parametrize("threshold,fires", [(0.0, 12), (0.05, 3), (1.0, 1)])
def test_detector_fires_on_scene_changes(threshold: float, fires: int) -> None:
    frames, _ = synthetic_stream(seed=0, scenes=3, frames_per_scene=4)
    det = ChangeDetector(threshold)
    fired = [det.fires(f) for f in frames]
    assert sum(fired) == fires
    if fires == 3:
        assert [i for i, f in enumerate(fired) if f] == [0, 4, 8]


def test_gated_inference_saves_energy_on_the_real_runtime() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from wattbench.adapters.onnxruntime import OnnxRuntimeAdapter
    from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

    cfg = RunConfig(suite="mobilenet_v2", adapter="onnxruntime", threads=1, power=("estimate",))
    runner = Runner(
        cfg,
        MobileNetV2Suite(),
        OnnxRuntimeAdapter(),
        [EstimatedCpuReader(ReaderOptions(tdp_w=10.0))],
        ModelCache(),
    )
    report = run_frame_stream(runner, [0.0, 0.05], scenes=3, frames_per_scene=6, min_s=0.2)
    every, gated = report.points
    assert every.skipped_fraction == 0 and every.quality_lost_fraction == 0
    assert gated.inferences == 3 and gated.skipped_fraction == pytest.approx(1 - 3 / 18)
    assert gated.scenes_never_inferred == 0
    assert gated.gated_j_per_frame < gated.every_frame_j_per_frame
    assert 0 < gated.energy_saved_fraction < 1
    assert 0 <= gated.quality_lost_fraction <= 1
    assert report.energy_method == "estimated"
