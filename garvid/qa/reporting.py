"""How a long run talks to its caller: warnings, progress and streamed answers.

Kept free of heavy imports so the CLI can subclass it without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from garvid.qa.answers import Answer
    from garvid.qa.keyframes import Window


class Reporter:
    """What the pipeline tells its caller as it goes; the defaults stay silent."""

    def warn(self, message: str) -> None:
        """Something the user should know (fewer keyframes, a rebuilt cache entry)."""

    def progress(self, stage: str, done: int, total: int) -> None:
        """``done`` of ``total`` steps of ``stage`` (``tracking``, ``answering``)."""

    def answer_begins(self, window: Window, object_id: int | None) -> None:
        """Generation of one answer starts (``object_id`` when describing)."""

    def token(self, text: str) -> None:
        """Text the current answer grew by."""

    def answer_ends(self, answer: Answer) -> None:
        """One answer is complete."""
