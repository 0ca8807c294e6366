"""Hybrid on real pretrained models: the tiny Coral MobileNetV1 0.25/128 on the edge, the
Coral MobileNetV2 1.0/224 behind a loopback `cloud serve`, both on LiteRT, the five Coral
test images. Expected values come from a bare LiteRT interpreter in this file, not from the
harness."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ai_edge_litert", reason="needs the litert extra")

from wattbench.adapters.litert import LiteRtAdapter
from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.power import ReaderOptions
from wattbench.core.results import RunResult
from wattbench.core.suite import SuiteOptions
from wattbench.harness.network.energy_model import default_model
from wattbench.harness.network.hybrid import HybridRunner
from wattbench.harness.network.server import CloudModel, CloudServer
from wattbench.harness.protocol import create_runner
from wattbench.power.select import select_readers
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

EDGE = "mobilenet_v1_0.25_128_quant.tflite"
CLOUD = "mobilenet_v2_1.0_224_quant.tflite"
IMAGES = ["bird.bmp", "cat.bmp", "grace_hopper.bmp", "owl.jpg", "parrot.jpg"]  # name order
#: Human labels in the models' 1001-class indexing (0 = background); the owl is a great
#: grey owl (25), which neither model gets.
LABELS = [20, 286, 653, 25, 89]


def bare_litert(model: Path, data: Path) -> list[tuple[int, float]]:
    """(top-1, dequantised top-1 probability) per image, straight from the interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(model), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    h, w = int(inp["shape"][1]), int(inp["shape"][2])
    scale, zero = out["quantization"]
    answers = []
    for name in IMAGES:
        img = Image.open(data / name).convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
        it.set_tensor(inp["index"], np.asarray(img, dtype=np.uint8)[None])
        it.invoke()
        p = (it.get_tensor(out["index"])[0].astype(np.float64) - zero) * scale
        answers.append((int(p.argmax()), float(p.max())))
    return answers


def estimate() -> list[object]:
    readers, _ = select_readers(("estimate",), ReaderOptions(tdp_w=10.0))
    return list(readers)


@pytest.fixture
def cloud(coral_data: Path) -> Iterator[CloudServer]:
    suite = MobileNetV2Suite(SuiteOptions())
    model = CloudModel.load(
        suite,
        LiteRtAdapter(),
        ModelCache(),
        model=coral_data / CLOUD,
        threads=1,
        readers=estimate(),  # type: ignore[arg-type]
    )
    srv = CloudServer(("127.0.0.1", 0), model)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()
    model.close()


def hybrid(coral_data: Path, url: str, threshold: float) -> RunResult:
    cfg = RunConfig(
        suite="mobilenet_v2",
        adapter="litert",
        model=coral_data / EDGE,
        data_dir=coral_data,
        threads=1,
        duration_s=0.2,
        min_queries=12,
        repeats=2,
        warmup_s=0.0,
        warmup_queries=1,
        idle_s=0.05,
        cooldown_s=0.0,
        power=("estimate",),
        tdp_w=10.0,
        e2e_queries=0,
        mode="hybrid",
        cloud_url=url,
        escalate_below=threshold,
        payload="raw",  # each side decodes and resizes the camera's own file
    )
    suite = MobileNetV2Suite(SuiteOptions(data_dir=coral_data))
    r = create_runner(cfg, suite, LiteRtAdapter(), estimate(), ModelCache())  # type: ignore[arg-type]
    assert isinstance(r, HybridRunner)
    return r.execute()


def test_tiny_edge_escalates_its_unsure_images_to_the_bigger_cloud_model(
    coral_data: Path, cloud: CloudServer
) -> None:
    edge = bare_litert(coral_data / EDGE, coral_data)
    cloud_top1 = [a for a, _ in bare_litert(coral_data / CLOUD, coral_data)]
    conf = [c for _, c in edge]
    order = sorted(conf)
    # the models differ where it matters: otherwise escalation could not change an answer
    assert any(e != c for (e, _), c in zip(edge, cloud_top1, strict=True))

    seen_agreement = set()
    for k in (2, 3):  # thresholds between the k-th and (k+1)-th least confident image
        threshold = (order[k - 1] + order[k]) / 2
        result = hybrid(coral_data, cloud.url, threshold)
        n = result.network
        assert n is not None and result.valid, result.invalid_reasons
        assert [s["name"] for s in n.per_sample] == IMAGES
        # the edge's confidence is the model's own (dequantised) softmax probability
        assert [s["edge_confidence"] for s in n.per_sample] == pytest.approx(conf)
        assert [s["edge_answer"] for s in n.per_sample] == [a for a, _ in edge]
        assert [s["cloud_answer"] for s in n.per_sample] == cloud_top1
        assert n.cloud["classes"] == 1001 and n.cloud["weights"].startswith("pretrained(")

        # escalation rate = share of queries whose image's edge probability is below it
        low = [c < threshold for c in conf]
        assert sum(low) == k
        qs = [i % 5 for t in result.trials for i in range(t.queries)]
        assert n.queries == len(qs) and n.escalated == sum(low[j] for j in qs)
        assert n.escalation_rate == pytest.approx(sum(low[j] for j in qs) / len(qs))
        assert abs(n.escalation_rate - k / 5) <= 5 / len(qs)

        # agreement with the cloud per query, apart for escalated and kept queries
        final = [cloud_top1[j] if low[j] else edge[j][0] for j in qs]
        agree = [f == cloud_top1[j] for f, j in zip(final, qs, strict=True)]
        kept = [a for a, j in zip(agree, qs, strict=True) if not low[j]]
        assert n.agreement_with_cloud == pytest.approx(sum(agree) / len(agree))
        assert n.agreement_escalated == 1.0
        assert n.agreement_kept == pytest.approx(sum(kept) / len(kept))
        seen_agreement.add(round(n.agreement_with_cloud, 9))

        # accuracy against the suite's labels, final vs each side alone
        truth = [LABELS[j] for j in qs]
        right = [f == t for f, t in zip(final, truth, strict=True)]
        assert n.accuracy == pytest.approx(np.mean(right))
        assert n.edge_accuracy == pytest.approx(np.mean([edge[j][0] == LABELS[j] for j in qs]))
        assert n.cloud_accuracy == pytest.approx(np.mean([cloud_top1[j] == LABELS[j] for j in qs]))

        # bytes: raw payload = the files themselves, each escalation carries one
        sizes = [(coral_data / name).stat().st_size for name in IMAGES]
        assert [s["payload_bytes"] for s in n.per_sample] == sizes
        bodies = sum(sizes[j] for j in qs if low[j])
        assert bodies < n.bytes_sent < bodies + 400 * n.escalated
        modelled = default_model().energy("wifi", n.wire_bytes).energy_j / n.queries
        assert n.network_j_per_inference == pytest.approx(modelled) and modelled > 0
        assert n.cloud_energy == "estimated" and (n.cloud_j_per_inference or 0) > 0
    assert len(seen_agreement) == 2  # the threshold moves the quality axis
