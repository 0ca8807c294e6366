"""Read runs for the regression gate from a results store.

Runs are found by uuid (or a unique prefix) or by label, and returned as
:class:`~wattbench.analysis.gate.RunRecord`: configuration key, validity and
per-trial metric values. Only columns of schema v1 are selected, by name, so
these queries keep working as the schema gains columns.

A label selector ``label:NAME~N`` means: the N most recent runs carrying the
label NAME (most recent by ``started_at``). For the baseline side the gate also
asks for the candidate's configuration and skips invalid runs and the
candidate's own runs; see :func:`select_labelled`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from wattbench.analysis.gate import (
    ConfigKey,
    RunRecord,
    describe_differences,
    hardware_name,
    power_mode,
    trial_samples,
)
from wattbench.core.errors import ConfigError, StoreError
from wattbench.results_db.schema import (
    Device,
    EnergyMeasurement,
    Environment,
    ModelArtifactRow,
    Run,
    SuiteRow,
    Trial,
)
from wattbench.results_db.store import Store

#: Shortest run-id prefix accepted (fewer digits match too many runs to be useful).
MIN_PREFIX = 4


@dataclass(frozen=True)
class _Head:
    """A run's identity and configuration key, before its trials are loaded."""

    pk: int
    uuid: str
    labels: tuple[str, ...]
    valid: bool
    invalid_reasons: tuple[str, ...]
    started_at: datetime | None
    device_name: str | None
    energy_reader: str | None
    key: ConfigKey
    confidence: dict[str, Any] | None = None


@dataclass(frozen=True)
class LabelSelection:
    """Runs picked by a label selector, and what was passed over (for the report)."""

    records: tuple[RunRecord, ...]
    skipped_invalid: tuple[str, ...] = ()
    skipped_other_config: int = 0

    def notes(self, label: str) -> list[str]:
        """Human lines about what the selector passed over."""
        out = []
        if self.skipped_invalid:
            ids = ", ".join(i[:8] for i in self.skipped_invalid[:5])
            out.append(
                f"{len(self.skipped_invalid)} invalid run(s) labelled {label!r} were passed "
                f"over ({ids})"
            )
        if self.skipped_other_config:
            out.append(
                f"{self.skipped_other_config} run(s) labelled {label!r} with another "
                f"configuration were passed over"
            )
        return out


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns; they were stored in UTC.
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


_HEAD_COLUMNS = (
    Run.id,
    Run.uuid,
    Run.labels,
    Run.valid,
    Run.invalid_reasons,
    Run.started_at,
    Run.adapter,
    Run.device_target,
    Run.precision,
    Run.batch,
    Run.scenario,
    Run.energy_method,
    Run.energy_scope,
    SuiteRow.name,
    SuiteRow.version,
    ModelArtifactRow.sha256,
    Device.name,
    Device.accelerator,
    Device.cpu_model,
    Environment.data,
    Run.extras["confidence"],
)


def _head_query() -> Any:
    return (
        select(*_HEAD_COLUMNS)
        .join(SuiteRow, Run.suite_id == SuiteRow.id)
        .join(ModelArtifactRow, Run.model_artifact_id == ModelArtifactRow.id)
        .join(Device, Run.device_id == Device.id)
        .join(Environment, Run.environment_id == Environment.id)
    )


def _heads(s: Session, where: Any) -> list[_Head]:
    rows = list(
        s.execute(_head_query().where(where).order_by(Run.started_at.desc(), Run.id.desc()))
    )
    headline = _headline(s, [r[0] for r in rows])
    out = []
    for r in rows:
        (pk, uuid, labels, valid, reasons, started, adapter, target, precision, batch) = r[:10]
        (scenario, method, scope, suite, version, sha, dev_name, accel, cpu, env) = r[10:20]
        conf = r[20]
        out.append(
            _Head(
                pk=pk,
                uuid=uuid,
                labels=tuple(str(x) for x in labels or ()),
                valid=bool(valid),
                invalid_reasons=tuple(str(x) for x in reasons or ()),
                started_at=_aware(started),
                device_name=dev_name,
                energy_reader=headline.get(pk, (None, {}))[0],
                key=ConfigKey(
                    suite=suite,
                    suite_version=version,
                    model_sha256=sha,
                    adapter=adapter,
                    hardware=hardware_name(accel, cpu),
                    device_target=target,
                    precision=precision,
                    batch=int(batch),
                    scenario=scenario,
                    power_mode=power_mode(env, headline.get(pk, (None, {}))[1]),
                    energy_method=method,
                    energy_scope=scope,
                ),
                confidence=conf if isinstance(conf, dict) and conf else None,
            )
        )
    return out


def _headline(s: Session, pks: Sequence[int]) -> dict[int, tuple[str, dict[str, Any]]]:
    """Reader and details of each run's headline run-total energy row."""
    if not pks:
        return {}
    rows = s.execute(
        select(EnergyMeasurement.run_id, EnergyMeasurement.reader, EnergyMeasurement.details).where(
            EnergyMeasurement.run_id.in_(pks),
            EnergyMeasurement.trial_index.is_(None),
            EnergyMeasurement.is_headline.is_(True),
        )
    )
    return {pk: (reader, dict(d or {})) for pk, reader, d in rows}


