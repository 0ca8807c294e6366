"""A fast fake ``wattbench run`` for the crash tests, in its own process (so it can be killed).

It goes through what ``wattbench run`` does after its checks — the run journal, the
protocol (fake adapter, fake power reader, fake suite), validation, the store write —
with phases that take real (short) time::

    python fake_run.py DB_URL [--runs N] [--query-ms 1] [--idle-ms 200]
                      [--slow-store S] [--slow-finish S] [--device NAME]

``--slow-store S`` sleeps S seconds inside the store transaction (after the ``runs`` row
was inserted) and prints ``IN_TX`` first; ``--slow-finish S`` prints ``COMMITTED`` after
the commit and sleeps before the journal is removed. Each stored run's id is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness import journal as journal_mod
from wattbench.harness.journal import RunJournal, store_result
from wattbench.harness.protocol import Runner
from wattbench.results_db import ingest
from wattbench.results_db.store import Store


class _Quiet:
    def phase(self, name: str, total: float | None = None) -> None:
        pass

    def update(self, completed: float) -> None:
        pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--query-ms", type=float, default=1.0)
    p.add_argument("--idle-ms", type=float, default=200.0)
    p.add_argument("--slow-store", type=float, default=0.0)
    p.add_argument("--slow-finish", type=float, default=0.0)
    p.add_argument("--device", default="bench-01")
    a = p.parse_args()

    if a.slow_store:
        original = ingest.trial_rows

        def slow_rows(run_id: int, r: Any) -> Any:
            print("IN_TX", flush=True)
            time.sleep(a.slow_store)
            return original(run_id, r)

        ingest.trial_rows = slow_rows  # type: ignore[assignment]
    if a.slow_finish:
        finish = journal_mod.RunJournal.finish

        def slow_finish(self: RunJournal) -> None:
            if self.data.get("run_id"):
                print("COMMITTED", flush=True)
                time.sleep(a.slow_finish)
            finish(self)

        journal_mod.RunJournal.finish = slow_finish  # type: ignore[method-assign]

    store = Store.open(a.db)
    cache = ModelCache(Path(tempfile.mkdtemp(prefix="wb-fake-cache-")))
    query_s, idle_s = a.query_ms / 1000, a.idle_ms / 1000
    for _ in range(a.runs):
        clock = FakeClock()

        def sleep(s: float, clock: FakeClock = clock) -> None:
            clock.advance(s)
            time.sleep(idle_s)  # the idle baseline (and cooldown) take real time

        def outputs(x: np.ndarray) -> np.ndarray:
            if query_s:
                time.sleep(query_s)  # warm-up and trials take real time
            return np.asarray(x, dtype=np.float32) * 2.0

        cfg = RunConfig(
            suite="fake",
            adapter="fake",
            duration_s=1,
            min_queries=10,
            repeats=2,
            warmup_s=0.8,
            idle_s=1,
            cooldown_s=0,
            e2e_queries=0,
            device_name=a.device,
        )
        with RunJournal.recording(
            suite="fake", adapter="fake", device_name=a.device, db=store.display_url
        ) as journal:
            result = Runner(
                cfg,
                FakeSuite(),
                FakeAdapter(clock, 0.004, outputs),
                [FakePowerReader(clock, 5.0)],
                cache,
                progress=journal.progress(_Quiet()),
                clock_ns=clock,
                sleep=sleep,
            ).execute()
            store_result(result, store, journal)
        print(result.run_id, flush=True)
    store.close()


if __name__ == "__main__":
    sys.exit(main())
