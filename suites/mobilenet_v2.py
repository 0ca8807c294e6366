"""The mobilenet_v2 suite: ImageNet classification at 224×224."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from wattbench.adapters.base import ModelArtifact, Precision, TensorSpec
from wattbench.harness.cache import ModelCache
from wattbench.harness.errors import ConfigError
from wattbench.suites.base import InputSet, ModelRecipe, QualityResult, Suite
from wattbench.suites.images import load_image_dir, preprocess_image, synthetic_images
from wattbench.suites.models.mobilenet_v2 import mobilenet_v2, random_weights


class MobileNetV2Suite(Suite):
    """MobileNetV2 1.0/224 with an ImageNet head, one image per query."""

    name: ClassVar[str] = "mobilenet_v2"
    # Bump when the model recipe, input set, preprocessing or quality check changes.
    version: ClassVar[str] = "1.0"
    task: ClassVar[str] = "image-classification"

    def recipes(self) -> list[ModelRecipe]:
        return [
            ModelRecipe(
                name="mobilenet_v2_1.0_224",
                formats=["onnx", "torchscript"],
                weights=f"random(seed={self.options.seed})",
            )
        ]

    def build_model(
        self, fmt: str, cache: ModelCache, precision: Precision = "fp32"
    ) -> ModelArtifact:
        if precision != "fp32":
            raise ConfigError(
                f"mobilenet_v2 cannot build a {precision} model yet: pass one with --model"
            )
        if fmt == "torchscript":
            from wattbench.suites.models.torch_export import build_torchscript_artifact

            return build_torchscript_artifact(self.options.seed, cache, self.version)
        if fmt != "onnx":
            raise ConfigError(f"mobilenet_v2 cannot build a {fmt} model yet: pass one with --model")
        seed = self.options.seed
        key = f"mobilenet_v2-1.0-224-onnx-random-seed{seed}-v{self.version}"
        sha = cache.recipe(key)
        path = cache.lookup(sha, ".onnx") if sha else None
        if path is None or sha is None:
            from wattbench.suites.models.onnx_export import to_onnx_bytes

            arch = mobilenet_v2()
            data = to_onnx_bytes(arch, random_weights(arch, seed), "mobilenet_v2_1.0_224")
            path, sha = cache.put_bytes(data, ".onnx")
            cache.remember_recipe(key, sha)
        return ModelArtifact(
            path=path,
            sha256=sha,
            format="onnx",
            precision="fp32",
            weights=f"random(seed={seed})",
            name="mobilenet_v2_1.0_224",
        )

    def load_inputs(self) -> InputSet:
        d = self.options.data_dir
        if d is not None:
            images, names, digest = load_image_dir(d)
            return InputSet(
                source="user",
                description=f"images(dir={d.name}, n={len(images)}, sha256={digest[:12]})",
                samples=images,
                names=names,
            )
        images = synthetic_images(self.options.seed)
        return InputSet(
            source="synthetic",
            description=f"synthetic(seed={self.options.seed}, n={len(images)}, 256x256)",
            samples=images,
            names=[f"synthetic-{i}" for i in range(len(images))],
        )

    def preprocess(self, sample: Any, spec: TensorSpec) -> np.ndarray:
        if not isinstance(sample, Image.Image):
            raise TypeError(f"mobilenet_v2 samples are PIL images, got {type(sample).__name__}")
        return preprocess_image(sample, spec)

    def check_quality(
        self,
        outputs: Sequence[np.ndarray],
        inputs: InputSet,
        reference: Sequence[np.ndarray] | None = None,
    ) -> QualityResult:
        """Sanity of the logits; accuracy needs pretrained weights and labels.

        Fails on non-finite outputs, a wrong class count, or outputs that do
        not depend on the input (a broken graph or a constant-folded model).
        """
        logits = np.stack([np.asarray(o, dtype=np.float64).reshape(-1) for o in outputs])
        problems = []
        if logits.shape[1] not in (1000, 1001):
            problems.append(f"{logits.shape[1]} classes, expected 1000 or 1001")
        finite = float(np.isfinite(logits).mean())
        if finite < 1.0:
            problems.append(f"{(1 - finite) * 100:.1f}% of logits are NaN/inf")
        spread = float(np.nanstd(logits - logits[0], axis=0).mean()) if len(logits) > 1 else 1.0
        if len(logits) > 1 and not spread > 0:
            problems.append("outputs do not depend on the input")
        return QualityResult(
            passed=not problems,
            kind="sanity",
            metrics={"finite_fraction": finite, "input_sensitivity": spread},
            detail="; ".join(problems)
            or "logits finite and input-dependent (accuracy not assessed: no labels)",
        )
