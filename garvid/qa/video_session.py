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

from contextlib import ExitStack
from dataclasses import replace
from typing import TYPE_CHECKING

from garvid.media.open import open_video_with
from garvid.options import GenerationOptions, KeyframeOptions, PromptsPerPass, WhenOptions
from garvid.qa.answers import VideoAnswer
from garvid.qa.reporting import Reporter
from garvid.qa.context import AnswerContext
from garvid.qa.video_answering import STAGES, VideoJob, answer_video, job_tracks, load_request_model
from garvid.qa.video_request import VideoRequest
from garvid.qa.when_answering import answer_when
from garvid.qa.when_result import WhenAnswer
from garvid.tracking.tracks import Tracks

if TYPE_CHECKING:
    from garvid.gar.model import GARModel
    from garvid.tracking.interface import Tracker


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
        tracker: Tracker | None = None,
    ):
        self.request = replace(request, question=None)
        self.timings = dict.fromkeys(STAGES, 0.0)  # opening the session: tracking and loading
        context = AnswerContext(reporter or Reporter(), model=model, tracker=tracker)
        self._stack = ExitStack()
        context.video = self._stack.enter_context(open_video_with(request.video, request.options.tracking))
        try:
            job = VideoJob.open(self.request, context.video, context.reporter, context.gar_files(request.options.model.name))  # every object, as describe
            context.files = job.files
            context.tracks, self.tracked_objects = job_tracks(self.request, context.video, job, tracker, context.reporter, self.timings)
            if context.model is None:
                context.model = load_request_model(self.request, job.files, self.timings)
        except BaseException:
            self._stack.close()
            raise
        self.context = context

    @property
    def tracks(self) -> Tracks:
        assert self.context.tracks is not None
        return self.context.tracks

    @property
    def model(self) -> GARModel:
        assert self.context.model is not None
        return self.context.model

    @property
    def object_ids(self) -> list[int]:
        return list(self.tracks.object_ids)

    def ask(
        self, question: str | None, *, keyframes: KeyframeOptions | None = None, generation: GenerationOptions | None = None
    ) -> VideoAnswer:
        """Answer ``question`` on its own (None: describe every object).

        ``keyframes`` and ``generation`` replace the session's for this question only. An
        interrupted answer (KeyboardInterrupt from a reporter) leaves the session usable.
        """
        options = replace(
            self.request.options,
            keyframes=keyframes or self.request.options.keyframes,
            generation=generation or self.request.options.generation,
        )
        try:
            return answer_video(replace(self.request, question=question, options=options), self.context)
        finally:
            self.context.warn_weights = False  # said with the first answer

    def when(
        self,
        statement: str,
        when: WhenOptions | None = None,
        *,
        keyframes: KeyframeOptions | None = None,
        prompts_per_pass: PromptsPerPass = 1,
    ) -> WhenAnswer:
        """Where ``statement`` holds (see :func:`~garvid.qa.when_answering.answer_when`).

        Keyframes are decoded and encoded once for the session: a second statement about
        the same objects scores windows without the vision tower.
        """
        options = replace(self.request.options, keyframes=keyframes or self.request.options.keyframes)
        try:
            return answer_when(replace(self.request, question=statement, options=options, when=when), self.context, prompts_per_pass)
        finally:
            self.context.warn_weights = False

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> VideoSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
