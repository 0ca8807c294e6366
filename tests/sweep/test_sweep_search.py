"""The coordinate search on synthetic objectives (the measurement injected): it finds the
grid's optimum with a fraction of the points, walks into the feasible region, and (as
docs/sweeps.md says) can miss an optimum behind a second dip. Then the whole run_sweep on
injected measurements: labels, measured vs grid, throttled points, cooldown."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from wattbench.analysis.sweep import SweepPoint
from wattbench.core.errors import ConfigError
from wattbench.harness.settings_sweep import SweepSpec, grid, load_sweep_file, run_sweep
from wattbench.harness.sweep_search import (
    coordinate_search,
    golden_section,
    grid_size,
    objective,
)

FREQS = [600_000 + 100_000 * i for i in range(20)]  # 20 CPU frequencies, kHz
BATCHES = [1, 2, 4, 8, 16]


def energy(freq: int, batch: int) -> float:
    """J/inference: a valley in frequency (leakage at low clocks, V^2 at high ones) and in
    batch (amortised overheads vs cache misses); their best values interact a little."""
    f = freq / 1e6
    return (
        0.05
        + 0.02 * (f - 1.45 - 0.02 * math.log2(batch)) ** 2
        + 0.01 * (math.log2(batch) - 2.6) ** 2
    )


def latency(freq: int, batch: int) -> float:
    return 4.0 * batch / (freq / 1e6)  # ms: slower at low clocks and big batches


def _point(settings: dict[str, Any], jpi: float, p90: float, valid: bool = True) -> SweepPoint:
    key = ",".join(f"{k}={v}" for k, v in settings.items())
    return SweepPoint(
        key=key, settings=dict(settings), j_per_inference=jpi, inferences_per_joule=1 / jpi,
        latency_ms={"p50": p90, "p90": p90, "p95": p90, "p99": p90}, valid=valid,
    )  # fmt: skip


class Counting:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, settings: dict[str, Any]) -> SweepPoint:
        self.calls.append(dict(settings))
        f, b = settings["cpu-max-freq"], settings["batch"]
        return _point(settings, energy(f, b), latency(f, b))


def _grid_best(bound_ms: float | None = None) -> dict[str, Any]:
    pts = [Counting()(s) for s in grid({"cpu-max-freq": FREQS, "batch": BATCHES})]
    return min(pts, key=lambda p: objective(p, bound_ms)).settings


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 13, 20, 50, 100])
def test_golden_section_finds_the_valley_in_log_steps(n: int) -> None:
    for best in {0, n // 3, n // 2, n - 1}:
        seen: set[int] = set()

        def f(i: int, best: int = best, seen: set[int] = seen) -> tuple[int, float]:
            seen.add(i)
            return (0, abs(i - best) + 0.5 * (i > best))

        assert golden_section(n, f) == best
        assert len(seen) <= max(3, 2 * math.ceil(math.log(n, 1.618)) + 3)


def test_coordinate_search_finds_the_optimum_with_fewer_points() -> None:
    measure = Counting()
    axes = {"cpu-max-freq": FREQS, "batch": BATCHES}
    points = coordinate_search(axes, measure)
    best = min(points, key=lambda p: objective(p, None))
    assert best.settings == _grid_best()
    assert grid_size(axes) == 100
    assert len(points) == len(measure.calls) <= 20  # vs 100 for the grid (13 here)
    # never the same point twice
    assert len({tuple(c.values()) for c in measure.calls}) == len(measure.calls)


def test_with_a_bound_the_search_walks_into_the_feasible_region() -> None:
    bound = 9.0  # only high clocks with small batches are fast enough
    measure = Counting()
    points = coordinate_search(
        {"cpu-max-freq": FREQS, "batch": BATCHES}, measure, bound_ms=bound, percentile="p90"
    )
    best = min(points, key=lambda p: objective(p, bound))
    assert objective(best, bound)[0] == 0  # feasible
    assert best.settings == _grid_best(bound)
    assert len(points) < 50


def test_unordered_axes_are_searched_value_by_value() -> None:
    seen: list[dict[str, Any]] = []

    def measure(s: dict[str, Any]) -> SweepPoint:
        seen.append(s)
        jpi = {"fp32": 0.3, "fp16": 0.2, "int8": 0.1}[s["precision"]] * (1 + abs(s["batch"] - 4))
        return _point(s, jpi, 1.0)

    points = coordinate_search({"precision": ["fp32", "fp16", "int8"], "batch": BATCHES}, measure)
    best = min(points, key=lambda p: objective(p, None))
    assert best.settings == {"precision": "int8", "batch": 4}
    assert len(points) < 15


def test_a_second_dip_can_be_missed() -> None:
    """Not unimodal: a narrow dip far from the broad valley the search settles in (what
    docs/sweeps.md warns about; the exhaustive search finds it)."""

    def jpi(i: int) -> float:
        return 0.01 if i == 1 else 1.0 + abs(i - 14) / 20

    pts = coordinate_search({"batch": list(range(20))}, lambda s: _point(s, jpi(s["batch"]), 1.0))
    best = min(pts, key=lambda p: objective(p, None))
    assert best.settings == {"batch": 14}  # not 1, the true optimum
    assert len(pts) < 20


def test_invalid_points_rank_last() -> None:
    bad = _point({"batch": 1}, 0.001, 1.0, valid=False)
    good = _point({"batch": 2}, 1.0, 1.0)
    slow = _point({"batch": 3}, 0.5, 20.0)
    assert objective(good, 10) < objective(slow, 10) < objective(bad, 10)


# -- run_sweep with the measurement injected -----------------------------------------------
def _result(cfg: Any, *, throttled_index: int | None = None) -> Any:
    """What point_from_result reads of a RunResult, from the config's batch/threads."""
    b, t = cfg.batch, cfg.threads or 2
    jpi = 0.1 + 0.01 * (b - 4) ** 2 + 0.02 * (t - 3) ** 2
    lat = SimpleNamespace(p50_ms=b * 1.0, p90_ms=b * 1.2, p95_ms=b * 1.3, p99_ms=b * 1.5)
    trials = [
        SimpleNamespace(throttled=i == throttled_index, max_temp_c=60.0 + i) for i in range(2)
    ]
    return SimpleNamespace(
        run_id=f"run-{b}-{t}",
        headline=SimpleNamespace(joules_per_inference=jpi, inferences_per_joule=1 / jpi),
        latency=lat,
        throughput_ips=100.0,
        valid=True,
        trials=trials,
    )


