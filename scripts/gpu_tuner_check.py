#!/usr/bin/env python3
"""Check the NVML power-limit tuner and its journal on a real NVIDIA GPU (a manual check for
a lent GPU machine, not a test; needs root, as setting a power limit does).

1. The tuner as wattbench sees it: availability, current limit, constraints, allowed values.
2. A ``TuneSession`` sets a lower limit, reads it back, and restores it when it ends.
3. A child process sets a limit inside a ``TuneSession`` and is killed with SIGKILL: the limit
   stays changed and the journal is left; ``wattbench tune restore`` (as a subprocess) puts the
   original limit back and removes the journal.

Prints one JSON document. Exit status: 0 all restored, 1 a limit was not restored, 2 no GPU
or no permission (the reason on stderr).

Usage::  python scripts/gpu_tuner_check.py [--watts 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys, time
from pathlib import Path
from wattbench.core.tuning import TuneSession
from wattbench.tuners.nvml_power import NvmlPowerLimitTuner
t = NvmlPowerLimitTuner()
s = TuneSession({t.name: t}, journal=Path(sys.argv[1]))
s.__enter__()
s.apply(t.name, float(sys.argv[2]))
print("set", flush=True)
time.sleep(600)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watts", type=float, default=300.0, help="limit to set (W)")
    args = parser.parse_args()
    from wattbench.core.tuning import TuneSession
    from wattbench.tuners.nvml_power import NvmlPowerLimitTuner

    tuner = NvmlPowerLimitTuner()
    ok, reason = tuner.is_available()
    if not ok:
        print(f"gpu_tuner_check: {reason}", file=sys.stderr)
        return 2
    out: dict[str, object] = {
        "available": reason,
        "current_w": tuner.read_current(),
        "constraints_w": tuner.constraints(),
        "allowed_values_w": tuner.allowed_values(),
    }
    original = tuner.read_current()
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "journal.json"
        with TuneSession({tuner.name: tuner}, journal=journal) as session:
            session.apply(tuner.name, args.watts)
            out["session_set_read_back_w"] = tuner.read_current()
            out["journal_written"] = journal.exists()
        out["after_session_w"] = tuner.read_current()
        out["journal_removed_after_session"] = not journal.exists()

        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(journal), str(args.watts - 50)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        child.kill()  # SIGKILL: no handler runs
        child.wait()
        out["child_said"] = line
        out["after_sigkill_w"] = tuner.read_current()
        out["journal_left_after_sigkill"] = journal.exists()
        t0 = time.monotonic()
        restore = subprocess.run(
            [sys.executable, "-m", "wattbench.harness.cli", "tune", "restore"],
            capture_output=True,
            text=True,
            env={**os.environ, "WATTBENCH_TUNE_JOURNAL": str(journal)},
        )
        out["tune_restore"] = {
            "rc": restore.returncode,
            "stdout": restore.stdout.strip(),
            "stderr": restore.stderr.strip(),
            "seconds": round(time.monotonic() - t0, 2),
        }
        out["after_tune_restore_w"] = tuner.read_current()
        out["journal_removed_after_restore"] = not journal.exists()
    restored = out["after_session_w"] == original and out["after_tune_restore_w"] == original
    out["all_restored"] = restored
    print(json.dumps(out, indent=1, default=str))
    return 0 if restored else 1


if __name__ == "__main__":
    sys.exit(main())
