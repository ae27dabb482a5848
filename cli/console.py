"""Terminal rendering shared by the commands: everything human goes to stderr."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from garvid.reporting import Reporter

stderr = Console(stderr=True, soft_wrap=True)

ProgressCallback = Callable[[int, int], None]


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressCallback]:
    """A rich progress bar on stderr, driven by a ``(done, total)`` callback."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=not stderr.is_terminal) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def warn(message: str) -> None:
    """One warning line on stderr."""
    stderr.print(f"[yellow]garvid: warning:[/yellow] {message}", highlight=False)


class WarningReporter(Reporter):
    """The pipeline's warnings on stderr, no progress bars (for runs that print their own progress)."""

    def warn(self, message: str) -> None:
        warn(message)


class BarsReporter(WarningReporter):
    """The pipeline's warnings and one rich progress bar per stage, on stderr."""

    def __init__(self):
        self.bars: dict = {}

    def progress(self, stage: str, done: int, total: int) -> None:
        if stage not in self.bars:
            context = progress_bar(stage)
            self.bars[stage] = (context, context.__enter__())
        self.bars[stage][1](done, total)
        if done >= total:
            context, _ = self.bars.pop(stage)
            context.__exit__(None, None, None)
