"""The Coral Edge TPU adapter with autospec'd LiteRT pieces and an injected pycoral.

No Edge TPU is needed: ``load_delegate`` and ``Interpreter`` are
``create_autospec`` doubles of the real ``ai_edge_litert.interpreter`` ones, so
a call the real API would reject fails here too.
"""

from __future__ import annotations

import ctypes.util
import types
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

from wattbench.adapters.coral import CoralAdapter, delegate_device
from wattbench.core.adapter import AdapterOptions, ModelArtifact
from wattbench.core.errors import ConfigError, UnavailableError

litert = pytest.importorskip(
    "ai_edge_litert.interpreter", reason="ai-edge-litert (wattbench[coral]) missing"
)

LIBRARY_HINT = (
    "libedgetpu.so.1 not found: install the Edge TPU runtime (apt-get install libedgetpu1-std "
    "from Coral's package repository, see docs/coral.md)"
)

_INPUT = {
    "name": "input",
    "index": 0,
    "shape": np.array([1, 224, 224, 3], dtype=np.int32),
    "shape_signature": np.array([1, 224, 224, 3], dtype=np.int32),
    "dtype": np.uint8,
    "quantization": (0.0078125, 128),
}
_OUTPUT = {
    "name": "logits",
    "index": 7,
    "shape": np.array([1, 1001], dtype=np.int32),
    "shape_signature": np.array([1, 1001], dtype=np.int32),
    "dtype": np.uint8,
    "quantization": (0.00390625, 0),
}


def fake_litert() -> types.SimpleNamespace:
    """An interpreter module whose Interpreter/load_delegate are autospecs of the real ones."""
    interpreter_cls = mock.create_autospec(litert.Interpreter)
    it = interpreter_cls.return_value
    it.get_input_details.return_value = [_INPUT]
    it.get_output_details.return_value = [_OUTPUT]
    it.get_tensor_details.return_value = [_INPUT, _OUTPUT]
    it._get_ops_details.return_value = [{"op_name": "DELEGATE"}]
    it.get_tensor.return_value = np.arange(1001, dtype=np.uint8)[None] % 7
    return types.SimpleNamespace(
        Interpreter=interpreter_cls, load_delegate=mock.create_autospec(litert.load_delegate)
    )


def fake_pycoral(tpus: list[dict[str, str]]) -> types.SimpleNamespace:
    """pycoral.utils.edgetpu's surface as wattbench uses it."""

    def make_interpreter(model_path_or_content: Any, device: str | None = None) -> Any:
        raise AssertionError("replaced by a mock")

    mod = types.SimpleNamespace(
        make_interpreter=mock.create_autospec(make_interpreter),
        list_edge_tpus=mock.Mock(return_value=tpus),
        get_runtime_version=mock.Mock(return_value="BuildLabel(fake), RuntimeVersion(14)"),
    )
    mod.make_interpreter.return_value = fake_litert().Interpreter.return_value
    return mod


@pytest.fixture
def edgetpu_model(tmp_path: Path) -> ModelArtifact:
    p = tmp_path / "m_edgetpu.tflite"
    p.write_bytes(b"TFL3" + b"\0" * 64 + b"edgetpu-custom-op" + b"\0" * 64)
    return ModelArtifact(
        path=p, sha256="0" * 64, format="tflite", precision="int8", weights="none", name="m"
    )


def _opts(device: str = "edgetpu", **kw: Any) -> AdapterOptions:
    return AdapterOptions(device=device, precision="int8", **kw)


@pytest.mark.parametrize(
    ("device", "delegate_options"),
    [
        ("edgetpu", {}),
        ("edgetpu:usb", {"device": "usb"}),
        ("edgetpu:usb:0", {"device": "usb:0"}),
        ("edgetpu:usb:1", {"device": "usb:1"}),
        ("edgetpu:pci", {"device": "pci"}),
        ("edgetpu:pci:0", {"device": "pci:0"}),
        ("edgetpu:1", {"device": ":1"}),
    ],
)
def test_delegate_options_per_device(
    device: str, delegate_options: dict[str, str], edgetpu_model: ModelArtifact
) -> None:
    rt = fake_litert()
    adapter = CoralAdapter(interpreter_module=rt, system="Linux")  # type: ignore[arg-type]
    session = adapter.load(edgetpu_model, _opts(device, threads=2))
    rt.load_delegate.assert_called_once_with("libedgetpu.so.1", delegate_options)
    rt.Interpreter.assert_called_once_with(
        model_path=str(edgetpu_model.path),
        experimental_delegates=[rt.load_delegate.return_value],
        num_threads=2,
    )
    rt.Interpreter.return_value.allocate_tensors.assert_called_once_with()
    d = session.describe()
    assert d.adapter == "coral"
    assert d.execution_provider == "EdgeTPU"
    assert d.device == device
    assert d.precision == "int8"
    assert d.options["num_threads"] == 2
    assert d.options["delegate_library"] == "libedgetpu.so.1"
    assert d.options["delegate_options"] == delegate_options
    assert d.options["edgetpu_device"] == delegate_options.get("device", "first found")


