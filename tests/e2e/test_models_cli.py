"""`wattbench models` and pretrained artifacts given with --model, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
MODEL = "mobilenet_v2_1.0_224_quant"
SHA = "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"


def wattbench(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATTBENCH, *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "WATTBENCH_CACHE": str(cache)},
    )  # fmt: skip


def test_import_and_fetch_offline_fill_the_cache(coral_data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    listed = json.loads(wattbench("models", "list", "--json", cache=cache).stdout)
    entry = next(e for e in listed if e["name"] == MODEL)
    assert entry["sha256"] == SHA and entry["cached"] is False
    assert entry["url"].startswith("https://") and entry["url"].endswith(f"{MODEL}.tflite")

    imported = wattbench("models", "import", str(coral_data), cache=cache)
    assert imported.returncode == 0, imported.stderr
    assert f"{MODEL}\t" in imported.stdout
    listed = json.loads(wattbench("models", "list", "--json", cache=cache).stdout)
    assert next(e for e in listed if e["name"] == MODEL)["cached"] is True

    # fetch from a local mirror (never the network in tests): verified by sha256
    other = tmp_path / "other-cache"
    fetched = wattbench("models", "fetch", MODEL, "--base-url", coral_data.as_uri(), cache=other)
    assert fetched.returncode == 0, fetched.stderr
    assert Path(fetched.stdout.strip()).name == f"{SHA}.tflite"


def test_models_errors_are_one_line(tmp_path: Path) -> None:
    for args in (
        ("models", "import", str(tmp_path)),
        ("models", "fetch", "nope"),
        ("models", "fetch", MODEL, "--base-url", (tmp_path / "none").as_uri()),
    ):
        proc = wattbench(*args, cache=tmp_path / "c")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert len([x for x in proc.stderr.splitlines() if x.startswith("error: ")]) == 1


def test_a_registry_file_is_recorded_as_pretrained(coral_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert", reason="needs the litert extra")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    proc = wattbench(
        "run", "--suite", "mobilenet_v2", "--adapter", "litert", "--db", db, "--json",
        "--model", str(coral_data / f"{MODEL}.tflite"), "--data-dir", str(coral_data),
        "--duration", "0.2", "--repeats", "2", "--idle-s", "0.2", "--warmup", "0.05",
        "--cooldown", "0", "--min-queries", "5", "--no-git-labels",
        cache=tmp_path / "c",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["model"]["weights"] == f"pretrained(sha256={SHA[:12]})"
    assert result["model"]["name"] == MODEL and result["adapter"]["precision"] == "int8"
    assert result["valid"] is True
