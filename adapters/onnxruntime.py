"""ONNX Runtime adapter (CPU and the CUDA/TensorRT/OpenVINO execution providers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.adapters.base import (
    Adapter,
    AdapterDescription,
    AdapterOptions,
    ModelArtifact,
    Session,
    TensorSpec,
)
from wattbench.harness.availability import Availability
from wattbench.harness.errors import ConfigError, ModelError, UnavailableError

INSTALL_HINT = "pip install 'wattbench[onnxruntime]'"

#: wattbench device name -> ONNX Runtime execution provider
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _import_ort() -> ModuleType | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _specs(args: Sequence[Any]) -> list[TensorSpec]:
    return [
        TensorSpec(name=a.name, shape=list(a.shape), dtype=_ORT_DTYPES.get(a.type, a.type))
        for a in args
    ]


class OnnxRuntimeSession(Session):
    def __init__(self, sess: Any, ort: ModuleType, options: AdapterOptions, provider: str):
        self._sess = sess
        self._ort = ort
        self._options = options
        self._provider = provider

    def inputs(self) -> list[TensorSpec]:
        return _specs(self._sess.get_inputs())

    def outputs(self) -> list[TensorSpec]:
        return _specs(self._sess.get_outputs())

    def prepare(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # contiguous arrays avoid a copy inside run()
        return {k: np.ascontiguousarray(v) for k, v in feed.items()}

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        return self._sess.run(None, prepared)

    def describe(self) -> AdapterDescription:
        so = self._sess.get_session_options()
        return AdapterDescription(
            adapter=OnnxRuntimeAdapter.name,
            runtime="onnxruntime",
            runtime_version=self._ort.__version__,
            device=self._options.device,
            execution_provider=self._provider,
            precision=self._options.precision,
            options={
                "intra_op_num_threads": so.intra_op_num_threads or "runtime default",
                "inter_op_num_threads": so.inter_op_num_threads or "runtime default",
                "graph_optimization_level": str(so.graph_optimization_level).split(".")[-1],
                "providers": self._sess.get_providers(),
            },
        )


class OnnxRuntimeAdapter(Adapter):
    """Runs ONNX models with ONNX Runtime; fails when the asked-for provider did not load."""

    name: ClassVar[str] = "onnxruntime"
    formats: ClassVar[tuple[str, ...]] = ("onnx",)

    def __init__(self, runtime: ModuleType | None = None) -> None:
        # The runtime module is injectable so tests can hand in a double.
        self._ort = runtime

    @classmethod
    def runtime_version(cls) -> str | None:
        ort = _import_ort()
        return None if ort is None else str(ort.__version__)

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        ort = _import_ort()
        if ort is None:
            return Availability.no(f"onnxruntime not installed: {INSTALL_HINT}")
        base = device.split(":")[0]
        provider = PROVIDERS.get(base)
        if provider is None:
            return Availability.no(
                f"unknown device {device!r} for onnxruntime (use one of {', '.join(PROVIDERS)})"
            )
        if provider not in ort.get_available_providers():
            return Availability.no(
                f"{provider} not in this onnxruntime build "
                f"(has {', '.join(ort.get_available_providers())})"
            )
        return Availability.yes(f"onnxruntime {ort.__version__}, {provider}")

    def _runtime(self) -> ModuleType:
        ort = self._ort or _import_ort()
        if ort is None:
            raise UnavailableError(f"onnxruntime not installed: {INSTALL_HINT}")
        self._ort = ort
        return ort

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        ort = self._runtime()
        if artifact.format not in self.formats:
            raise ConfigError(
                f"onnxruntime loads ONNX models, not {artifact.format}: pass an .onnx file"
            )
        base, _, index = options.device.partition(":")
        provider = PROVIDERS.get(base)
        if provider is None:
            raise ConfigError(
                f"unknown device {options.device!r} for onnxruntime "
                f"(use one of {', '.join(PROVIDERS)})"
            )
        if provider not in ort.get_available_providers():
            raise UnavailableError(
                f"{provider} is not in this onnxruntime build: install the matching package "
                f"(e.g. onnxruntime-gpu) or use --device cpu"
            )
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.threads is not None:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
        provider_opts: dict[str, Any] = {"device_id": int(index)} if index else {}
        providers: list[Any] = [(provider, provider_opts)] if provider_opts else [provider]
        try:
            sess = ort.InferenceSession(str(artifact.path), sess_options=so, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"onnxruntime cannot load {artifact.path}: {first} "
                f"(is it a valid ONNX model? re-export it or pass another --model)"
            ) from exc
        # ORT silently falls back to CPU when a provider fails to initialise.
        if sess.get_providers()[0] != provider:
            raise UnavailableError(
                f"onnxruntime fell back to {sess.get_providers()[0]} instead of {provider}: "
                f"check the {base} driver/toolkit install or use --device cpu"
            )
        if options.precision != artifact.precision:
            raise ConfigError(
                f"--precision {options.precision} but the model is {artifact.precision}: "
                f"pass a {options.precision} model with --model"
            )
        return OnnxRuntimeSession(sess, ort, options, provider)
