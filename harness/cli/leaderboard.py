"""``wattbench leaderboard``: stored runs ranked by inferences per joule."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from wattbench.core.errors import ConfigError
from wattbench.harness.cli.common import DbOpt, energy_label, fmt_num, out


def leaderboard(
    db: DbOpt = None,
    suite: Annotated[str | None, typer.Option(help="Only this suite.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    include_invalid: Annotated[bool, typer.Option(help="Show invalid runs too.")] = False,
    hide_estimated: Annotated[bool, typer.Option(help="Hide estimated energy.")] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            help="Top N per suite version and scenario (table default 50; csv/json: all)."
        ),
    ] = None,
    mode: Annotated[
        str, typer.Option(help="Rank runs of this mode: edge, cloud or hybrid.")
    ] = "edge",
    scope: Annotated[
        str | None,
        typer.Option(help="Only this energy scope: chip, module, board or wall."),
    ] = None,
) -> None:
    """Rank stored runs by inferences per joule, like with like.

    Runs rank only within one suite version, scenario, mode, energy scope and
    measured-vs-estimated; each such group is its own table.
    """
    from wattbench.results_db.leaderboard import (
        CONFIDENCE_COLUMNS,
        LeaderboardRow,
        confidence_columns,
        half_width_text,
        throttled_text,
    )
    from wattbench.results_db.store import Store

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"unknown --format {fmt!r}: use table, csv or json")
    if scope is not None and scope not in ("chip", "module", "board", "wall"):
        raise ConfigError(f"unknown --scope {scope!r}: use board, wall, module or chip")
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    if limit is None and fmt == "table":
        limit = 50  # a terminal table of every run of a big database helps nobody
    store = Store.open(db)
    if mode not in ("edge", "cloud", "hybrid"):
        raise ConfigError(f"unknown --mode {mode!r}: use edge, cloud or hybrid")
    rows = store.leaderboard(
        suite,
        include_invalid=include_invalid,
        hide_estimated=hide_estimated,
        limit=limit,
        mode=mode,
        scope=scope,
    )
    data = [r.model_dump(mode="json") for r in rows]
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        fields = [f for f in LeaderboardRow.model_fields if f != "confidence"]
        w = csv.DictWriter(buf, fieldnames=[*fields, *CONFIDENCE_COLUMNS])
        if rows:
            w.writeheader()
        for d in data:
            d["labels"] = ";".join(d["labels"])
            d.update(confidence_columns(d.pop("confidence")))
            w.writerow(d)
        sys.stdout.write(buf.getvalue())
        return
    if not rows:
        out.print(
            "no results yet: run `wattbench run --suite mobilenet_v2 --adapter onnxruntime` "
            f"(database: {store.display_url})"
        )
        return
    groups: dict[str, list[Any]] = {}
    for r in rows:
        groups.setdefault(r.rank_group, []).append(r)
    for items in groups.values():
        r0 = items[0]
        where = "" if mode == "edge" else f" · {mode} mode (device energy only; see --format json)"
        how = "ESTIMATED" if r0.energy_estimated else "measured"
        t = Table(
            title=f"{r0.suite} {r0.suite_version} · {r0.scenario}{where} · "
            f"{r0.energy_scope or 'no'} scope · {how} · ranked by inferences per joule"
        )
        for col in (
            "#",
            "device",
            "hardware",
            "runtime",
            "model",
            "prec",
            "batch",
            "inf/J",
            "J/inf",
            "p50 ms",
            "p90 ms",
            "inf/s",
            "energy",
            "±%",
            "95% CI",
            "throttled",
            "run",
        ):
            t.add_column(
                col,
                justify="right"
                if col
                in ("#", "batch", "inf/J", "J/inf", "p50 ms", "p90 ms", "inf/s", "±%", "95% CI")
                else "left",
            )
        for r in items:
            est = r.energy_estimated
            t.add_row(
                str(r.rank),
                r.device + (" ✓" if r.device_validation == "validated" else ""),
                r.hardware or "",
                f"{r.adapter} {r.runtime_version} ({r.execution_provider})",
                r.model,
                r.precision,
                str(r.batch),
                ("≈" if est else "") + fmt_num(r.inferences_per_joule),
                ("≈" if est else "") + fmt_num(r.joules_per_inference, 4),
                f"{r.latency_p50_ms:.3f}",
                f"{r.latency_p90_ms:.3f}",
                f"{r.throughput_ips:.1f}",
                energy_label(r.energy_method, r.energy_scope),
                fmt_num(r.energy_uncertainty_pct, 0),
                half_width_text(confidence_columns(r.confidence)["ipj_ci_half_width_pct"]),
                throttled_text(r.throttled_trials, r.thermal_trials),
                r.run_id[:8] + ("" if r.valid else " INVALID"),
            )
        out.print(t)
    validated = {
        r.device: r.device_validation_at
        for r in rows
        if r.device_validation == "validated" and r.device_validation_at is not None
    }
    if validated:
        out.print(
            "\n✓ device validated by `wattbench doctor`: "
            + ", ".join(f"{d} ({at:%Y-%m-%d})" for d, at in sorted(validated.items()))
        )
    if any(r.confidence for r in rows):
        out.print(
            "\n95% CI: half-width of the run's 95% interval of the median inferences per joule "
            "across trials (— : no interval; `wattbench run --target-ci PCT`)"
        )
    if any(r.throttled_trials is not None for r in rows):
        out.print(
            "\nthrottled: the run's trials in which the device throttled (its figures are "
            "worse than the setting can do cool; — : no temperature sampled)"
        )
    if any(r.energy_estimated for r in rows):
        out.print(
            "\n≈ ESTIMATED energy (TDP x CPU utilisation), not measured; --hide-estimated hides it"
        )
