#!/usr/bin/env python3
"""Check the torch adapter on a real CUDA GPU (a manual check for a lent GPU machine, not a test).

Builds the mobilenet_v2 suite's TorchScript model (random weights, seed 0) in a
temporary cache, then for fp32 and fp16 on ``cuda:INDEX``:

  load → first inference → 1 s warm-up → ``timed_loop`` for ``--seconds``,

exactly as the harness times a window (only ``session.run`` between the clock
reads; the adapter synchronises CUDA inside ``run``). It then runs one fixed
set of random inputs through fp32 and fp16 on the GPU and fp32 on the CPU, and
prints one JSON document: per precision p50/p90/p99/mean latency (ms),
throughput (inferences/s), load and first-inference time, the adapter's
``describe()``; fp16-vs-fp32 agreement (top-1 agreement, cosine similarity,
max |diff|) and the same for GPU-fp32 vs CPU-fp32 (shows the effect of TF32).

Random weights give a few dominant classes, so top-1 agreement is reported with
the number of distinct fp32 top-1 classes and again on logits centred by the
reference's per-class mean; cosine similarity is the sharper figure.

Usage::

    python scripts/gpu_adapters_check.py [--index 0] [--seconds 5] [--batch 1]

On the lent machines (torch with CUDA preinstalled; pydantic, pydantic-core,
annotated-types, typing-inspection and platformdirs carried as wheels)::

    python3 -m pip install -q --no-deps --no-build-isolation -e . && \\
    PYTHONUNBUFFERED=1 python3 scripts/gpu_adapters_check.py

Exit status: 0 done, 1 a GPU output was not finite, 2 no usable CUDA device (or
torch / wattbench not importable), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

NO_GPU = 2
BAD_OUTPUT = 1


def fail(message: str) -> NoReturn:
    print(f"gpu_adapters_check: {message}", file=sys.stderr)
    sys.exit(NO_GPU)


def _agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How closely logits ``a`` follow reference logits ``b`` (rows are samples)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
    # Random weights favour a few classes for every input; subtracting the reference's
    # mean logit per class makes top-1 depend on the input, a sharper agreement test.
    bias = b64.mean(0)
    return {
        "top1_agreement": float((a64.argmax(1) == b64.argmax(1)).mean()),
        "top1_agreement_centered": float(((a64 - bias).argmax(1) == (b64 - bias).argmax(1)).mean()),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "max_abs_diff": float(np.abs(a64 - b64).max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--index", type=int, default=0, help="CUDA device index")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed window per precision")
    parser.add_argument("--batch", type=int, default=1, help="images per query")
    parser.add_argument("--samples", type=int, default=64, help="inputs for the agreement check")
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        fail("torch is not installed: pip install torch (a CUDA build)")
    try:
        from wattbench.adapters.torch import TorchAdapter
        from wattbench.core.adapter import AdapterOptions
        from wattbench.core.cache import ModelCache
        from wattbench.harness.protocol import timed_loop
        from wattbench.suites.mobilenet_v2 import MobileNetV2Suite
        from wattbench.suites.models.torch_export import build_torchscript_artifact
    except ImportError as exc:
        fail(f"wattbench is not importable ({exc}): pip install --no-deps -e . from the checkout")

    device = f"cuda:{args.index}"
    avail = TorchAdapter.is_available(device)
    if not avail.available:
        fail(f"{device}: {avail.reason}")

    t0 = time.perf_counter()
    cache = ModelCache(Path(tempfile.mkdtemp(prefix="wattbench-gpu-check-")))
    artifact = build_torchscript_artifact(0, cache, MobileNetV2Suite.version)
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    shape = (args.batch, 3, 224, 224)
    timing_feeds = [rng.standard_normal(shape).astype(np.float32) for _ in range(8)]
    check_x = rng.standard_normal((args.samples, 3, 224, 224)).astype(np.float32)
    chunk = 16

    def logits(session: Any) -> np.ndarray:
        outs = [
            session.run(session.prepare({"input": check_x[i : i + chunk]}))[0]
            for i in range(0, len(check_x), chunk)
        ]
        return np.concatenate(outs).astype(np.float32)

    report: dict[str, Any] = {
        "device": str(torch.cuda.get_device_name(args.index)),
        "torch": str(torch.__version__),
        "cuda": str(torch.version.cuda),
        "availability": avail.reason,
        "model": {"name": artifact.name, "sha256": artifact.sha256, "build_s": round(build_s, 2)},
        "batch": args.batch,
        "window_s": args.seconds,
    }
    outputs: dict[str, np.ndarray] = {}
    for precision in ("fp32", "fp16"):
        t0 = time.perf_counter()
        session = TorchAdapter().load(artifact, AdapterOptions(device=device, precision=precision))
        load_ms = (time.perf_counter() - t0) * 1e3
        prepared = [session.prepare({"input": x}) for x in timing_feeds]
        t0 = time.perf_counter()
        session.run(prepared[0])
        first_ms = (time.perf_counter() - t0) * 1e3
        timed_loop(session, prepared, min_s=1.0, min_queries=20)  # warm-up (JIT profiling runs)
        lat_ns, wall_ns = timed_loop(session, prepared, min_s=args.seconds, min_queries=100)
        lat_ms = np.asarray(lat_ns, dtype=np.float64) / 1e6
        outputs[precision] = logits(session)
        report[precision] = {
            "load_ms": round(load_ms, 1),
            "first_inference_ms": round(first_ms, 2),
            "queries": len(lat_ns),
            "p50_ms": float(np.percentile(lat_ms, 50)),
            "p90_ms": float(np.percentile(lat_ms, 90)),
            "p99_ms": float(np.percentile(lat_ms, 99)),
            "mean_ms": float(lat_ms.mean()),
            "throughput_inferences_per_s": len(lat_ns) * args.batch / (wall_ns / 1e9),
            "describe": session.describe().model_dump(),
        }
        session.close()

    cpu = TorchAdapter().load(artifact, AdapterOptions(device="cpu"))
    outputs["cpu_fp32"] = logits(cpu)
    cpu.close()

    report["fp16_vs_fp32"] = {
        **_agreement(outputs["fp16"], outputs["fp32"]),
        "distinct_fp32_top1_classes": len(np.unique(outputs["fp32"].argmax(1))),
        "samples": args.samples,
    }
    report["cuda_fp32_vs_cpu_fp32"] = _agreement(outputs["fp32"], outputs["cpu_fp32"])
    finite = {k: bool(np.isfinite(v).all()) for k, v in outputs.items()}
    report["all_outputs_finite"] = finite
    print(json.dumps(report, indent=2))
    if not all(finite.values()):
        print("gpu_adapters_check: non-finite outputs, see all_outputs_finite", file=sys.stderr)
        return BAD_OUTPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
