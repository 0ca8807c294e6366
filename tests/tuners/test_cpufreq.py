from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_cpufreq_tree

from wattbench.core.errors import ConfigError
from wattbench.core.tuner import TunerPermissionError
from wattbench.tuners.cpufreq import CpufreqTuner


def _max(root: Path, policy: str) -> int:
    return int((root / "sys/devices/system/cpu/cpufreq" / policy / "scaling_max_freq").read_text())


def test_reads_lists_sets_and_restores_every_policy(cpufreq_tree: Path) -> None:
    t = CpufreqTuner(cpufreq_tree)
    assert t.is_available() == (True, "")
    saved = t.read_current()
    assert saved == {"policy0": 1800000, "policy4": 2400000}
    assert t.allowed_values() == [600000, 800000, 1200000, 1600000, 1800000, 2400000]
    t.set(1600000)  # clamped to each policy's own range
    assert (_max(cpufreq_tree, "policy0"), _max(cpufreq_tree, "policy4")) == (1600000, 1600000)
    t.set("2.4GHz")
    assert (_max(cpufreq_tree, "policy0"), _max(cpufreq_tree, "policy4")) == (1800000, 2400000)
    t.set("600MHz")
    assert (_max(cpufreq_tree, "policy0"), _max(cpufreq_tree, "policy4")) == (600000, 800000)
    t.restore(saved)
    assert t.read_current() == saved


def test_without_available_frequencies_the_cpuinfo_range_is_the_grid(tmp_path: Path) -> None:
    t = CpufreqTuner(make_cpufreq_tree(tmp_path, with_list=False))
    assert t.allowed_values() == [600000, 800000, 1800000, 2400000]


def test_values_parse_and_bad_ones_are_one_line() -> None:
    t = CpufreqTuner(Path("/nonexistent"))
    assert t.parse_value("1.2GHz") == 1200000
    assert t.parse_value("1200MHz") == 1200000
    assert t.parse_value(1200000) == 1200000
    with pytest.raises(ConfigError, match="cpu-max-freq"):
        t.parse_value("fast")


def test_no_cpufreq_names_the_cause(tmp_path: Path) -> None:
    ok, reason = CpufreqTuner(tmp_path).is_available()
    assert not ok and "no cpufreq policies" in reason


def test_permission_error_is_one_line_with_the_remedy(cpufreq_tree: Path) -> None:
    t = CpufreqTuner(cpufreq_tree, writable=lambda _p: False)
    ok, _reason = t.is_available()
    assert not ok
    with pytest.raises(TunerPermissionError) as info:
        t.check_permission()
    msg = str(info.value)
    assert "\n" not in msg
    assert "run as root (sudo)" in msg and "chgrp" in msg and "group" in msg
