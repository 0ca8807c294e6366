"""The Suite contract: a versioned, fixed piece of work.

A suite pins the model recipe(s), the input set, pre- and post-processing and
the quality check. Its ``version`` is stored with every result and results of
different versions are never ranked together: bump it whenever anything that
changes the work changes.

Adding a suite is one module with a :class:`Suite` subclass plus an entry
point in the ``wattbench.suites`` group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from wattbench.core.adapter import ModelArtifact, Precision, Provenance, TensorSpec
from wattbench.core.cache import ModelCache, sha256_file
from wattbench.core.errors import ModelError


class SuiteOptions(BaseModel):
    """Options a user may set on any suite."""

    model_config = ConfigDict(frozen=True)

    data_dir: Path | None = Field(
        default=None, description="Directory with the suite's real inputs (else synthetic)."
    )
    seed: int = Field(default=0, description="Seed of random weights and synthetic inputs.")
    weights: Literal["pretrained", "random"] | None = Field(
        default=None,
        description="The suite's model weights: pretrained (published, trained) or random "
        "(seeded, for quick smoke runs); None: the suite's default.",
    )


class ModelRecipe(BaseModel):
    """A model the suite can produce and how."""

    name: str
    formats: list[str]
    weights: str = Field(description="How the weights come about, e.g. random(seed=0).")


class InputSet(BaseModel):
    """The raw samples of a run, described for the record."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    source: Literal["shipped", "user", "synthetic"]
    description: str
    samples: list[Any] = Field(repr=False)
    names: list[str]
    labels: list[int | None] | None = Field(
        default=None,
        description="Ground-truth class per sample in the suite's own class indexing (None: "
        "that sample is unlabelled); None when the set has no labels.",
    )


class QualityResult(BaseModel):
    """Outcome of the suite's quality check on the run's outputs."""

    passed: bool
    kind: Literal["accuracy", "agreement", "sanity"] = Field(
        description="accuracy: vs labels; agreement: vs a reference; sanity: outputs well-formed."
    )
    metrics: dict[str, float] = Field(default_factory=dict)
    detail: str = ""


class Suite(ABC):
    """A standard benchmark workload."""

    name: ClassVar[str]
    version: ClassVar[str]
    task: ClassVar[str]
    #: runtimes `wattbench run` uses without --adapter: the first one available here
    default_adapters: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    #: scenarios this suite is meaningful in (MLPerf semantics)
    scenarios: ClassVar[tuple[str, ...]] = ("single-stream", "offline", "server")
    #: quality targets, e.g. {"fp32": {"top1_agreement": 0.99}}; below them a run is invalid
    quality_targets: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, options: SuiteOptions | None = None) -> None:
        self.options = options or SuiteOptions()

    @abstractmethod
    def recipes(self) -> list[ModelRecipe]:
        """The models this suite can build or fetch."""

    @abstractmethod
    def build_model(
        self, fmt: str, cache: ModelCache, precision: Precision = "fp32"
    ) -> ModelArtifact:
        """Build (or take from the cache) the suite's model in ``fmt`` at ``precision``.

        Raise ConfigError naming the remedy for a format/precision it cannot build.
        """

    @abstractmethod
    def load_inputs(self) -> InputSet:
        """The fixed raw input set (real data when present, else synthetic — say which)."""

    @abstractmethod
    def preprocess(self, sample: Any, spec: TensorSpec) -> np.ndarray:
        """One raw sample → one model input row (no batch dimension) matching ``spec``."""

    def pick_build(
        self, adapter_formats: Sequence[str], precision: Precision | None
    ) -> tuple[str, Precision] | None:
        """The format and precision to build for an adapter loading ``adapter_formats`` (its
        order of preference) when the user asked for ``precision`` (None: the model's own).

        Default: the first of them a recipe builds, at ``precision`` or fp32; None when no
        recipe builds any. Suites whose default model differs by format override it.
        """
        buildable = {f for r in self.recipes() for f in r.formats}
        fmt = next((f for f in adapter_formats if f in buildable), None)
        return None if fmt is None else (fmt, precision or "fp32")

    def bind(self, artifact: ModelArtifact) -> None:  # noqa: B027 - optional hook
        """Called with the artifact that will run (its final precision resolved).

        Suites whose quality targets or reference depend on the model override it.
        """

    def acquire(self, sample: Any) -> Any:
        """Bring one sample from where it is produced into memory (decode a file, ...).

        Timed as the first stage of the end-to-end latency. The default holds
        samples in memory already and returns them as they are.
        """
        return sample

    def preprocess_feed(self, sample: Any, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
        """One raw sample → one row per model input, by input name.

        Single-input suites need not override this; multi-input suites (token ids
        and attention mask, ...) do.
        """
        if len(specs) != 1:
            raise ModelError(f"model has {len(specs)} inputs; the {self.name} suite feeds one")
        return {specs[0].name: self.preprocess(sample, specs[0])}

    def postprocess(self, outputs: Sequence[np.ndarray]) -> Any:
        """One sample's raw outputs (batch dim removed) → the answer (e.g. top-1 class).

        Timed as part of the end-to-end latency, never inside the inference window.
        """
        return int(np.argmax(np.asarray(outputs[0]).reshape(-1)))

    def reference_outputs(self, inputs: InputSet, cache: ModelCache) -> list[np.ndarray] | None:
        """The FP32 reference's first output per sample, or None when the suite has none.

        The protocol passes these to :meth:`check_quality` so that a quantised or
        otherwise broken model is caught by its disagreement with the reference.
        """
        return None

    @abstractmethod
    def check_quality(
        self,
        outputs: Sequence[np.ndarray],
        inputs: InputSet,
        reference: Sequence[np.ndarray] | None = None,
    ) -> QualityResult:
        """Judge the model's outputs (first output per sample, batch dim removed).

        ``reference`` holds the FP32 reference's outputs for the same samples when
        :meth:`reference_outputs` gives them.
        """

    def pretrained_artifact(self, path: Path, sha256: str) -> ModelArtifact | None:
        """The pretrained model whose bytes ``path`` holds (``sha256``), if the suite knows it.

        Lets a user's copy of a published model be labelled pretrained rather than "user";
        suites with a model registry override it. Default: None.
        """
        return None

    def user_model(self, path: Path) -> ModelArtifact:
        """Wrap a user-supplied model file; errors name the remedy."""
        if not path.is_file():
            raise ModelError(f"model file not found: {path} (check the --model path)")
        fmt = {
            ".onnx": "onnx",
            ".tflite": "tflite",
            ".xml": "openvino-ir",
            ".pt": "torchscript",
        }.get(path.suffix)
        if fmt is None:
            raise ModelError(
                f"unknown model format {path.suffix!r} for {path}: use .onnx, .tflite, .xml or .pt"
            )
        sha = sha256_file(path)
        known = self.pretrained_artifact(path, sha)
        if known is not None:
            return known
        return ModelArtifact(
            path=path.resolve(),
            sha256=sha,
            format=fmt,
            weights=f"user(sha256={sha[:12]})",
            name=path.stem,
            provenance=Provenance(kind="user", source=f"user file {path.name}", sha256=sha),
        )
