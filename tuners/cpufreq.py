"""CPU maximum frequency through cpufreq sysfs (every policy, e.g. big and LITTLE clusters)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbench.core.errors import ConfigError
from wattbench.core.tuner import Tuner, TunerPermissionError

_CPUFREQ = "sys/devices/system/cpu/cpufreq"


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


class CpufreqTuner(Tuner):
    """``scaling_max_freq`` of every ``policy*`` under ``<root>/sys/devices/system/cpu/cpufreq``.

    Values are kHz, as sysfs has them. A value is applied to each policy clamped to that
    policy's own range, so one grid serves clusters of different ranges.
    """

    name = "cpufreq"
    unit = "kHz"
    sweep_key = "cpu-max-freq"

    def __init__(
        self, sysfs_root: Path | None = None, *, writable: Callable[[Path], bool] = _writable
    ) -> None:
        self.root = Path(sysfs_root) if sysfs_root is not None else Path("/")
        self._writable = writable

    @classmethod
    def create(cls, *, sysfs_root: Path | None = None) -> CpufreqTuner:
        return cls(sysfs_root)

    def policies(self) -> list[Path]:
        base = self.root / _CPUFREQ
        found = [p for p in base.glob("policy*") if (p / "scaling_max_freq").exists()]
        return sorted(found, key=lambda p: int(re.sub(r"\D", "", p.name) or 0))

    def is_available(self) -> tuple[bool, str]:
        policies = self.policies()
        if not policies:
            return False, f"no cpufreq policies under {self.root / _CPUFREQ} (no cpufreq driver)"
        locked = [
            p / "scaling_max_freq" for p in policies if not self._writable(p / "scaling_max_freq")
        ]
        if locked:
            return False, (
                f"{locked[0]} is not writable: run as root (sudo), or give a group write "
                f"access (`sudo chgrp wattbench {self.root / _CPUFREQ}/policy*/scaling_max_freq "
                f"&& sudo chmod g+w` them, then add yourself to that group)"
            )
        return True, ""

    def _range(self, policy: Path) -> tuple[int, int]:
        lo, hi = policy / "cpuinfo_min_freq", policy / "cpuinfo_max_freq"
        if lo.exists() and hi.exists():
            return _read_int(lo), _read_int(hi)
        freqs = self._available(policy)
        return (freqs[0], freqs[-1]) if freqs else (0, 2**31)

    def _available(self, policy: Path) -> list[int]:
        path = policy / "scaling_available_frequencies"
        if path.exists():
            return sorted({int(v) for v in path.read_text().split()})
        return []

    def read_current(self) -> dict[str, int]:
        return {p.name: _read_int(p / "scaling_max_freq") for p in self.policies()}

    def allowed_values(self) -> list[int]:
        values: set[int] = set()
        for policy in self.policies():
            freqs = self._available(policy)
            values.update(freqs or self._range(policy))
        return sorted(values)

    def parse_value(self, raw: Any) -> int:
        """kHz from 1200000, "1200000", "1200MHz", "1.2GHz" or "1200000kHz"."""
        if isinstance(raw, bool):
            raise ConfigError(f"invalid cpu-max-freq {raw!r}: use kHz or e.g. '1.2GHz'")
        if isinstance(raw, (int, float)):
            return int(raw)
        m = re.fullmatch(r"\s*([0-9.]+)\s*(khz|mhz|ghz)?\s*", str(raw).lower())
        if not m:
            raise ConfigError(f"invalid cpu-max-freq {raw!r}: use kHz or e.g. '1200MHz', '1.2GHz'")
        scale = {"khz": 1, "mhz": 1_000, "ghz": 1_000_000, None: 1}[m.group(2)]
        return round(float(m.group(1)) * scale)

    def describe(self, value: Any) -> str:
        return f"{int(value) / 1000:g}MHz"

    def set(self, value: Any) -> None:
        khz = self.parse_value(value)
        for policy in self.policies():
            lo, hi = self._range(policy)
            self._write(policy, min(max(khz, lo), hi))

    def _write(self, policy: Path, khz: int) -> None:
        path = policy / "scaling_max_freq"
        try:
            path.write_text(f"{khz}\n")
        except PermissionError:
            raise TunerPermissionError(
                f"cannot write {path}: run as root (sudo) or give your group write access"
            ) from None

    def restore(self, saved: Any) -> None:
        by_name = {p.name: p for p in self.policies()}
        for name, khz in dict(saved).items():
            if name in by_name:
                self._write(by_name[name], int(khz))
