"""The canonical form of a run: what "the same run" means when a run id arrives twice.

A store keeps the sha256 of every run's canonical payload (``runs.content_sha256``).
When a run id it already holds arrives again (a retried upload, an import), the
hashes decide: equal → the same run again (acknowledged as a duplicate); different →
a **conflict**, refused with the first field that differs (:func:`first_difference`),
and the stored run is never overwritten.

The canonical payload is the :class:`~wattbench.core.results.RunResult` as uploaded,
as JSON (pydantic's ``model_dump_json``), with

* **sorted keys** at every level and no whitespace, so the order of keys in ``device``,
  ``environment`` or ``details`` (which PostgreSQL's JSON columns do not keep) does not
  matter;
* **fields at their default value left out** (``exclude_defaults``): a newer wattbench
  that adds an optional field (``None`` / empty by default) hashes the runs stored before
  it exactly as they were hashed then;
* ``started_at`` and ``finished_at`` as UTC ISO-8601 with microseconds (a naive time is
  UTC), so SQLite's naive timestamps compare equal to the aware ones sent;
* **left out**: ``model.path``, where the model file lay on the recording machine — local
  bookkeeping, not part of the result, and not kept by the store's rows. A RunResult
  carries no upload bookkeeping (upload state, attempts and errors live in the local
  store's ``runs`` row), so nothing else is left out.

Floats are written in their shortest round-tripping form, so a run that went through
JSON and back hashes the same. NaN and infinity are written as ``null`` (pydantic's JSON);
they never reach a store (:mod:`wattbench.core.validation` refuses them). The bytes are
built by pydantic's serialiser (Rust): a run with three 2000-point power traces hashes in
a few milliseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import pydantic_core

from wattbench.core.results import RunResult

#: Fields of a RunResult that are not part of its content (dotted JSON paths).
EXCLUDED_FIELDS = ("model.path",)


def _utc_iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def canonical_payload(result: RunResult) -> dict[str, Any]:
    """The run as a JSON-able dict (keys sorted), with :data:`EXCLUDED_FIELDS` and fields
    at their default value left out."""
    data: dict[str, Any] = pydantic_core.from_json(result.model_dump_json(exclude_defaults=True))
    for dotted in EXCLUDED_FIELDS:
        *parents, leaf = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    data["started_at"] = _utc_iso(result.started_at)
    data["finished_at"] = _utc_iso(result.finished_at)
    sorted_data: dict[str, Any] = _sorted(data)
    return sorted_data


def _sorted(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order (lists of numbers untouched)."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list) and value:
        first = value[0]
        if not isinstance(first, dict | list):
            return value  # numbers or strings: nothing to sort inside
        if isinstance(first, list) and not any(isinstance(x, dict | list) for x in first):
            return value  # rows of numbers (traces, histograms): homogeneous, typed lists
        return [_sorted(v) for v in value]
    return value


def canonical_bytes(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON of a canonical payload (whose keys :func:`canonical_payload` sorted)."""
    return pydantic_core.to_json(payload)


def canonical_json(result: RunResult) -> bytes:
    """The canonical payload of ``result`` as bytes (what :func:`content_sha256` hashes)."""
    return canonical_bytes(canonical_payload(result))


def content_sha256(result: RunResult) -> str:
    """sha256 (hex) of the canonical payload: equal for equal runs, whatever their key order."""
    return hashlib.sha256(canonical_json(result)).hexdigest()


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The JSON path of the first field (in sorted-key order) where ``a`` and ``b`` differ.

    Paths look like ``trials[0].energy[0].gross_j``; ``None`` when they are equal. A list
    of different length differs at the first index one of them lacks (``labels[2]``).
    """
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                return sub
            found = first_difference(a[key], b[key], sub)
            if found is not None:
                return found
        return None
    if _is_list(a) and _is_list(b):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        if len(a) != len(b):
            return f"{path}[{min(len(a), len(b))}]"
        return None
    if type(a) is not type(b) and not (_is_number(a) and _is_number(b)):
        return path or "$"
    return None if a == b else (path or "$")


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def difference_between(new: RunResult, stored: RunResult) -> str | None:
    """The first differing field of two runs' canonical payloads (None: same content)."""
    return first_difference(canonical_payload(new), canonical_payload(stored))
