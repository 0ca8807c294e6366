"""Plausibility of a run: the one place that decides whether a result may be stored.

:func:`validate_result` returns every :class:`Problem` (a JSON path and a one-line
message) of a :class:`~wattbench.core.results.RunResult`; an empty list means it may be
stored. Three places apply it, so no implausible figure reaches a leaderboard:

* the runner, before saving a run (``wattbench run``: one ``error:`` line, nothing
  stored);
* the ingest API (``POST /api/v1/runs``: 422 with the JSON path of each bad field);
* ``wattbench import`` and uploads straight into a database.

The rules (docs/reliability.md lists them with examples):

1. **identity**: ``run_id`` is a UUID;
2. **finite**: every number anywhere in the run (figures, traces, details) is finite — no
   NaN, no infinity; integers fit in 64 bits;
3. **non-negative**: energies (gross J, idle W, power, uncertainty), latencies (every
   ``*_ms``), durations, throughputs, rates and counts (inferences, queries, samples,
   histogram counts). Net energy may be negative (a noisy idle baseline; the run warns);
4. **latency order**: in every latency summary ``min ≤ p50 ≤ p90 ≤ p95 ≤ p99 ≤ p99.9 ≤
   max`` and ``min ≤ mean ≤ max`` (within :data:`ORDER_TOLERANCE`, relative);
5. **consistency** (within :data:`RATIO_TOLERANCE` = 0.1 %, relative): each energy
   summary's inferences per joule = the run's inferences ÷ its gross J, and joules per
   inference the inverse; each trial's throughput = its inferences ÷ its duration; the
   run's throughput = its inferences ÷ the summed trial durations. Text generation's
   prefill summaries are checked against the prefill trials' tokens;
6. **net ≤ gross** energy, per trial reading and per summary;
7. **time**: ``started_at ≤ finished_at``, and ``finished_at`` not after now +
   :data:`CLOCK_SKEW_S` (5 minutes: a device clock may be a little ahead, not a day);
8. **bounded text and lists**: the database column widths (suite ≤ 100 characters,
   device name ≤ 200, …, see :data:`COLUMN_LIMITS`), labels ≤ :data:`MAX_LABEL_CHARS`
   characters and at most :data:`MAX_LABELS`; names (suite, scenario, device, model,
   adapter, readers, labels) carry no control characters; no string anywhere holds a
   NUL character or a lone surrogate (PostgreSQL cannot store them) or exceeds
   :data:`MAX_TEXT_CHARS`; lists are bounded (:data:`LIST_LIMITS`, any other list or
   mapping :data:`MAX_ITEMS` entries, nesting :data:`MAX_DEPTH` levels); device facts
   have their column's type;
9. **uncertainty**: every measured energy summary (method not ``estimated``) has an
   ``uncertainty_j`` — a figure nobody vouches for is not ranked beside ones that are
   (the reader must report its accuracy; see docs/measurement.md).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from wattbench.core.power import EnergyMethod
from wattbench.core.results import EnergySummary, RunResult, TrialEnergy, TrialResult
from wattbench.core.stats import LatencyStats

#: Relative tolerance of the consistency rules (figures derived from others).
RATIO_TOLERANCE = 1e-3
#: Relative tolerance of the ordering rules (float round-off of percentiles and means).
ORDER_TOLERANCE = 1e-9
#: How far a run's finish may lie in the future (device clock ahead of the server's).
CLOCK_SKEW_S = 300.0
#: Longest string anywhere in a run (logs in ``artifacts`` included).
MAX_TEXT_CHARS = 1_000_000
#: Longest warning, invalid reason or ``inputs`` description.
MAX_NOTE_CHARS = 10_000
#: Labels of one run, and the longest label.
MAX_LABELS = 100
MAX_LABEL_CHARS = 200
#: Entries of any list or mapping not in LIST_LIMITS, and nesting depth.
MAX_ITEMS = 100_000
MAX_DEPTH = 32
#: Problems reported at most (the rest are counted).
MAX_PROBLEMS = 50
_INT64 = 2**63 - 1

#: Column widths of the fields stored in fixed-width columns (schema.py).
COLUMN_LIMITS: tuple[tuple[str, int], ...] = (
    ("suite", 100),
    ("suite_version", 50),
    ("scenario", 50),
    ("adapter.adapter", 100),
    ("adapter.runtime_version", 100),
    ("adapter.execution_provider", 200),
    ("adapter.device", 100),
    ("adapter.precision", 20),
    ("model.sha256", 64),
    ("model.name", 200),
    ("model.format", 50),
    ("model.precision", 20),
    ("model.weights", 200),
)
#: Device facts with a column: (types, longest text).
DEVICE_FIELDS: dict[str, tuple[type | tuple[type, ...], int | None]] = {
    "name": (str, 200),
    "hostname": (str, 255),
    "cpu_model": (str, 255),
    "arch": (str, 50),
    "accelerator": (str, 200),
    "currency": (str, 3),
    "rack": (str, 100),
    "location": (str, 200),
    "cpu_cores_logical": (int, None),
    "cpu_cores_physical": (int, None),
    "memory_bytes": (int, None),
    "nameplate_power_w": ((int, float), None),
    "purchase_price": ((int, float), None),
    "tags": ((list, dict), None),
}
#: Names: no control characters (they are shown in tables, logs and HTML).
NAME_FIELDS = (
    "suite",
    "suite_version",
    "scenario",
    "adapter.adapter",
    "adapter.runtime",
    "adapter.runtime_version",
    "adapter.execution_provider",
    "adapter.device",
    "model.name",
    "model.sha256",
    "model.format",
    "model.weights",
)
#: Bounded lists, by field.
LIST_LIMITS: dict[str, int] = {
    "trials": 1000,
    "energy": 64,
    "latency_histogram": 1000,
    "warnings": 1000,
    "invalid_reasons": 1000,
    "trace": 100_000,
}


@dataclass(frozen=True)
class Problem:
    """One implausible field: its JSON path (``trials[0].throughput_ips``) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def missing_uncertainty(reader: str) -> str:
    """Why a measured figure of ``reader`` without an uncertainty is refused, and the remedy."""
    return (
        f"measured energy of reader {reader!r} has no uncertainty: the reader must report "
        "its accuracy (uncertainty_j on every measured reading; a polled reader's "
        f"DEFAULT_ACCURACY or --power-opt {reader}.accuracy_pct=…); see docs/measurement.md"
    )


