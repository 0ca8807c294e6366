"""Smart sampling: a frame stream where inference runs only when the scene changes.

The stream is synthetic and deterministic: ``scenes`` scenes of
``frames_per_scene`` frames each; within a scene frames differ by a pixel or two
of camera jitter and sensor noise, a new scene is a different picture. The
change detector is deliberately cheap: the mean absolute difference of 16×16
grayscale thumbnails against the last frame that ran inference (0..1 scale),
firing above a threshold. A frame that does not fire reuses the last answer.

For each detector threshold, two passes over the stream run inside power-reader
windows, the same number of frames each: *every frame* (preprocess + infer) and
*gated* (thumbnail + compare, and preprocess + infer where the detector fires).
Reported: the skipped fraction, the energy per frame of both, energy saved, and
quality lost (frames whose gated answer differs from the every-frame answer).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from wattbench.core.adapter import AdapterOptions, Session
from wattbench.harness.network.payload import top1
from wattbench.harness.protocol import Runner

THUMB_SIDE = 16


def synthetic_stream(
    seed: int = 0, scenes: int = 4, frames_per_scene: int = 12, size: int = 128
) -> tuple[list[Image.Image], list[int]]:
    """Deterministic frames and the scene index of each."""
    from wattbench.suites.images import synthetic_images

    rng = np.random.default_rng(seed + 1000)
    bases = [np.asarray(im, dtype=np.int16) for im in synthetic_images(seed, scenes, size)]
    frames: list[Image.Image] = []
    scene_of: list[int] = []
    for s, base in enumerate(bases):
        for _ in range(frames_per_scene):
            dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
            f = np.roll(base, (dy, dx), axis=(0, 1)) + rng.normal(0, 3, size=base.shape)
            frames.append(Image.fromarray(np.clip(f, 0, 255).astype(np.uint8), "RGB"))
            scene_of.append(s)
    return frames, scene_of


def thumbnail(image: Image.Image) -> np.ndarray:
    """16×16 grayscale in 0..1: what the detector compares."""
    small = image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32) / 255.0


class ChangeDetector:
    """Fires on the first frame and whenever the thumbnail moved more than ``threshold``."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._key: np.ndarray | None = None

    def fires(self, image: Image.Image) -> bool:
        t = thumbnail(image)
        if self._key is None or float(np.abs(t - self._key).mean()) > self.threshold:
            self._key = t
            return True
        return False


class FramePoint(BaseModel):
    detector_threshold: float
    frames: int
    inferences: int
    skipped_fraction: float
    every_frame_j_per_frame: float
    gated_j_per_frame: float
    energy_saved_fraction: float
    quality_lost_fraction: float = Field(
        description="Frames whose gated answer differs from running every frame."
    )
    scenes_never_inferred: int = Field(description="Scenes in which the detector never fired.")


class FrameReport(BaseModel):
    suite: str
    adapter: str
    model: str
    stream: str
    energy_method: str
    energy_reader: str
    points: list[FramePoint]
    notes: list[str] = Field(default_factory=list)


def _infer(session: Session, suite: Any, specs: Any, image: Image.Image) -> int:
    feed = suite.preprocess_feed(image, specs)
    out = session.run(session.prepare({k: v[None, ...] for k, v in feed.items()}))
    return top1(np.asarray(out[0])[0])[0]


def run_frame_stream(
    runner: Runner,
    thresholds: Sequence[float],
    *,
    scenes: int = 4,
    frames_per_scene: int = 12,
    min_s: float = 1.0,
) -> FrameReport:
    """Measure every-frame vs gated inference for each detector threshold."""
    cfg = runner.config
    frames, scene_of = synthetic_stream(cfg.seed, scenes, frames_per_scene)
    artifact = runner._artifact()
    opts = AdapterOptions(
        device=cfg.device,
        threads=cfg.threads,
        precision=cfg.precision or artifact.precision,
        extra=cfg.adapter_options,
    )
    session = runner.adapter.load(artifact, opts)
    suite = runner.suite
    specs = session.inputs()
    try:
        truth = [_infer(session, suite, specs, f) for f in frames]  # also warms up

        def every_frame() -> int:
            n = 0
            t0 = time.perf_counter()
            while n == 0 or time.perf_counter() - t0 < min_s:
                for f in frames:
                    _infer(session, suite, specs, f)
                n += len(frames)
            return n

        points = []
        for th in thresholds:
            answers: list[int] = []
            fired: list[bool] = []

            def gated(
                th: float = th, answers: list[int] = answers, fired: list[bool] = fired
            ) -> int:
                n = 0
                t0 = time.perf_counter()
                while n == 0 or time.perf_counter() - t0 < min_s:
                    det = ChangeDetector(th)
                    last = -1
                    answers.clear()
                    fired.clear()
                    for f in frames:
                        fire = det.fires(f)
                        if fire:
                            last = _infer(session, suite, specs, f)
                        fired.append(fire)
                        answers.append(last)
                    n += len(frames)
                return n

            n_all, r_all = runner._window(every_frame)
            n_gated, r_gated = runner._window(gated)
            e_all = r_all[0].energy_j / n_all
            e_gated = r_gated[0].energy_j / n_gated
            lost = sum(a != t for a, t in zip(answers, truth, strict=True)) / len(frames)
            inferences = sum(fired)
            missed = len(set(scene_of)) - len({scene_of[i] for i, x in enumerate(fired) if x})
            points.append(
                FramePoint(
                    detector_threshold=th,
                    frames=len(frames),
                    inferences=inferences,
                    skipped_fraction=1 - inferences / len(frames),
                    every_frame_j_per_frame=e_all,
                    gated_j_per_frame=e_gated,
                    energy_saved_fraction=1 - e_gated / e_all if e_all > 0 else 0.0,
                    quality_lost_fraction=lost,
                    scenes_never_inferred=missed,
                )
            )
        head = runner.readers[0].info()
        return FrameReport(
            suite=suite.name,
            adapter=runner.adapter.name,
            model=artifact.name,
            stream=f"synthetic(seed={cfg.seed}, scenes={scenes}, frames/scene={frames_per_scene})",
            energy_method=head.method.value,
            energy_reader=head.name,
            points=points,
            notes=[
                "energy per frame is gross (idle included) over windows of the same length; "
                "quality is agreement with running every frame, not accuracy"
            ],
        )
    finally:
        session.close()
        for r in runner.readers:
            r.close()
