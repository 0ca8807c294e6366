"""Progress of a run on stderr: a live display on a terminal, plain lines otherwise."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class CliProgress:
    """A rich progress bar on a terminal; one line per phase otherwise (CI logs)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.bar: Progress | None = None
        self.task: Any = None

    def __enter__(self) -> CliProgress:
        if self.live:
            self.bar = Progress(
                TextColumn("{task.description:<18}"),
                BarColumn(),
                TextColumn("{task.completed:>6.1f}/{task.total:.1f} s"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def phase(self, name: str, total: float | None = None) -> None:
        if self.bar is None:
            self.console.print(f"wattbench: {name}")
            return
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(name, total=total or 1.0, completed=0)

    def update(self, completed: float) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=completed)
