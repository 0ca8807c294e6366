"""Typed run configuration; every field documents itself."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wattbench.core.adapter import Precision
from wattbench.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class RunConfig(BaseModel):
    """Everything that defines one benchmark run (stored with the result)."""

    model_config = ConfigDict(frozen=True)

    suite: str = Field(description="Suite name, see `wattbench suites`.")
    adapter: str = Field(description="Runtime adapter name, see `wattbench adapters`.")
    model: Path | None = Field(default=None, description="User model file instead of the suite's.")
    device: str = Field(default="cpu", description="Adapter device (cpu, cuda, ...).")
    threads: int | None = Field(default=None, ge=1, description="Runtime intra-op threads.")
    precision: Precision | None = Field(
        default=None, description="Model precision; None runs the model at its own."
    )
    batch: int = Field(default=1, ge=1, description="Samples per query.")
    duration_s: float = Field(
        default=10.0, gt=0, description="Minimum measured-window length per trial."
    )
    min_queries: int = Field(default=100, ge=1, description="Minimum queries per trial.")
    repeats: int = Field(
        default=3, ge=1, description="Trials (measured windows); the minimum with target_ci_pct."
    )
    target_ci_pct: float | None = Field(
        default=None,
        gt=0,
        lt=100,
        description="Add trials after `repeats` until the 95% CI of the median of inferences "
        "per joule and of p90 latency across trials is within this % of the median.",
    )
    max_duration_s: float | None = Field(
        default=None,
        gt=0,
        description="target_ci_pct: measuring budget (trials and pauses), s; None: 600.",
    )
    warmup_s: float = Field(default=2.0, ge=0, description="Warm-up time before measuring.")
    warmup_queries: int = Field(default=10, ge=0, description="Minimum warm-up queries.")
    idle_s: float = Field(default=3.0, gt=0, description="Idle-power baseline window.")
    cooldown_s: float = Field(default=1.0, ge=0, description="Pause between trials.")
    power: tuple[str, ...] = Field(
        default=("auto",), description="Power readers; the first gives the headline figure."
    )
    tdp_w: float | None = Field(default=None, gt=0, description="CPU TDP for the estimate.")
    labels: tuple[str, ...] = Field(default=(), description="Free-form labels, e.g. git:abc.")
    data_dir: Path | None = Field(default=None, description="Real inputs for the suite.")
    seed: int = Field(default=0, description="Seed of random weights and synthetic inputs.")
    weights: Literal["pretrained", "random"] | None = Field(
        default=None,
        description="The suite's model weights: pretrained or random (seeded, quick smoke "
        "runs); None: the suite's default (pretrained where the suite has them).",
    )
    stability_threshold: float = Field(
        default=0.05, gt=0, description="Trial CV above which a stability warning is given."
    )
    carbon_intensity_g_per_kwh: float | None = Field(
        default=None, gt=0, description="Grid carbon intensity for the CO2e figure."
    )
    country: str | None = Field(
        default=None, description="ISO 3166 alpha-3 country for codecarbon's grid intensity."
    )
    sysfs_root: Path | None = Field(
        default=None, description="Root under which power readers read sysfs (tests, replays)."
    )
    adapter_options: dict[str, str] = Field(
        default_factory=dict, description="Adapter settings KEY -> value (--adapter-opt)."
    )
    power_options: dict[str, str] = Field(
        default_factory=dict, description="Reader settings 'reader.key' -> value."
    )
    device_name: str | None = Field(default=None, description="Name of this device (hostname).")
    # -- scenario (MLPerf semantics) ------------------------------------------------------
    scenario: Literal["single-stream", "offline", "server"] = Field(
        default="single-stream",
        description="single-stream: one query at a time (headline p90 latency); offline: all "
        "samples at once (headline samples/s); server: Poisson arrivals at a target QPS.",
    )
    driver: Literal["builtin", "loadgen"] = Field(
        default="builtin", description="Who issues the queries: wattbench or MLPerf LoadGen."
    )
    target_qps: float | None = Field(
        default=None, gt=0, description="Server scenario: arrival rate; None searches the highest."
    )
    latency_bound_ms: float | None = Field(
        default=None, gt=0, description="Server scenario: p99 latency bound the QPS must meet."
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Offline/server: queries in flight (None: adapter's choice).",
    )
    e2e_queries: int = Field(
        default=50,
        ge=0,
        description="Queries timed end to end (acquisition + pre + inference + post), outside "
        "the energy windows; 0 skips.",
    )
    # -- edge / cloud / hybrid -------------------------------------------------------------
    mode: Literal["edge", "cloud", "hybrid"] = Field(
        default="edge",
        description="edge: all on this device; cloud: every query to --cloud-url; hybrid: "
        "queries below --escalate-below confidence go to the cloud.",
    )
    cloud_url: str | None = Field(default=None, description="Cloud inference endpoint.")
    escalate_below: float | None = Field(
        default=None, ge=0, le=1, description="Hybrid: escalate when confidence is below this."
    )
    network_link: str = Field(
        default="wifi", description="Access link of the network energy model (wifi, ethernet, ...)."
    )
    payload: str | None = Field(
        default=None,
        description="Cloud/hybrid: wire encoding of an escalated sample: raw (the source's "
        "bytes), png[@SIDE], jpeg[:Q][@SIDE] or npy (preprocessed inputs); None: jpeg:90 for "
        "images, npy otherwise.",
    )
    network_model: Path | None = Field(
        default=None,
        description="Cloud/hybrid: JSON file overriding the network energy model's kWh/GB "
        "coefficients (docs/network.md); None: the built-in model, or WATTBENCH_NETWORK_MODEL.",
    )
    cloud_j_per_request: float | None = Field(
        default=None,
        ge=0,
        description="Cloud/hybrid: cloud compute joules per answered request when the server "
        "meters none (labelled estimated).",
    )

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], *, source: str = "options", base_dir: Path | None = None
    ) -> RunConfig:
        """A validated config from run-file keys (the long options of `wattbench run`).

        ``source`` names where they came from (a file path, or "options") in errors, which
        name the key: ``run.toml: invalid key 'duration': Input should be greater than 0``.
        """
        fields = fields_from_options(options, source=source, base_dir=base_dir)
        try:
            return cls(**fields)
        except ValidationError as exc:
            label = (
                (lambda k: f"--{k}")
                if source == "options"
                else (lambda k: f"key {k!r} in {source}")
            )
            raise config_error(exc, label) from None

    def to_toml(self, *, exclude: tuple[str, ...] = ()) -> str:
        """The run as a run file for `wattbench run --config`: every set value, keyed by
        option name. Values left at None are omitted (TOML has no null; omitted = default)."""
        import tomli_w

        data = {
            option_name(k): _toml_value(v)
            for k, v in self.model_dump().items()
            if v is not None and v != {} and option_name(k) not in exclude
        }
        return tomli_w.dumps(data)


# -- a run as a file ------------------------------------------------------------------------
#
# The keys of a run file are the long option names of `wattbench run`, so a user who knows
# the options can write the file (and `--print-config` writes one). Lab campaigns and sweeps
# read their `[run]` table through the same functions: one way to describe a run.

#: `wattbench run` option -> RunConfig field, where the two names differ beyond - vs _.
_OPTION_TO_FIELD: dict[str, str] = {
    "duration": "duration_s",
    "warmup": "warmup_s",
    "idle-s": "idle_s",
    "cooldown": "cooldown_s",
    "label": "labels",
    "adapter-opt": "adapter_options",
    "power-opt": "power_options",
    "carbon-intensity": "carbon_intensity_g_per_kwh",
    "target-ci": "target_ci_pct",
    "max-duration": "max_duration_s",
}
_FIELD_TO_OPTION = {v: k for k, v in _OPTION_TO_FIELD.items()}
#: options whose value is a file or folder: relative paths in a file are relative to it
_PATH_OPTIONS = ("model", "data-dir", "sysfs-root", "network-model")


def option_name(field: str) -> str:
    """The `wattbench run` option (and run-file key) of a RunConfig field."""
    return _FIELD_TO_OPTION.get(field, field.replace("_", "-"))


def run_option_names() -> list[str]:
    """Every key a run file may hold, in RunConfig's order."""
    return [option_name(f) for f in RunConfig.model_fields]


