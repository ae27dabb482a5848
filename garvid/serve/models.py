"""The server's models, loaded once per process, and the lock every piece of model work takes.

GAR is loaded by the first ``VideoSession`` (as ``garvid chat`` loads it) and handed to every
later one; the tracker is a :class:`~garvid.tracking.backends.LazyTracker`, built on the
first mask preview or track that the cache does not serve and kept. gradio's queue runs model events one at
a time; the lock also covers an answer still finishing in its thread after its page
cancelled it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from garvid.options import AnswerOptions
from garvid.qa.reporting import Reporter
from garvid.qa.video_request import VideoRequest
from garvid.regions.input import RegionInput

if TYPE_CHECKING:
    from garvid.gar.model import GARModel
    from garvid.qa.video_session import VideoSession
    from garvid.tracking.backends import LazyTracker


@dataclass
class Models:
    """The run-wide options and the models shared by every browser session."""

    options: AnswerOptions
    regions: RegionInput = field(default_factory=RegionInput)  # the detector and its threshold, for objects by name
    command_flags: tuple[str, ...] = ()  # the flags that set ``options`` and the detector, for the command the page shows
    lock: threading.RLock = field(default_factory=threading.RLock)
    gar: GARModel | None = None
    _tracker: LazyTracker | None = None

    @property
    def tracker(self) -> LazyTracker:
        if self._tracker is None:
            from garvid.tracking.backends import LazyTracker

            self._tracker = LazyTracker(self.options.tracking.tracker, self.options.model.device)
        return self._tracker

    def region_input(self, **prompts: object) -> RegionInput:
        """The page's prompts with the server's detector settings."""
        return replace(self.regions, **prompts)  # type: ignore[arg-type]

    def open_session(self, request: VideoRequest, reporter: Reporter) -> VideoSession:
        """A ``VideoSession`` for ``request`` with the shared models (GAR loaded by the first)."""
        from garvid.qa.video_session import VideoSession  # torch and transformers load here

        with self.lock:
            session = VideoSession(request, reporter, model=self.gar, tracker=self.tracker)
            self.gar = session.model
        return session
