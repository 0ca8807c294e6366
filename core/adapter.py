"""The Adapter contract: one runtime behind one interface.

An :class:`Adapter` turns a model artifact into a :class:`Session`. The
session separates :meth:`Session.prepare` (copying inputs into whatever the
runtime wants, outside the timed region) from :meth:`Session.run` (the
inference call, the only thing the harness times).

Adding a runtime is one module with an :class:`Adapter` subclass plus an entry
point in the ``wattbench.adapters`` group. Runtime packages are imported inside
methods, never at module import, so listing adapters works without them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from wattbench.core.availability import Availability

#: Numeric precision of a model's weights: ``int4`` is 4-bit (or fewer) integer weights
#: (GGUF Q4/Q3/Q2 types, NNCF INT4 weight compression), ``int8`` 5- to 8-bit integers.
Precision = Literal["fp32", "fp16", "int8", "int4"]
#: The precisions an adapter runs unless it says otherwise (``Adapter.precisions``).
COMMON_PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")

#: Archive member of a TorchScript model that holds its I/O signature as JSON: written by the
#: suites' model builders, read by the torch adapter (TorchScript stores no input shapes).
TORCHSCRIPT_IO_FILE = "wattbench/io.json"


class AdapterOptions(BaseModel):
    """What the user asked of the runtime."""

    model_config = ConfigDict(frozen=True)

    device: str = Field(default="cpu", description="Target device, e.g. cpu, cuda, cuda:1, NPU.")
    threads: int | None = Field(
        default=None, ge=1, description="Intra-op threads; None keeps the runtime default."
    )
    precision: Precision = Field(default="fp32", description="Numeric precision of the model.")
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="Adapter-specific settings (--adapter-opt KEY=VALUE); each adapter rejects "
        "keys it does not know.",
    )


class TensorSpec(BaseModel):
    """One model input or output as the runtime reports it."""

    name: str
    shape: list[int | str | None] = Field(description="Dimensions; str/None are symbolic.")
    dtype: str = Field(description="numpy dtype name, e.g. float32, uint8.")


class Provenance(BaseModel):
    """Where a model's weights come from: stored with every run (inside ``model``)."""

    kind: Literal["pretrained", "random", "user"] = Field(
        description="pretrained: published trained weights; random: seeded random weights "
        "(the architecture's compute only); user: a file the suite does not know."
    )
    source: str = Field(description="What the weights are, e.g. the upstream project and name.")
    license: str | None = Field(default=None, description="SPDX id of the weights' license.")
    url: str | None = Field(default=None, description="Canonical, immutable download address.")
    sha256: str | None = Field(default=None, description="sha256 of the source weights file.")
    sha256_pinned: bool = Field(
        default=True,
        description="True: sha256 pinned in wattbench's registry; False: recorded on the first "
        "download (no verified digest was published).",
    )
    files: dict[str, str] = Field(
        default_factory=dict, description="Further source files of a checkpoint: name -> sha256."
    )
    notes: str = Field(default="", description="How the file was obtained, conversions, ...")


class ModelArtifact(BaseModel):
    """A model file on disk with its identity."""

    path: Path
    sha256: str
    format: str = Field(description="onnx, tflite, openvino-ir, ...")
    precision: Precision = "fp32"
    weights: str = Field(description="random(seed=N), pretrained(sha256=...) or user(sha256=...)")
    name: str
    provenance: Provenance | None = Field(
        default=None, description="Source, license and sha256 of the weights (None: not recorded)."
    )


class AdapterDescription(BaseModel):
    """What actually ran: recorded with every result."""

    adapter: str
    runtime: str
    runtime_version: str
    device: str
    execution_provider: str = Field(description="Provider/delegate/plugin actually in use.")
    precision: Precision
    options: dict[str, Any] = Field(description="Options in effect, after runtime defaults.")


class Session(ABC):
    """A loaded model, ready to run batches."""

    @abstractmethod
    def inputs(self) -> list[TensorSpec]:
        """Input tensors the model expects."""

    @abstractmethod
    def outputs(self) -> list[TensorSpec]:
        """Output tensors the model produces."""

    @abstractmethod
    def prepare(self, feed: Mapping[str, np.ndarray]) -> Any:
        """Turn named host arrays into the runtime's input form (not timed)."""

    @abstractmethod
    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        """Run one batch; the only call inside the timed region."""

    @abstractmethod
    def describe(self) -> AdapterDescription:
        """Runtime, version, device, provider/delegate and options in effect."""

    def close(self) -> None:  # noqa: B027 - most runtimes free on garbage collection
        """Release runtime resources."""


class Adapter(ABC):
    """A runtime plug-in."""

    #: entry-point name, e.g. ``"onnxruntime"``
    name: ClassVar[str]
    #: artifact formats this adapter loads, in order of preference
    formats: ClassVar[tuple[str, ...]]
    #: ``--adapter-opt`` keys this adapter understands (key → values), checked before a run
    option_keys: ClassVar[Mapping[str, str]] = {}
    #: the device used when the user names none (and probed by `wattbench adapters`)
    default_device: ClassVar[str] = "cpu"
    #: False when a suite's own build can never run here (e.g. the Edge TPU needs a model
    #: compiled by edgetpu_compiler): the user must pass --model
    runs_suite_builds: ClassVar[bool] = True
    #: the precisions this runtime runs (the run refuses any other before loading)
    precisions: ClassVar[tuple[Precision, ...]] = COMMON_PRECISIONS

    @classmethod
    @abstractmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        """Whether the runtime imports and supports ``device``; the reason names the fix."""

    @classmethod
    @abstractmethod
    def runtime_version(cls) -> str | None:
        """Version of the installed runtime, None when not installed."""

    @abstractmethod
    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        """Load ``artifact`` with ``options``; raise ModelError/UnavailableError on failure."""

    def model_precision(self, artifact: ModelArtifact) -> Precision:
        """The precision ``artifact`` runs at when the user asks for none.

        Runtimes whose files carry their precision (a full-integer .tflite, a
        quantised IR) override this to read it from the file.
        """
        return artifact.precision