def _records(s: Session, heads: Sequence[_Head], source: str) -> list[RunRecord]:
    """Load per-trial values for ``heads`` (two queries, whatever their number)."""
    pks = [h.pk for h in heads]
    if not pks:
        return []
    trials: dict[int, list[tuple[int, int, float, float]]] = {pk: [] for pk in pks}
    for run_id, index, inferences, throughput, latency in s.execute(
        select(Trial.run_id, Trial.index, Trial.inferences, Trial.throughput_ips, Trial.latency)
        .where(Trial.run_id.in_(pks))
        .order_by(Trial.run_id, Trial.index)
    ):
        trials[run_id].append(
            (index, int(inferences), float(throughput), float((latency or {})["p90_ms"]))
        )
    energy: dict[tuple[int, int | None], float] = {}
    for run_id, index, gross in s.execute(
        select(
            EnergyMeasurement.run_id, EnergyMeasurement.trial_index, EnergyMeasurement.gross_j
        ).where(
            EnergyMeasurement.run_id.in_(pks),
            EnergyMeasurement.trial_index.is_not(None),
            EnergyMeasurement.is_headline.is_(True),
        )
    ):
        energy[(run_id, index)] = float(gross)
    out = []
    for h in heads:
        rows = [
            (inferences, p90, throughput, energy.get((h.pk, index)), None)
            for index, inferences, throughput, p90 in trials[h.pk]
        ]
        out.append(
            RunRecord(
                run_id=h.uuid,
                source=source,
                key=h.key,
                valid=h.valid,
                invalid_reasons=h.invalid_reasons,
                labels=h.labels,
                started_at=h.started_at,
                device_name=h.device_name,
                energy_reader=h.energy_reader,
                samples=trial_samples(rows),
                confidence=h.confidence,
            )
        )
    return out


def _query_error(store: Store, exc: Exception) -> StoreError:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return StoreError(
        f"cannot read runs from {store.display_url}: {text[0] if text else type(exc).__name__} "
        f"(check --db; `wattbench db upgrade` if the schema is old)"
    )


def find_run(store: Store, run_id: str) -> RunRecord:
    """The run whose uuid is ``run_id`` or starts with it; ConfigError if none or several."""
    prefix = run_id.strip().lower()
    if len(prefix) < MIN_PREFIX:
        raise ConfigError(f"run id prefix {run_id!r} is too short: give >= {MIN_PREFIX} characters")
    try:
        with Session(store.engine) as s:
            heads = _heads(s, Run.uuid.startswith(prefix, autoescape=True))
            if not heads:
                raise ConfigError(
                    f"no run with id {run_id!r} in {store.display_url}: check the id or --db "
                    f"(`wattbench leaderboard --include-invalid` lists run ids)"
                )
            exact = [h for h in heads if h.uuid == prefix]
            if len(heads) > 1 and not exact:
                ids = ", ".join(h.uuid for h in heads[:5])
                raise ConfigError(
                    f"run id prefix {run_id!r} matches {len(heads)} runs ({ids}): "
                    f"give more characters"
                )
            return _records(s, exact or heads, source=store.display_url)[0]
    except (DBAPIError, SQLAlchemyError) as exc:
        raise _query_error(store, exc) from exc


def _label_filter(label: str) -> Any:
    # A cheap SQL pre-filter on the JSON text, exact only for plain ASCII labels (how a
    # backend escapes other characters in JSON text varies); Python checks membership.
    if label.isascii() and '"' not in label and "\\" not in label:
        return cast(Run.labels, String).contains(json.dumps(label), autoescape=True)
    return Run.id.is_not(None)


def select_labelled(
    store: Store,
    label: str,
    *,
    limit: int | None = None,
    key: ConfigKey | None = None,
    exclude: Collection[str] = (),
    valid_only: bool = False,
) -> LabelSelection:
    """The ``limit`` most recent runs labelled ``label`` (all when None), newest first.

    With ``key``, runs of another configuration are passed over; with ``valid_only``,
    invalid ones; runs whose uuid is in ``exclude`` are never picked. ConfigError when
    nothing is left, naming the label, and the differing fields when the configuration
    is why.
    """
    try:
        with Session(store.engine) as s:
            heads = [h for h in _heads(s, _label_filter(label)) if label in h.labels]
            if not heads:
                raise ConfigError(
                    f"no runs labelled {label!r} in {store.display_url}: run the suite with "
                    f"`--label {label}` first, or check the label and --db"
                )
            pool = [h for h in heads if h.uuid not in exclude]
            if not pool:
                raise ConfigError(
                    f"the only runs labelled {label!r} are the candidate's own: "
                    f"choose another baseline"
                )
            matching = [h for h in pool if key is None or h.key == key]
            if not matching:
                assert key is not None
                diffs = describe_differences(pool[0].key.differences(key), "baseline", "candidate")
                raise ConfigError(
                    f"no run labelled {label!r} has the candidate's configuration; the latest "
                    f"({pool[0].uuid[:8]}) differs in {diffs}: gate like with like"
                )
            usable = [h for h in matching if h.valid or not valid_only]
            if not usable:
                latest = matching[0]
                raise ConfigError(
                    f"all {len(matching)} run(s) labelled {label!r} with this configuration are "
                    f"invalid (latest {latest.uuid[:8]}: "
                    f"{'; '.join(latest.invalid_reasons) or 'no reason recorded'}): "
                    f"fix the baseline and measure again"
                )
            chosen = usable[:limit] if limit is not None else usable
            newest = chosen[-1]
            passed_over = [h for h in matching if h not in usable and _not_older(h, newest)]
            other = [h for h in pool if h not in matching and _not_older(h, newest)]
            records = _records(s, chosen, source=store.display_url)
    except (DBAPIError, SQLAlchemyError) as exc:
        raise _query_error(store, exc) from exc
    return LabelSelection(
        records=tuple(records),
        skipped_invalid=tuple(h.uuid for h in passed_over),
        skipped_other_config=len(other),
    )


def _not_older(h: _Head, than: _Head) -> bool:
    """Whether ``h`` sorts at or before ``than`` (newest first): it was passed over."""
    a, b = h.started_at, than.started_at
    if a is None or b is None:
        return True
    return (a, h.pk) >= (b, than.pk)
