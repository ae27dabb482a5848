"""How a long run talks to its caller: warnings, progress and streamed answers.

Warnings have one channel: :meth:`Reporter.warn` issues a :class:`~garvid.errors.GarvidWarning`
through Python's :mod:`warnings`, as code no reporter reaches does (opening a video), so a
library caller filters or records them the usual way and the CLI prints each distinct one
once per run. Kept free of heavy imports so the CLI can subclass it without loading torch.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from garvid.errors import GarvidWarning

if TYPE_CHECKING:
    from garvid.qa.answers import Answer
    from garvid.qa.keyframes import Window


class Reporter:
    """What the pipeline tells its caller as it goes; the defaults warn and otherwise stay silent."""

    def warn(self, message: str) -> None:
        """Something the user should know (fewer keyframes, a rebuilt cache entry), as a :class:`GarvidWarning`."""
        warnings.warn(message, GarvidWarning, stacklevel=2)

    def progress(self, stage: str, done: int, total: int) -> None:
        """``done`` of ``total`` steps of ``stage`` (``tracking``, ``answering``)."""

    def answer_begins(self, window: Window, object_id: int | None) -> None:
        """Generation of one answer starts (``object_id`` when describing)."""

    def token(self, text: str) -> None:
        """Text the current answer grew by."""

    def answer_ends(self, answer: Answer) -> None:
        """One answer is complete."""
