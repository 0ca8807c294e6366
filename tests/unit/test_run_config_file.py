"""A run is a config: run files keyed by `wattbench run`'s long options (core/config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from wattbench.core.config import RunConfig, fields_from_options, load_run_file, run_option_names
from wattbench.core.errors import ConfigError


def test_option_names_map_to_fields_and_back() -> None:
    cfg = RunConfig.from_options(
        {
            "suite": "mobilenet_v2",
            "adapter": "openvino",
            "duration": 3,
            "idle-s": 1.5,
            "warmup": 0.5,
            "cooldown": 0,
            "power": "rapl,estimate",
            "label": ["exp:1", "rack-a"],
            "adapter-opt": {"performance_hint": "THROUGHPUT", "num_streams": 2},
            "power-opt": ["shelly.url=http://10.0.0.5"],
            "carbon-intensity": 250,
            "latency-bound-ms": 20,
        }
    )
    assert cfg.duration_s == 3 and cfg.idle_s == 1.5 and cfg.warmup_s == 0.5
    assert cfg.cooldown_s == 0 and cfg.power == ("rapl", "estimate")
    assert cfg.labels == ("exp:1", "rack-a")
    assert cfg.adapter_options == {"performance_hint": "THROUGHPUT", "num_streams": "2"}
    assert cfg.power_options == {"shelly.url": "http://10.0.0.5"}
    assert cfg.carbon_intensity_g_per_kwh == 250 and cfg.latency_bound_ms == 20
    # the TOML it writes reads back to the same config
    again = RunConfig.from_options(tomllib.loads(cfg.to_toml()))
    assert again == cfg


def test_every_field_has_a_key() -> None:
    names = run_option_names()
    assert len(names) == len(RunConfig.model_fields) == len(set(names))
    assert {"suite", "adapter", "duration", "idle-s", "warmup", "repeats", "label"} <= set(names)


def test_unknown_key_names_the_nearest_one() -> None:
    with pytest.raises(
        ConfigError, match=r"run.toml: unknown key 'duraton' \(did you mean 'duration'\?\)"
    ):
        RunConfig.from_options({"suite": "s", "adapter": "a", "duraton": 1}, source="run.toml")


def test_a_bad_value_names_the_key_and_the_file() -> None:
    with pytest.raises(
        ConfigError, match=r"invalid key 'repeats' in lab\.toml: .*greater than or equal to 1"
    ):
        RunConfig.from_options({"suite": "s", "adapter": "a", "repeats": 0}, source="lab.toml")
    with pytest.raises(ConfigError, match=r"invalid --idle-s: "):
        RunConfig.from_options({"suite": "s", "adapter": "a", "idle-s": -1})


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("adapter-opt", ["nokey"], "use KEY=VALUE"),
        ("power-opt", {"url": "x"}, "use READER.KEY=VALUE"),
        ("label", 3, "use a string or a list of strings"),
        ("adapter-opt", "x=1", "use a table or a list of KEY=VALUE"),
    ],
)
def test_malformed_tables_are_one_line(key: str, value: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        fields_from_options({key: value})


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    fields = fields_from_options({"model": "models/m.onnx", "data-dir": "/abs"}, base_dir=tmp_path)
    assert fields["model"] == tmp_path / "models/m.onnx" and fields["data_dir"] == Path("/abs")


def test_run_file_reads_a_run_table_or_top_level_keys(tmp_path: Path) -> None:
    flat = tmp_path / "run.toml"
    flat.write_text('suite = "distilbert"\nrepeats = 2\n')
    nested = tmp_path / "sweep.toml"
    nested.write_text('[run]\nsuite = "slm"\n[sweep]\nbatch = [1, 2]\n')
    assert load_run_file(flat) == {"suite": "distilbert", "repeats": 2}
    assert load_run_file(nested) == {"suite": "slm"}
    bad = tmp_path / "bad.toml"
    bad.write_text("suite = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        load_run_file(bad)
    with pytest.raises(ConfigError, match="cannot read run file"):
        load_run_file(tmp_path / "missing.toml")
