"""``wattbench sweep settings``: measure a grid of runtime and device settings.

The sweep file has a ``[run]`` table (the keys of ``wattbench run``) and a ``[sweep]`` table
of value lists. The baseline (the run as configured, device settings untouched) is always
measured first; then every point of the grid is a normal run, stored with the labels
``sweep:<id>`` and ``setting:<key>=<value>``. Device settings (CPU max frequency, Jetson
power mode, GPU power limit) are changed through tuners under a journal
(:class:`wattbench.core.tuning.TuneSession`), so they come back however the sweep ends.
"""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattbench.analysis.sweep import PERCENTILES, SweepAnswer, SweepPoint, answer, point_from_result
from wattbench.core.config import RunConfig, fields_from_options
from wattbench.core.errors import ConfigError
from wattbench.core.tuner import Tuner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: sweep keys that are RunConfig fields (the run options of the same name)
RUN_KEYS = ("batch", "threads", "precision")
#: sweep keys served by a tuner: key -> tuner name
TUNER_KEYS = {
    "cpu-max-freq": "cpufreq",
    "power-mode": "jetson",
    "gpu-power-limit": "nvml-power-limit",
}
#: other keys of [sweep]
OPTION_KEYS = ("latency-bound-ms", "percentile", "search")
SEARCHES = ("exhaustive",)


@dataclass
class SweepSpec:
    run_options: dict[str, Any]
    source: str
    base_dir: Path | None
    axes: dict[str, list[Any]] = field(default_factory=dict)
    latency_bound_ms: float | None = None
    percentile: str = "p90"
    search: str = "exhaustive"


def load_sweep_file(path: Path) -> SweepSpec:
    """The ``[run]`` and ``[sweep]`` tables of ``path``; one ConfigError line per mistake."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    run, sweep = data.get("run", {}), data.get("sweep")
    if not isinstance(run, dict) or not isinstance(sweep, dict):
        raise ConfigError(f"{path}: needs a [run] table (run options) and a [sweep] table")
    spec = SweepSpec(run_options=dict(run), source=str(path), base_dir=path.resolve().parent)
    known = (*RUN_KEYS, *TUNER_KEYS, *OPTION_KEYS)
    for key, value in sweep.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown [sweep] key {key!r} (keys: {', '.join(known)})")
        if key == "latency-bound-ms":
            spec.latency_bound_ms = float(value)
        elif key == "percentile":
            spec.percentile = str(value)
        elif key == "search":
            spec.search = str(value)
        elif value == "all" and key in TUNER_KEYS:
            spec.axes[key] = ["all"]
        elif isinstance(value, list) and value:
            spec.axes[key] = list(value)
        else:
            raise ConfigError(f"{path}: [sweep] {key} must be a non-empty list of values")
    if not spec.axes:
        raise ConfigError(f"{path}: [sweep] lists no setting to sweep (e.g. batch = [1, 4])")
    return spec


def point_key(settings: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in settings.items()) or "baseline"


def grid(axes: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, in file order (the last axis varies fastest)."""
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]


class SweepResult:
    def __init__(self, sweep_id: str, points: list[SweepPoint], result: SweepAnswer, search: str):
        self.sweep_id, self.points, self.answer, self.search = sweep_id, points, result, search

    def by_key(self, key: str | None) -> SweepPoint | None:
        return next((p for p in self.points if p.key == key), None)

    def as_dict(self) -> dict[str, Any]:
        base = next((p for p in self.points if p.baseline), None)
        best = self.by_key(self.answer.optimal)
        return {
            "sweep_id": self.sweep_id,
            "search": self.search,
            "percentile": self.answer.percentile,
            "latency_bound_ms": self.answer.latency_bound_ms,
            "points": [p.model_dump() for p in self.points],
            "pareto": self.answer.pareto,
            "optimal": best.model_dump() if best else None,
            "baseline": base.model_dump() if base else None,
            "gain": self.answer.gain,
            "saving": self.answer.saving,
        }


#: measures one run: (config) -> RunResult, stored
Measure = Callable[[RunConfig], Any]


def run_sweep(
    spec: SweepSpec,
    *,
    base_config: Callable[[dict[str, Any]], RunConfig],
    measure: Measure,
    tuners: Mapping[str, Tuner],
    session: Any,
    say: Callable[[str], None] = lambda _s: None,
    sweep_id: str | None = None,
) -> SweepResult:
    """Measure the baseline then every grid point; ``session`` applies tuner values
    (a :class:`~wattbench.core.tuning.TuneSession` already entered)."""
    if spec.search not in SEARCHES:
        raise ConfigError(f"unknown search {spec.search!r} (known: {', '.join(SEARCHES)})")
    if spec.percentile not in PERCENTILES:
        raise ConfigError(f"invalid percentile {spec.percentile!r}: use {', '.join(PERCENTILES)}")
    sweep_id = sweep_id or uuid.uuid4().hex[:8]
    axes = dict(spec.axes)
    for key, values in axes.items():
        if key in TUNER_KEYS:
            tuner = tuners[TUNER_KEYS[key]]
            axes[key] = (
                tuner.allowed_values()
                if values == ["all"]
                else [tuner.parse_value(v) for v in values]
            )
    points: list[SweepPoint] = []
    todo = [({}, True), *((s, False) for s in grid(axes))]
    for n, (settings, is_base) in enumerate(todo):
        labels = [f"sweep:{sweep_id}"]
        overrides: dict[str, Any] = {}
        shown: dict[str, Any] = {}
        for key, value in settings.items():
            if key in TUNER_KEYS:
                tuner = tuners[TUNER_KEYS[key]]
                session.apply(tuner.name, value)
                shown[key] = tuner.describe(value)
            else:
                overrides[key] = value
                shown[key] = value
            labels.append(f"setting:{key}={shown[key]}")
        if is_base:
            labels.append("setting:baseline")
        cfg = base_config({**overrides, "_labels": labels})
        key = point_key(shown)
        say(f"sweep {sweep_id}: point {n + 1}/{len(todo)}: {key}")
        result = measure(cfg)
        points.append(point_from_result(result, key=key, settings=shown, baseline=is_base))
    marked, result_answer = answer(
        points, bound_ms=spec.latency_bound_ms, percentile=spec.percentile
    )
    return SweepResult(sweep_id, marked, result_answer, spec.search)


def config_builder(
    spec: SweepSpec, resolve: Callable[[dict[str, Any]], RunConfig]
) -> Callable[[dict[str, Any]], RunConfig]:
    """A function from a point's run overrides to its RunConfig (the [run] table + them)."""
    base = fields_from_options(spec.run_options, source=spec.source, base_dir=spec.base_dir)

    def build(overrides: dict[str, Any]) -> RunConfig:
        fields = dict(base)
        extra = list(overrides.pop("_labels", []))
        fields.update(fields_from_options(overrides, source=f"[sweep] of {spec.source}"))
        fields["labels"] = (*tuple(fields.get("labels", ())), *extra)
        return resolve(fields)

    return build
