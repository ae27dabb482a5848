"""What answering uses besides the request: one context type for videos and images."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from garvid.qa.planning import GarFiles
from garvid.qa.reporting import Reporter
from garvid.qa.steps import AnswerMemo

if TYPE_CHECKING:
    from garvid.gar.model import GARModel
    from garvid.media.source import FrameSource
    from garvid.tracking import Tracker, Tracks


@dataclass
class AnswerContext:
    """What answering uses besides the request: share one to answer many requests alike.

    Everything is optional. A ``model`` (and its checkpoint's small ``files``) is loaded
    for the first request that needs it and kept here, so a context serves requests for
    one model; a ``tracker`` already loaded is used instead of the request's preset (which
    still names the cache entries); a ``memo`` shared by requests about one clip reuses
    what they have in common; the ``reporter`` hears warnings, progress and streamed
    answers. For videos, ``video`` is an open video the requests are about (else each
    request opens its own), and ``tracks`` are tracks already at hand for it (a chat's),
    used where they serve a request's frames.
    """

    reporter: Reporter = field(default_factory=Reporter)
    model: GARModel | None = None
    files: GarFiles | None = None
    tracker: Tracker | None = None
    memo: AnswerMemo = field(default_factory=AnswerMemo)
    video: FrameSource | None = None
    tracks: Tracks | None = None
    warn_weights: bool = True  # say that random-weights models answer meaninglessly (once, in a chat)

    def gar_files(self, model_name: str) -> GarFiles | str:
        """The checkpoint files prompts are built with, or the name to read them from once the request is checked."""
        if self.files is not None:
            return self.files
        return str(self.model.checkpoint_dir) if self.model is not None else model_name
