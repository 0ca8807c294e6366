"""End-to-end: the `wattbench` CLI as a subprocess, on the real ONNX Runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
pytest.importorskip("onnx", reason="needs the models extra")

pytestmark = pytest.mark.e2e

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
SHORT = [
    "--duration",
    "0.3",
    "--repeats",
    "2",
    "--idle-s",
    "0.3",
    "--warmup",
    "0.1",
    "--cooldown",
    "0",
    "--min-queries",
    "5",
    "--threads",
    "1",
]
LEADERBOARD_KEYS = {
    "run_id",
    "suite",
    "model",
    "adapter",
    "device",
    "precision",
    "batch",
    "inferences_per_joule",
    "joules_per_inference",
    "latency_p50_ms",
    "latency_p90_ms",
    "throughput_ips",
    "energy_method",
    "energy_scope",
    "valid",
}


def wattbench(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATTBENCH, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


def leaderboard_json(db: str) -> list[dict[str, Any]]:
    proc = wattbench("leaderboard", "--db", db, "--format", "json", "--include-invalid")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_run_stores_a_row_and_the_leaderboard_ranks_it(db: str, mobilenet_weights: Path) -> None:
    proc = wattbench(
        "run",
        "--suite",
        "mobilenet_v2",
        "--adapter",
        "onnxruntime",
        "--db",
        db,
        "--json",
        "--label",
        "e2e",
        *SHORT,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["valid"] is True
    assert result["adapter"]["execution_provider"] == "CPUExecutionProvider"
    assert result["adapter"]["options"]["intra_op_num_threads"] == 1
    # suite 1.2: ImageNet-trained weights by default, their provenance stored with the run
    assert result["suite_version"] == "1.2"
    assert result["model"]["weights"] == "pretrained(sha256=b03531047ffa)"
    prov = result["model"]["provenance"]
    assert prov["kind"] == "pretrained" and prov["license"] == "BSD-3-Clause"
    assert prov["sha256"] == "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
    assert prov["url"] == "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"
    assert result["config"]["weights"] is None
    assert len(result["trials"]) == 2
    assert all(t["queries"] >= 5 and t["duration_s"] >= 0.3 for t in result["trials"])
    head = result["energy"][0]
    # No power sensor on this machine: the estimate, labelled as such.
    assert head["method"] == "estimated" and head["estimated"] is True
    assert head["gross_j"] > 0 and head["uncertainty_j"] > 0
    assert result["latency"]["p50_ms"] <= result["latency"]["p90_ms"] <= result["latency"]["p99_ms"]
    assert "ESTIMATED" in proc.stderr  # the one-line warning that it is an estimate
    env = result["environment"]
    assert env["runtime_versions"]["onnxruntime"] and env["python"]

    rows = leaderboard_json(db)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) >= LEADERBOARD_KEYS
    assert row["run_id"] == result["run_id"]
    assert row["suite"] == "mobilenet_v2" and row["adapter"] == "onnxruntime"
    assert row["energy_method"] == "estimated" and row["energy_estimated"] is True
    assert row["inferences_per_joule"] == pytest.approx(head["inferences_per_joule"])
    assert row["labels"][0] == "e2e"

    table = wattbench("leaderboard", "--db", db)
    assert table.returncode == 0
    assert "mobilenet_v2" in table.stdout and "ESTIMATED" in table.stdout

    csv_out = wattbench("leaderboard", "--db", db, "--format", "csv")
    header, line = csv_out.stdout.strip().splitlines()
    assert "inferences_per_joule" in header.split(",") and result["run_id"] in line


def test_target_ci_adds_trials_and_the_interval_is_stored_and_ranked(db: str) -> None:
    # ±50 % is reached as soon as a 95 % interval exists (6 trials), far inside the budget
    proc = wattbench(
        "run", "--suite", "mobilenet_v2", "--weights", "random", "--db", db, *SHORT,
        "--target-ci", "50", "--max-duration", "60", "--e2e-queries", "0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "95% CI of medians" in out and "target ±50% reached" in out
    (row,) = leaderboard_json(db)
    conf = row["confidence"]
    assert conf["stopped"] == "target reached" and conf["trials"] >= 6
    assert conf["target_pct"] == 50 and conf["budget_s"] == 60 and conf["min_trials"] == 2
    for metric in ("inferences_per_joule", "latency_p90_ms"):
        iv = conf[metric]
        assert iv["low"] <= iv["median"] <= iv["high"] and iv["half_width"] <= 0.5


def test_weights_random_is_the_quick_smoke_choice_and_the_summary_names_it(db: str) -> None:
    proc = wattbench(
        "run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime", "--weights", "random",
        "--seed", "2", "--db", db, *SHORT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())  # the table wraps long cells
    assert "mobilenet_v2 1.2" in out and "random(seed=2)" in out
    assert "weights │ random: seeded random weights" in out
    (row,) = leaderboard_json(db)
    assert row["suite_version"] == "1.2"
    bad = wattbench("run", "--suite", "mobilenet_v2", "--weights", "imagenet", "--db", db, *SHORT)
    assert bad.returncode == 2 and "--weights" in bad.stderr


def test_labels_csv_gives_top1_accuracy(
    db: str, coral_data: Path, tmp_path: Path, mobilenet_weights: Path
) -> None:
    """The shared Coral images with their labels (indices and class names) in labels.csv."""
    data = tmp_path / "images"
    data.mkdir()
    for f in ("bird.bmp", "cat.bmp", "grace_hopper.bmp", "owl.jpg", "parrot.jpg"):
        shutil.copyfile(coral_data / f, data / f)
    (data / "labels.csv").write_text(
        "file,label\nbird.bmp,chickadee\ncat.bmp,285\ngrace_hopper.bmp,Military Uniform\n"
        "owl.jpg,great grey owl\nparrot.jpg,88\n"
    )
    proc = wattbench(
        "run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime", "--data-dir", str(data),
        "--db", db, "--json", *SHORT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    q = result["quality"]
    assert q["passed"] and q["kind"] == "agreement", q
    # the owl is a ruffed grouse to the network: 4 of 5
    assert q["metrics"]["top1_accuracy"] == pytest.approx(0.8)
    assert q["metrics"]["labelled_samples"] == 5
    assert "labels.csv labels 5" in result["inputs"]
    (data / "labels.csv").write_text("file,label\nbird.bmp,crane\n")
    bad = wattbench("run", "--suite", "mobilenet_v2", "--data-dir", str(data), "--db", db, *SHORT)
    assert bad.returncode != 0 and "'crane' names 2 classes" in bad.stderr


def test_real_images_and_a_user_model(db: str, coral_data: Path, tmp_path: Path) -> None:
    first = wattbench(
        "run",
        "--suite",
        "mobilenet_v2",
        "--adapter",
        "onnxruntime",
        "--db",
        db,
        "--json",
        "--data-dir",
        str(coral_data),
        *SHORT,
    )
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["inputs"].startswith("images(dir=coral-test-data, n=5")
    model = tmp_path / "mine.onnx"
    shutil.copyfile(result["model"]["path"], model)
    second = wattbench(
        "run",
        "--suite",
        "mobilenet_v2",
        "--adapter",
        "onnxruntime",
        "--db",
        db,
        "--json",
        "--model",
        str(model),
        *SHORT,
    )
    assert second.returncode == 0, second.stderr
    mine = json.loads(second.stdout)
    assert mine["model"]["weights"].startswith("user(sha256=")
    assert mine["model"]["sha256"] == result["model"]["sha256"]
    assert len(leaderboard_json(db)) == 2


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["--suite", "nope", "--adapter", "onnxruntime"],
            ["unknown suite 'nope'", "wattbench suites"],
        ),
        (
            ["--suite", "mobilenet_v2", "--adapter", "nope"],
            ["unknown adapter", "wattbench adapters"],
        ),
        (
            ["--suite", "mobilenet_v2", "--adapter", "onnxruntime", "--model", "/no/such.onnx"],
            ["model file not found", "--model"],
        ),
        (["--suite", "mobilenet_v2", "--adapter", "onnxruntime", "--batch", "0"], ["--batch"]),
        (
            ["--suite", "mobilenet_v2", "--adapter", "onnxruntime", "--power", "nope"],
            ["unknown power reader", "wattbench power list"],
        ),
        (
            ["--suite", "mobilenet_v2", "--adapter", "onnxruntime", "--device", "cuda"],
            ["not available", "CUDAExecutionProvider"],
        ),
        (["--suite", "mobilenet_v2", "--target-ci", "0"], ["invalid --target-ci", "than 0"]),
        (
            ["--suite", "mobilenet_v2", "--max-duration", "60"],
            ["--max-duration is the budget of --target-ci"],
        ),
        (
            ["--suite", "mobilenet_v2", "--target-ci", "1", "--max-duration", "0.2"],
            ["--max-duration 0.2 s is shorter than the --repeats minimum"],
        ),
    ],
)
def test_user_mistakes_are_one_line_errors_and_store_nothing(
    db: str, args: list[str], fragments: list[str]
) -> None:
    proc = wattbench("run", *args, "--db", db, *SHORT)
    assert_user_error(proc, *fragments)
    assert leaderboard_json(db) == []


def test_corrupt_model_is_an_error_and_stores_nothing(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(os.urandom(2048))
    proc = wattbench(
        "run",
        "--suite",
        "mobilenet_v2",
        "--adapter",
        "onnxruntime",
        "--model",
        str(bad),
        "--db",
        db,
        *SHORT,
    )
    assert_user_error(proc, "cannot load", "valid ONNX model")
    assert leaderboard_json(db) == []


def test_unreachable_database_is_an_error(tmp_path: Path) -> None:
    proc = wattbench(
        "run",
        "--suite",
        "mobilenet_v2",
        "--adapter",
        "onnxruntime",
        "--db",
        "postgresql+psycopg://nobody@127.0.0.1:1/x?connect_timeout=2",
        *SHORT,
    )
    assert_user_error(proc, "cannot connect to database", "--db")
    proc = wattbench("leaderboard", "--db", f"sqlite:///{tmp_path / 'no' / 'dir.db'}")
    assert_user_error(proc, "does not exist")


def test_listing_commands(db: str) -> None:
    adapters = json.loads(wattbench("adapters", "--json").stdout)
    ort = next(a for a in adapters if a["name"] == "onnxruntime")
    assert ort["available"] is True and ort["runtime_version"]
    readers = json.loads(wattbench("power", "list", "--json").stdout)
    est = next(r for r in readers if r["name"] == "estimate")
    assert est["method"] == "estimated" and est["available"] is True
    suites = json.loads(wattbench("suites", "--json").stdout)
    assert any(s["name"] == "mobilenet_v2" and s["version"] for s in suites)
    empty = wattbench("leaderboard", "--db", db)
    assert empty.returncode == 0 and "no results yet" in empty.stdout
    up = wattbench("db", "upgrade", "--db", db)
    assert up.returncode == 0 and "->" in up.stdout


def test_power_measure_estimate_is_labelled() -> None:
    proc = wattbench("power", "measure", "--reader", "estimate", "--seconds", "0.5", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for key in (
        "energy_j",
        "mean_power_w",
        "samples",
        "sample_rate_hz",
        "method",
        "scope",
        "uncertainty_j",
    ):
        assert key in data
    assert data["method"] == "estimated" and data["estimated"] is True
    assert data["duration_s"] >= 0.5 and data["uncertainty_j"] is not None


def test_bad_power_options_are_one_line_errors(tmp_path: Path) -> None:
    assert_user_error(
        wattbench("power", "measure", "--reader", "estimate", "--power-opt", "x"),
        "READER.KEY=VALUE",
    )
    assert_user_error(
        wattbench("power", "list", "--sysfs-root", str(tmp_path / "none")), "not a directory"
    )
    assert_user_error(wattbench("power", "measure", "--reader", "nope"), "unknown power reader")


def test_carbon_figure_is_stored_beside_the_energy(db: str) -> None:
    pytest.importorskip("codecarbon", reason="needs the carbon extra")
    proc = wattbench(
        "run",
        "--suite",
        "mobilenet_v2",
        "--adapter",
        "onnxruntime",
        "--db",
        db,
        "--json",
        "--carbon-intensity",
        "400",
        *SHORT,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    carbon = result["carbon"]
    jpi = result["energy"][0]["joules_per_inference"]
    assert carbon["g_co2e_per_1000_inferences"] == pytest.approx(jpi * 1000 / 3.6e6 * 400)
    assert carbon["energy_method"] == "estimated"
    assert_user_error(
        wattbench(
            "run",
            "--suite",
            "mobilenet_v2",
            "--adapter",
            "onnxruntime",
            "--db",
            db,
            "--country",
            "XXX",
            *SHORT,
        ),
        "alpha-3",
    )


def test_git_sha_and_branch_become_labels(db: str, tmp_path: Path) -> None:
    repo = tmp_path / "project"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "feature-x"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    sha = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    proc = wattbench(
        "run",
        "--suite",
        "mobilenet_v2",
        "--adapter",
        "onnxruntime",
        "--db",
        db,
        "--json",
        "--label",
        "exp:1",
        *SHORT,
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["labels"] == ["exp:1", f"git:{sha}", "branch:feature-x"]
    mine = wattbench(
        "run",
        "--suite",
        "mobilenet_v2",
        "--adapter",
        "onnxruntime",
        "--db",
        db,
        "--json",
        "--label",
        "git:given",
        "--no-git-labels",
        *SHORT,
        cwd=repo,
    )
    assert json.loads(mine.stdout)["labels"] == ["git:given"]
