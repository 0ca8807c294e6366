"""End-to-end: `wattbench run --suite slm` as a subprocess on the real runtimes.

Skipped until the slm suite and the generative adapters are registered as entry points
(``wattbench.suites: slm``, ``wattbench.adapters: transformers, onnxruntime-genai``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from wattbench.core.adapter import ModelArtifact
from wattbench.core.cache import ModelCache

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not {"transformers", "onnxruntime-genai"}
        <= {e.name for e in entry_points(group="wattbench.adapters")}
        or "slm" not in {e.name for e in entry_points(group="wattbench.suites")},
        reason="slm entry points not registered yet (pip install -e . after wiring them)",
    ),
]

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
SHORT = [
    "--duration",
    "0.3",
    "--repeats",
    "2",
    "--idle-s",
    "0.2",
    "--warmup",
    "0.1",
    "--cooldown",
    "0",
    "--min-queries",
    "5",
    "--threads",
    "1",
    "--power",
    "estimate",
    "--no-git-labels",
]


def wattbench(cache: ModelCache, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    # The session's model cache: the tiny model is built once for all slm tests.
    env = {**os.environ, "WATTBENCH_CACHE": str(cache.root), "WATTBENCH_DB": db}
    return subprocess.run([WATTBENCH, *args], capture_output=True, text=True, timeout=300, env=env)


def _one_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


def test_run_on_onnxruntime_genai_stores_generation_metrics(
    slm_cache: ModelCache, genai_model: ModelArtifact, db: str
) -> None:
    proc = wattbench(
        slm_cache,
        db,
        "run",
        "--suite",
        "slm",
        "--weights",
        "random",
        "--adapter",
        "onnxruntime-genai",
        *SHORT,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    r: dict[str, Any] = json.loads(proc.stdout)
    assert r["valid"], r["invalid_reasons"]
    assert (r["suite"], r["suite_version"]) == ("slm", "2.0")
    assert r["adapter"]["runtime"] == "onnxruntime-genai"
    assert r["model"]["format"] == "onnx-genai-dir" and r["model"]["weights"] == "random(seed=0)"
    assert r["quality"]["kind"] == "agreement" and r["quality"]["passed"]
    g = r["generation"]
    assert (g["prompt_tokens"], g["output_tokens"]) == (128, 128)
    assert g["ttft_ms"]["p50_ms"] > 0 and g["tpot_ms"]["p50_ms"] > 0
    assert g["prefill_j_per_token"] > 0 and g["decode_j_per_token"] > 0
    assert g["tokens_per_joule"] > 0 and g["prefill_energy"][0]["estimated"]
    assert len(g["prefill_trials"]) == len(r["trials"]) == 2

    board = wattbench(slm_cache, db, "leaderboard", "--suite", "slm", "--format", "json")
    assert board.returncode == 0, board.stderr
    (row,) = json.loads(board.stdout)
    assert row["ttft_ms"] == pytest.approx(g["ttft_ms"]["p50_ms"])
    assert row["tpot_ms"] == pytest.approx(g["tpot_ms"]["p50_ms"])
    assert row["tokens_per_joule"] == pytest.approx(g["tokens_per_joule"])


def test_user_model_folder_on_the_reference_runtime(
    slm_cache: ModelCache, hf_model: ModelArtifact, db: str, tmp_path: Path
) -> None:
    folder = tmp_path / "my-slm"
    shutil.copytree(hf_model.path, folder)
    proc = wattbench(
        slm_cache,
        db,
        "run",
        "--suite",
        "slm",
        "--weights",
        "random",
        "--adapter",
        "transformers",
        "--model",
        str(folder),
        *SHORT,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["valid"] and r["model"]["name"] == "my-slm"
    assert r["model"]["weights"] == f"user(sha256={hf_model.sha256[:12]})"
    assert r["quality"]["kind"] == "agreement"


def test_mismatched_suite_and_adapter_are_one_line_errors(slm_cache: ModelCache, db: str) -> None:
    _one_error(
        wattbench(slm_cache, db, "run", "--suite", "slm", "--adapter", "onnxruntime", *SHORT),
        "does not generate text",
    )
    _one_error(
        wattbench(
            slm_cache, db, "run", "--suite", "mobilenet_v2", "--adapter", "transformers", *SHORT
        ),
        "runs text-generation suites",  # create_runner's guard for generative adapters
    )
    _one_error(
        wattbench(
            slm_cache,
            db,
            "run",
            "--suite",
            "slm",
            "--adapter",
            "transformers",
            "--model",
            str(Path(db.removeprefix("sqlite:///")).parent / "nope"),
            *SHORT,
        ),
        "not found",
    )