def _key_value_table(key: str, value: Any, *, reader_prefixed: bool) -> dict[str, str]:
    """``adapter-opt``/``power-opt``: a TOML table or a list of ``KEY=VALUE`` strings."""
    example = "shelly.url=http://10.0.0.5" if reader_prefixed else "performance_hint=THROUGHPUT"
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = []
        for item in value:
            k, sep, v = str(item).partition("=")
            if not sep or not k.strip():
                raise ConfigError(f"invalid {key} {item!r}: use KEY=VALUE, e.g. {example}")
            items.append((k.strip(), v.strip()))
    else:
        raise ConfigError(f"invalid {key}: use a table or a list of KEY=VALUE, e.g. {example}")
    out: dict[str, str] = {}
    for k, v in items:
        if reader_prefixed and not all(k.partition(".")[::2]):
            raise ConfigError(f"invalid {key} {k!r}: use READER.KEY=VALUE, e.g. {example}")
        if isinstance(v, (Mapping, list, tuple)):
            raise ConfigError(f"invalid {key} {k!r}: the value must be a string or number")
        out[k] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _str_list(key: str, value: Any, *, comma: bool) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = value.split(",") if comma else [value]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        raise ConfigError(f"invalid {key} {value!r}: use a string or a list of strings")
    return tuple(p.strip() for p in parts if p.strip())


