"""Jetson power mode through ``nvpmodel`` (``-q`` reads it, ``-m N`` sets it).

With ``jetson_clocks`` on (``jetson-clocks = true`` in a sweep file), the clocks are pinned
at the mode's maximum after each mode change (``jetson_clocks``), as NVIDIA recommends for
benchmarking: before the first change ``jetson_clocks --store FILE`` saves the clock
settings (the journal keeps FILE's path), and the restore sets the original mode back, then
``jetson_clocks --restore FILE``.
"""

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
_SUDOERS_CLOCKS = "USER ALL=(root) NOPASSWD: /usr/sbin/nvpmodel, /usr/bin/jetson_clocks"


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
        jetson_clocks: str = "jetson_clocks",
        clocks_file: Path | None = None,
        is_root: Callable[[], bool] | None = None,
    ) -> None:
        self.runner = runner
        self.nvpmodel = nvpmodel
        self.jetson_clocks = jetson_clocks
        #: where `jetson_clocks --store` writes (default: next to the tune journal)
        self.clocks_file = clocks_file
        #: pin clocks with `jetson_clocks` after each mode change (configure(jetson_clocks=))
        self.pin_clocks = False
        self._is_root = is_root or (lambda: os.geteuid() == 0)

    @classmethod
    def create(cls, *, sysfs_root: Path | None = None) -> JetsonPowerModeTuner:
        return cls(
            nvpmodel=shutil.which("nvpmodel") or "nvpmodel",
            jetson_clocks=shutil.which("jetson_clocks") or "jetson_clocks",
        )

    def configure(self, **options: Any) -> None:
        """``jetson_clocks=True``: store, pin and restore the clocks around mode changes."""
        unknown = set(options) - {"jetson_clocks"}
        if unknown:
            raise ConfigError(
                f"tuner 'jetson': unknown option(s) {', '.join(sorted(unknown))} "
                f"(known: jetson_clocks)"
            )
        self.pin_clocks = bool(options.get("jetson_clocks", False))

    def _clocks(self, *args: str) -> None:
        rc, out = self.runner([self.jetson_clocks, *args])
        if rc != 0:
            shown = " ".join(("jetson_clocks", *args))
            if "permission" in out.lower() or "root" in out.lower():
                raise TunerPermissionError(
                    f"`{shown}`: permission denied: run with sudo or add `{_SUDOERS_CLOCKS}`"
                )
            raise ConfigError(f"`{shown}` failed ({rc}): {out.strip()[:200]}")

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
        if self.pin_clocks:
            rc, _out = self.runner([self.jetson_clocks, "--show"])
            if rc == 127:
                return (
                    False,
                    "jetson_clocks not found (L4T tools not installed); drop jetson-clocks",
                )
        if not self._is_root():
            line = _SUDOERS_CLOCKS if self.pin_clocks else _SUDOERS
            return False, (
                f"changing the power mode needs root: run with sudo, or add the sudoers line "
                f"`{line}` (visudo)"
            )
        return True, ""

    def modes(self) -> dict[int, str]:
        return parse_modes(self._run("-p", "--verbose"))

    def read_current(self) -> int:
        return parse_query(self._run("-q"))[1]

    def snapshot(self) -> int | dict[str, Any]:
        """The mode; with ``jetson_clocks`` also the clocks, stored to a file first:
        ``{"mode": id, "clocks_file": path}``."""
        mode = self.read_current()
        if not self.pin_clocks:
            return mode
        path = self.clocks_file
        if path is None:
            from wattbench.core.tuning import journal_path

            path = journal_path().with_name("jetson-clocks.store")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._clocks("--store", str(path))
        return {"mode": mode, "clocks_file": str(path)}

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
        self._set_mode(self.parse_value(value))
        if self.pin_clocks:
            self._clocks()  # the mode's maximum clocks, fixed for the measurement

    def _set_mode(self, mode: int) -> None:
        rc, out = self.runner([self.nvpmodel, "-m", str(mode)])
        if rc != 0:
            if "permission" in out.lower() or "root" in out.lower():
                raise TunerPermissionError(
                    f"nvpmodel -m {mode}: permission denied: run with sudo or add `{_SUDOERS}`"
                )
            raise ConfigError(f"`nvpmodel -m {mode}` failed ({rc}): {out.strip()[:200]}")

    def restore(self, saved: Any) -> None:
        """The saved mode; then the stored clocks, when :meth:`snapshot` stored them."""
        if isinstance(saved, dict):
            self._set_mode(int(saved["mode"]))
            clocks = saved.get("clocks_file")
            if clocks:
                self._clocks("--restore", str(clocks))
                Path(clocks).unlink(missing_ok=True)
            return
        self._set_mode(int(saved))
