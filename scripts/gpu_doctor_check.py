"""`wattbench doctor` on a real NVIDIA GPU (docs/gpu-checks.md, docs/hardware-validation.md).

Two doctor runs over the NVML reader (and RAPL and the estimate, as found):

1. the default known load, a CPU busy loop: NVML measures the GPU board, which a CPU load
   need not reach, so its step check may only warn;
2. a GPU load (bf16 matmuls through torch) injected as the load: the step must be clear.

Run where the package is importable (``pip install -e .`` or a ``wattbench`` symlink tree on
PYTHONPATH); entry points are not needed, the readers are passed by class.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from wattbench.core.power import ReaderOptions
from wattbench.harness.doctor import (
    CpuLoad,
    DoctorSettings,
    report_json,
    report_lines,
    run_doctor,
)
from wattbench.power.estimated import EstimatedCpuReader
from wattbench.power.nvml import NvmlReader
from wattbench.power.rapl import RaplReader


class GpuLoad:
    """bf16 matmuls on the GPU for the time asked (tensors made once, before the doctor)."""

    def __init__(self, n: int = 8192) -> None:
        import torch

        self.torch = torch
        self.a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        self.b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        (self.a @ self.b).sum().item()  # warm: cuBLAS handles, clocks
        self.description = f"bf16 matmul {n}x{n}x{n} on the GPU (torch)"

    def __call__(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(8):
                self.a @ self.b
            self.torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0, help="idle, load and recovery each")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON reports here")
    args = ap.parse_args()
    classes = {"nvml": NvmlReader, "rapl": RaplReader, "estimate": EstimatedCpuReader}
    settings = DoctorSettings(idle_s=args.seconds, step_s=args.seconds, sample_interval_s=0.05)
    runs = {"cpu-load": (settings, CpuLoad())}
    try:
        runs["gpu-load"] = (
            DoctorSettings(
                power=("nvml",), idle_s=args.seconds, step_s=args.seconds, sample_interval_s=0.05
            ),
            GpuLoad(),
        )
    except Exception as exc:  # no torch or no CUDA here
        print(f"no GPU load ({type(exc).__name__}: {exc}); the CPU load only")
    for name, (s, load) in runs.items():
        t0 = time.monotonic()
        report = run_doctor(ReaderOptions(), s, classes=classes, load=load)
        print(f"== {name} ({time.monotonic() - t0:.1f} s)")
        print("\n".join(report_lines(report)))
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"doctor-{name}.json").write_text(
                json.dumps(report_json(report), indent=2) + "\n"
            )


if __name__ == "__main__":
    main()
