"""Fixtures of the tuner tests: a fake cpufreq tree and a private tune journal."""

from __future__ import annotations

from pathlib import Path

import pytest

#: (policy, available kHz, current max) - a big.LITTLE-like pair and one without a list
POLICIES = {
    "policy0": ([600000, 1200000, 1800000], 1800000),
    "policy4": ([800000, 1600000, 2400000], 2400000),
}


def make_cpufreq_tree(root: Path, *, with_list: bool = True) -> Path:
    for name, (freqs, current) in POLICIES.items():
        d = root / "sys/devices/system/cpu/cpufreq" / name
        d.mkdir(parents=True)
        (d / "scaling_max_freq").write_text(f"{current}\n")
        (d / "cpuinfo_min_freq").write_text(f"{freqs[0]}\n")
        (d / "cpuinfo_max_freq").write_text(f"{freqs[-1]}\n")
        if with_list:
            (d / "scaling_available_frequencies").write_text(" ".join(map(str, freqs)) + " \n")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def cpufreq_tree(tmp_path: Path) -> Path:
    return make_cpufreq_tree(tmp_path / "tree")


@pytest.fixture(autouse=True)
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal" / "tune-journal.json"
    monkeypatch.setenv("WATTBENCH_TUNE_JOURNAL", str(path))
    return path