def describe_problems(problems: Sequence[Problem]) -> str:
    """The first problem and how many more, on one line."""
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(path, message))


def validate_result(result: RunResult, *, now: datetime | None = None) -> list[Problem]:
    """Every rule the run breaks (see the module docstring); empty when it is plausible."""
    c = _Collector()
    try:
        uuid.UUID(result.run_id)
    except ValueError:
        c.add("run_id", f"{_show(result.run_id)} is not a UUID")
    _walk(result, "", c, 0)  # finite numbers, sane strings, bounded lists
    _text_rules(result, c)
    _figures(result, c)
    _times(result, c, now or datetime.now(timezone.utc))
    return c.problems


# -- generic: every value ------------------------------------------------------------------
#: A JSON path while walking: ``""`` (the run) or ``(parent path, key)``, rendered as text
#: only for a problem (formatting the path of every value cost more than the checks).
_Path = str | tuple[Any, Any]
#: Cc: C0 controls, DEL and C1 controls (what ``unicodedata.category(ch) == "Cc"`` finds).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)
    if text.isidentifier():
        return f"{path}.{text}" if path else text
    return f"{path}[{_show(text, 40)}]"


def _render(path: _Path) -> str:
    keys = []
    while isinstance(path, tuple):
        path, key = path
        keys.append(key)
    text = path
    for key in reversed(keys):
        text = _join(text, key)
    return text


