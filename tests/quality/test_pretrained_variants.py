"""The mobilenet_v2 suite on its ImageNet weights (the 1.2 default), on real runtimes.

* torchvision's ``mobilenet_v2-b0353104.pth`` read without torch equals ``torch.load``, and the
  suite's BatchNorm-folded ONNX build computes torchvision's network (checked against an
  unfolded functional forward written from torchvision's layer layout);
* top-1 agreement between runtimes on the shared Coral images (and 35 crops/flips of them):
  ONNX Runtime on the float torchvision model vs LiteRT and OpenVINO on Coral's uint8 model;
* precision variants of the trained network pass their targets; a badly calibrated int8
  model is caught by a wide margin;
* a run records the weights' provenance.

Needs the weights (scripts/test.sh extracts them into .cache/pretrained): skips visibly
without them, fails under WATTBENCH_REQUIRE_MODELS=1 (CI).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from pretrained_helpers import require_pretrained

from wattbench.core.adapter import Adapter, AdapterOptions, ModelArtifact
from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.suite import InputSet
from wattbench.harness.protocol import Runner
from wattbench.power.estimated import EstimatedCpuReader
from wattbench.suites.images import encode_png
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite
from wattbench.suites.quality import centred_cosines, top1_agreement

pytest.importorskip("onnx", reason="building the model needs the models extra")
pytest.importorskip("onnxruntime", reason="the FP32 reference runs on onnxruntime")

IMAGES = ["bird.bmp", "cat.bmp", "grace_hopper.bmp", "owl.jpg", "parrot.jpg"]
TV_SHA = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
CORAL_SHA = "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"


@pytest.fixture(scope="module")
def weights() -> Path:
    return require_pretrained("mobilenet_v2-b0353104")


@pytest.fixture(scope="module")
def cache(shared_model_cache: ModelCache, weights: Path) -> ModelCache:
    return shared_model_cache


def _adapter(name: str) -> Adapter:
    module = {"litert": "ai_edge_litert", "openvino": "openvino", "torch": "torch"}.get(name)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed (pip install 'wattbench[{name}]')")
    from wattbench.core import plugins

    adapter: Adapter = plugins.load(plugins.ADAPTERS, name)()
    return adapter


def _outputs(adapter: Adapter, art: ModelArtifact, samples: list[object]) -> np.ndarray:
    suite = MobileNetV2Suite()
    session = adapter.load(art, AdapterOptions(threads=2, precision=art.precision))
    try:
        (spec,) = session.inputs()
        return np.stack(
            [
                np.asarray(
                    session.run(session.prepare({spec.name: suite.preprocess(s, spec)[None]}))[0][0]
                )
                for s in samples
            ]
        )
    finally:
        session.close()


def _top1(logits: np.ndarray) -> np.ndarray:
    """1000-class top-1 (Coral's 1001-class outputs have index 0 = background)."""
    return logits.argmax(axis=1) - (1 if logits.shape[1] == 1001 else 0)


# -- the weights ----------------------------------------------------------------------------


def test_legacy_reader_equals_torch_load_and_the_fold_is_exact(weights: Path) -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from wattbench.suites.models.mobilenet_v2 import mobilenet_v2
    from wattbench.suites.models.onnx_export import to_onnx_bytes
    from wattbench.suites.models.torchvision_weights import layer_weights, read_legacy_state_dict

    state = read_legacy_state_dict(weights.read_bytes())
    ref = torch.load(weights, weights_only=True)
    assert list(state) == list(ref) and len(state) == 314
    for k, v in ref.items():
        np.testing.assert_array_equal(state[k], v.numpy(), err_msg=k)

    # torchvision's MobileNetV2 forward, BatchNorm unfolded, written from its state_dict layout
    arch = mobilenet_v2()
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}

    def cbr(x: object, conv: str, bn: str, stride: int, groups: int, relu: bool) -> object:
        w = t[f"{conv}.weight"]
        y = F.conv2d(x, w, None, stride, (w.shape[-1] - 1) // 2, 1, groups)
        y = F.batch_norm(
            y, t[f"{bn}.running_mean"], t[f"{bn}.running_var"], t[f"{bn}.weight"],
            t[f"{bn}.bias"], False, 0.0, 1e-5,
        )  # fmt: skip
        return F.relu6(y) if relu else y

    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        y = cbr(torch.from_numpy(x), "features.0.0", "features.0.1", 2, 1, True)
        for k, block in enumerate(arch.blocks, start=1):
            n, z = len(block.convs), y
            for j, c in enumerate(block.convs[:-1]):
                z = cbr(z, f"features.{k}.conv.{j}.0", f"features.{k}.conv.{j}.1", c.stride,
                        c.groups, True)  # fmt: skip
            z = cbr(z, f"features.{k}.conv.{n - 1}", f"features.{k}.conv.{n}", 1, 1, False)
            y = y + z if block.residual else z
        y = cbr(y, "features.18.0", "features.18.1", 1, 1, True).mean((2, 3))
        expected = F.linear(y, t["classifier.1.weight"], t["classifier.1.bias"]).numpy()

    import onnxruntime as ort

    model = to_onnx_bytes(arch, layer_weights(state, arch), "m")
    got = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    assert float(np.abs(got[0] - expected).max()) < 1e-4
    np.testing.assert_array_equal(got[0].argmax(1), expected.argmax(1))


def test_a_zip_or_foreign_file_is_refused() -> None:
    from wattbench.core.errors import ModelError
    from wattbench.suites.models.torchvision_weights import read_legacy_state_dict

    with pytest.raises(ModelError, match="zip archive"):
        read_legacy_state_dict(b"PK\x03\x04 not a legacy save")
    with pytest.raises(ModelError, match="not a legacy torch save"):
        read_legacy_state_dict(b"garbage")


# -- top-1 agreement between runtimes ---------------------------------------------------------


def _image_set(coral_data: Path) -> list[Image.Image]:
    """The five shared images, each as is, mirrored, and centre-cropped to 90/80/70 %."""
    out = []
    for name in IMAGES:
        with Image.open(coral_data / name) as im:
            rgb = im.convert("RGB")
        w, h = rgb.size
        for base in (rgb, ImageOps.mirror(rgb)):
            for frac in (1.0, 0.9, 0.8, 0.7):
                cw, ch = int(w * frac), int(h * frac)
                left, top = (w - cw) // 2, (h - ch) // 2
                out.append(base.crop((left, top, left + cw, top + ch)))
    return out


def test_top1_agreement_between_runtimes(
    coral_data: Path, cache: ModelCache, record_property: pytest.RecordProperty
) -> None:
    """ORT (torchvision float) vs LiteRT and OpenVINO (Coral uint8, the same file).

    Measured here: on the 5 shared images every runtime gives the same top-1 (4 of 5 right;
    the owl is a ruffed grouse to both networks); on all 40 crops/flips ORT vs LiteRT 0.85,
    ORT vs OpenVINO 0.85, LiteRT vs OpenVINO 1.0.
    """
    images = _image_set(coral_data)
    top1: dict[str, np.ndarray] = {}
    for name in ("onnxruntime", "litert", "openvino"):
        adapter = _adapter(name)
        suite = MobileNetV2Suite()
        choice = suite.pick_build(adapter.formats, None)
        assert choice is not None
        art = suite.build_model(choice[0], cache, choice[1])
        expect = ("onnx", TV_SHA[:12]) if name == "onnxruntime" else ("tflite", CORAL_SHA[:12])
        assert (art.format, art.weights) == (expect[0], f"pretrained(sha256={expect[1]})")
        top1[name] = _top1(_outputs(adapter, art, images))
    originals = slice(0, None, 8)  # every 8th image is an unmodified original
    figures = {}
    for a, b in (("onnxruntime", "litert"), ("onnxruntime", "openvino"), ("litert", "openvino")):
        figures[f"{a}-{b}"] = float(np.mean(top1[a] == top1[b]))
        assert np.array_equal(top1[a][originals], top1[b][originals]), (a, b)
        record_property(f"top1_agreement_{a}_vs_{b}", figures[f"{a}-{b}"])
    print(f"top-1 agreement on {len(images)} images: {figures}")
    truth = np.array([19, 285, 652, 24, 88])  # chickadee, Egyptian cat, uniform, owl, macaw
    for name in top1:
        assert float(np.mean(top1[name][originals] == truth)) == pytest.approx(0.8), name
    assert figures["litert-openvino"] >= 0.95  # one file, two int8 kernels
    assert figures["onnxruntime-litert"] >= 0.75  # two trainings of one architecture
    assert figures["onnxruntime-openvino"] >= 0.75


# -- precision variants of the trained network ------------------------------------------------


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_onnx_variants_of_the_trained_network_meet_their_targets(
    cache: ModelCache, precision: str
) -> None:
    suite = MobileNetV2Suite()
    art = suite.build_model("onnx", cache, precision)  # type: ignore[arg-type]
    assert art.weights == f"pretrained(sha256={TV_SHA[:12]})"
    suite.bind(art)
    inputs = suite.load_inputs()
    out = list(_outputs(_adapter("onnxruntime"), art, inputs.samples))
    q = suite.check_quality(out, inputs, suite.reference_outputs(inputs, cache))
    assert q.passed and q.kind == "agreement", q.detail
    assert q.metrics["top1_agreement"] == 1.0
    assert q.metrics["cosine_mean"] > 0.99  # measured 1.0000 (fp16), 0.9954 (int8)
    if inputs.source == "shipped":
        assert q.metrics["top1_accuracy"] == pytest.approx(0.8)
        assert q.metrics["labelled_samples"] == 5


class GreyCalibrationSuite(MobileNetV2Suite):
    def calibration_inputs(self) -> InputSet:
        grey = encode_png(Image.new("RGB", (224, 224), (124, 116, 104)))
        return InputSet(source="synthetic", description="grey", samples=[grey], names=["grey"])


def test_badly_calibrated_int8_of_the_trained_network_is_caught(cache: ModelCache) -> None:
    suite = GreyCalibrationSuite()
    art = suite.build_model("onnx", cache, "int8")
    suite.bind(art)
    inputs = suite.load_inputs()
    out = list(_outputs(_adapter("onnxruntime"), art, inputs.samples))
    ref = suite.reference_outputs(inputs, cache)
    q = suite.check_quality(out, inputs, ref)
    assert not q.passed and q.kind == "agreement"
    assert q.metrics["cosine_mean"] < 0.5 < MobileNetV2Suite.quality_targets["int8"].cosine
    assert top1_agreement(out, ref or []) < 0.5
    # the reference is the fp32 ONNX model of the same weights
    fp32 = MobileNetV2Suite().build_model("onnx", cache, "fp32")
    assert ref is not None and fp32.weights == art.weights
    direct = _outputs(_adapter("onnxruntime"), fp32, inputs.samples)
    assert centred_cosines(list(direct), ref).min() > 0.99999


# -- provenance through a run ---------------------------------------------------------------------


def test_a_default_run_on_litert_is_coral_with_its_provenance(
    coral_data: Path, cache: ModelCache
) -> None:
    cfg = RunConfig(
        suite="mobilenet_v2",
        adapter="litert",
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
    )
    result = Runner(
        cfg, MobileNetV2Suite(), _adapter("litert"), [EstimatedCpuReader()], cache
    ).execute()
    assert result.suite_version == "1.2"
    assert (result.model.name, result.model.precision) == ("mobilenet_v2_1.0_224_quant", "int8")
    prov = result.model.provenance
    assert prov is not None and prov.kind == "pretrained" and prov.sha256 == CORAL_SHA
    assert prov.license == "Apache-2.0" and "google-coral/test_data" in (prov.url or "")
    q = result.quality
    assert q.kind == "accuracy" and q.passed, q.detail
    assert q.metrics["top1_accuracy"] == pytest.approx(0.8)
    assert q.metrics["top1_agreement_torchvision_fp32"] == 1.0
    # stored in the result JSON as is
    again = type(result).model_validate_json(result.model_dump_json())
    assert again.model.provenance == prov
