"""Sweeps over hybrid settings: one stored run per point, plus the curve.

Label convention (what the dashboard plots): every run of a sweep carries
``sweep:<id>`` and the swept value, ``threshold:<t>`` (escalation sweep) or
``payload:<spec>`` (payload sweep). Runs sharing a ``sweep:`` label form one
curve; x = the swept value (or ``network.escalation_rate``), y =
``network.energy_to_solution_j_per_inference`` against
``network.agreement_with_cloud`` (quality).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError
from wattbench.core.results import RunResult


@dataclass
class SweepPoint:
    """One run of a sweep, reduced to the curve's coordinates."""

    value: str
    run_id: str
    mode: str
    escalation_rate: float | None
    energy_to_solution_j: float | None
    edge_j: float | None
    network_j: float | None
    network_j_low: float | None
    network_j_high: float | None
    cloud_j: float | None
    cloud_energy: str | None
    agreement_with_cloud: float | None
    bytes_per_inference: float | None
    e2e_p50_ms: float | None
    escalation_failures: int | None
    valid: bool
    accuracy: float | None = None  # final answers vs the suite's labels, where it has them

    @classmethod
    def of(cls, value: str, r: RunResult) -> SweepPoint:
        n = r.network
        return cls(
            value=value,
            run_id=r.run_id,
            mode=r.config.mode,
            escalation_rate=n.escalation_rate if n else 0.0,
            energy_to_solution_j=(
                n.energy_to_solution_j_per_inference
                if n
                else (r.headline.joules_per_inference if r.headline else None)
            ),
            edge_j=n.edge_j_per_inference if n else None,
            network_j=n.network_j_per_inference if n else 0.0,
            network_j_low=n.network_j_low_per_inference if n else 0.0,
            network_j_high=n.network_j_high_per_inference if n else 0.0,
            cloud_j=n.cloud_j_per_inference if n else 0.0,
            cloud_energy=n.cloud_energy if n else None,
            agreement_with_cloud=n.agreement_with_cloud if n else None,
            bytes_per_inference=n.bytes_per_inference if n else 0.0,
            e2e_p50_ms=r.latency_e2e.p50_ms if r.latency_e2e else None,
            escalation_failures=n.escalation_failures if n else 0,
            valid=r.valid,
            accuracy=n.accuracy if n else None,
        )


@dataclass
class Sweep:
    id: str
    kind: str
    points: list[SweepPoint]

    def to_json(self) -> str:
        return json.dumps(
            {"sweep": self.id, "kind": self.kind, "points": [asdict(p) for p in self.points]},
            indent=2,
        )

    def to_csv(self) -> str:
        buf = io.StringIO()
        fields = list(SweepPoint.__dataclass_fields__)
        w = csv.DictWriter(buf, fieldnames=["sweep", "kind", *fields])
        w.writeheader()
        for p in self.points:
            w.writerow({"sweep": self.id, "kind": self.kind, **asdict(p)})
        return buf.getvalue()

    def write(self, path: Path) -> None:
        """CSV or JSON by the file's suffix."""
        if path.suffix.lower() == ".csv":
            path.write_text(self.to_csv())
        elif path.suffix.lower() == ".json":
            path.write_text(self.to_json() + "\n")
        else:
            raise ConfigError(f"--out {path}: use a .csv or .json file name")


def parse_thresholds(text: str) -> list[float]:
    """'0,0.2,0.5,1' → sorted unique thresholds in [0, 1]."""
    try:
        values = sorted({float(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise ConfigError(
            f"invalid --thresholds {text!r}: give confidences 0..1, comma-separated"
        ) from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise ConfigError(f"invalid --thresholds {text!r}: give confidences 0..1, comma-separated")
    return values


def run_sweep(
    kind: str,
    base: RunConfig,
    values: Sequence[str],
    configure: Callable[[RunConfig, str], RunConfig],
    execute: Callable[[RunConfig, str], RunResult],
    save: Callable[[RunResult], object],
    *,
    sweep_id: str | None = None,
    on_point: Callable[[SweepPoint], None] | None = None,
) -> Sweep:
    """Run and store one configuration per value; each run carries the sweep's labels."""
    sid = sweep_id or uuid.uuid4().hex[:8]
    key = "threshold" if kind == "escalation" else kind
    points: list[SweepPoint] = []
    for v in values:
        cfg = configure(base, v)
        cfg = cfg.model_copy(update={"labels": (*cfg.labels, f"sweep:{sid}", f"{key}:{v}")})
        result = execute(cfg, v)
        save(result)
        p = SweepPoint.of(v, result)
        points.append(p)
        if on_point is not None:
            on_point(p)
    return Sweep(id=sid, kind=kind, points=points)


def escalation_config(base: RunConfig, value: str) -> RunConfig:
    return base.model_copy(update={"mode": "hybrid", "escalate_below": float(value)})
