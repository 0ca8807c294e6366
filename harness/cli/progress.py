"""Progress of a run on stderr: a live display on a terminal, plain lines otherwise.

On a terminal one live line shows the phase (``trial 2/3``), its bar, its seconds and an
estimate of the time left of the whole run; in a log (stderr not a TTY) each phase is one
plain line with the same facts, so CI output stays readable and greppable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn


def planned_seconds(cfg: Any) -> float:
    """The measured phases a run plans: warm-up, trials, pauses, idle baseline (seconds).

    Loading, reference outputs and the end-to-end pass are not planned by time; a trial
    may run longer than ``duration`` to reach ``min-queries``, so "time left" is an estimate.
    """
    repeats = int(getattr(cfg, "repeats", 1))
    return (
        float(getattr(cfg, "warmup_s", 0.0))
        + repeats * float(getattr(cfg, "duration_s", 0.0))
        + max(repeats - 1, 0) * float(getattr(cfg, "cooldown_s", 0.0))
        + float(getattr(cfg, "idle_s", 0.0))
    )


class CliProgress:
    """A live progress display on a terminal; one line per phase otherwise (CI logs).

    ``planned_s`` (see :func:`planned_seconds`) makes it show the time left of the run;
    the time of timed phases (those given a total) counts against it.
    """

    def __init__(
        self,
        console: Console,
        planned_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.live = console.is_terminal and not console.is_dumb_terminal
        self.bar: Progress | None = None
        self.task: Any = None
        self.planned_s = planned_s
        self.clock = clock
        self._spent_s = 0.0  # time of finished timed phases
        self._phase_start: float | None = None
        self._phase_timed = False

    def __enter__(self) -> CliProgress:
        if self.live:
            self.bar = Progress(
                TextColumn("[bold]{task.description:<22}"),
                BarColumn(),
                TextColumn("{task.completed:>6.1f}/{task.total:.1f} s"),
                TextColumn("{task.fields[left]}"),
                console=self.console,
                transient=True,
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def _close_phase(self) -> None:
        if self._phase_start is not None and self._phase_timed:
            self._spent_s += self.clock() - self._phase_start
        self._phase_start = None

    def time_left_s(self) -> float | None:
        """Estimated seconds left of the run's planned phases (None: no plan)."""
        if self.planned_s is None:
            return None
        running = 0.0
        if self._phase_start is not None and self._phase_timed:
            running = self.clock() - self._phase_start
        return max(self.planned_s - self._spent_s - running, 0.0)

    def _left_text(self) -> str:
        left = self.time_left_s()
        return "" if left is None else f"~{left:.0f} s left"

    def phase(self, name: str, total: float | None = None) -> None:
        self._close_phase()
        self._phase_start = self.clock()
        self._phase_timed = total is not None
        if self.bar is None:
            parts = [f"{total:g} s"] if total else []
            if self.planned_s is not None:
                parts.append(self._left_text())
            self.console.print(
                f"wattbench: {name}" + (f" ({', '.join(parts)})" if parts else ""),
                markup=False,
                highlight=False,
            )
            return
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(name, total=total or 1.0, completed=0, left=self._left_text())

    def update(self, completed: float) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=completed, left=self._left_text())
