"""The gate's inputs: gated metrics, run records and run references.

Which metrics the gate knows (``--metric``/``--threshold`` parsing), what must match for
two runs to be compared (:class:`ConfigKey`), one run as the gate sees it
(:class:`RunRecord`, from a RunResult or a ``wattbench run --json`` file) and the
``--baseline``/``--candidate`` reference forms (:func:`parse_ref`). The store queries
(``analysis/gate_queries.py``) build records from the database with the same helpers.
Pure and light: no numpy, no scipy, no database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from wattbench.core.errors import ConfigError
from wattbench.core.results import RunResult


# -- metrics ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricSpec:
    """A gated metric: its unit, which direction is better and its default threshold."""

    name: str
    description: str
    unit: str
    higher_is_better: bool
    default_threshold: float  # a fraction: 0.05 = 5 %
    energy_based: bool

    @property
    def better(self) -> str:
        """``"higher"`` or ``"lower"``: which direction is an improvement."""
        return "higher" if self.higher_is_better else "lower"


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec(
            "joules_per_inference",
            "energy per inference (headline reader gross J / inferences, per trial)",
            "J",
            False,
            0.05,
            True,
        ),
        MetricSpec("latency_p90_ms", "p90 latency per trial", "ms", False, 0.05, False),
        MetricSpec("throughput_ips", "throughput per trial", "inferences/s", True, 0.05, False),
        MetricSpec(
            "tokens_per_joule",
            "generated tokens per joule per trial (suites that count tokens)",
            "tokens/J",
            True,
            0.05,
            True,
        ),
    )
}
#: Gated unless --metric says otherwise (tokens_per_joule joins when both sides have it).
DEFAULT_METRICS = ("joules_per_inference", "latency_p90_ms", "throughput_ips")
OPTIONAL_METRICS = ("tokens_per_joule",)

ALIASES = {
    "energy": "joules_per_inference",
    "j/inf": "joules_per_inference",
    "latency": "latency_p90_ms",
    "p90": "latency_p90_ms",
    "latency_p90": "latency_p90_ms",
    "throughput": "throughput_ips",
    "tokens": "tokens_per_joule",
}


def resolve_metric(name: str) -> str:
    """Canonical metric name for ``name`` or an alias; ConfigError naming the choices."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in METRICS:
        raise ConfigError(
            f"unknown metric {name!r}: use one of {', '.join(METRICS)} "
            f"(or {', '.join(sorted(ALIASES))})"
        )
    return key


def parse_metrics(items: Iterable[str] | None) -> tuple[str, ...] | None:
    """``--metric`` values (repeatable, comma-separated allowed); None means the defaults."""
    names: list[str] = []
    for item in items or ():
        for part in item.split(","):
            if part.strip():
                name = resolve_metric(part)
                if name not in names:
                    names.append(name)
    return tuple(names) or None


_PCT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*$")


def parse_thresholds(items: Iterable[str] | None) -> dict[str, float]:
    """``--threshold`` values: ``METRIC=PCT`` or ``PCT`` (every metric); PCT is a percentage.

    ``joules_per_inference=3%``, ``latency=10`` and ``4%`` are all valid; returns fractions.
    """
    out: dict[str, float] = {}
    for item in items or ():
        metric, sep, value = item.rpartition("=")
        m = _PCT.match(value)
        if not m or (sep and not metric.strip()):
            raise ConfigError(
                f"invalid --threshold {item!r}: use METRIC=PERCENT, e.g. "
                f"joules_per_inference=3%, or PERCENT for every metric"
            )
        pct = float(m.group(1))
        if not 0 < pct < 100:
            raise ConfigError(f"invalid --threshold {item!r}: the percentage must be > 0 and < 100")
        names = [resolve_metric(metric)] if sep else list(METRICS)
        for name in names:
            out[name] = pct / 100
    return out