def fields_from_options(
    options: Mapping[str, Any], *, source: str = "options", base_dir: Path | None = None
) -> dict[str, Any]:
    """RunConfig fields from run-file keys / option names (``duration``, ``idle-s``, ...).

    Unknown keys are refused with the nearest known one; ``base_dir`` anchors relative paths
    (the run file's folder). Values are not validated here: :meth:`RunConfig.from_options`.
    """
    known = run_option_names()
    fields: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{source}: unknown key {key!r}{hint}; keys are the long options of "
                f"`wattbench run` (see `wattbench run --help`)"
            )
        if key == "power":
            value = _str_list(key, value, comma=True) or ("auto",)
        elif key == "label":
            value = _str_list(key, value, comma=False)
        elif key in ("adapter-opt", "power-opt"):
            value = _key_value_table(key, value, reader_prefixed=key == "power-opt")
        elif key in _PATH_OPTIONS and isinstance(value, str):
            path = Path(value).expanduser()
            value = base_dir / path if base_dir is not None and not path.is_absolute() else path
        fields[_OPTION_TO_FIELD.get(key, key.replace("-", "_"))] = value
    return fields


def load_run_file(path: Path) -> dict[str, Any]:
    """The run-file keys of the TOML file ``path`` (its ``[run]`` table if it has one).

    Errors (missing file, bad TOML) are one :class:`ConfigError` line naming the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read run file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    run = data.get("run", data)
    if not isinstance(run, dict):
        raise ConfigError(f"{path}: [run] must be a table of `wattbench run` options")
    return dict(run)


def config_error(exc: ValidationError, where: Callable[[str], str]) -> ConfigError:
    """One line for a RunConfig validation error; ``where(key)`` says where ``key`` was set
    (``--duration``, ``run.toml: duration``)."""
    parts = []
    for e in exc.errors():
        field = str(e["loc"][0]) if e["loc"] else "value"
        parts.append(f"invalid {where(option_name(field))}: {e['msg']}")
    return ConfigError("; ".join(parts))


def _toml_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_toml_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _toml_value(v) for k, v in value.items()}
    return value
