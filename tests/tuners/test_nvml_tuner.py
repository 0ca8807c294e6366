"""The GPU power-limit tuner against an autospec'd pynvml (figures of a real H200)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from wattbench.core.errors import ConfigError
from wattbench.core.tuner import TunerPermissionError
from wattbench.tuners.nvml_power import NvmlPowerLimitTuner

pynvml = pytest.importorskip("pynvml")


def fake_nvml(limit_mw: int = 700_000) -> Any:
    nvml = mock.create_autospec(pynvml, instance=False)
    state = {"limit": limit_mw}
    nvml.nvmlDeviceGetCount.return_value = 1
    nvml.nvmlDeviceGetHandleByIndex.return_value = "gpu0"
    nvml.nvmlDeviceGetPowerManagementLimit.side_effect = lambda h: state["limit"]
    nvml.nvmlDeviceGetPowerManagementLimitConstraints.return_value = [200_000, 700_000]

    def set_limit(handle: Any, mw: int) -> None:
        state["limit"] = mw

    nvml.nvmlDeviceSetPowerManagementLimit.side_effect = set_limit
    nvml.state = state
    return nvml


def test_reads_lists_sets_and_restores_in_watts() -> None:
    nvml = fake_nvml()
    t = NvmlPowerLimitTuner(nvml, is_root=lambda: True, step_w=100)
    assert t.is_available() == (True, "")
    saved = t.read_current()
    assert saved == {"0": 700.0}
    assert t.allowed_values() == [200.0, 300.0, 400.0, 500.0, 600.0, 700.0]
    t.set("200W")
    nvml.nvmlDeviceSetPowerManagementLimit.assert_called_with("gpu0", 200_000)  # mW
    assert t.read_current() == {"0": 200.0}
    t.restore(saved)
    assert nvml.state["limit"] == 700_000
    with pytest.raises(ConfigError, match="outside GPU 0's range 200-700 W"):
        t.set(800)


def test_not_root_is_one_line_with_the_remedy() -> None:
    t = NvmlPowerLimitTuner(fake_nvml(), is_root=lambda: False)
    with pytest.raises(TunerPermissionError) as info:
        t.check_permission()
    assert "\n" not in str(info.value) and "sudo" in str(info.value)


def test_an_nvml_permission_refusal_names_the_remedy() -> None:
    nvml = fake_nvml()
    nvml.nvmlDeviceSetPowerManagementLimit.side_effect = RuntimeError("Insufficient Permissions")
    t = NvmlPowerLimitTuner(nvml, is_root=lambda: True)
    with pytest.raises(TunerPermissionError, match="run with sudo"):
        t.set(300)
