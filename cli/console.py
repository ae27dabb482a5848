"""Terminal rendering shared by the commands: everything human goes to stderr."""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
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

from garvid.qa.reporting import Reporter

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


class BarsReporter(Reporter):
    """One rich progress bar per stage, on stderr (warnings reach stderr through :mod:`garvid_cli.main`)."""

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


#: Exit status after Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130


class Terminated(SystemExit):
    """SIGTERM, raised in the main code like Ctrl-C's KeyboardInterrupt, so that every
    ``finally`` and ``with`` on the way out runs (temporary folders and files are removed);
    exit status 143, as shells report SIGTERM."""

    signum = signal.SIGTERM

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def _terminate(signum, frame) -> None:
    raise Terminated()


@contextmanager
def interrupts_handled() -> Iterator[None]:
    """While a command runs: SIGTERM ends it as Ctrl-C does (:class:`Terminated`), and an
    interrupt that lands inside a finalizer (decord's ``VideoReader.__del__`` while tracking),
    where Python would print "Exception ignored" with a traceback and lose it, is delivered
    again to the main code instead, silently."""
    previous_term, previous_hook = signal.signal(signal.SIGTERM, _terminate), sys.unraisablehook

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, (KeyboardInterrupt, SystemExit)):
            # from another thread, a moment later: raised here, it would land in this hook
            signum = getattr(unraisable.exc_value, "signum", signal.SIGINT)
            threading.Timer(0.01, _thread.interrupt_main, (signum,)).start()
        else:
            previous_hook(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        sys.unraisablehook = previous_hook


class StopOnInterrupt:
    """First Ctrl-C: finish the current item, then stop. Second Ctrl-C: stop at once.

    The handler runs between any two bytecodes of the main thread, possibly in the middle
    of a rich print, so it writes its one line straight to the stderr descriptor rather
    than re-entering rich.
    """

    MESSAGE = b"garvid: warning: stopping after the current item (Ctrl-C again to stop at once)\n"

    def __init__(self):
        self.requested = False

    def __enter__(self) -> StopOnInterrupt:
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            # Exit status 130 like the first Ctrl-C's (click would turn a KeyboardInterrupt
            # into "Aborted!" and status 1, which batch uses for failed items); raised, not
            # os._exit, so pending temporary files are still cleaned up on the way out.
            os.write(2, b"garvid: stopped\n")
            raise SystemExit(EXIT_INTERRUPTED)
        self.requested = True
        os.write(2, self.MESSAGE)

    def __call__(self) -> bool:
        return self.requested
