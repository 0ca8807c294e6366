"""``wattbench sweep settings``: measure a grid of runtime and device settings.

The sweep file has a ``[run]`` table (the keys of ``wattbench run``) and a ``[sweep]`` table
of value lists. The baseline (the run as configured, device settings untouched) is always
measured first; then every point of the grid is a normal run, stored with the labels
``sweep:<id>`` and ``setting:<key>=<value>``. Device settings (CPU max frequency, Jetson
power mode, GPU power limit) are changed through tuners under a journal
(:class:`wattbench.core.tuning.TuneSession`), so they come back however the sweep ends.

The points are chosen by a search (:mod:`wattbench.harness.sweep_search`): the whole grid,
or a coordinate search that measures a fraction of it. Every point's trials are watched by
a thermal monitor (:mod:`wattbench.power.thermal`): throttled trials are marked, and with
``cooldown-until-temp`` the sweep waits between points until the device has cooled.
"""

from __future__ import annotations

import itertools
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattbench.analysis.sweep import PERCENTILES, SweepAnswer, SweepPoint, answer, point_from_result
from wattbench.core.config import RunConfig, fields_from_options
from wattbench.core.errors import ConfigError
from wattbench.core.tuner import Tuner
from wattbench.harness.sweep_search import (
    SEARCH_ALIASES,
    SEARCHES,
    canonical_search,
    coordinate_search,
    grid_size,
)
from wattbench.power.thermal import ThermalMonitor, wait_until_cool

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
OPTION_KEYS = (
    "latency-bound-ms",
    "percentile",
    "search",
    "jetson-clocks",
    "cooldown-until-temp",
    "cooldown-timeout-s",
    "cooldown-sensor",
)
#: a label on every run of a sweep: how it was searched, its grid size and latency bound
META_PREFIX = "sweep-meta:"


@dataclass
class SweepSpec:
    run_options: dict[str, Any]
    source: str
    base_dir: Path | None
    axes: dict[str, list[Any]] = field(default_factory=dict)
    latency_bound_ms: float | None = None
    percentile: str = "p90"
    search: str = "exhaustive"
    #: pin clocks with `jetson_clocks` after each power-mode change (stored and restored)
    jetson_clocks: bool = False
    #: before each point, wait until the hottest sensor is at or below this (deg C)
    cooldown_until_c: float | None = None
    cooldown_timeout_s: float = 600.0
    #: only sensors whose name contains this count for the cooldown
    cooldown_sensor: str | None = None


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
        elif key == "jetson-clocks":
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: [sweep] jetson-clocks must be true or false")
            spec.jetson_clocks = value
        elif key == "cooldown-until-temp":
            spec.cooldown_until_c = _number(path, key, value)
        elif key == "cooldown-timeout-s":
            spec.cooldown_timeout_s = _number(path, key, value)
        elif key == "cooldown-sensor":
            spec.cooldown_sensor = str(value)
        elif value == "all" and key in TUNER_KEYS:
            spec.axes[key] = ["all"]
        elif isinstance(value, list) and value:
            spec.axes[key] = list(value)
        else:
            raise ConfigError(f"{path}: [sweep] {key} must be a non-empty list of values")
    if not spec.axes:
        raise ConfigError(f"{path}: [sweep] lists no setting to sweep (e.g. batch = [1, 4])")
    return spec


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: [sweep] {key} must be a number, got {value!r}")
    return float(value)


def point_key(settings: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in settings.items()) or "baseline"


