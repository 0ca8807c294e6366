from __future__ import annotations

from pathlib import Path

import pytest

from wattbench.analysis.sweep import SweepPoint, answer
from wattbench.core.errors import ConfigError
from wattbench.harness.settings_sweep import grid, load_sweep_file


def _p(key: str, j: float, p90: float, *, base: bool = False, valid: bool = True) -> SweepPoint:
    return SweepPoint(
        key=key, settings={}, baseline=base, j_per_inference=j, inferences_per_joule=1 / j,
        latency_ms={"p50": p90 / 2, "p90": p90, "p95": p90, "p99": p90 * 1.5}, valid=valid,
    )  # fmt: skip


POINTS = [
    _p("baseline", 0.10, 5.0, base=True),
    _p("a", 0.05, 20.0),
    _p("b", 0.08, 4.0),
    _p("c", 0.09, 30.0),  # dominated by a
    _p("d", 0.01, 1.0, valid=False),  # invalid: never chosen
]


def test_front_optimum_and_gain_without_a_bound() -> None:
    marked, ans = answer(POINTS)
    assert ans.pareto == ["b", "a"]
    assert ans.optimal == "a"
    assert ans.gain == pytest.approx(2.0) and ans.saving == pytest.approx(0.5)
    assert all(p.feasible is None for p in marked)


def test_the_bound_excludes_slow_points() -> None:
    marked, ans = answer(POINTS, bound_ms=10.0)
    assert ans.optimal == "b" and ans.gain == pytest.approx(0.10 / 0.08)
    assert [p.key for p in marked if p.feasible] == ["baseline", "b", "d"]
    _, none = answer(POINTS, bound_ms=0.5)
    assert none.optimal is None and none.gain is None


def test_the_percentile_is_chosen() -> None:
    _, ans = answer(POINTS, bound_ms=25.0, percentile="p99")  # a's p99 is 30
    assert ans.optimal == "b"


def test_grid_is_the_product_in_file_order() -> None:
    assert grid({"batch": [1, 2], "threads": [1, 4]}) == [
        {"batch": 1, "threads": 1},
        {"batch": 1, "threads": 4},
        {"batch": 2, "threads": 1},
        {"batch": 2, "threads": 4},
    ]


def test_sweep_file_errors_are_one_line(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[run]\nsuite = "mobilenet_v2"\n[sweep]\nbatchs = [1]\n')
    with pytest.raises(ConfigError, match="unknown \\[sweep\\] key 'batchs'"):
        load_sweep_file(f)
    f.write_text('[run]\nsuite = "mobilenet_v2"\n[sweep]\nbatch = 4\n')
    with pytest.raises(ConfigError, match="non-empty list"):
        load_sweep_file(f)
    f.write_text(
        '[run]\nsuite = "mobilenet_v2"\n[sweep]\ncpu-max-freq = "all"\npercentile = "p99"\n'
    )
    spec = load_sweep_file(f)
    assert spec.axes == {"cpu-max-freq": ["all"]} and spec.percentile == "p99"
