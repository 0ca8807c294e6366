"""NvmlReader against an autospec of the real pynvml module driven by a simulated GPU."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any
from unittest import mock

import pytest

pynvml = pytest.importorskip("pynvml")

from wattbench.core.errors import ConfigError, MeasurementError, UnavailableError  # noqa: E402
from wattbench.core.power import EnergyMethod, EnergyScope, ReaderOptions  # noqa: E402
from wattbench.power.nvml import (  # noqa: E402
    COUNTER_RESOLUTION_J,
    DEFAULT_REL_UNCERTAINTY,
    INSTALL_HINT,
    NvmlReader,
)

H100 = "NVIDIA H100 80GB HBM3"
HANDLE = object()  # what nvmlDeviceGetHandleByIndex returns
_CONSTANTS = (
    "NVML_SUCCESS",
    "NVML_ERROR_NOT_SUPPORTED",
    "NVML_FI_DEV_POWER_INSTANT",
    "NVML_FI_DEV_POWER_AVERAGE",
)


def nvml_error(code: int = pynvml.NVML_ERROR_NOT_SUPPORTED) -> Exception:
    return pynvml.NVMLError(code)


class SimGpu:
    """A GPU whose energy counter integrates its power over a hand-moved clock.

    ``reported_w`` is what the power sensor says (None: same as the true power),
    so a sensor that disagrees with the counter can be simulated.
    """

    def __init__(
        self,
        *,
        power_w: float = 200.0,
        counter: bool = True,
        fields: tuple[str, ...] = ("instant", "average"),
        usage: bool = True,
        name: str = H100,
        count: int = 1,
        constants: bool = True,
    ) -> None:
        self.now = 100.0
        self.power_w = power_w
        self.reported_w: float | None = None
        self.energy_mj = 7_500_000.0  # the counter starts where the driver left it
        self.fail_power = False
        self.fail_counter = False
        self.field_calls: list[list[int]] = []
        self.nvml = mock.create_autospec(pynvml, instance=False)
        m = self.nvml
        m.NVMLError = pynvml.NVMLError
        if constants:
            for c in _CONSTANTS:
                setattr(m, c, getattr(pynvml, c))
        m.nvmlDeviceGetCount.return_value = count
        m.nvmlDeviceGetHandleByIndex.return_value = HANDLE
        m.nvmlDeviceGetName.return_value = name
        self.supported_fields = {getattr(pynvml, f"NVML_FI_DEV_POWER_{f.upper()}") for f in fields}
        m.nvmlDeviceGetFieldValues.side_effect = self._fields
        if counter:
            m.nvmlDeviceGetTotalEnergyConsumption.side_effect = self._counter
        else:
            m.nvmlDeviceGetTotalEnergyConsumption.side_effect = nvml_error()
        if usage:
            m.nvmlDeviceGetPowerUsage.side_effect = self._usage
        else:
            m.nvmlDeviceGetPowerUsage.side_effect = nvml_error()

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float, power_w: float | None = None) -> None:
        if power_w is not None:
            self.power_w = power_w
        self.now += seconds
        self.energy_mj += self.power_w * seconds * 1000.0

    @property
    def sensor_mw(self) -> int:
        return round((self.reported_w if self.reported_w is not None else self.power_w) * 1000)

    def _counter(self, handle: Any) -> int:
        assert handle is HANDLE
        if self.fail_counter:
            raise nvml_error(pynvml.NVML_ERROR_UNKNOWN)
        return int(self.energy_mj)

    def _usage(self, handle: Any) -> int:
        assert handle is HANDLE
        if self.fail_power:
            raise nvml_error(pynvml.NVML_ERROR_UNKNOWN)
        return self.sensor_mw

    def _fields(self, handle: Any, field_ids: list[int]) -> Any:
        assert handle is HANDLE
        self.field_calls.append(list(field_ids))
        if self.fail_power:
            raise nvml_error(pynvml.NVML_ERROR_UNKNOWN)
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for i, fid in enumerate(field_ids):
            values[i].fieldId = fid
            values[i].valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
            if fid in self.supported_fields:
                values[i].nvmlReturn = pynvml.NVML_SUCCESS
                values[i].value.uiVal = self.sensor_mw
            else:
                values[i].nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values


def opts(interval_s: float = 1.0, **params: str) -> ReaderOptions:
    return ReaderOptions(
        sample_interval_s=interval_s, params={f"nvml.{k}": v for k, v in params.items()}
    )


def reader(gpu: SimGpu, **params: str) -> NvmlReader:
    return NvmlReader(opts(**params), nvml=gpu.nvml, clock=gpu.clock, background_poll=False)


def run(r: NvmlReader, gpu: SimGpu, steps: int, dt: float = 1.0) -> Any:
    r.start()
    for _ in range(steps):
        gpu.advance(dt)
        r.poll()
    return r.stop()


# -- counter-present GPU --------------------------------------------------------------


def test_counter_gpu_measures_with_the_counter_and_cross_checks() -> None:
    gpu = SimGpu(power_w=200.0)
    r = reader(gpu)
    assert r.mode == "counter"
    reading = run(r, gpu, steps=5)
    assert reading.method is EnergyMethod.COUNTER
    assert reading.scope is EnergyScope.BOARD
    assert reading.component == f"GPU 0 ({H100})"
    assert reading.energy_j == pytest.approx(1000.0)  # 200 W x 5 s, from mJ
    assert reading.duration_s == pytest.approx(5.0)
    assert reading.mean_power_w == pytest.approx(200.0)
    assert reading.valid, reading.invalid_reasons
    d = reading.details
    assert d["power_field"] == "instant"
    assert d["counter_j"] == pytest.approx(1000.0)
    assert d["polled_j"] == pytest.approx(1000.0)
    assert d["disagreement_pct"] == pytest.approx(0.0, abs=1e-9)
    assert d["warnings"] == []
    assert any("25 %" in n for n in d["notes"])  # H100: part-time sensor
    assert reading.samples == 7  # two edges and five polls
    # The counter moved between every two reads 1 s apart: its update period, unknown, may
    # be up to 1 s, so each edge may be 1 s of 200 W stale.
    assert d["counter_staleness_s"] == pytest.approx(1.0)
    assert reading.uncertainty_j == pytest.approx(
        DEFAULT_REL_UNCERTAINTY * 1000.0 + COUNTER_RESOLUTION_J + 2 * 200.0 * 1.0
    )
    assert gpu.field_calls[-1] == [pynvml.NVML_FI_DEV_POWER_INSTANT]
    r.close()


def test_counter_energy_follows_the_counter_not_the_sensor() -> None:
    gpu = SimGpu(power_w=100.0)
    r = reader(gpu)
    r.start()
    gpu.advance(1.0, power_w=100.0)
    r.poll()
    gpu.advance(1.0, power_w=300.0)
    reading = r.stop()
    assert reading.energy_j == pytest.approx(400.0)
    r.close()


def test_counter_read_failing_at_window_end_is_invalid() -> None:
    gpu = SimGpu()
    r = reader(gpu)
    r.start()
    gpu.advance(1.0)
    r.poll()
    gpu.advance(1.0)
    gpu.fail_counter = True
    reading = r.stop()
    assert not reading.valid
    assert any("end" in m for m in reading.invalid_reasons)
    assert reading.energy_j == pytest.approx(200.0)  # to the last good read, labelled invalid
    assert reading.details["disagreement_pct"] is None  # no cross-check against a bad figure
    assert reading.details["crosscheck_skipped"] == "; ".join(reading.invalid_reasons)
    r.close()


def test_counter_reset_is_invalid_not_negative() -> None:
    gpu = SimGpu()
    r = reader(gpu)
    r.start()
    gpu.advance(1.0)
    gpu.energy_mj = 1000.0  # driver reloaded
    r.poll()
    gpu.advance(1.0)
    reading = r.stop()
    assert not reading.valid
    assert reading.invalid_reasons  # a decrease is a reset: said, not guessed
    assert reading.energy_j == pytest.approx(200.0)  # the interval with the reset is missing
    r.close()


# -- counter-absent GPU --------------------------------------------------------------


def test_counter_absent_gpu_falls_back_to_polled_power() -> None:
    gpu = SimGpu(power_w=80.0, counter=False, name="Tesla P100-PCIE-16GB")
    r = reader(gpu)
    assert r.mode == "polled"
    assert r.info().method is EnergyMethod.POLLED
    reading = run(r, gpu, steps=4, dt=0.5)
    assert reading.method is EnergyMethod.POLLED
    assert reading.energy_j == pytest.approx(80.0 * 2.0)
    assert reading.details["counter_j"] is None
    assert reading.details["disagreement_pct"] is None
    assert reading.details["notes"] == []
    assert reading.valid, reading.invalid_reasons
    r.close()


def test_forced_counter_mode_without_counter_is_unavailable() -> None:
    gpu = SimGpu(counter=False)
    ok, reason = NvmlReader.is_available(opts(mode="counter"), nvml=gpu.nvml)
    assert not ok
    assert "no energy counter" in reason
    assert "nvml.mode=polled" in reason


def test_forced_polled_mode_still_cross_checks_the_counter() -> None:
    gpu = SimGpu(power_w=150.0)
    r = reader(gpu, mode="polled")
    reading = run(r, gpu, steps=3)
    assert reading.method is EnergyMethod.POLLED
    assert reading.energy_j == pytest.approx(450.0)
    assert reading.details["counter_j"] == pytest.approx(450.0)
    r.close()


# -- power fields --------------------------------------------------------------------


def test_average_field_when_instant_is_not_supported() -> None:
    gpu = SimGpu(fields=("average",))
    r = reader(gpu)
    assert r.power_field == "average"
    assert any("1-s average" in n for n in r.info().details["notes"])
    r.close()


def test_power_usage_when_the_module_lacks_the_field_constants() -> None:
    gpu = SimGpu(power_w=123.0, counter=False, constants=False)
    r = reader(gpu)
    assert r.power_field == "usage"
    reading = run(r, gpu, steps=2)
    assert reading.energy_j == pytest.approx(246.0)  # mW -> W
    assert gpu.nvml.nvmlDeviceGetFieldValues.call_count == 0
    r.close()


def test_no_counter_and_no_power_is_unavailable() -> None:
    gpu = SimGpu(counter=False, fields=(), usage=False)
    ok, reason = NvmlReader.is_available(opts(), nvml=gpu.nvml)
    assert not ok
    assert "neither an energy counter" in reason


# -- failed reads ---------------------------------------------------------------------


def test_power_read_failing_mid_window_is_a_gap_not_zero() -> None:
    gpu = SimGpu(power_w=100.0, counter=False)
    r = reader(gpu)
    r.start()
    gpu.advance(1.0)
    r.poll()
    gpu.advance(1.0)
    gpu.fail_power = True
    r.poll()  # NVMLError: a missing sample
    gpu.fail_power = False
    gpu.advance(1.0)
    r.poll()
    gpu.advance(1.0)
    reading = r.stop()
    assert reading.energy_j == pytest.approx(400.0)  # a zero there would give 300 J
    assert reading.details["missing_samples"] == 1
    assert reading.valid, reading.invalid_reasons  # a 2 s gap < 5 sample intervals
    r.close()


def test_long_run_of_failed_power_reads_invalidates() -> None:
    gpu = SimGpu(power_w=100.0, counter=False)
    r = reader(gpu)
    r.start()
    gpu.fail_power = True
    for _ in range(7):
        gpu.advance(1.0)
        r.poll()
    gpu.fail_power = False
    gpu.advance(1.0)
    reading = r.stop()
    assert not reading.valid
    assert any("gap" in m for m in reading.invalid_reasons)
    assert reading.energy_j == pytest.approx(800.0)  # interpolated across, not zeroed
    r.close()


# -- cross-check ------------------------------------------------------------------------


def test_cross_check_disagreement_is_a_warning_not_invalid() -> None:
    gpu = SimGpu(power_w=200.0)
    gpu.reported_w = 150.0  # the sensor reads 25 % low against the counter
    r = reader(gpu)
    reading = run(r, gpu, steps=4)
    d = reading.details
    assert reading.energy_j == pytest.approx(800.0)  # the counter decides
    assert d["counter_j"] == pytest.approx(800.0)
    assert d["polled_j"] == pytest.approx(600.0)
    assert d["disagreement_pct"] == pytest.approx(25.0)
    assert len(d["warnings"]) == 1
    assert "disagree by 25.0 %" in d["warnings"][0]
    assert reading.valid
    r.close()


def test_cross_check_threshold_is_a_param() -> None:
    gpu = SimGpu(power_w=200.0)
    gpu.reported_w = 150.0
    r = reader(gpu, crosscheck_pct="30")
    reading = run(r, gpu, steps=4)
    assert reading.details["disagreement_pct"] == pytest.approx(25.0)
    assert reading.details["warnings"] == []
    r.close()


# -- availability, init and shutdown ----------------------------------------------------


def test_pynvml_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    ok, reason = NvmlReader.is_available(ReaderOptions())
    assert not ok
    assert reason == INSTALL_HINT
    assert "pip install 'wattbench[nvml]'" in reason
    with pytest.raises(UnavailableError, match=r"wattbench\[nvml\]"):
        NvmlReader(ReaderOptions())


def test_available_gpu_and_balanced_init_shutdown() -> None:
    gpu = SimGpu()
    ok, reason = NvmlReader.is_available(opts(), nvml=gpu.nvml)
    assert ok
    assert reason == f"GPU 0 ({H100}): energy counter + instant power"
    assert gpu.nvml.nvmlInit.call_count == gpu.nvml.nvmlShutdown.call_count == 1


def test_shutdown_called_once_on_close() -> None:
    gpu = SimGpu()
    r = reader(gpu)
    gpu.nvml.nvmlInit.assert_called_once_with()
    gpu.nvml.nvmlShutdown.assert_not_called()
    r.close()
    r.close()
    gpu.nvml.nvmlShutdown.assert_called_once_with()


def test_failed_construction_shuts_nvml_down() -> None:
    gpu = SimGpu(count=1)
    with pytest.raises(UnavailableError, match=r"nvml.index=0\.\.0"):
        reader(gpu, index="1")
    gpu.nvml.nvmlShutdown.assert_called_once_with()


def test_driver_missing_is_unavailable() -> None:
    gpu = SimGpu()
    gpu.nvml.nvmlInit.side_effect = nvml_error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    ok, reason = NvmlReader.is_available(opts(), nvml=gpu.nvml)
    assert not ok
    assert "NVIDIA driver" in reason
    gpu.nvml.nvmlShutdown.assert_not_called()


def test_bad_params() -> None:
    gpu = SimGpu()
    assert not NvmlReader.is_available(opts(index="first"), nvml=gpu.nvml).available
    with pytest.raises(ConfigError, match=r"nvml\.mode"):
        reader(gpu, mode="fast")
    with pytest.raises(ConfigError, match=r"nvml\.crosscheck_pct"):
        reader(gpu, crosscheck_pct="-1")


def test_start_stop_protocol() -> None:
    gpu = SimGpu()
    r = reader(gpu)
    with pytest.raises(MeasurementError, match="without start"):
        r.stop()
    r.start()
    with pytest.raises(MeasurementError, match="twice"):
        r.start()
    gpu.advance(1.0)
    r.stop()
    r.close()


def test_background_sampling_in_real_time() -> None:
    """The real thread samples at the requested interval and both paths agree."""
    gpu = SimGpu(power_w=250.0)
    lock = threading.Lock()
    t_begin = time.monotonic()
    base_mj = gpu.energy_mj

    def counter(handle: Any) -> int:
        with lock:
            return int(base_mj + 250.0 * (time.monotonic() - t_begin) * 1000.0)

    gpu.nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = counter
    r = NvmlReader(opts(interval_s=0.01), nvml=gpu.nvml)
    try:
        r.start()
        time.sleep(0.3)
        reading = r.stop()
    finally:
        r.close()
    assert reading.energy_j == pytest.approx(250.0 * reading.duration_s, rel=0.02)
    assert reading.details["polled_j"] == pytest.approx(reading.energy_j, rel=0.02)
    assert reading.details["polled_sample_rate_hz"] > 30  # asked for 100 Hz
    assert not any(t.name == "nvml-poll" for t in threading.enumerate())
