#!/usr/bin/env python3
"""Check the NVML power reader on a real NVIDIA GPU (a manual check, not a test).

Runs two :class:`~wattbench.power.nvml.NvmlReader` instances over the
same windows, one in ``counter`` mode (total-energy counter) and one in
``polled`` mode (power sampled and integrated), for

  (a) an idle window, then
  (b) a window of sustained matrix multiplication on CUDA with torch,

and prints one JSON document: per phase and mode the energy (J), the counter
and integrated-power figures and their disagreement (%), the achieved sample
rate and the mean power.

Needs only torch, nvidia-ml-py and wattbench. Usage::

    python scripts/gpu_check.py [--index 0] [--seconds 10] [--interval 0.05]

Exit status: 0 all readings valid, 1 a reading was invalid or failed,
2 no usable GPU (or torch / nvidia-ml-py missing), with the reason on stderr.
CUDA_DEVICE_ORDER is set to PCI_BUS_ID (unless set) so that torch's device
index matches NVML's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, NoReturn

NO_GPU = 2
BAD_READING = 1


def fail(message: str) -> NoReturn:
    print(f"gpu_check: {message}", file=sys.stderr)
    sys.exit(NO_GPU)


def reading_summary(reading: Any) -> dict[str, Any]:
    d = reading.details
    return {
        "method": reading.method.value,
        "energy_j": reading.energy_j,
        "duration_s": reading.duration_s,
        "mean_power_w": reading.mean_power_w,
        "peak_power_w": reading.peak_power_w,
        "uncertainty_j": reading.uncertainty_j,
        "samples": reading.samples,
        "sample_rate_hz": reading.sample_rate_hz,
        "polled_sample_rate_hz": d.get("polled_sample_rate_hz"),
        "power_field": d.get("power_field"),
        "counter_j": d.get("counter_j"),
        "polled_j": d.get("polled_j"),
        "disagreement_pct": d.get("disagreement_pct"),
        "missing_samples": d.get("missing_samples"),
        "valid": reading.valid,
        "invalid_reasons": reading.invalid_reasons,
        "warnings": d.get("warnings", []),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=int, default=0, help="GPU index (NVML/PCI order)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each window")
    parser.add_argument("--interval", type=float, default=0.05, help="power sampling interval, s")
    parser.add_argument("--size", type=int, default=8192, help="matrix side for the load")
    args = parser.parse_args()

    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    try:
        import torch
    except ImportError:
        fail("torch is not installed: pip install torch (a CUDA build)")
    try:
        from wattbench.core.power import ReaderOptions
        from wattbench.power.nvml import NvmlReader
    except ImportError as exc:
        fail(f"wattbench is not importable ({exc}): pip install -e . from the checkout")

    def options(mode: str) -> ReaderOptions:
        return ReaderOptions(
            sample_interval_s=args.interval,
            params={"nvml.index": str(args.index), "nvml.mode": mode},
        )

    ok, reason = NvmlReader.is_available(options("auto"))
    if not ok:
        fail(f"no GPU power reader: {reason}")
    if not torch.cuda.is_available():
        fail("torch sees no CUDA device (CPU-only torch build, or no driver)")
    if args.index >= torch.cuda.device_count():
        fail(f"torch sees {torch.cuda.device_count()} CUDA device(s); no index {args.index}")

    readers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for mode in ("counter", "polled"):
        ok, why = NvmlReader.is_available(options(mode))
        if ok:
            readers[mode] = NvmlReader(options(mode))
        else:
            errors[f"{mode}: unavailable"] = why
    if not readers:
        fail(f"neither counter nor polled mode works: {errors}")

    device = torch.device(f"cuda:{args.index}")
    result: dict[str, Any] = {
        "nvml_component": next(iter(readers.values())).component,
        "torch_device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "sample_interval_s": args.interval,
        "window_s": args.seconds,
        "phases": {},
    }
    try:
        import pynvml

        result["driver"] = pynvml.nvmlSystemGetDriverVersion()
    except Exception as exc:  # informational only
        result["driver"] = f"unknown ({exc})"

    a = torch.randn(args.size, args.size, device=device, dtype=torch.float16)
    b = torch.randn(args.size, args.size, device=device, dtype=torch.float16)

    def idle() -> dict[str, Any]:
        time.sleep(args.seconds)
        return {}

    def matmul() -> dict[str, Any]:
        n = 0
        t_end = time.monotonic() + args.seconds
        while time.monotonic() < t_end:
            for _ in range(10):
                torch.matmul(a, b)
            torch.cuda.synchronize(device)
            n += 10
        flops = 2.0 * args.size**3 * n
        return {"matmuls": n, "tflops": flops / args.seconds / 1e12}

    def measure(name: str, work: Any) -> None:
        for r in readers.values():
            r.start()
        extra = work()
        phase: dict[str, Any] = {"work": extra}
        for mode, r in readers.items():
            try:
                phase[mode] = reading_summary(r.stop())
            except Exception as exc:
                errors[f"{name}/{mode}"] = f"{type(exc).__name__}: {exc}"
        result["phases"][name] = phase

    try:
        torch.cuda.synchronize(device)
        time.sleep(2.0)  # let the context creation settle before the idle window
        measure("idle", idle)
        warm_end = time.monotonic() + 1.0
        while time.monotonic() < warm_end:  # cuBLAS autotuning and clocks up, outside windows
            torch.matmul(a, b)
        torch.cuda.synchronize(device)
        measure("matmul", matmul)
    finally:
        for r in readers.values():
            r.close()

    counter = {p: v.get("counter") for p, v in result["phases"].items()}
    if counter.get("idle") and counter.get("matmul"):
        result["load_over_idle_w"] = (
            counter["matmul"]["mean_power_w"] - counter["idle"]["mean_power_w"]
        )
    result["errors"] = errors
    print(json.dumps(result, indent=2, default=str))
    invalid = [
        f"{p}/{m}"
        for p, v in result["phases"].items()
        for m in ("counter", "polled")
        if m in v and not v[m]["valid"]
    ]
    if invalid or any(k for k in errors if "/" in k):
        print(f"gpu_check: invalid or failed readings: {invalid + list(errors)}", file=sys.stderr)
        return BAD_READING
    return 0


if __name__ == "__main__":
    sys.exit(main())
