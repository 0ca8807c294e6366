"""A sweep sets every value and restores the original: `power-mode` on a fake nvpmodel and
`gpu-power-limit` on an autospec'd fake NVML (through run_sweep under a real TuneSession),
and Ctrl-C (SIGINT) to a CLI sweep on the fake cpufreq tree."""

from __future__ import annotations

import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import snapshot
from test_jetson_tuner import FakeNvpmodel
from test_journal import _start_and_wait_for_journal

from wattbench.core.tuner import Tuner
from wattbench.core.tuning import TuneSession, read_journal
from wattbench.harness.settings_sweep import SweepSpec, run_sweep
from wattbench.tuners.jetson import JetsonPowerModeTuner
from wattbench.tuners.nvml_power import NvmlPowerLimitTuner


def _sweep(
    key: str, values: list[Any], tuner: Tuner, journal: Path, device_state: Any
) -> tuple[list[Any], Any]:
    """Run a sweep over ``key``; the device state seen by each point's measurement, and the
    journal's saved entry as it was mid-sweep."""
    seen: list[Any] = []
    journalled: list[Any] = []

    def measure(cfg: Any) -> Any:
        seen.append(device_state())
        data = read_journal(journal)
        journalled.append(data["entries"][tuner.name]["saved"] if data else None)
        n = len(seen)
        lat = SimpleNamespace(p50_ms=1.0 * n, p90_ms=1.2 * n, p95_ms=1.3 * n, p99_ms=1.5 * n)
        return SimpleNamespace(
            run_id=f"run-{n}", valid=True, trials=[], throughput_ips=100.0, latency=lat,
            headline=SimpleNamespace(joules_per_inference=0.1 * n, inferences_per_joule=10 / n),
        )  # fmt: skip

    spec = SweepSpec(run_options={}, source="t", base_dir=None, axes={key: values})
    with TuneSession({tuner.name: tuner}) as session:
        result = run_sweep(
            spec,
            base_config=lambda overrides: SimpleNamespace(**overrides),
            measure=measure,
            tuners={tuner.name: tuner},
            session=session,
        )
    assert result.measured == len(tuner.allowed_values() if values == ["all"] else values)
    assert journalled[0] is None  # the baseline changes nothing
    assert len(set(map(str, journalled[1:]))) == 1  # the original, saved once
    return seen, journalled[1]


def test_power_mode_sweep_sets_every_mode_then_restores(journal: Path) -> None:
    fake = FakeNvpmodel()
    fake.mode = 2  # the device's own mode: 15W
    tuner = JetsonPowerModeTuner(fake, is_root=lambda: True)
    seen, saved = _sweep("power-mode", ["all"], tuner, journal, lambda: fake.mode)
    assert seen == [2, 0, 1, 2, 3]  # baseline untouched, then each mode in turn
    assert saved == 2
    assert [c for c in fake.calls if c[0] == "-m"] == [["-m", m] for m in "01232"]
    assert fake.mode == 2 and not journal.exists()


def test_power_mode_sweep_restores_after_an_error(journal: Path) -> None:
    fake = FakeNvpmodel()
    fake.mode = 1
    tuner = JetsonPowerModeTuner(fake, is_root=lambda: True)

    def measure(cfg: Any) -> Any:
        if fake.mode == 3:
            raise RuntimeError("the runtime crashed at 25W")
        return SimpleNamespace(
            run_id="r", valid=True, trials=[], throughput_ips=1.0,
            latency=SimpleNamespace(p50_ms=1.0, p90_ms=1.0, p95_ms=1.0, p99_ms=1.0),
            headline=SimpleNamespace(joules_per_inference=0.1, inferences_per_joule=10.0),
        )  # fmt: skip

    spec = SweepSpec(run_options={}, source="t", base_dir=None, axes={"power-mode": [0, 3, 2]})
    with pytest.raises(RuntimeError, match="25W"), TuneSession({"jetson": tuner}) as session:
        run_sweep(
            spec, base_config=lambda o: SimpleNamespace(**o), measure=measure,
            tuners={"jetson": tuner}, session=session,
        )  # fmt: skip
    assert fake.mode == 1 and not journal.exists()


def test_gpu_power_limit_sweep_sets_every_limit_then_restores(journal: Path) -> None:
    from test_nvml_tuner import fake_nvml

    nvml = fake_nvml(limit_mw=450_000)  # the card's own limit, not on the grid
    tuner = NvmlPowerLimitTuner(nvml, is_root=lambda: True, step_w=100)
    seen, saved = _sweep("gpu-power-limit", ["all"], tuner, journal, lambda: nvml.state["limit"])
    grid_mw = [200_000, 300_000, 400_000, 500_000, 600_000, 700_000]
    assert seen == [450_000, *grid_mw]
    assert saved == {"0": 450.0}
    calls = [c.args for c in nvml.nvmlDeviceSetPowerManagementLimit.call_args_list]
    assert calls == [("gpu0", mw) for mw in [*grid_mw, 450_000]]
    assert nvml.state["limit"] == 450_000 and not journal.exists()


def test_gpu_power_limit_sweep_of_listed_watts(journal: Path) -> None:
    from test_nvml_tuner import fake_nvml

    nvml = fake_nvml(limit_mw=700_000)
    tuner = NvmlPowerLimitTuner(nvml, is_root=lambda: True)
    seen, _ = _sweep("gpu-power-limit", ["250W", 300, "450"], tuner, journal,
                     lambda: nvml.state["limit"])  # fmt: skip
    assert seen == [700_000, 250_000, 300_000, 450_000]
    assert nvml.state["limit"] == 700_000 and not journal.exists()


@pytest.mark.e2e
def test_sigint_mid_sweep_restores_the_tree(
    tmp_path: Path, cpufreq_tree: Path, journal: Path
) -> None:
    before = snapshot(cpufreq_tree)
    proc = _start_and_wait_for_journal(tmp_path, cpufreq_tree, journal)
    assert snapshot(cpufreq_tree) != before  # a setting is applied
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130  # typer turns KeyboardInterrupt into Exit(130)
    stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert "Traceback" not in stderr and "could not restore" not in stderr, stderr[-2000:]
    assert snapshot(cpufreq_tree) == before and not journal.exists()