def _leaf(path: _Path) -> str:
    """The last field name of ``path`` (``trials[0].energy[1].trace`` → ``trace``)."""
    node = path
    while isinstance(node, tuple):
        parent, key = node
        if not isinstance(key, int):
            text = str(key)
            if text.isidentifier():
                return text
            break  # quoted key: as from the rendered text
        node = parent
    return _render(path).rsplit(".", 1)[-1].split("[", 1)[0]


@functools.cache
def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(model.model_fields)


def _walk(value: Any, path: _Path, c: _Collector, depth: int) -> None:
    kind = type(value)  # the usual leaves first, by exact type
    if kind is float:
        if not math.isfinite(value):
            c.add(_render(path), f"{value} is not a finite number")
        return
    if kind is str:
        _check_string(value, path, c, MAX_TEXT_CHARS)
        return
    if kind is int:
        if abs(value) > _INT64:
            c.add(_render(path), "integer does not fit in 64 bits")
        return
    if value is None or isinstance(value, bool | Enum | datetime | PurePath):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            c.add(_render(path), f"{value} is not a finite number")
        return
    if isinstance(value, int):
        if abs(value) > _INT64:
            c.add(_render(path), "integer does not fit in 64 bits")
        return
    if isinstance(value, str):
        _check_string(value, path, c, MAX_TEXT_CHARS)
        return
    if depth >= MAX_DEPTH:
        c.add(_render(path), f"nested deeper than {MAX_DEPTH} levels")
        return
    if isinstance(value, BaseModel):
        for name in _field_names(type(value)):
            item = getattr(value, name)
            if not _plain_ok(item):
                _walk(item, (path, name), c, depth + 1)
        return
    if isinstance(value, Mapping):
        if len(value) > MAX_ITEMS:
            c.add(_render(path), f"more than {MAX_ITEMS} entries")
            return
        for key, item in value.items():
            if type(key) is str and len(key) <= 1000 and _clean_ascii(key) and _plain_ok(item):
                continue
            sub = (path, key)
            if isinstance(key, str):
                _check_string(key, sub, c, 1000, " (key)")
            _walk(item, sub, c, depth + 1)
        return
    if isinstance(value, list | tuple):
        limit = LIST_LIMITS.get(_leaf(path), MAX_ITEMS)
        if len(value) > limit:
            c.add(_render(path), f"{len(value)} entries, more than {limit}")
            return
        if _all_finite_numbers(value):
            return
        for i, item in enumerate(value):
            _walk(item, (path, i), c, depth + 1)
        return
    c.add(_render(path), f"unexpected value of type {type(value).__name__}")


def _clean_ascii(text: str) -> bool:
    return text.isascii() and "\x00" not in text


