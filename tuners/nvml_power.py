"""NVIDIA GPU power limit through NVML (milliwatts in NVML, watts here)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbench.core.errors import ConfigError
from wattbench.core.tuner import Tuner, TunerPermissionError


class NvmlPowerLimitTuner(Tuner):
    """The power-management limit of every GPU NVML sees, in W.

    ``read_current`` is ``{gpu index: W}``; ``set`` applies one limit to every GPU and
    refuses values outside a GPU's constraints. ``nvml`` is the ``pynvml`` module
    (nvidia-ml-py), injected so tests can pass a fake.
    """

    name = "nvml-power-limit"
    unit = "W"
    sweep_key = "gpu-power-limit"

    def __init__(
        self,
        nvml: Any = None,
        *,
        is_root: Callable[[], bool] | None = None,
        step_w: float = 50.0,
    ) -> None:
        self._nvml = nvml
        self._is_root = is_root or (lambda: os.geteuid() == 0)
        self.step_w = step_w
        self._inited = False

    @classmethod
    def create(cls, *, sysfs_root: Path | None = None) -> NvmlPowerLimitTuner:
        return cls()

    @property
    def nvml(self) -> Any:
        if self._nvml is None:
            try:
                import pynvml
            except ImportError:
                raise ConfigError(
                    "pynvml is missing: pip install 'wattbench[nvml]' (nvidia-ml-py)"
                ) from None
            self._nvml = pynvml
        if not self._inited:
            self._nvml.nvmlInit()
            self._inited = True
        return self._nvml

    def _handles(self) -> list[tuple[int, Any]]:
        n = self.nvml.nvmlDeviceGetCount()
        return [(i, self.nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(n)]

    def is_available(self) -> tuple[bool, str]:
        try:
            handles = self._handles()
        except Exception as exc:
            return False, f"NVML is not usable ({exc}); install the NVIDIA driver and nvidia-ml-py"
        if not handles:
            return False, "NVML sees no GPU"
        if not self._is_root():
            return False, (
                "setting a GPU power limit needs root: run with sudo (NVML has no group or "
                "sudoers-free way; `sudo nvidia-smi -pl` needs root too)"
            )
        return True, ""

    def read_current(self) -> dict[str, float]:
        return {
            str(i): self.nvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0
            for i, h in self._handles()
        }

    def constraints(self) -> list[tuple[float, float]]:
        out = []
        for _i, h in self._handles():
            lo, hi = self.nvml.nvmlDeviceGetPowerManagementLimitConstraints(h)
            out.append((lo / 1000.0, hi / 1000.0))
        return out

    def allowed_values(self) -> list[float]:
        ranges = self.constraints()
        if not ranges:
            return []
        lo = max(r[0] for r in ranges)
        hi = min(r[1] for r in ranges)
        values = {lo, hi}
        v = lo
        while v < hi:
            values.add(v)
            v += self.step_w
        return sorted(values)

    def parse_value(self, raw: Any) -> float:
        text = str(raw).strip().lower().removesuffix("w").strip()
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"invalid gpu-power-limit {raw!r}: use watts, e.g. 300") from None

    def describe(self, value: Any) -> str:
        return f"{float(value):g}W"

    def _set_one(self, index: int, handle: Any, watts: float) -> None:
        try:
            self.nvml.nvmlDeviceSetPowerManagementLimit(handle, round(watts * 1000))
        except Exception as exc:
            if "permission" in str(exc).lower():
                raise TunerPermissionError(
                    f"GPU {index}: setting the power limit needs root: run with sudo"
                ) from None
            raise ConfigError(
                f"GPU {index}: cannot set the power limit to {watts:g} W: {exc}"
            ) from None

    def set(self, value: Any) -> None:
        watts = self.parse_value(value)
        for (i, _h), (lo, hi) in zip(self._handles(), self.constraints(), strict=True):
            if not lo <= watts <= hi:
                raise ConfigError(
                    f"gpu-power-limit {watts:g} W is outside GPU {i}'s range {lo:g}-{hi:g} W"
                )
        for i, h in self._handles():
            self._set_one(i, h, watts)

    def restore(self, saved: Any) -> None:
        handles = dict(self._handles())
        for index, watts in dict(saved).items():
            if int(index) in handles:
                self._set_one(int(index), handles[int(index)], float(watts))
