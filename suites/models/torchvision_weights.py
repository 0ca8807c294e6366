"""torchvision's ImageNet MobileNetV2 weights, read into the suite's layer list.

The file is torchvision's published ``mobilenet_v2-b0353104.pth`` (a ``state_dict`` saved in
PyTorch's *legacy* serialisation: consecutive pickles, then the raw tensor storages). It is
read here with the standard library and numpy only, so building the pretrained ONNX model
needs no torch. Only what that format uses is supported (float and int64 storages,
``_rebuild_tensor_v2``); anything else is refused with a ModelError, and the file is pinned
by sha256 anyway.

torchvision's layers map one to one onto
:func:`wattbench.suites.models.mobilenet_v2.mobilenet_v2`: ``features.0`` is the stem,
``features.1``-``features.17`` the inverted-residual blocks (each ``conv`` list holds
Conv2d/BatchNorm pairs: ``conv.{j}.0``/``conv.{j}.1`` for the ReLU6 stages, then the linear
projection ``conv.{n-1}`` with its BatchNorm ``conv.{n}``), ``features.18`` the last 1×1
conv and ``classifier.1`` the 1000-class head (``classifier.0`` is dropout). Every
BatchNorm is folded into its convolution, as the builders expect:
``w' = w·γ/√(σ²+ε)``, ``b' = β − μ·γ/√(σ²+ε)`` with torchvision's ε = 1e-5. Padding
(``(k−1)//2`` on every side) and ReLU6 are the same in both.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from wattbench.core.errors import ModelError
from wattbench.suites.models.mobilenet_v2 import Architecture, all_convs

#: torchvision's BatchNorm2d epsilon
BN_EPS = 1e-5
_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    def __init__(self, dtype: np.dtype[Any], numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _Tensor:
    def __init__(
        self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ModelError("torch file: a tensor's storage was never read")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.array(view)  # a compact copy


def _rebuild_tensor_v2(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _Tensor:
    return _Tensor(storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: Any, storages: dict[str, _Storage]) -> None:
        super().__init__(fh)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise ModelError(f"torch file: unsupported object {module}.{name} (not a plain state_dict)")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise ModelError(f"torch file: unsupported persistent id {pid!r:.60}")
        storage_type, key, _location, numel = pid[1:5]
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, int(numel))
        return self.storages[key]


def read_legacy_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """A ``state_dict`` saved by ``torch.save`` in the legacy (non-zip) format, as numpy arrays.

    Raises ModelError for another format (a zip archive: load it with torch instead).
    """
    if data[:2] == b"PK":
        raise ModelError("torch file: a zip archive, not the legacy format this reader handles")
    fh = io.BytesIO(data)
    try:
        magic = pickle.load(fh)
        version = pickle.load(fh)
        info = pickle.load(fh)
    except Exception as exc:  # any unpickling error means "not this format"
        raise ModelError(f"torch file: not a legacy torch save ({exc})") from exc
    if magic != _MAGIC or version != 1001 or not info.get("little_endian", False):
        raise ModelError("torch file: not a little-endian legacy torch save (protocol 1001)")
    storages: dict[str, _Storage] = {}
    state = _Unpickler(fh, storages).load()
    keys = pickle.load(fh)
    for key in keys:
        st = storages[key]
        (numel,) = struct.unpack("<q", fh.read(8))
        if numel != st.numel:
            raise ModelError(f"torch file: storage {key} holds {numel} elements, not {st.numel}")
        raw = fh.read(numel * st.dtype.itemsize)
        if len(raw) != numel * st.dtype.itemsize:
            raise ModelError("torch file: truncated")
        st.data = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<"))
    if not isinstance(state, Mapping):
        raise ModelError("torch file: the saved object is not a state_dict")
    return {str(k): v.array() for k, v in state.items() if isinstance(v, _Tensor)}


def _pairs(arch: Architecture) -> list[tuple[str, str]]:
    """(conv weight prefix, BatchNorm prefix) per conv of ``all_convs(arch)``, torchvision names."""
    pairs = [("features.0.0", "features.0.1")]
    for k, block in enumerate(arch.blocks, start=1):
        n = len(block.convs)
        pairs += [(f"features.{k}.conv.{j}.0", f"features.{k}.conv.{j}.1") for j in range(n - 1)]
        pairs.append((f"features.{k}.conv.{n - 1}", f"features.{k}.conv.{n}"))
    last = len(arch.blocks) + 1
    pairs.append((f"features.{last}.0", f"features.{last}.1"))
    return pairs


def layer_weights(state: Mapping[str, np.ndarray], arch: Architecture) -> dict[str, np.ndarray]:
    """torchvision's state_dict → the builders' weights dict (``conv{i}.w/b``, ``fc.w/b``).

    Every shape is checked against ``arch``; a mismatch (another width, another head) is a
    ModelError naming the layer.
    """
    convs = all_convs(arch)
    pairs = _pairs(arch)
    if len(pairs) != len(convs):
        raise ModelError("torchvision layout does not match the architecture")
    out: dict[str, np.ndarray] = {}
    try:
        for i, (c, (conv, bn)) in enumerate(zip(convs, pairs, strict=True)):
            w = np.asarray(state[f"{conv}.weight"], dtype=np.float64)
            expect = (c.cout, c.cin // c.groups, c.kernel, c.kernel)
            if w.shape != expect:
                raise ModelError(f"{conv}.weight has shape {w.shape}, expected {expect}")
            gamma = np.asarray(state[f"{bn}.weight"], dtype=np.float64)
            beta = np.asarray(state[f"{bn}.bias"], dtype=np.float64)
            mean = np.asarray(state[f"{bn}.running_mean"], dtype=np.float64)
            var = np.asarray(state[f"{bn}.running_var"], dtype=np.float64)
            scale = gamma / np.sqrt(var + BN_EPS)
            out[f"conv{i}.w"] = (w * scale[:, None, None, None]).astype(np.float32)
            out[f"conv{i}.b"] = (beta - mean * scale).astype(np.float32)
        fc_w = np.asarray(state["classifier.1.weight"], dtype=np.float32)
        fc_b = np.asarray(state["classifier.1.bias"], dtype=np.float32)
    except KeyError as exc:
        raise ModelError(f"torchvision MobileNetV2 state_dict lacks {exc.args[0]}") from exc
    if fc_w.shape != (arch.head.classes, arch.head.cin):
        raise ModelError(
            f"classifier.1.weight has shape {fc_w.shape}, expected "
            f"{(arch.head.classes, arch.head.cin)}"
        )
    out["fc.w"], out["fc.b"] = fc_w, fc_b
    return out
