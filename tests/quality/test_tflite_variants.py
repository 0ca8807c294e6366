"""TFLite fp32/fp16/int8 built from the same layer list, on LiteRT, against the FP32 reference.

On the suite's random weights (``--weights random``): with its ImageNet weights the suite's
TFLite int8 model is Coral's (test_pretrained_variants.py).

Needs tensorflow (the ``tflite-build`` extra, about 1.4 GB): skips with that
reason where it is absent. The models are built once per module (~30 s).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from wattbench.core.adapter import AdapterOptions, ModelArtifact, Precision
from wattbench.core.cache import ModelCache
from wattbench.core.errors import UnavailableError
from wattbench.core.suite import SuiteOptions
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

HAS_TF = importlib.util.find_spec("tensorflow") is not None
needs_tf = pytest.mark.skipif(
    not HAS_TF, reason="tensorflow not installed (pip install 'wattbench[tflite-build]', ~1.4 GB)"
)
pytest.importorskip("ai_edge_litert", reason="needs the litert extra")
pytest.importorskip("onnxruntime", reason="the FP32 reference runs on onnxruntime")

RANDOM = SuiteOptions(weights="random")


@pytest.fixture(scope="module")
def cache(shared_model_cache: ModelCache) -> ModelCache:
    # the session's cache: the CLI tests build the same variants into it
    return shared_model_cache


@pytest.fixture(scope="module")
def tflite(cache: ModelCache) -> dict[str, ModelArtifact]:
    if not HAS_TF:
        pytest.skip("tensorflow not installed (pip install 'wattbench[tflite-build]', ~1.4 GB)")
    return {
        p: MobileNetV2Suite(RANDOM).build_model("tflite", cache, p)
        for p in ("fp32", "fp16", "int8")
    }


def test_without_tensorflow_tflite_is_a_one_line_unavailable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import fails
    with pytest.raises(UnavailableError) as ei:
        MobileNetV2Suite(RANDOM).build_model("tflite", ModelCache(tmp_path), "fp32")
    assert "pip install 'wattbench[tflite-build]'" in str(ei.value)
    assert "\n" not in str(ei.value)


@needs_tf
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tflite_variant_on_litert_agrees_with_the_fp32_reference(
    cache: ModelCache, tflite: dict[str, ModelArtifact], precision: Precision
) -> None:
    from wattbench.adapters.litert import LiteRtAdapter, LiteRtSession

    art = tflite[precision]
    assert art.format == "tflite" and art.path.suffix == ".tflite"
    adapter = LiteRtAdapter()
    assert adapter.model_precision(art) == precision  # what the file itself says
    session = adapter.load(art, AdapterOptions(threads=2, precision=precision))
    assert isinstance(session, LiteRtSession)
    suite = MobileNetV2Suite(RANDOM)
    suite.bind(art)  # the run's model: its precision picks the targets
    inputs = suite.load_inputs()
    try:
        (spec,) = session.inputs()
        if precision == "int8":
            # full-integer: raw uint8 pixels in, exactly (scale 1, zero point 0), int8 logits out
            assert spec.dtype == "uint8" and spec.shape == [1, 224, 224, 3]
            assert session.outputs()[0].dtype == "int8"
            opts = session.describe().options
            assert opts["quantization"] == "full-integer"
            assert opts["input_quantization"][spec.name] == (1.0, 0)
        else:
            assert spec.dtype == "float32" and spec.shape == [1, 224, 224, 3]
        outputs = [
            session.run(session.prepare({spec.name: suite.preprocess(s, spec)[None]}))[0][0]
            for s in inputs.samples
        ]
        if precision == "int8":
            # raw int8 logits and their dequantised values judge the same
            real = [session.dequantize([o[None]])[0][0] for o in outputs]
            assert real[0].dtype == np.float32
    finally:
        session.close()
    reference = suite.reference_outputs(inputs, cache)
    q = suite.check_quality(outputs, inputs, reference)
    assert q.passed, q.detail
    assert q.kind == "agreement"
    if precision == "int8":
        q_real = suite.check_quality(real, inputs, reference)
        assert q_real.metrics["cosine_mean"] == pytest.approx(q.metrics["cosine_mean"], abs=1e-6)
    else:
        assert q.metrics["top1_agreement"] == 1.0


@needs_tf
def test_tflite_int8_also_runs_on_openvino(
    cache: ModelCache, tflite: dict[str, ModelArtifact]
) -> None:
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino not installed (pip install 'wattbench[openvino]')")
    from wattbench.adapters.openvino import OpenVinoAdapter

    adapter = OpenVinoAdapter()
    assert adapter.model_precision(tflite["int8"]) == "int8"
    session = adapter.load(tflite["int8"], AdapterOptions(threads=2, precision="int8"))
    suite = MobileNetV2Suite(RANDOM)
    suite.bind(tflite["int8"])
    inputs = suite.load_inputs()
    try:
        (spec,) = session.inputs()
        outputs = [
            session.run(session.prepare({spec.name: suite.preprocess(s, spec)[None]}))[0][0]
            for s in inputs.samples
        ]
    finally:
        session.close()
    q = suite.check_quality(outputs, inputs, suite.reference_outputs(inputs, cache))
    assert q.passed, q.detail
    assert q.kind == "agreement" and q.metrics["target_cosine"] == 0.98