def grid(axes: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, in file order (the last axis varies fastest)."""
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]


class SweepResult:
    def __init__(
        self,
        sweep_id: str,
        points: list[SweepPoint],
        result: SweepAnswer,
        search: str,
        *,
        grid: int | None = None,
        notes: list[str] | None = None,
    ):
        self.sweep_id, self.points, self.answer, self.search = sweep_id, points, result, search
        #: grid points measured (the baseline apart) and the grid's size
        self.measured = sum(1 for p in points if not p.baseline)
        self.grid = grid if grid is not None else self.measured
        self.notes = list(notes or [])

    def by_key(self, key: str | None) -> SweepPoint | None:
        return next((p for p in self.points if p.key == key), None)

    def as_dict(self) -> dict[str, Any]:
        base = next((p for p in self.points if p.baseline), None)
        best = self.by_key(self.answer.optimal)
        return {
            "sweep_id": self.sweep_id,
            "search": self.search,
            "measured": self.measured,
            "grid": self.grid,
            "percentile": self.answer.percentile,
            "latency_bound_ms": self.answer.latency_bound_ms,
            "points": [p.model_dump() for p in self.points],
            "pareto": self.answer.pareto,
            "optimal": best.model_dump() if best else None,
            "baseline": base.model_dump() if base else None,
            "gain": self.answer.gain,
            "saving": self.answer.saving,
            "throttled": [p.key for p in self.points if p.throttled],
            "notes": self.notes,
        }


#: measures one run: (config) -> RunResult, stored
Measure = Callable[[RunConfig], Any]


def meta_label(search: str, grid_points: int, bound_ms: float | None, percentile: str) -> str:
    """``sweep-meta:search=coordinate,grid=100,p90<=50ms``: what the dashboard shows."""
    bound = f",{percentile}<={bound_ms:g}ms" if bound_ms is not None else f",{percentile}"
    return f"{META_PREFIX}search={search},grid={grid_points}{bound}"


def check_spec(spec: SweepSpec) -> str:
    """The spec's search (aliases resolved); one ConfigError line per mistake."""
    search = canonical_search(spec.search)
    if search not in SEARCHES:
        known = ", ".join((*SEARCHES, *SEARCH_ALIASES))
        raise ConfigError(f"unknown search {spec.search!r} (known: {known})")
    if spec.percentile not in PERCENTILES:
        raise ConfigError(f"invalid percentile {spec.percentile!r}: use {', '.join(PERCENTILES)}")
    if spec.jetson_clocks and "power-mode" not in spec.axes:
        raise ConfigError(
            "jetson-clocks = true pins clocks around Jetson power-mode changes: sweep "
            "power-mode too, or drop it"
        )
    if spec.cooldown_until_c is not None and spec.cooldown_timeout_s <= 0:
        raise ConfigError("cooldown-timeout-s must be > 0")
    return search


def run_sweep(
    spec: SweepSpec,
    *,
    base_config: Callable[[dict[str, Any]], RunConfig],
    measure: Measure,
    tuners: Mapping[str, Tuner],
    session: Any,
    say: Callable[[str], None] = lambda _s: None,
    sweep_id: str | None = None,
    thermal: ThermalMonitor | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SweepResult:
    """Measure the baseline then the points the search picks; ``session`` applies tuner
    values (a :class:`~wattbench.core.tuning.TuneSession` already entered). ``thermal``
    (the monitor ``measure`` hands to the runner) learns each point's CPU frequency and
    serves ``cooldown-until-temp``."""
    search = check_spec(spec)
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
    size = grid_size(axes)
    meta = meta_label(search, size, spec.latency_bound_ms, spec.percentile)
    notes: list[str] = []
    count = [0]
    planned = size + 1 if search == "exhaustive" else None

    def cool_down() -> None:
        if spec.cooldown_until_c is None:
            return
        if thermal is None or not thermal.has_sources():
            if "no temperature sensor" not in " ".join(notes):
                notes.append("cooldown-until-temp: no temperature sensor here; not waiting")
                say(f"warning: {notes[-1]}")
            return
        ok, temp, waited = wait_until_cool(
            thermal,
            spec.cooldown_until_c,
            timeout_s=spec.cooldown_timeout_s,
            sensor=spec.cooldown_sensor,
            sleep=sleep,
            clock=clock,
        )
        shown = "?" if temp is None else f"{temp:g} C"
        if not ok:
            notes.append(
                f"point {count[0]}: still {shown} after {waited:.0f} s "
                f"(cooldown-until-temp {spec.cooldown_until_c:g} C); measured anyway"
            )
            say(f"warning: {notes[-1]}")
        elif waited >= 1:
            say(f"sweep {sweep_id}: cooled to {shown} in {waited:.0f} s")

    def measure_point(settings: dict[str, Any], is_base: bool = False) -> SweepPoint:
        count[0] += 1
        cool_down()
        labels = [f"sweep:{sweep_id}", meta]
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
        if thermal is not None:
            # throttling = the fastest CPU below the frequency this point set
            freq = settings.get("cpu-max-freq")
            thermal.expected_cpu_khz = int(freq) if freq is not None else None
            # a point that caps GPU power is meant to hit the cap
            thermal.ignore_reasons = {"sw_power_cap"} if "gpu-power-limit" in settings else set()
        cfg = base_config({**overrides, "_labels": labels})
        key = point_key(shown)
        of = f"/{planned}" if planned else f" (grid {size})"
        say(f"sweep {sweep_id}: point {count[0]}{of}: {key}")
        result = measure(cfg)
        point = point_from_result(result, key=key, settings=shown, baseline=is_base)
        if point.throttled:
            say(f"sweep {sweep_id}: {key} THROTTLED (max {point.max_temp_c} C)")
        return point

    points = [measure_point({}, is_base=True)]
    if search == "exhaustive":
        points += [measure_point(s) for s in grid(axes)]
    else:
        points += coordinate_search(
            axes, measure_point, bound_ms=spec.latency_bound_ms, percentile=spec.percentile
        )
    marked, result_answer = answer(
        points, bound_ms=spec.latency_bound_ms, percentile=spec.percentile
    )
    return SweepResult(sweep_id, marked, result_answer, search, grid=size, notes=notes)


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
