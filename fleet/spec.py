"""Campaign files: a matrix of `wattbench run` options sent to device racks.

A campaign file is TOML::

    name = "mobilenet across the rack"

    [matrix]                 # lists; their cross product is the cells
    adapter = ["onnxruntime", "openvino"]
    precision = ["fp32", "int8"]

    [run]                    # `wattbench run --config` keys, the same for every cell
    suite = "mobilenet_v2"
    duration = 5.0

    [target]
    tags = ["arm"]           # devices having all these tags (from the device registry)
    devices = ["jetson-01"]  # and/or devices by name
    each_device = true       # every cell on every device (false: on any one of them)

Every key of ``[matrix]`` and ``[run]`` is a long option of `wattbench run`; each cell is
validated through :meth:`RunConfig.from_options`, so a bad file is one line naming the key.
Nothing here talks to a broker or a database.
"""

from __future__ import annotations

import difflib
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattbench.core import plugins
from wattbench.core.config import RunConfig, run_option_names
from wattbench.core.errors import ConfigError, WattbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: options a campaign sets itself per device (the worker's name) or never sends to a device
RESERVED_KEYS = frozenset({"device-name"})
_TOP_KEYS = frozenset({"name", "matrix", "run", "target", "each_device", "each-device"})
_TARGET_KEYS = frozenset({"tags", "devices", "each_device", "each-device"})


@dataclass(frozen=True)
class Target:
    """Where cells go: devices having all ``tags`` and/or the named ``devices``."""

    tags: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    each_device: bool = True


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    matrix: dict[str, list[Any]]
    run: dict[str, Any]
    target: Target
    #: one mapping of run options per cell, in cross-product order
    cells: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "matrix": self.matrix,
            "run": self.run,
            "target": {
                "tags": list(self.target.tags),
                "devices": list(self.target.devices),
                "each_device": self.target.each_device,
            },
        }


def _names(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where} must be a list of names")
    return tuple(dict.fromkeys(v.strip() for v in value))


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    return value


def _target(path: Path, data: dict[str, Any]) -> Target:
    raw = data.get("target", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [target] must be a table with tags and/or devices")
    for key in raw:
        if key not in _TARGET_KEYS:
            raise ConfigError(
                f"{path}: unknown key {key!r} in [target] (keys: tags, devices, each_device)"
            )
    tags = _names(f"{path}: [target] tags", raw.get("tags", []))
    devices = _names(f"{path}: [target] devices", raw.get("devices", []))
    if not tags and not devices:
        raise ConfigError(f"{path}: [target] needs tags or devices (which devices run the cells)")
    each: Any = True
    for table, name in ((data, "each_device"), (raw, "each_device")):
        for key in (name, name.replace("_", "-")):
            if key in table:
                each = _bool(f"{path}: {key}", table[key])
    return Target(tags=tags, devices=devices, each_device=each)


def _check_key(path: Path, table: str, key: str) -> None:
    if key in RESERVED_KEYS:
        raise ConfigError(f"{path}: key {key!r} in [{table}] is set by each worker (--device)")
    known = run_option_names()
    if key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{path}: unknown key {key!r} in [{table}]{hint}; keys are the long options of "
            f"`wattbench run`"
        )


def _default_adapter(suite: str) -> str | None:
    try:
        cls = plugins.load(plugins.SUITES, suite)
    except WattbenchError:
        return None
    names: tuple[str, ...] = getattr(cls, "default_adapters", ()) or ("onnxruntime",)
    return names[0]


def parse_campaign(text: str, path: Path) -> CampaignSpec:
    """The campaign in ``text`` (read from ``path``); every error is one line naming the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"{path}: unknown key {key!r} (a campaign has name, [matrix], [run], [target]; "
                f"run options go in [run])"
            )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{path}: key 'name' is missing: name = \"what this campaign measures\"")
    matrix = data.get("matrix", {})
    run = data.get("run", {})
    if not isinstance(matrix, dict):
        raise ConfigError(f"{path}: [matrix] must be a table of lists")
    if not isinstance(run, dict):
        raise ConfigError(f"{path}: [run] must be a table of `wattbench run` options")
    for key, values in matrix.items():
        _check_key(path, "matrix", key)
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{path}: key {key!r} in [matrix] must be a non-empty list, e.g. {key} = [...]"
            )
        if key in run:
            raise ConfigError(f"{path}: key {key!r} is in both [matrix] and [run]")
    for key in run:
        _check_key(path, "run", key)
    target = _target(path, data)

    keys = list(matrix)
    cells: list[dict[str, Any]] = []
    for combo in itertools.product(*(matrix[k] for k in keys)):
        options = {**run, **dict(zip(keys, combo, strict=True))}
        where = f"{path}" + (
            " (cell " + ", ".join(f"{k}={v!r}" for k, v in zip(keys, combo, strict=True)) + ")"
            if keys
            else ""
        )
        if not options.get("suite"):
            raise ConfigError(f"{path}: key 'suite' is missing: set it in [run] or [matrix]")
        check = dict(options)
        if not check.get("adapter"):
            check["adapter"] = _default_adapter(str(options["suite"])) or "onnxruntime"
        RunConfig.from_options(check, source=where)
        cells.append(options)
    return CampaignSpec(
        name=name.strip(), matrix=dict(matrix), run=dict(run), target=target, cells=cells
    )


def load_campaign(path: Path) -> CampaignSpec:
    """:func:`parse_campaign` of the file ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read campaign file {path}: {exc.strerror or exc}") from None
    return parse_campaign(text, path)
