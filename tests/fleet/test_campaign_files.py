"""Campaign files: the matrix's cross product, [run] through RunConfig, one line per error."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattbench.core.errors import ConfigError
from wattbench.fleet import broker
from wattbench.fleet.ledger import cell_run_uuid
from wattbench.fleet.spec import load_campaign, parse_campaign

P = Path("lab.toml")


def test_cells_are_the_cross_product_with_the_run_table() -> None:
    spec = parse_campaign(
        """
name = "mobilenet across the rack"
[matrix]
adapter = ["onnxruntime", "openvino"]
precision = ["fp32", "int8"]
scenario = ["single-stream", "offline"]
[run]
suite = "mobilenet_v2"
duration = 0.5
idle-s = 0.2
[target]
tags = ["arm"]
each_device = false
""",
        P,
    )
    assert len(spec.cells) == 8
    assert spec.cells[0] == {
        "suite": "mobilenet_v2",
        "duration": 0.5,
        "idle-s": 0.2,
        "adapter": "onnxruntime",
        "precision": "fp32",
        "scenario": "single-stream",
    }
    assert {c["scenario"] for c in spec.cells} == {"single-stream", "offline"}
    assert spec.target.tags == ("arm",) and not spec.target.each_device


BAD = [
    ('name = "x"\n[run]\nsuite = "fake"\ndurration = 1\n[target]\ndevices = ["a"]',
     "unknown key 'durration' in [run] (did you mean 'duration'?)"),
    ('name = "x"\n[run]\nsuite = "fake"\nduration = -1\n[target]\ndevices = ["a"]',
     "invalid key 'duration' in lab.toml: Input should be greater than 0"),
    ('name = "x"\n[matrix]\nprecision = ["fp32", "fp12"]\n[run]\nsuite = "fake"\n'
     '[target]\ndevices = ["a"]',
     "invalid key 'precision' in lab.toml (cell precision='fp12')"),
    ('name = "x"\n[matrix]\nthreads = 2\n[run]\nsuite = "fake"\n[target]\ndevices = ["a"]',
     "key 'threads' in [matrix] must be a non-empty list"),
    ('name = "x"\n[run]\nsuite = "fake"', "[target] needs tags or devices"),
    ('[run]\nsuite = "fake"\n[target]\ndevices = ["a"]', "key 'name' is missing"),
    ('name = "x"\n[run]\nduration = 1.0\n[target]\ndevices = ["a"]', "key 'suite' is missing"),
    ('name = "x"\nsuite = "fake"\n[target]\ndevices = ["a"]', "unknown key 'suite'"),
    ('name = "x"\n[run]\nsuite = "fake"\ndevice-name = "b"\n[target]\ndevices = ["a"]',
     "key 'device-name' in [run] is set by each worker"),
    ('name = "x"\n[run]\nsuite = "fake"\n[target]\ndevices = ["a"]\nracks = 2',
     "unknown key 'racks' in [target]"),
    ('name = "x"\n[run]\nsuite = "fake"\n[target]\ndevices = ["a"]\neach_device = "yes"',
     "each_device must be true or false"),
    ('name = "x"\n[run\n', "is not valid TOML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_file_is_one_line_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_campaign(text, P)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read campaign file"):
        load_campaign(tmp_path / "nope.toml")


def test_run_uuids_are_deterministic_per_campaign_cell_target_and_attempt() -> None:
    a = cell_run_uuid("c1", 3, "rack-a", 0)
    assert a == cell_run_uuid("c1", 3, "rack-a", 0)
    others = {
        cell_run_uuid("c2", 3, "rack-a", 0),
        cell_run_uuid("c1", 4, "rack-a", 0),
        cell_run_uuid("c1", 3, "rack-b", 0),
        cell_run_uuid("c1", 3, "rack-a", 1),
    }
    assert a not in others and len(others) == 4


def test_a_worker_consumes_its_device_queue_and_every_subset_of_its_tags() -> None:
    assert broker.worker_queues("lab", "jet-1", ["gpu", "arm"]) == [
        "lab.device.jet-1",
        "lab.tags.arm",
        "lab.tags.gpu",
        "lab.tags.arm+gpu",
    ]
    assert broker.tags_queue("lab", ["gpu", "arm"]) == "lab.tags.arm+gpu"
    with pytest.raises(ConfigError, match="invalid device"):
        broker.check_name("device", "a b")
    with pytest.raises(ConfigError, match="at most 6 tags"):
        broker.worker_queues("lab", "d", [f"t{i}" for i in range(7)])
