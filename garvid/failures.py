"""What a run over many items does when one fails: one policy for ``batch`` (local and Ray)
and both benchmarks of ``eval``.

- Missing or broken weights (:class:`~garvid.errors.CheckpointError`) end the run: no
  other item could escape them.
- Bad input (any other :class:`~garvid.errors.GarvidError`) and running out of memory fail
  the one item; the run goes on.
- Anything else is a bug and ends the run with its traceback.

An item's record reads its error as one line (:func:`failure_text`).
"""

from __future__ import annotations

from garvid.devices import memory_errors
from garvid.errors import CheckpointError, GarvidError, first_line


def item_errors() -> tuple[type[BaseException], ...]:
    """The errors that fail one item (and those that end the run, which callers re-raise: :func:`ends_run`)."""
    return (GarvidError, *memory_errors())


def ends_run(error: BaseException) -> bool:
    """Whether ``error`` ends the whole run rather than its item."""
    return isinstance(error, CheckpointError)


def failure_text(error: BaseException) -> str:
    """An item's error as its record reads it: one line, saying when memory ran out."""
    line = first_line(error)
    if isinstance(error, memory_errors()) and "out of memory" not in line.lower():
        return f"out of memory: {line}"
    return line
