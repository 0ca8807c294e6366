"""The Grafana dashboard and docs/fleet.md name only metrics a worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from wattbench.fleet.metrics import WorkerMetrics

DOCS = Path(__file__).resolve().parents[2] / "docs"


def exported() -> set[str]:
    m = WorkerMetrics("dev-1", None)
    m.cell_started("c", 0)
    m.cell_finished("done", 10)
    m.power.labels("dev-1", "estimate").set(3.0)
    m.energy.labels("dev-1", "estimate").inc(1.0)
    m.temperature.labels("dev-1", "cpu/0").set(40.0)
    families = list(m.registry.collect())
    names = {f.name for f in families} | {s.name for f in families for s in f.samples}
    m.close()
    return names


def test_dashboard_and_docs_name_exported_metrics() -> None:
    names = exported()
    dash = json.loads((DOCS / "grafana-wattbench.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\bwattbench_[a-z_]+", e)}
    assert used and used <= names, used - names
    documented = set(re.findall(r"`(wattbench_[a-z_]+)`", (DOCS / "fleet.md").read_text()))
    assert documented <= names, documented - names
    assert {"wattbench_power_watts", "wattbench_energy_joules_total"} <= documented