class FakeSession:
    def apply(self, name: str, value: Any) -> None:
        raise AssertionError("no tuner in this sweep")


def _run(spec: SweepSpec, **kw: Any) -> tuple[Any, list[Any]]:
    configs: list[Any] = []

    def base_config(overrides: dict[str, Any]) -> Any:
        labels = overrides.pop("_labels")
        cfg = SimpleNamespace(batch=overrides.get("batch", 1), threads=overrides.get("threads"))
        cfg.labels = labels
        configs.append(cfg)
        return cfg

    def measure(cfg: Any) -> Any:
        return _result(cfg, throttled_index=1 if (cfg.batch, cfg.threads) == (4, 3) else None)

    result = run_sweep(
        spec, base_config=base_config, measure=measure, tuners={}, session=FakeSession(),
        sweep_id="abc", **kw,
    )  # fmt: skip
    return result, configs


def test_run_sweep_coordinate_reports_measured_vs_grid() -> None:
    spec = SweepSpec(
        run_options={}, source="t", base_dir=None,
        axes={"batch": [1, 2, 4, 8, 16, 32], "threads": [1, 2, 3, 4, 5, 6, 7, 8]},
        search="bisect", latency_bound_ms=20.0,
    )  # fmt: skip
    result, configs = _run(spec)
    data = result.as_dict()
    assert data["search"] == "coordinate" and data["grid"] == 48
    assert data["measured"] == len(configs) - 1 < 30  # the baseline apart
    assert data["optimal"]["key"] == "batch=4,threads=3"
    assert data["throttled"] == ["batch=4,threads=3"]  # its trial 2 throttled
    assert data["optimal"]["throttled"] and data["optimal"]["max_temp_c"] == 61.0
    for cfg in configs:
        assert "sweep:abc" in cfg.labels
        assert "sweep-meta:search=coordinate,grid=48,p90<=20ms" in cfg.labels
    assert "setting:baseline" in configs[0].labels


def test_run_sweep_exhaustive_measures_the_grid() -> None:
    spec = SweepSpec(run_options={}, source="t", base_dir=None, axes={"batch": [1, 4]})
    result, configs = _run(spec)
    assert (result.measured, result.grid) == (2, 2) and len(configs) == 3
    assert "sweep-meta:search=exhaustive,grid=2,p90" in configs[1].labels


class HotMonitor:
    """A monitor whose device cools 10 C per sleep."""

    def __init__(self) -> None:
        self.temp = 80.0
        self.expected_cpu_khz: int | None = None
        self.ignore_reasons: set[str] = set()

    def has_sources(self) -> bool:
        return True

    def temperature(self, match: str | None = None) -> float:
        return self.temp


def test_cooldown_until_temp_waits_before_each_point() -> None:
    mon = HotMonitor()
    now = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s
        mon.temp -= 10

    spec = SweepSpec(
        run_options={}, source="t", base_dir=None, axes={"batch": [1, 4]},
        cooldown_until_c=50.0, cooldown_timeout_s=100.0,
    )  # fmt: skip
    said: list[str] = []
    result, _ = _run(spec, thermal=mon, sleep=sleep, clock=lambda: now[0], say=said.append)
    assert len(waits) == 3 and mon.temp == 50.0  # cooled before the first point only
    assert any("cooled to 50 C" in s for s in said) and not result.notes
    spec.cooldown_timeout_s = 1.0
    mon.temp = 90.0
    result, _ = _run(spec, thermal=mon, sleep=lambda s: now.__setitem__(0, now[0] + s),
                     clock=lambda: now[0])  # fmt: skip
    assert len(result.notes) == 3 and "still 90 C after 1 s" in result.notes[0]


def test_sweep_file_keys_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        '[run]\nsuite = "mobilenet_v2"\n[sweep]\npower-mode = ["MAXN", "15W"]\n'
        "jetson-clocks = true\ncooldown-until-temp = 55\ncooldown-timeout-s = 120\n"
        'cooldown-sensor = "CPU"\nsearch = "coordinate"\n'
    )
    spec = load_sweep_file(f)
    assert spec.jetson_clocks and spec.cooldown_until_c == 55.0
    assert spec.cooldown_timeout_s == 120.0 and spec.cooldown_sensor == "CPU"
    f.write_text('[run]\nsuite = "x"\n[sweep]\nbatch = [1]\njetson-clocks = "yes"\n')
    with pytest.raises(ConfigError, match="jetson-clocks must be true or false"):
        load_sweep_file(f)
    f.write_text('[run]\nsuite = "x"\n[sweep]\nbatch = [1]\njetson-clocks = true\n')
    with pytest.raises(ConfigError, match="sweep power-mode too"):
        _run(load_sweep_file(f))
    f.write_text('[run]\nsuite = "x"\n[sweep]\nbatch = [1]\nsearch = "random"\n')
    with pytest.raises(ConfigError, match=r"unknown search 'random'.*coordinate.*bisect"):
        _run(load_sweep_file(f))
