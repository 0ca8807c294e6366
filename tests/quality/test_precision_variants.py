"""Precision variants on real runtimes, judged against the FP32 reference.

On the suite's random weights (``--weights random``: the figures of docs/precision.md; the
ImageNet weights are tested in test_pretrained_variants.py). Builds the suite's
fp32/fp16/int8 ONNX models once per module (a few seconds),
runs them on ONNX Runtime and OpenVINO, and checks that a deliberately broken
int8 model (calibrated on a constant grey image) or a different network passed
as the suite's model is caught: quality fails, the run is stored invalid and the
leaderboard never ranks it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from wattbench.core.adapter import Adapter, AdapterOptions, ModelArtifact, Precision
from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.results import RunResult
from wattbench.core.suite import InputSet, SuiteOptions
from wattbench.harness.protocol import Runner
from wattbench.power.estimated import EstimatedCpuReader
from wattbench.results_db.store import Store
from wattbench.suites.images import encode_png
from wattbench.suites.mobilenet_v2 import REFERENCE_SPEC, MobileNetV2Suite

pytest.importorskip("onnx", reason="building the variants needs the models extra")
pytest.importorskip("onnxruntime", reason="the variants and the FP32 reference need onnxruntime")

onnx = pytest.importorskip("onnx")

#: the suite's random-weight network (seed 0)
RANDOM = SuiteOptions(weights="random")


class GreyCalibrationSuite(MobileNetV2Suite):
    """A badly quantised int8 model: activation ranges calibrated on one flat grey image."""

    def calibration_inputs(self) -> InputSet:
        grey = encode_png(Image.new("RGB", (224, 224), (124, 116, 104)))  # the ImageNet mean
        return InputSet(source="synthetic", description="grey", samples=[grey], names=["grey"])


class OtherSeedSuite(MobileNetV2Suite):
    """Passes the seed-1 network off as this (seed-0) suite's model."""

    def build_model(
        self, fmt: str, cache: ModelCache, precision: Precision = "fp32"
    ) -> ModelArtifact:
        art = MobileNetV2Suite(SuiteOptions(seed=1, weights="random")).build_model(
            fmt, cache, precision
        )
        self._model = art.model_copy(update={"weights": "random(seed=0)"})
        return self._model


@pytest.fixture(scope="module")
def cache(shared_model_cache: ModelCache) -> ModelCache:
    # the session's cache: the CLI tests build the same variants into it
    return shared_model_cache


@pytest.fixture(scope="module")
def variants(cache: ModelCache) -> dict[str, ModelArtifact]:
    return {
        p: MobileNetV2Suite(RANDOM).build_model("onnx", cache, p) for p in ("fp32", "fp16", "int8")
    }


def _adapter(name: str) -> Adapter:
    if name == "openvino":
        if importlib.util.find_spec("openvino") is None:
            pytest.skip("openvino not installed (pip install 'wattbench[openvino]')")
        from wattbench.adapters.openvino import OpenVinoAdapter

        return OpenVinoAdapter()
    if name == "litert":
        if importlib.util.find_spec("ai_edge_litert") is None:
            pytest.skip("LiteRT not installed (pip install 'wattbench[litert]')")
        from wattbench.adapters.litert import LiteRtAdapter

        return LiteRtAdapter()
    from wattbench.adapters.onnxruntime import OnnxRuntimeAdapter

    return OnnxRuntimeAdapter()


# -- the variants themselves -------------------------------------------------------------


def test_variants_are_cached_by_recipe(
    cache: ModelCache, variants: dict[str, ModelArtifact]
) -> None:
    assert len({a.sha256 for a in variants.values()}) == 3
    for p, art in variants.items():
        assert art.precision == p and art.format == "onnx" and art.weights == "random(seed=0)"
        again = MobileNetV2Suite(RANDOM).build_model("onnx", cache, p)  # type: ignore[arg-type]
        assert (again.path, again.sha256) == (art.path, art.sha256)
    # the cache is the session's: other tests add variants of other base models (the
    # pretrained weights), so look only at those built from this fp32 model
    base = f"-from-{variants['fp32'].sha256[:16]}"
    keys = sorted(f.stem for f in (cache.root / "recipes").iterdir() if base in f.stem)
    assert any("-onnx-fp16-from-" in k for k in keys)
    int8_keys = [k for k in keys if "-onnx-int8-qdq-s8s8-perchannel-minmax-" in k]
    assert len(int8_keys) == 1 and "-calib-" in int8_keys[0]