def _plain_ok(value: Any) -> bool:
    """True for the usual leaf that passes every generic rule (a finite float, an int in
    64 bits, a short ASCII string without NUL, None or a bool): no call, no path."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is str:
        return len(value) <= MAX_TEXT_CHARS and _clean_ascii(value)
    if kind is int:
        return abs(value) <= _INT64
    return value is None or kind is bool


def _all_finite_numbers(values: Sequence[Any]) -> bool:
    """Fast path for traces and histograms: True when every entry (or pair) is a finite
    number; False means "look at each one" (not numbers, or something not finite).
    Integers of any size pass here: the columns that hold integers check their range.

    A plain sum is finite only when every term is (an infinity or NaN anywhere makes it
    infinite or NaN; a sum that overflows only sends the list to the slow path)."""
    if not values:
        return True
    first = values[0]
    flat: Iterable[Any] = (
        itertools.chain.from_iterable(values) if isinstance(first, tuple | list) else values
    )
    try:
        total = sum(flat, 0.0)
    except (TypeError, OverflowError, ValueError):
        return False
    return math.isfinite(total)


def _check_string(value: str, path: _Path, c: _Collector, limit: int, suffix: str = "") -> None:
    if len(value) > limit:
        c.add(_render(path) + suffix, f"longer than {limit} characters ({len(value)})")
    if "\x00" in value:
        c.add(_render(path) + suffix, "contains a NUL character (not storable)")
    if not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value):
        c.add(_render(path) + suffix, "contains a lone surrogate (not valid UTF-8)")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _show(text: str, n: int = 60) -> str:
    return repr(text[:n] + ("…" if len(text) > n else ""))


# -- text ----------------------------------------------------------------------------------
def _get(result: RunResult, dotted: str) -> Any:
    value: Any = result
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return value


def _text_rules(r: RunResult, c: _Collector) -> None:
    for path, limit in COLUMN_LIMITS:
        value = _get(r, path)
        if value is not None and len(str(value)) > limit:
            c.add(path, f"longer than {limit} characters ({len(str(value))})")
    for path in NAME_FIELDS:
        value = _get(r, path)
        if isinstance(value, str) and _has_control(value):
            c.add(path, f"control character in {_show(value)}")
    for key, (types, max_len) in DEVICE_FIELDS.items():
        field = r.device.get(key)
        if field is None:
            continue
        if isinstance(field, bool) or not isinstance(field, types):
            c.add(f"device.{key}", f"wrong type {type(field).__name__}")
        elif isinstance(field, str):
            if max_len is not None and len(field) > max_len:
                c.add(f"device.{key}", f"longer than {max_len} characters ({len(field)})")
            if _has_control(field):
                c.add(f"device.{key}", f"control character in {_show(field)}")
        elif isinstance(field, int | float) and field < 0:
            c.add(f"device.{key}", f"{field} is negative")
    if len(r.labels) > MAX_LABELS:
        c.add("labels", f"{len(r.labels)} labels, more than {MAX_LABELS}")
    for i, label in enumerate(r.labels[:MAX_LABELS]):
        if len(label) > MAX_LABEL_CHARS:
            c.add(f"labels[{i}]", f"longer than {MAX_LABEL_CHARS} characters ({len(label)})")
        if _has_control(label):
            c.add(f"labels[{i}]", f"control character in {_show(label)}")
    if len(r.inputs) > MAX_NOTE_CHARS:
        c.add("inputs", f"longer than {MAX_NOTE_CHARS} characters ({len(r.inputs)})")
    for name in ("warnings", "invalid_reasons"):
        for i, note in enumerate(getattr(r, name)[: LIST_LIMITS[name]]):
            if len(note) > MAX_NOTE_CHARS:
                c.add(f"{name}[{i}]", f"longer than {MAX_NOTE_CHARS} characters ({len(note)})")
    readers: list[tuple[str, TrialEnergy | EnergySummary]]
    readers = [(f"energy[{i}]", e) for i, e in enumerate(r.energy)]
    readers += [
        (f"trials[{k}].energy[{i}]", e)
        for k, t in enumerate(r.trials)
        for i, e in enumerate(t.energy)
    ]
    for path, e in readers:
        for key, limit in (("reader", 100), ("component", 200)):
            text = getattr(e, key)
            if len(text) > limit:
                c.add(f"{path}.{key}", f"longer than {limit} characters ({len(text)})")
            if _has_control(text):
                c.add(f"{path}.{key}", f"control character in {_show(text)}")
    if len(r.trials) != len({t.index for t in r.trials}):
        c.add("trials", "trial indexes repeat")


# -- figures -------------------------------------------------------------------------------
def _nonneg(c: _Collector, path: str, **values: float | int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 0:
            c.add(f"{path}.{name}" if path else name, f"{value} is negative")


def _close(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= RATIO_TOLERANCE * max(abs(actual), abs(expected)) + 1e-12


def _latency(s: LatencyStats | None, path: str, c: _Collector) -> None:
    if s is None:
        return
    _nonneg(
        c,
        path,
        count=s.count,
        mean_ms=s.mean_ms,
        min_ms=s.min_ms,
        max_ms=s.max_ms,
        p50_ms=s.p50_ms,
        p90_ms=s.p90_ms,
        p95_ms=s.p95_ms,
        p99_ms=s.p99_ms,
        p999_ms=s.p999_ms,
        cv=s.cv,
    )
    order = [
        ("min_ms", s.min_ms),
        ("p50_ms", s.p50_ms),
        ("p90_ms", s.p90_ms),
        ("p95_ms", s.p95_ms),
        ("p99_ms", s.p99_ms),
        ("p999_ms", s.p999_ms),
        ("max_ms", s.max_ms),
    ]
    for (lo_name, lo), (hi_name, hi) in itertools.pairwise(order):
        if not _le(lo, hi):
            c.add(f"{path}.{hi_name}", f"{hi} is below {lo_name} {lo}: percentiles out of order")
            break
    if not (_le(s.min_ms, s.mean_ms) and _le(s.mean_ms, s.max_ms)):
        c.add(f"{path}.mean_ms", f"{s.mean_ms} is outside [min_ms, max_ms]")


def _le(lo: float, hi: float) -> bool:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return True  # reported as not finite already
    return lo <= hi + ORDER_TOLERANCE * max(abs(lo), abs(hi))


def _trial(t: TrialResult, path: str, c: _Collector) -> None:
    _nonneg(
        c,
        path,
        index=t.index,
        queries=t.queries,
        inferences=t.inferences,
        duration_s=t.duration_s,
        throughput_ips=t.throughput_ips,
    )
    if (
        t.duration_s > 0
        and t.throughput_ips >= 0
        and not _close(t.throughput_ips, t.inferences / t.duration_s)
    ):
        c.add(
            f"{path}.throughput_ips",
            f"{t.throughput_ips} is not inferences / duration_s = "
            f"{t.inferences / t.duration_s:.6g} (tolerance {RATIO_TOLERANCE:.1%})",
        )
    _latency(t.latency, f"{path}.latency", c)
    for i, e in enumerate(t.energy):
        _reading(e, f"{path}.energy[{i}]", c)


def _reading(e: TrialEnergy, path: str, c: _Collector) -> None:
    _nonneg(
        c,
        path,
        gross_j=e.gross_j,
        idle_w=e.idle_w,
        duration_s=e.duration_s,
        mean_power_w=e.mean_power_w,
        peak_power_w=e.peak_power_w,
        samples=e.samples,
        sample_rate_hz=e.sample_rate_hz,
        update_period_s=e.update_period_s,
        uncertainty_j=e.uncertainty_j,
    )
    _net(e.net_j, e.gross_j, path, c)


def _net(net: float, gross: float, path: str, c: _Collector) -> None:
    if math.isfinite(net) and math.isfinite(gross) and not _le(net, gross):
        c.add(f"{path}.net_j", f"{net} is above gross_j {gross}: net energy exceeds gross")


def _summary(e: EnergySummary, inferences: int, path: str, c: _Collector) -> None:
    _nonneg(
        c,
        path,
        gross_j=e.gross_j,
        idle_w=e.idle_w,
        duration_s=e.duration_s,
        inferences_per_joule=e.inferences_per_joule,
        joules_per_inference=e.joules_per_inference,
        inferences_per_joule_net=e.inferences_per_joule_net,
        mean_power_w=e.mean_power_w,
        peak_power_w=e.peak_power_w,
        uncertainty_j=e.uncertainty_j,
        sample_rate_hz=e.sample_rate_hz,
    )
    if e.uncertainty_j is None and e.method is not EnergyMethod.ESTIMATED:
        c.add(f"{path}.uncertainty_j", missing_uncertainty(e.reader))
    _net(e.net_j, e.gross_j, path, c)
    if e.gross_j > 0 and inferences >= 0:
        ipj = e.inferences_per_joule
        if ipj is not None and ipj >= 0 and not _close(ipj, inferences / e.gross_j):
            c.add(
                f"{path}.inferences_per_joule",
                f"{ipj} is not inferences / gross_j = {inferences / e.gross_j:.6g} "
                f"(tolerance {RATIO_TOLERANCE:.1%})",
            )
        jpi = e.joules_per_inference
        if (
            jpi is not None
            and jpi >= 0
            and inferences > 0
            and not _close(jpi, e.gross_j / inferences)
        ):
            c.add(
                f"{path}.joules_per_inference",
                f"{jpi} is not gross_j / inferences = {e.gross_j / inferences:.6g} "
                f"(tolerance {RATIO_TOLERANCE:.1%})",
            )


def _figures(r: RunResult, c: _Collector) -> None:
    _nonneg(
        c,
        "",
        load_ms=r.load_ms,
        first_inference_ms=r.first_inference_ms,
        preprocess_ms_mean=r.preprocess_ms_mean,
        throughput_ips=r.throughput_ips,
        inferences=r.inferences,
    )
    _latency(r.latency, "latency", c)
    _latency(r.latency_e2e, "latency_e2e", c)
    for stage, ms in r.e2e_breakdown_ms.items():
        _nonneg(c, "e2e_breakdown_ms", **{stage: ms})
    for i, (upper, count) in enumerate(r.latency_histogram):
        if upper <= 0 or count < 0 or count > _INT64:
            c.add(f"latency_histogram[{i}]", f"({upper}, {count}): edge must be > 0, count ≥ 0")
            break
    for i, t in enumerate(r.trials):
        _trial(t, f"trials[{i}]", c)
    duration = sum(t.duration_s for t in r.trials)
    if (
        r.trials
        and duration > 0
        and r.throughput_ips >= 0
        and not _close(r.throughput_ips, r.inferences / duration)
    ):
        c.add(
            "throughput_ips",
            f"{r.throughput_ips} is not inferences / trial seconds = "
            f"{r.inferences / duration:.6g} (tolerance {RATIO_TOLERANCE:.1%})",
        )
    for i, e in enumerate(r.energy):
        _summary(e, r.inferences, f"energy[{i}]", c)
    if r.carbon is not None:
        _nonneg(
            c,
            "carbon",
            g_co2e_per_1000_inferences=r.carbon.g_co2e_per_1000_inferences,
            intensity_g_per_kwh=r.carbon.intensity_g_per_kwh,
        )
    g = r.generation
    if g is not None:
        _nonneg(
            c,
            "generation",
            prompt_tokens=g.prompt_tokens,
            output_tokens=g.output_tokens,
            prefill_tokens_per_s=g.prefill_tokens_per_s,
            decode_tokens_per_s=g.decode_tokens_per_s,
            prefill_j_per_token=g.prefill_j_per_token,
            decode_j_per_token=g.decode_j_per_token,
            tokens_per_joule=g.tokens_per_joule,
        )
        _latency(g.ttft_ms, "generation.ttft_ms", c)
        _latency(g.tpot_ms, "generation.tpot_ms", c)
        for i, t in enumerate(g.prefill_trials):
            _trial(t, f"generation.prefill_trials[{i}]", c)
        prefill_tokens = sum(t.inferences for t in g.prefill_trials)
        for i, e in enumerate(g.prefill_energy):
            _summary(e, prefill_tokens, f"generation.prefill_energy[{i}]", c)


def _times(r: RunResult, c: _Collector, now: datetime) -> None:
    started, finished = _aware(r.started_at), _aware(r.finished_at)
    if finished < started:
        c.add("finished_at", f"{r.finished_at.isoformat()} is before started_at")
    limit = now + timedelta(seconds=CLOCK_SKEW_S)
    for name, value in (("started_at", started), ("finished_at", finished)):
        if value > limit:
            c.add(
                name,
                f"{value.isoformat()} is in the future (more than {CLOCK_SKEW_S:.0f} s "
                f"ahead of {now.isoformat(timespec='seconds')}): check the device clock",
            )


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
