"""Jetson power mode through ``nvpmodel`` (``-q`` reads it, ``-m N`` sets it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wattbench.core.errors import ConfigError
from wattbench.core.tuner import Tuner, TunerPermissionError

#: runs a command, returns (exit status, stdout + stderr)
CommandRunner = Callable[[Sequence[str]], tuple[int, str]]

_SUDOERS = "USER ALL=(root) NOPASSWD: /usr/sbin/nvpmodel"


def run_command(cmd: Sequence[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=False)
    except OSError:  # missing, not a directory, not executable
        return 127, f"{cmd[0]}: not found"
    return proc.returncode, proc.stdout + proc.stderr


def parse_query(text: str) -> tuple[str, int]:
    """(name, id) from ``nvpmodel -q``: ``NV Power Mode: MAXN`` then the id on its own line."""
    name_m = re.search(r"NV Power Mode:\s*(\S+)", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    ids = [ln for ln in lines if ln.isdigit()]
    if not name_m or not ids:
        raise ConfigError(f"unexpected `nvpmodel -q` output: {text.strip()[:200]!r}")
    return name_m.group(1), int(ids[-1])


def parse_modes(text: str) -> dict[int, str]:
    """{id: name} from ``nvpmodel -p --verbose`` or /etc/nvpmodel.conf
    (``POWER_MODEL: ID=0 NAME=MAXN`` / ``< POWER_MODEL ID=0 NAME=MAXN >``)."""
    return {
        int(i): n
        for i, n in re.findall(r"POWER_MODEL:?\s+ID=(\d+)\s+NAME=(\S+?)\s*>?\s*$", text, re.M)
    }


class JetsonPowerModeTuner(Tuner):
    """The nvpmodel power mode (its id; names such as MAXN or 15W are accepted too)."""

    name = "jetson"
    unit = "mode"
    sweep_key = "power-mode"

    def __init__(
        self,
        runner: CommandRunner = run_command,
        *,
        nvpmodel: str = "nvpmodel",
        is_root: Callable[[], bool] | None = None,
    ) -> None:
        self.runner = runner
        self.nvpmodel = nvpmodel
        self._is_root = is_root or (lambda: os.geteuid() == 0)

    @classmethod
    def create(cls, *, sysfs_root: Path | None = None) -> JetsonPowerModeTuner:
        return cls(nvpmodel=shutil.which("nvpmodel") or "nvpmodel")

    def _run(self, *args: str) -> str:
        rc, out = self.runner([self.nvpmodel, *args])
        if rc != 0:
            raise ConfigError(f"`nvpmodel {' '.join(args)}` failed ({rc}): {out.strip()[:200]}")
        return out

    def is_available(self) -> tuple[bool, str]:
        rc, out = self.runner([self.nvpmodel, "-q"])
        if rc == 127:
            return False, "nvpmodel not found (not a Jetson, or L4T tools not installed)"
        if rc != 0:
            return False, f"`nvpmodel -q` failed: {out.strip()[:120]}"
        if not self._is_root():
            return False, (
                f"changing the power mode needs root: run with sudo, or add the sudoers line "
                f"`{_SUDOERS}` (visudo)"
            )
        return True, ""

    def modes(self) -> dict[int, str]:
        return parse_modes(self._run("-p", "--verbose"))

    def read_current(self) -> int:
        return parse_query(self._run("-q"))[1]

    def allowed_values(self) -> list[int]:
        return sorted(self.modes())

    def parse_value(self, raw: Any) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        text = str(raw).strip()
        if text.isdigit():
            return int(text)
        by_name = {n.lower(): i for i, n in self.modes().items()}
        if text.lower() not in by_name:
            raise ConfigError(f"unknown power-mode {raw!r} (known: {', '.join(by_name)})")
        return by_name[text.lower()]

    def set(self, value: Any) -> None:
        mode = self.parse_value(value)
        rc, out = self.runner([self.nvpmodel, "-m", str(mode)])
        if rc != 0:
            if "permission" in out.lower() or "root" in out.lower():
                raise TunerPermissionError(
                    f"nvpmodel -m {mode}: permission denied: run with sudo or add `{_SUDOERS}`"
                )
            raise ConfigError(f"`nvpmodel -m {mode}` failed ({rc}): {out.strip()[:200]}")

    def restore(self, saved: Any) -> None:
        self.set(int(saved))
