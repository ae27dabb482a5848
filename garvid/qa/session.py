"""Many questions about one clip: the library behind ``garvid chat``.

A :class:`VideoSession` opens the video, tracks every prompted object once and loads GAR
once; then each :meth:`VideoSession.ask` answers one question **on its own** (GAR was
trained on single turns: no earlier question or answer is in the prompt) over keyframes
chosen as ``garvid ask`` chooses them. What does not change between questions is kept in
an :class:`AnswerMemo`: decoded keyframes, their preprocessed mask maps, the vision
tower's encodings with the region replays, and the key/value cache of the prompt before
the question, so a follow-up about the same objects costs its own tokens plus generation.
An answer equals that of a fresh ``garvid ask`` with the same question and keyframes.

    with VideoSession(VideoRequest(video=Path("clip.mp4"), regions=RegionInput(masks=(Path("m.png"),)))) as session:
        print(session.ask("what does object 2 do to object 1?").answers[0].text)
        print(session.ask("where is object 1 at the end?").answers[0].text)
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from garvid.media.open import open_video
from garvid.presets import default_preset
from garvid.qa.answers import VideoAnswer
from garvid.qa.generation import AnswerMemo
from garvid.qa.reporting import Reporter
from garvid.qa.request import VideoRequest
from garvid.qa.video_answering import VideoJob, answer_job, job_tracks, load_request_model
from garvid.tracking.tracks import Tracks

if TYPE_CHECKING:
    from garvid.gar.model import GARModel
    from garvid.tracking.tracker import Sam2Tracker

STAGES = ("decode", "track", "load", "encode", "generate")


class VideoSession:
    """One clip, its tracks and a loaded GAR, asked question after question.

    ``request`` gives the video, the objects and every option; its ``question`` is
    ignored. A ``model`` or ``tracker`` already loaded is used instead of the request's.
    Use it as a context manager (or call :meth:`close`) to close the video.
    """

    def __init__(
        self,
        request: VideoRequest,
        reporter: Reporter | None = None,
        *,
        model: GARModel | None = None,
        tracker: Sam2Tracker | None = None,
    ):
        self.request = replace(request, question=None)
        self.reporter = reporter or Reporter()
        self.timings = dict.fromkeys(STAGES, 0.0)  # opening the session: tracking and loading
        self._stack = ExitStack()
        self.video = self._stack.enter_context(open_video(request.video, fps=request.fps))
        try:
            model_source = str(model.checkpoint_dir) if model is not None else request.model or default_preset("models")
            job = VideoJob.open(self.request, self.video, self.reporter, model_source)  # every object, as describe
            self.files = job.files
            self.tracks, self.tracked_objects = job_tracks(self.request, self.video, job, tracker, self.reporter, self.timings)
            if model is None:
                model = load_request_model(self.request, self.files, self.timings)
        except BaseException:
            self._stack.close()
            raise
        self.model: GARModel = model
        self.memo = AnswerMemo()
        self._asked = False

    @property
    def object_ids(self) -> list[int]:
        return list(self.tracks.object_ids)

    def ask(self, question: str | None, **changes: Any) -> VideoAnswer:
        """Answer ``question`` on its own (None: describe every object).

        ``changes`` override request fields for this question only (``frames``,
        ``strategy``, ``start``, ``end``, ``window``, ``generation``, ...). An interrupted
        answer (KeyboardInterrupt from a reporter) leaves the session usable.
        """
        request = replace(self.request, question=question, **changes)
        timings = dict.fromkeys(STAGES, 0.0)
        started = time.perf_counter()
        job = VideoJob.open(request, self.video, self.reporter, self.files)
        tracks, tracked = self._tracks_for(request, job, timings)
        warn = not self._asked
        self._asked = True
        return answer_job(
            request, self.video, job, tracks, tracked, self.model, self.memo, self.reporter, timings, started, warn_weights=warn
        )

    def _tracks_for(self, request: VideoRequest, job: VideoJob, timings: dict[str, float]) -> tuple[Tracks, list[int]]:
        """The session's tracks of the job's objects when they serve its frames; tracked again otherwise."""
        if job.given is None and job.need.served_by(set(self.tracks.frames)):
            return self.tracks.select(job.prompts.object_ids, job.need.in_range(self.tracks.frames)), []
        return job_tracks(request, self.video, job, None, self.reporter, timings)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> VideoSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
