"""Bad input on the run side, end to end (docs/reliability.md, "Bad-input table").

Each case runs the real ``wattbench run`` as a subprocess on a bad model file, a bad run
file or a bad power reader, and holds the contract for user mistakes: a nonzero exit,
exactly one ``error:`` line that names the remedy, no traceback — and nothing written:
the SQLite store given with ``--db`` has 0 runs and no run is left in the run journal
(neither in progress nor aborted).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wattbench.harness import journal
from wattbench.results_db.store import Store

pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
onnx = pytest.importorskip("onnx", reason="needs the models extra")

pytestmark = pytest.mark.e2e

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
CORAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coral-test-data"
EDGETPU_MODEL = CORAL_DATA / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
#: A run of a few seconds: the cases that get as far as measuring end at the store write.
SHORT = (
    *("--duration", "0.3", "--repeats", "2", "--idle-s", "0.3", "--warmup", "0.1"),
    *("--cooldown", "0", "--min-queries", "5", "--threads", "1", "--no-git-labels"),
)
ORT = ("run", "--suite", "mobilenet_v2", "--adapter", "onnxruntime")

#: A case prepares its files under tmp_path and returns (argv, fragments of the error line).
Case = Callable[[Path], tuple[list[str], tuple[str, ...]]]


def _onnx_model(path: Path, shape: list[int]) -> Path:
    """A one-node ONNX model (Relu) whose input has ``shape``."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # loadable by older ONNX Runtime releases too
    onnx.save(model, str(path))
    return path


def _trace(path: Path, watts: str) -> Path:
    """A 10 Hz ``timestamp,watts`` trace covering the next five minutes with one value."""
    t0 = time.time() - 30
    rows = "".join(f"{t0 + i * 0.1:.3f},{watts}\n" for i in range(3300))
    path.write_text("timestamp,watts\n" + rows)
    return path


def empty_model(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    model = tmp / "empty.onnx"
    model.write_bytes(b"")
    return [WATTBENCH, *ORT, "--model", str(model), "--power", "estimate"], (
        f"onnxruntime cannot load {model}",
        "is it a valid ONNX model? re-export it or pass another --model",
    )


def random_model(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    model = tmp / "random.onnx"
    model.write_bytes(os.urandom(4096))
    return [WATTBENCH, *ORT, "--model", str(model), "--power", "estimate"], (
        f"onnxruntime cannot load {model}",
        "is it a valid ONNX model? re-export it or pass another --model",
    )


def model_not_an_image_batch(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    model = _onnx_model(tmp / "vector.onnx", [1, 10])
    return [WATTBENCH, *ORT, "--model", str(model), "--power", "estimate"], (
        "model input 'x' has shape [1, 10], expected an image batch (N,3,H,W) or (N,H,W,3)",
        "is this an image-classification model?",
    )


def model_one_channel(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    model = _onnx_model(tmp / "gray.onnx", [1, 1, 224, 224])
    return [WATTBENCH, *ORT, "--model", str(model), "--power", "estimate"], (
        "model input 'x' shape [1, 1, 224, 224] has no 3-channel axis",
        "export the model with 3 input channels or pass another --model",
    )


def edgetpu_model_on_cpu(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    from wattbench.adapters.litert import LiteRtAdapter

    if not EDGETPU_MODEL.is_file():
        pytest.skip(f"needs {EDGETPU_MODEL}")
    if not LiteRtAdapter.is_available().available:
        pytest.skip("needs the litert extra")
    argv = [WATTBENCH, "run", "--suite", "mobilenet_v2", "--adapter", "litert"]
    return [*argv, "--model", str(EDGETPU_MODEL), "--power", "estimate"], (
        "is an Edge TPU model (it contains edgetpu-custom-op)",
        "use --adapter coral with an Edge TPU attached, or the CPU model",
    )


def coral_without_edge_tpu(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    from wattbench.adapters.coral import CoralAdapter

    if not EDGETPU_MODEL.is_file():
        pytest.skip(f"needs {EDGETPU_MODEL}")
    if CoralAdapter.is_available().available:
        pytest.skip("an Edge TPU runtime is installed here")
    argv = [WATTBENCH, "run", "--suite", "mobilenet_v2", "--adapter", "coral"]
    return [*argv, "--model", str(EDGETPU_MODEL), "--power", "estimate"], (
        "adapter 'coral' is not available",
        "install the Edge TPU runtime",
    )


def config_unknown_key(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    run_file = tmp / "typo.toml"
    run_file.write_text('suite = "mobilenet_v2"\nadapter = "onnxruntime"\nrepeat = 3\n')
    return [WATTBENCH, "run", "--config", str(run_file)], (
        f"{run_file}: unknown key 'repeat' (did you mean 'repeats'?)",
        "keys are the long options of `wattbench run`",
    )


#: As root file modes do not deny reads: the denial is injected at the reader's read seam,
#: as tests/power/test_rapl.py does, in front of the real CLI.
DENY_ENERGY_UJ = """
import sys
from wattbench.power.rapl import RaplReader
read = RaplReader._read_text.__func__
def denied(cls, path):
    if path.name == "energy_uj":
        raise PermissionError(13, "Permission denied", str(path))
    return read(cls, path)
RaplReader._read_text = classmethod(denied)
from wattbench.harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def rapl_without_permission(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    zone = tmp / "sysfs/sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    (zone / "energy_uj").write_text("1000\n")
    (zone / "energy_uj").chmod(0)  # root-only since Linux 5.10
    launcher = [sys.executable, "-c", DENY_ENERGY_UJ] if os.geteuid() == 0 else [WATTBENCH]
    argv = [*launcher, *ORT, "--weights", "random", "--power", "rapl"]
    return [*argv, "--sysfs-root", str(tmp / "sysfs")], (
        f"power reader 'rapl' is not available: RAPL needs read access to {zone}/energy_uj",
        'RUN+="/bin/chmod a+r /sys/class/powercap/%k/energy_uj"',
        "sudo chmod a+r",
    )


def trace_all_nan(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    trace = _trace(tmp / "nan.csv", "nan")
    argv = [WATTBENCH, *ORT, "--weights", "random", "--power", "trace"]
    return [*argv, "--power-opt", f"trace.path={trace}"], (
        f"trace {trace} has no power readings; check the export",
    )


def trace_negative(tmp: Path) -> tuple[list[str], tuple[str, ...]]:
    trace = _trace(tmp / "negative.csv", "-5")
    argv = [WATTBENCH, *ORT, "--weights", "random", "--power", "trace"]
    return [*argv, "--power-opt", f"trace.path={trace}"], (
        "is implausible, nothing was stored: trials[0].energy[0].peak_power_w: -5.0 is negative",
        ".rejected.json",
    )


CASES: dict[str, Case] = {
    "empty-model-file": empty_model,
    "random-bytes-model-file": random_model,
    "model-input-not-an-image-batch": model_not_an_image_batch,
    "model-input-one-channel": model_one_channel,
    "edgetpu-model-on-cpu": edgetpu_model_on_cpu,
    "coral-without-edge-tpu": coral_without_edge_tpu,
    "run-file-unknown-key": config_unknown_key,
    "rapl-without-permission": rapl_without_permission,
    "trace-all-nan": trace_all_nan,
    "trace-negative-watts": trace_negative,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_error_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    argv, fragments = CASES[case](tmp_path)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    proc = subprocess.run([*argv, *SHORT, "--db", db], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    print(f"\n{case}: {errors[0]}")  # `pytest -s`: the lines docs/reliability.md quotes
    assert Store.open(db).count_runs() == 0
    assert journal.scan() == []  # ended with an error the user saw: not in progress, not aborted