def test_fp16_keeps_float32_io_and_int8_is_per_channel_qdq(
    variants: dict[str, ModelArtifact],
) -> None:
    fp16 = onnx.load(str(variants["fp16"].path))
    onnx.checker.check_model(fp16)
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dtypes = {t.data_type for t in fp16.graph.initializer if len(t.dims) == 4}
    assert dtypes == {onnx.TensorProto.FLOAT16}  # every conv weight
    int8 = onnx.load(str(variants["int8"].path))
    ops = [n.op_type for n in int8.graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 50
    conv_weight_dq = [
        n
        for n in int8.graph.node
        if n.op_type == "DequantizeLinear" and any(a.name == "axis" for a in n.attribute)
    ]
    assert len(conv_weight_dq) > 50  # per-channel weights carry an axis
    assert variants["int8"].path.stat().st_size < variants["fp32"].path.stat().st_size / 3


def test_calibration_set_is_part_of_the_recipe(
    cache: ModelCache, variants: dict[str, ModelArtifact]
) -> None:
    bad = GreyCalibrationSuite(RANDOM).build_model("onnx", cache, "int8")
    assert bad.sha256 != variants["int8"].sha256


@pytest.mark.parametrize(
    ("adapter_name", "precision"),
    [
        ("onnxruntime", "fp32"),
        ("onnxruntime", "fp16"),
        ("onnxruntime", "int8"),
        ("openvino", "fp32"),
        ("openvino", "fp16"),
        ("openvino", "int8"),
    ],
)
def test_variant_agrees_with_the_fp32_reference(
    cache: ModelCache,
    variants: dict[str, ModelArtifact],
    adapter_name: str,
    precision: Precision,
) -> None:
    adapter = _adapter(adapter_name)
    suite = MobileNetV2Suite(RANDOM)
    art = suite.build_model("onnx", cache, precision)
    assert art.sha256 == variants[precision].sha256
    if adapter_name == "openvino" and precision == "fp16":
        import openvino as ov

        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if "FP16" not in caps:
            pytest.skip(f"this CPU's OpenVINO plugin has no FP16 ({caps})")
    session = adapter.load(art, AdapterOptions(threads=2, precision=precision))
    try:
        inputs = suite.load_inputs()
        (spec,) = session.inputs()
        outputs = [
            session.run(session.prepare({spec.name: suite.preprocess(s, spec)[None]}))[0][0]
            for s in inputs.samples
        ]
    finally:
        session.close()
    reference = suite.reference_outputs(inputs, cache)
    assert reference is not None and len(reference) == len(inputs.samples)
    q = suite.check_quality(outputs, inputs, reference)
    assert q.passed, q.detail
    assert q.kind == "agreement"
    target = MobileNetV2Suite.random_quality_targets[precision]
    assert q.metrics["cosine_mean"] >= target.cosine
    if precision != "int8":  # int8 is lossy: top-1 may flip where random logits are close
        assert q.metrics["top1_agreement"] == 1.0


# -- through the protocol into the store -------------------------------------------------


def _run(
    suite: MobileNetV2Suite, adapter: str, cache: ModelCache, precision: Precision, **kw: Any
) -> RunResult:
    cfg = RunConfig(
        suite="mobilenet_v2",
        adapter=adapter,
        precision=precision,
        threads=2,
        duration_s=0.05,
        min_queries=3,
        repeats=1,
        warmup_s=0.0,
        warmup_queries=1,
        idle_s=0.05,
        cooldown_s=0,
        power=("estimate",),
        e2e_queries=3,
        weights=suite.options.weights,
        **kw,
    )
    return Runner(cfg, suite, _adapter(adapter), [EstimatedCpuReader()], cache).execute()


def _ranked(store: Store, run_id: str, include_invalid: bool = False) -> bool:
    rows = store.leaderboard("mobilenet_v2", include_invalid=include_invalid)
    return any(r.run_id == run_id for r in rows)


def test_good_int8_run_is_valid_and_ranked(cache: ModelCache, tmp_path: Path) -> None:
    result = _run(MobileNetV2Suite(RANDOM), "onnxruntime", cache, "int8")
    assert result.quality is not None and result.quality.passed, result.quality
    assert result.quality.kind == "agreement"
    assert result.valid, result.invalid_reasons
    assert result.model.precision == "int8" and result.adapter.precision == "int8"
    assert result.suite_version == "1.2"
    # end to end: decode (acquisition) + preprocessing + inference + post-processing
    assert result.latency_e2e is not None
    assert result.e2e_breakdown_ms["acquisition"] > 0
    assert result.latency_e2e.p50_ms > result.e2e_breakdown_ms["inference"] * 0.5
    store = Store.open(f"sqlite:///{tmp_path / 'wb.db'}")
    store.save_run(result)
    assert _ranked(store, result.run_id)


@pytest.mark.parametrize(
    ("make_suite", "adapter", "precision", "why"),
    [
        (GreyCalibrationSuite, "onnxruntime", "int8", "badly calibrated int8"),
        (GreyCalibrationSuite, "openvino", "int8", "badly calibrated int8 on openvino"),
        (OtherSeedSuite, "onnxruntime", "fp32", "a different network"),
    ],
    ids=["grey-calibration-ort", "grey-calibration-openvino", "other-seed"],
)
def test_broken_model_is_stored_invalid_and_never_ranked(
    cache: ModelCache,
    tmp_path: Path,
    make_suite: Callable[[SuiteOptions], MobileNetV2Suite],
    adapter: str,
    precision: Precision,
    why: str,
) -> None:
    result = _run(make_suite(RANDOM), adapter, cache, precision)
    q = result.quality
    assert q is not None and not q.passed, f"{why} passed the quality check: {q}"
    assert q.kind == "agreement"
    assert q.metrics["cosine_mean"] < MobileNetV2Suite.random_quality_targets[precision].cosine
    assert not result.valid
    assert any(r.startswith("quality check failed:") for r in result.invalid_reasons)
    store = Store.open(f"sqlite:///{tmp_path / 'wb.db'}")
    assert store.save_run(result)
    assert not _ranked(store, result.run_id)
    assert _ranked(store, result.run_id, include_invalid=True)


def test_pretrained_coral_model_is_scored_for_accuracy(coral_data: Path, cache: ModelCache) -> None:
    """Another network than the reference: scored for accuracy on the labels."""
    result = _run(
        MobileNetV2Suite(RANDOM),
        "litert",
        cache,
        "int8",
        model=coral_data / "mobilenet_v2_1.0_224_quant.tflite",
    )
    q = result.quality
    assert q is not None and q.kind == "accuracy", q
    assert q.metrics["top1_accuracy"] == pytest.approx(0.8)  # the owl is a real miss
    assert q.metrics["labelled_samples"] == 5
    assert q.passed and result.valid, result.invalid_reasons
    assert result.inputs.startswith("shipped(") or result.inputs.startswith("images(")


# -- the CLI -----------------------------------------------------------------------------


@pytest.mark.e2e
def test_cli_precision_int8_builds_and_checks_the_variant() -> None:
    wattbench = str(Path(sys.executable).with_name("wattbench"))
    args = [
        "run",
        "--suite",
        "mobilenet_v2",
        "--adapter",
        "onnxruntime",
        "--precision",
        "int8",
        "--weights",
        "random",
        "--duration",
        "0.3",
        "--repeats",
        "2",
        "--warmup",
        "0.1",
        "--idle-s",
        "0.2",
        "--cooldown",
        "0",
        "--min-queries",
        "5",
        "--threads",
        "2",
        "--e2e-queries",
        "5",
        "--power",
        "estimate",
        "--json",
    ]
    proc = subprocess.run(
        [wattbench, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["model"]["precision"] == "int8"
    assert result["quality"]["kind"] == "agreement"
    assert result["quality"]["passed"] is True
    assert result["valid"] is True
    assert result["suite_version"] == "1.2"
    assert result["config"]["weights"] == "random"
    assert result["model"]["provenance"]["kind"] == "random"
    assert set(result["e2e_breakdown_ms"]) == {
        "acquisition",
        "preprocess",
        "inference",
        "postprocess",
    }
    assert np.isfinite(result["latency_e2e"]["p50_ms"])


def test_reference_is_the_fp32_onnx_model(cache: ModelCache) -> None:
    """reference_outputs() is exactly the fp32 ONNX model on ONNX Runtime CPU."""
    import onnxruntime as ort

    suite = MobileNetV2Suite(RANDOM)
    inputs = suite.load_inputs()
    ref = suite.reference_outputs(inputs, cache)
    assert ref is not None
    fp32 = suite.build_model("onnx", cache, "fp32")
    sess = ort.InferenceSession(str(fp32.path), providers=["CPUExecutionProvider"])
    for s, r in zip(inputs.samples, ref, strict=True):
        (out,) = sess.run(None, {"input": suite.preprocess(s, REFERENCE_SPEC)[None]})
        np.testing.assert_allclose(r, out[0], rtol=1e-4, atol=1e-4)
