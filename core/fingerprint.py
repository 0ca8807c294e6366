"""Environment fingerprint: what a skeptical reader needs to reproduce a run."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil


def wattbench_version() -> str:
    try:
        return version("wattbench")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def cpu_model_name(proc_root: Path = Path("/proc")) -> str:
    """The CPU brand string ("model name" in /proc/cpuinfo, else platform's guess)."""
    try:
        for line in (proc_root / "cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_governor(sysfs_root: Path = Path("/")) -> str | None:
    """The cpufreq scaling governor of cpu0, None when not readable (VMs, containers)."""
    path = sysfs_root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def project_git_sha() -> str | None:
    """Commit of the wattbench source tree when it runs from a git checkout."""
    sha = _git(Path(__file__).resolve().parent, "rev-parse", "HEAD")
    return sha if sha is not None and len(sha) == 40 else None


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and value else None


def git_labels(cwd: Path | None = None) -> list[str]:
    """``git:<sha>`` and ``branch:<name>`` of the git tree the user runs in, if any.

    This is the code being benchmarked (a CI checkout), not wattbench's own tree.
    """
    where = cwd or Path.cwd()
    sha = _git(where, "rev-parse", "HEAD")
    if sha is None:
        return []
    labels = [f"git:{sha}"]
    branch = _git(where, "rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":  # detached HEAD (typical in CI) has no branch name
        labels.append(f"branch:{branch}")
    return labels


def host_info() -> dict[str, Any]:
    """Hardware of this machine (the ``devices`` row)."""
    vm = psutil.virtual_memory()
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model_name(),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "memory_bytes": int(vm.total),
        "arch": platform.machine(),
    }


def environment(runtime_versions: dict[str, str] | None = None) -> dict[str, Any]:
    """Software environment (the ``environments`` row); stable for identical set-ups."""
    uname = platform.uname()
    return {
        "os": uname.system,
        "os_release": uname.release,
        "os_version": uname.version,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "wattbench": wattbench_version(),
        "wattbench_git_sha": project_git_sha(),
        "cpu_governor": cpu_governor(),
        "runtime_versions": dict(sorted((runtime_versions or {}).items())),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def fingerprint_sha256(env: dict[str, Any]) -> str:
    """Content hash of an environment dict (key order does not matter)."""
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()