@pytest.mark.parametrize(
    ("system", "library"),
    [("Linux", "libedgetpu.so.1"), ("Darwin", "libedgetpu.1.dylib"), ("Windows", "edgetpu.dll")],
)
def test_library_per_platform(system: str, library: str, edgetpu_model: ModelArtifact) -> None:
    rt = fake_litert()
    CoralAdapter(interpreter_module=rt, system=system).load(  # type: ignore[arg-type]
        edgetpu_model, _opts("edgetpu:usb")
    )
    assert rt.load_delegate.call_args.args[0] == library


def test_run_sets_invokes_and_gets(edgetpu_model: ModelArtifact) -> None:
    rt = fake_litert()
    session = CoralAdapter(interpreter_module=rt).load(  # type: ignore[arg-type]
        edgetpu_model, _opts()
    )
    x = np.zeros((1, 224, 224, 3), np.uint8)
    prepared = session.prepare({"input": x})
    it = rt.Interpreter.return_value
    it.set_tensor.assert_not_called()
    (out,) = session.run(prepared)
    it.set_tensor.assert_called_once()
    assert it.set_tensor.call_args.args[0] == 0
    it.invoke.assert_called_once_with()
    it.get_tensor.assert_called_once_with(7)
    assert out.shape == (1, 1001)


@pytest.mark.parametrize("device", ["cpu", "edgetpu:foo", "edgetpu:usb:x", "tpu", "edgetpu:"])
def test_bad_device_strings(device: str, edgetpu_model: ModelArtifact) -> None:
    with pytest.raises(ConfigError, match="edgetpu:usb"):
        delegate_device(device)
    rt = fake_litert()
    adapter = CoralAdapter(interpreter_module=rt)  # type: ignore[arg-type]
    assert adapter.availability(device).available is False
    with pytest.raises(ConfigError):
        adapter.load(edgetpu_model, _opts(device))
    rt.load_delegate.assert_not_called()


def test_missing_library_is_unavailable_with_the_reason(edgetpu_model: ModelArtifact) -> None:
    rt = fake_litert()
    rt.load_delegate.side_effect = OSError(
        "libedgetpu.so.1: cannot open shared object file: No such file or directory"
    )
    adapter = CoralAdapter(interpreter_module=rt, system="Linux")  # type: ignore[arg-type]
    avail = adapter.availability("edgetpu:usb")
    assert avail.available is False
    assert avail.reason == LIBRARY_HINT
    with pytest.raises(UnavailableError) as ei:
        adapter.load(edgetpu_model, _opts("edgetpu:usb"))
    assert str(ei.value) == LIBRARY_HINT
    rt.Interpreter.assert_not_called()


def test_no_device_is_unavailable_naming_the_port(edgetpu_model: ModelArtifact) -> None:
    rt = fake_litert()
    rt.load_delegate.side_effect = ValueError("Failed to load delegate from libedgetpu.so.1\n")
    adapter = CoralAdapter(interpreter_module=rt)  # type: ignore[arg-type]
    avail = adapter.availability("edgetpu:usb:0")
    assert avail.available is False
    assert "no Edge TPU found at usb:0" in avail.reason
    assert "\n" not in avail.reason
    with pytest.raises(UnavailableError, match="no Edge TPU found at usb:0"):
        adapter.load(edgetpu_model, _opts("edgetpu:usb:0"))


def test_available_when_the_delegate_loads() -> None:
    rt = fake_litert()
    avail = CoralAdapter(interpreter_module=rt).availability("edgetpu:pci:0")  # type: ignore[arg-type]
    assert avail.available is True
    rt.load_delegate.assert_called_once_with("libedgetpu.so.1", {"device": "pci:0"})