# -- run records --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigKey:
    """What must match for two runs to be compared (like with like)."""

    suite: str
    suite_version: str
    model_sha256: str
    adapter: str
    hardware: str
    device_target: str
    precision: str
    batch: int
    scenario: str
    power_mode: str | None
    energy_method: str | None
    energy_scope: str | None

    def differences(self, other: ConfigKey) -> list[tuple[str, Any, Any]]:
        """``(field, self's value, other's value)`` for every field that differs."""
        return [
            (f.name, getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    def describe(self) -> str:
        """One human line: suite, runtime, hardware, precision, batch, energy."""
        energy = f"{self.energy_method}/{self.energy_scope}" if self.energy_method else "none"
        mode = f" · power mode {self.power_mode}" if self.power_mode else ""
        return (
            f"{self.suite} {self.suite_version} · {self.adapter} on {self.device_target} · "
            f"{self.hardware}{mode} · {self.precision} · batch {self.batch} · {self.scenario} · "
            f"model {self.model_sha256[:12]} · energy {energy}"
        )


def describe_differences(diffs: Sequence[tuple[str, Any, Any]], a: str, b: str) -> str:
    """``precision (baseline fp32, candidate int8); batch (baseline 1, candidate 4)``."""
    return "; ".join(f"{name} ({a} {va}, {b} {vb})" for name, va, vb in diffs)


def hardware_name(accelerator: str | None, cpu_model: str | None) -> str:
    """The hardware a run measured: the accelerator if recorded, else the CPU model."""
    return (accelerator or cpu_model or "unknown").strip() or "unknown"


def power_mode(
    environment: Mapping[str, Any] | None, details: Mapping[str, Any] | None
) -> str | None:
    """A recorded power mode (e.g. Jetson nvpmodel) or None.

    Looked up as ``environment["power_mode"]``, then the headline energy reading's
    ``details["power_mode"]``: both are stored, so JSON files and the store agree.
    """
    for source in (environment or {}, details or {}):
        value = source.get("power_mode")
        if value not in (None, ""):
            return str(value)
    return None


@dataclass(frozen=True)
class RunRecord:
    """One run as the gate sees it: identity, configuration key, validity, per-trial values."""

    run_id: str
    source: str
    key: ConfigKey
    valid: bool
    invalid_reasons: tuple[str, ...]
    labels: tuple[str, ...]
    started_at: datetime | None
    device_name: str | None
    energy_reader: str | None
    samples: Mapping[str, tuple[float, ...]]
    confidence: Mapping[str, Any] | None = None  # the run's TrialConfidence as JSON

    @property
    def interval_text(self) -> str:
        """The run's own achieved 95 % intervals, e.g. ``95% CI inf/J ±1.8 %, p90 ±2.1 %
        (target reached)``; ``no 95% CI`` for a run that recorded none."""
        c = self.confidence
        if not c:
            return "no 95% CI"
        parts = []
        for metric, name in (("inferences_per_joule", "inf/J"), ("latency_p90_ms", "p90")):
            hw = (c.get(metric) or {}).get("half_width")
            parts.append(f"{name} " + ("—" if hw is None else f"±{hw * 100:.2g} %"))
        stopped = c.get("stopped") or "fixed repeats"
        return f"95% CI {', '.join(parts)} ({stopped})"

    @property
    def estimated(self) -> bool:
        """Whether the headline energy is an estimate, not a measurement."""
        return self.key.energy_method == "estimated"

    @property
    def trials(self) -> int:
        """Number of trials (the longest per-metric series)."""
        return max((len(v) for v in self.samples.values()), default=0)


def trial_samples(
    trials: Iterable[tuple[int, float, float, float | None, int | None]],
) -> dict[str, tuple[float, ...]]:
    """Per-metric per-trial values from ``(inferences, p90_ms, ips, headline gross J, tokens)``.

    Energy metrics skip trials without a positive energy reading (0 J means the reader saw
    nothing, not free inference); tokens_per_joule appears only when every trial has tokens.
    """
    jpi: list[float] = []
    p90: list[float] = []
    ips: list[float] = []
    tpj: list[float] = []
    all_tokens = True
    for inferences, p90_ms, throughput, gross_j, tokens in trials:
        p90.append(float(p90_ms))
        ips.append(float(throughput))
        if gross_j is not None and gross_j > 0 and inferences > 0:
            jpi.append(gross_j / inferences)
        if tokens is None:
            all_tokens = False
        elif gross_j is not None and gross_j > 0:
            tpj.append(tokens / gross_j)
    out = {
        "joules_per_inference": tuple(jpi),
        "latency_p90_ms": tuple(p90),
        "throughput_ips": tuple(ips),
    }
    if all_tokens and p90:
        out["tokens_per_joule"] = tuple(tpj)
    return out


def record_from_result(
    result: RunResult, *, source: str, raw: Mapping[str, Any] | None = None
) -> RunRecord:
    """A :class:`RunRecord` from a RunResult (``wattbench run --json``).

    ``raw`` is the JSON object the result was parsed from; per-trial ``tokens`` counts
    (which RunResult does not model yet) are read from it.
    """
    head = result.headline
    raw_trials = list((raw or {}).get("trials") or [])
    rows = []
    for i, t in enumerate(result.trials):
        tok = raw_trials[i].get("tokens") if i < len(raw_trials) else None
        rows.append(
            (
                t.inferences,
                t.latency.p90_ms,
                t.throughput_ips,
                t.energy[0].gross_j if t.energy else None,
                int(tok) if isinstance(tok, (int, float)) and not isinstance(tok, bool) else None,
            )
        )
    dev = result.device
    key = ConfigKey(
        suite=result.suite,
        suite_version=result.suite_version,
        model_sha256=result.model.sha256,
        adapter=result.adapter.adapter,
        hardware=hardware_name(dev.get("accelerator"), dev.get("cpu_model")),
        device_target=result.adapter.device,
        precision=result.adapter.precision,
        batch=result.config.batch,
        scenario=result.scenario,
        power_mode=power_mode(result.environment, head.details if head else None),
        energy_method=head.method.value if head else None,
        energy_scope=head.scope.value if head else None,
    )
    return RunRecord(
        run_id=result.run_id,
        source=source,
        key=key,
        valid=result.valid,
        invalid_reasons=tuple(result.invalid_reasons),
        labels=tuple(result.labels),
        started_at=result.started_at,
        device_name=dev.get("name") or dev.get("hostname"),
        energy_reader=head.reader if head else None,
        samples=trial_samples(rows),
        confidence=None if result.confidence is None else result.confidence.model_dump(mode="json"),
    )


def load_json_runs(path: Path) -> list[RunRecord]:
    """Runs from a ``wattbench run --json`` file: one RunResult object or a list of them."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"run file not found: {path} (check the path)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not JSON ({exc.msg}, line {exc.lineno}): "
            f"write it with `wattbench run ... --json > {path.name}`"
        ) from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ConfigError(f"{path} holds an empty list: it needs at least one run")
    records = []
    for i, item in enumerate(items):
        where = f"{path}" if len(items) == 1 else f"{path}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} is not a run: expected `wattbench run --json` output")
        try:
            result = RunResult.model_validate(item)
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = ".".join(str(x) for x in e["loc"]) or "value"
            raise ConfigError(
                f"{where} is not `wattbench run --json` output ({loc}: {e['msg']})"
            ) from None
        records.append(record_from_result(result, source=str(path), raw=item))
    return records


# -- references -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRef:
    """A parsed --baseline/--candidate: a JSON file, a run id (prefix) or a label selector."""

    text: str
    kind: Literal["file", "run", "label"]
    value: str
    limit: int | None = None  # label selectors: the N most recent runs


_RUN_ID = re.compile(r"^[0-9a-fA-F]{4}[0-9a-fA-F-]{0,32}$")
_LIMIT = re.compile(r"^(.*)~(\d+)$")
REF_FORMS = (
    "a run file (run.json from `wattbench run --json`), a run id or unique prefix "
    "(>= 4 hex digits), or a label selector: label:NAME, git:SHA, branch:NAME, "
    "with ~N for the N most recent runs (label:branch:main~5)"
)


def parse_ref(text: str) -> RunRef:
    """Parse a run reference; ConfigError listing the accepted forms when it fits none."""
    raw = text.strip()
    if not raw:
        raise ConfigError(f"empty run reference: use {REF_FORMS}")
    if raw.startswith(("label:", "git:", "branch:")):
        label = raw[len("label:") :] if raw.startswith("label:") else raw
        limit = None
        m = _LIMIT.match(label)
        if m:
            label, limit = m.group(1), int(m.group(2))
            if limit < 1:
                raise ConfigError(f"invalid selector {raw!r}: ~N needs N >= 1")
        if not label or label in ("git:", "branch:"):
            raise ConfigError(f"invalid selector {raw!r}: name the label, e.g. label:branch:main~5")
        return RunRef(raw, "label", label, limit)
    path = Path(raw).expanduser()
    if path.is_file() or raw.lower().endswith(".json"):
        if not path.is_file():
            raise ConfigError(f"run file not found: {raw} (check the path)")
        return RunRef(raw, "file", str(path))
    if _RUN_ID.match(raw):
        return RunRef(raw, "run", raw.lower())
    raise ConfigError(f"cannot read run reference {raw!r}: use {REF_FORMS}")
