"""LiteRT's ``CompiledModel`` API: :class:`LiteRtCompiledSession`, the signature
details it runs on, and importing the module that provides it (``ai_edge_litert`` only).

The adapter that chooses between this and the Interpreter path is in
:mod:`wattbench.adapters.litert`, which re-exports these names.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.adapters.litert_interpreter import LiteRtSession, one_line
from wattbench.core.adapter import AdapterOptions, Precision
from wattbench.core.errors import ModelError

#: module with LiteRT's CompiledModel API (ai_edge_litert only)
COMPILED_MODULE = "ai_edge_litert.compiled_model"

#: tensor types LiteRT's TensorBuffer reads and writes (ai-edge-litert 2.3)
BUFFER_DTYPES = frozenset({"float32", "float16", "int32", "int8", "uint8", "bool"})


class _Batch:
    """A batch prepared for ``CompiledModel``: one input TensorBuffer per signature input,
    written once by ``prepare`` and only read by ``run``."""

    __slots__ = ("buffers",)

    def __init__(self, buffers: list[Any]) -> None:
        self.buffers = buffers


class LiteRtCompiledSession(LiteRtSession):
    """A LiteRT ``CompiledModel`` (signature 0) with output buffers created at load.

    ``prepare`` converts each feed like the Interpreter path and writes it into input
    TensorBuffers of its own (one set per prepared batch); ``run`` is one
    ``run_by_index`` on those and the output buffers, then one read of each output into
    a fresh array: nothing is converted or allocated in LiteRT's memory in the timed
    call. ``inputs``, ``outputs``, ``dequantize`` and the quantisation recorded by
    describe() come from the same tensor metadata as the Interpreter path.
    """

    api: ClassVar[str] = "compiled"

    def __init__(
        self,
        model: Any,
        inputs: Sequence[Mapping[str, Any]],
        outputs: Sequence[Mapping[str, Any]],
        *,
        adapter: str,
        runtime: str,
        runtime_version: str,
        options: AdapterOptions,
        precision: Precision,
        quantization: str,
        execution_provider: str,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._init_common(
            adapter=adapter,
            runtime=runtime,
            runtime_version=runtime_version,
            options=options,
            precision=precision,
            quantization=quantization,
            extra=extra,
        )
        self._model = model
        self._provider = execution_provider
        self._in = [dict(d) for d in inputs]
        self._out = [dict(d) for d in outputs]
        self._index = {d["name"]: i for i, d in enumerate(self._in)}
        self._fully_accelerated = model.is_fully_accelerated()
        self._run_by_index = model.run_by_index
        self._out_buffers: list[Any] = []
        self._reads: list[tuple[Any, int, np.dtype[Any], tuple[int, ...]]] = []
        self._check_run()

    def _check_run(self) -> None:
        """New output buffers for the current shapes, then one run on zeroed inputs.

        LiteRT allocates on the first run and reports some failures only then: this
        brings them (and the allocation) out of the timed region.
        """
        inputs = self._model.create_input_buffers(0)
        for b, d in zip(inputs, self._in, strict=True):
            b.write(np.zeros([int(v) for v in d["shape"]], np.dtype(d["dtype"])))
        buffers = self._model.create_output_buffers(0)
        self._model.run_by_index(0, inputs, buffers)
        reads = []
        for b, d in zip(buffers, self._out, strict=True):
            shape = tuple(int(v) for v in b.get_tensor_details()["shape"])
            d["shape"] = np.array(shape, np.int32)
            reads.append((b.read, int(np.prod(shape)), np.dtype(d["dtype"]), shape))
        self._out_buffers, self._reads = buffers, reads

    def _fit_shapes(self, shapes: Mapping[int, tuple[int, ...]]) -> None:
        changed = {
            i: s for i, s in shapes.items() if tuple(int(v) for v in self._in[i]["shape"]) != s
        }
        if not changed:
            return
        old = {i: [int(v) for v in self._in[i]["shape"]] for i in changed}
        try:
            for i, shape in changed.items():
                self._model.resize_input_tensor(i, list(shape), strict=False)
                self._in[i]["shape"] = np.array(shape, np.int32)
            self._check_run()
        except Exception as exc:
            for i, dims in old.items():
                self._model.resize_input_tensor(i, dims, strict=False)
                self._in[i]["shape"] = np.array(dims, np.int32)
            self._check_run()
            first, asked = next(iter(changed.items()))
            raise ModelError(
                f"model input {self._in[first]['name']!r} has the fixed shape {old[first]}, got "
                f"{list(asked)} ({one_line(exc)}): use --batch {old[first][0]}"
            ) from exc

    def prepare(self, feed: Mapping[str, np.ndarray]) -> _Batch:
        """The feed in the model's dtypes, written into input buffers of its own."""
        converted = dict(self._converted(feed))
        missing = [d["name"] for i, d in enumerate(self._in) if i not in converted]
        if missing:
            raise ModelError(
                f"the feed lacks model input(s) {', '.join(missing)}: the suite does not fit "
                f"this model"
            )
        self._fit_shapes({i: a.shape for i, a in converted.items()})
        arrays = [converted[i] for i in range(len(self._in))]
        buffers = self._model.create_input_buffers(0)
        for b, a in zip(buffers, arrays, strict=True):
            b.write(a)
        return _Batch(buffers)

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        self._run_by_index(0, prepared.buffers, self._out_buffers)
        return [read(n, dtype).reshape(shape) for read, n, dtype, shape in self._reads]

    def _api_options(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "api_call": "CompiledModel.run_by_index (signature 0)",
            "delegate_nodes": "not reported (CompiledModel)",
            "fully_accelerated": self._fully_accelerated,
        }

    def close(self) -> None:
        self._out_buffers, self._reads = [], []
        self._run_by_index = None
        if self._model is not None:
            self._model.close()
        self._model = None


def signature_details(
    model: Any, meta: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | str:
    """Interpreter-style details of signature 0's inputs and outputs, in its order.

    Matched to the metadata interpreter's tensors by index and name, so quantisation
    parameters come along; a reason string where they do not match (a signature on
    another subgraph) or a tensor type has no TensorBuffer support.
    """
    key = next(iter(model.get_signature_list()), None)
    if key is None:
        return "the model has no signature"
    names = model.get_signature_list()[key]
    found: list[list[dict[str, Any]]] = []
    for kind, details, meta_details in (
        ("input", model.get_input_tensor_details(key), meta.get_input_details()),
        ("output", model.get_output_tensor_details(key), meta.get_output_details()),
    ):
        by_index = {int(d["index"]): d for d in meta_details}
        rows = []
        for name in names[f"{kind}s"]:
            d = details[name]
            m = by_index.get(int(d["index"]))
            if m is None or m["name"] != d["name"]:
                return f"signature {key!r} {kind} {name!r} is not a tensor of the main subgraph"
            if str(d["dtype"]) not in BUFFER_DTYPES:
                return f"{kind} {d['name']!r} is {d['dtype']}, which TensorBuffer cannot hold"
            rows.append(dict(m))
        found.append(rows)
    return found[0], found[1]


def import_compiled() -> tuple[ModuleType | None, str]:
    """(``ai_edge_litert.compiled_model``, "") or (None, why not)."""
    try:
        return importlib.import_module(COMPILED_MODULE), ""
    except ImportError as exc:
        return None, f"{COMPILED_MODULE} does not import ({one_line(exc)})"