def test_cpu_only_model_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "plain.tflite"
    p.write_bytes(b"TFL3" + b"\0" * 256)
    art = ModelArtifact(path=p, sha256="0" * 64, format="tflite", weights="none", name="p")
    rt = fake_litert()
    with pytest.raises(ConfigError, match="edgetpu_compiler"):
        CoralAdapter(interpreter_module=rt).load(art, _opts())  # type: ignore[arg-type]
    rt.load_delegate.assert_not_called()


def test_wrong_format_and_precision(edgetpu_model: ModelArtifact) -> None:
    rt = fake_litert()
    adapter = CoralAdapter(interpreter_module=rt)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="onnx"):
        adapter.load(edgetpu_model.model_copy(update={"format": "onnx"}), _opts())
    with pytest.raises(ConfigError, match="--precision int8"):
        adapter.load(edgetpu_model, AdapterOptions(device="edgetpu", precision="fp32"))


def test_pycoral_is_preferred_when_present(edgetpu_model: ModelArtifact) -> None:
    rt = fake_litert()
    pycoral = fake_pycoral([{"type": "usb", "path": "/sys/bus/usb/devices/2-1"}])
    adapter = CoralAdapter(
        pycoral=pycoral,  # type: ignore[arg-type]
        interpreter_module=rt,  # type: ignore[arg-type]
        load_delegate=rt.load_delegate,
    )
    session = adapter.load(edgetpu_model, _opts("edgetpu:usb:0"))
    pycoral.make_interpreter.assert_called_once_with(str(edgetpu_model.path), device="usb:0")
    rt.load_delegate.assert_not_called()
    rt.Interpreter.assert_not_called()
    d = session.describe()
    assert d.runtime == "pycoral"
    assert d.runtime_version == "BuildLabel(fake), RuntimeVersion(14)"
    assert d.options["loader"] == "pycoral.utils.edgetpu.make_interpreter"


def test_pycoral_cannot_set_threads(edgetpu_model: ModelArtifact) -> None:
    pycoral = fake_pycoral([{"type": "usb", "path": "x"}])
    adapter = CoralAdapter(pycoral=pycoral)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--threads"):
        adapter.load(edgetpu_model, _opts(threads=2))
    pycoral.make_interpreter.assert_not_called()


@pytest.mark.parametrize(
    ("device", "available"),
    [
        ("edgetpu", True),
        ("edgetpu:usb", True),
        ("edgetpu:usb:0", True),
        ("edgetpu:usb:1", False),
        ("edgetpu:pci", False),
        ("edgetpu:0", True),
        ("edgetpu:1", False),
    ],
)
def test_pycoral_availability_lists_edge_tpus(device: str, available: bool) -> None:
    pycoral = fake_pycoral([{"type": "usb", "path": "/sys/bus/usb/devices/2-1"}])
    avail = CoralAdapter(pycoral=pycoral).availability(device)  # type: ignore[arg-type]
    assert avail.available is available, avail.reason
    if not available:
        assert "no Edge TPU found" in avail.reason


def test_pycoral_with_no_tpus_is_unavailable() -> None:
    avail = CoralAdapter(pycoral=fake_pycoral([])).availability("edgetpu")  # type: ignore[arg-type]
    assert avail.available is False
    assert "lsusb" in avail.reason


def test_this_machine_without_the_runtime() -> None:
    """The real classmethod: here there is no libedgetpu, so it says how to install it."""
    if ctypes.util.find_library("edgetpu"):
        pytest.skip("an Edge TPU runtime is installed on this machine")
    avail = CoralAdapter.is_available("edgetpu:usb")
    assert avail.available is False
    assert "libedgetpu" in avail.reason and "docs/coral.md" in avail.reason


def test_library_is_probed_before_the_delegate_is_built(edgetpu_model: ModelArtifact) -> None:
    rt = fake_litert()
    probe = mock.Mock(side_effect=OSError("libedgetpu.1.dylib: image not found"))
    adapter = CoralAdapter(
        interpreter_module=rt,  # type: ignore[arg-type]
        load_library=probe,
        system="Darwin",
    )
    avail = adapter.availability("edgetpu")
    assert avail.available is False
    assert avail.reason.startswith("libedgetpu.1.dylib not found: install the Edge TPU runtime")
    with pytest.raises(UnavailableError, match=r"libedgetpu\.1\.dylib not found"):
        adapter.load(edgetpu_model, _opts())
    probe.assert_called_with("libedgetpu.1.dylib")
    rt.load_delegate.assert_not_called()
