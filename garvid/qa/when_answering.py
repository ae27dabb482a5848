"""When does a statement about tracked objects hold: the library behind ``garvid when``.

It takes ``garvid ask --window``'s road up to the prompt: the request is checked and
planned (:class:`~garvid.qa.video_answering.VideoJob`, the coarse windows as its windows)
before any model loads, the objects are tracked or found in the cache, keyframes are
picked among the tracked frames and preprocessed with their mask maps, and each window's
prompt is the temporal prompt with the protocol's ``yes_no`` question about the statement.
Instead of generating, each window is scored by the first answer token's yes/no
probability (:mod:`garvid.gar.scoring`), ``prompts_per_pass`` windows per forward pass,
and the scan refines the boundaries coarse to fine (:mod:`garvid.qa.when_scan`).

Every keyframe is decoded, preprocessed and encoded by the vision tower once, however many
windows share it: each frame is encoded alone (all frames a round needs in one call) and a
window's encoding is joined from its frames' (:func:`garvid.gar.encoding.joined`).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from garvid.errors import GarvidError, OptionError, RegionError
from garvid.gar.encoding import EncodeJob, Encoding, encode_many, joined
from garvid.gar.pass_size import auto_prompts_per_pass
from garvid.gar.prompt import names_an_object
from garvid.gar.scoring import YesNoTokens, yes_probability
from garvid.options import PromptsPerPass, WhenOptions
from garvid.qa.context import AnswerContext
from garvid.qa.keyframes import Window, frame_span, select_keyframes
from garvid.qa.steps import Steps
from garvid.qa.video_answering import VideoJob, WindowAnswerer, job_tracks_in, load_request_model, presence_json, shots_json, video_of
from garvid.qa.video_request import VideoRequest
from garvid.qa.when_result import WhenAnswer
from garvid.qa.when_scan import Scored, scan
from garvid.tracking import Tracks

if TYPE_CHECKING:
    from garvid.gar.model import GARModel
    from garvid.media.source import FrameSource

#: Where a ``when`` request's seconds go, in its answer's ``timings``.
STAGES = ("decode", "track", "load", "encode", "score")


def check_statement(statement: str | None) -> str:
    """The statement, stripped; GarvidError when it is empty or names no object (before anything opens)."""
    if statement is None or not statement.strip():
        raise RegionError("the statement is empty: say what should hold, naming objects as 'object 1' or '#1'")
    if not names_an_object(statement):
        raise RegionError("the statement names no tracked object: write 'object 1' or '#1' for the objects it is about")
    return statement.strip()


def when_request(request: VideoRequest, when: WhenOptions) -> VideoRequest:
    """``request`` as the scan plans it: scanned as ``when`` says, its windows the coarse windows."""
    check_statement(request.question)
    keyframes = replace(request.options.keyframes, window=when.window)
    return replace(request, when=when, options=replace(request.options, keyframes=keyframes))


def answer_when(request: VideoRequest, context: AnswerContext | None = None, prompts_per_pass: PromptsPerPass = 1) -> WhenAnswer:
    """Where ``request.question`` (a statement or yes/no question about the objects) holds, scanned
    as ``request.when`` says (the defaults when None).

    Bad input fails before any model loads. ``context`` shares loaded models, tracks and
    the memo of encodings as in :func:`~garvid.qa.video_answering.answer_video`.
    """
    context = context if context is not None else AnswerContext()
    when = request.when or WhenOptions()
    request = when_request(request, when)
    timings = dict.fromkeys(STAGES, 0.0)
    started = time.perf_counter()
    with video_of(request, context) as video:
        request = _fine_tracking(request, video.info.fps, when.resolution)
        _check_window(request, video, when)
        job = VideoJob.open(request, video, context.reporter, context.gar_files(request.options.model.name))
        question = _yes_no_question(job, when)
        context.files = job.files
        tracks, tracked_objects = job_tracks_in(context, request, video, job, timings)
        if context.model is None:
            context.model = load_request_model(request, job.files, timings)
        model = context.model
        answerer = WindowAnswerer(request, video, tracks, model, job.builder, job.plan, context.reporter, timings, context.memo)
        scorer = WindowScorer(job, answerer, question, prompts_per_pass, timings)
        context.reporter.progress("scoring", 0, 1)
        result = scan([(w.start, w.end) for w in job.windows], when.resolution, when.threshold, scorer)
        context.reporter.progress("scoring", 1, 1)
    timings["total"] = time.perf_counter() - started
    request_json = {
        "video": video.info.to_json(),
        "statement": request.question,
        "question": question,
        "objects": job.plan.objects,
        "window": when.window,
        "resolution": when.resolution,
        "threshold": when.threshold,
        "frames_per_window": job.frames,
        "keyframe_strategy": request.options.keyframes.strategy,
        "span": {"start": job.span.start, "end": job.span.end},
        "model": {"name": str(model.name), "path": str(model.checkpoint_dir), "dtype": str(model.dtype).removeprefix("torch."), "device": str(model.device)},
        "tracker": {"name": tracks.tracker, "stride": tracks.stride, "tracked_frames": len(tracks.frames), "cached": not tracked_objects},
        "protocol": {**job.protocol.to_json(), "yes_no": job.protocol.text.yes_no},
        "scoring": {"yes_tokens": list(scorer.tokens.yes), "no_tokens": list(scorer.tokens.no)},
    }
    frames = {f for window in result.curve for f in window.keyframes}
    times = {f: float(job.timestamps[f]) for f in sorted(frames)}
    objects = [{"id": object_id, "presence": presence_json(tracks, object_id)} for object_id in job.plan.objects]
    return WhenAnswer(request.question, result.curve, result.intervals, request_json, timings, times, shots_json(tracks, job.timestamps), objects)


def when_steps(request: VideoRequest, context: AnswerContext, prompts_per_pass: PromptsPerPass = 1) -> Steps[WhenAnswer]:
    """:func:`answer_when` as an item of :class:`~garvid.qa.steps.PooledAnswering` (``garvid batch``).

    It yields no prompt: scoring reads no generated text, and runs its own passes of
    ``prompts_per_pass`` windows.
    """
    yield from ()
    return answer_when(request, context, prompts_per_pass)


def _fine_tracking(request: VideoRequest, fps: float, resolution: float) -> VideoRequest:
    """With ``--stride auto``, objects are tracked at least once per ``resolution`` seconds, so the
    finest windows have a frame to look at."""
    tracking = request.options.tracking
    if tracking.stride != "auto":
        return request
    stride = max(1, math.floor(resolution * fps + 1e-9))
    return replace(request, options=replace(request.options, tracking=replace(tracking, stride=stride)))


def _check_window(request: VideoRequest, video: FrameSource, when: WhenOptions) -> None:
    """A window longer than the analysed span refused before any work (cut detection included)."""
    keyframes = request.options.keyframes
    span = frame_span(video.timestamps(), video.info.duration, keyframes.start, keyframes.end)
    length = span.end - span.start
    if when.window > length + 1e-9:
        raise OptionError("window", f"({when.window:g} s) is longer than the analysed span ({length:g} s): use a shorter --window or a longer span")


def _yes_no_question(job: VideoJob, when: WhenOptions) -> str:
    """The protocol's yes/no question about the planned statement."""
    template = job.protocol.text.yes_no
    if template is None:
        raise GarvidError(f"protocol {job.protocol.label} has no [text] yes_no question: garvid when needs one")
    return template.format(statement=job.plan.prompt_question)


class WindowScorer:
    """Scores windows (seconds) with a loaded GAR: the :data:`~garvid.qa.when_scan.ScoreWindows` of a request."""

    def __init__(self, job: VideoJob, answerer: WindowAnswerer, question: str, per_pass: PromptsPerPass, timings: dict[str, float]):
        self.job, self.answerer, self.question, self.per_pass, self.timings = job, answerer, question, per_pass, timings
        self.tracks: Tracks = answerer.tracks
        self.model: GARModel = answerer.model
        self.tokens = YesNoTokens.of(job.files.tokenizer)
        self.slots = sorted(job.plan.slot_objects)
        self.scaling = answerer.request.options.prompt.replay_scaling
        self.seen = sorted(f for f in self.tracks.frames if any(self.tracks.observation(o, f).visible for o in job.plan.objects))

    def __call__(self, windows: list[tuple[float, float]]) -> list[Scored]:
        results: list[Scored | None] = []
        prompts: list[tuple[int, list[int]]] = []  # (index in results, keyframes)
        for start, end in windows:
            window = self._frames(start, end)
            in_window = [f for f in self.tracks.frames if window.holds(f)]
            if not in_window:
                results.append(Scored(start, end, None, "no frames"))
            elif not self._each_seen(in_window):
                results.append(Scored(start, end, None, "not visible"))
            else:
                keyframes = select_keyframes(self.tracks.frames, window, self.job.frames, self.answerer.request.options.keyframes.strategy, self.seen)
                prompts.append((len(results), keyframes))
                results.append(None)
        scores = self._scores([keyframes for _, keyframes in prompts])
        for (index, keyframes), score in zip(prompts, scores):
            start, end = windows[index]
            results[index] = Scored(start, end, score, keyframes=tuple(keyframes))
        return [r for r in results if r is not None]

    def _each_seen(self, frames: list[int]) -> bool:
        """Whether every named object is visible on some of ``frames`` (a window's tracked frames)."""
        return all(any(self.tracks.observation(o, f).visible for f in frames) for o in self.job.plan.objects)

    def _frames(self, start: float, end: float) -> Window:
        """The span's frames whose timestamps fall in ``[start, end)``."""
        timestamps, span = self.job.timestamps, self.job.span
        first = max(span.first, int(np.searchsorted(timestamps, start - 1e-6)))
        stop = min(span.stop, int(np.searchsorted(timestamps, end - 1e-6)))
        return Window(start, end, first, max(first, stop))

    def _scores(self, prompts: list[list[int]]) -> list[float]:
        """Each prompt's yes-probability, its frames encoded once, ``per_pass`` prompts a forward pass."""
        if not prompts:
            return []
        shown = {f: self.answerer.shown(f, self.job.plan.slot_objects) for keyframes in prompts for f in keyframes}
        encodings = self._frame_encodings(shown)
        embeds = []
        for keyframes in prompts:
            on = [shown[f] for f in keyframes]
            layouts = self.job.builder.layout(self.answerer.times(keyframes), [[s for s, _ in o] for o in on], self.slots, self.answerer.shots(keyframes))
            replayed = [layout.replayed for layout in layouts]
            tokens = self.job.builder.tokens(self.slots, layouts, self.question)
            encoding = joined([encodings[f] for f in keyframes], replayed)
            embeds.append(self.model.embed_inputs(torch.tensor([tokens.input_ids]), *encoding))
        if self.per_pass == "auto":
            self.per_pass = auto_prompts_per_pass(self.model, max(e.shape[1] for e in embeds) + 1)
        started, scores = time.perf_counter(), []
        for at in range(0, len(embeds), self.per_pass):
            scores += yes_probability(self.model.answer_logits(embeds[at : at + self.per_pass]), self.tokens).tolist()
        self.timings["score"] += time.perf_counter() - started
        return scores

    def _frame_encodings(self, shown: dict[int, tuple[tuple[int, int], ...]]) -> dict[int, Encoding]:
        """Each frame's own encoding (every shown slot replayed), from the memo or, all missing ones
        in one :func:`encode_many` call, computed and kept there."""
        memo = self.answerer.memo
        keys = {f: ("when", self.answerer.key(f, on), self.scaling) for f, on in shown.items()}
        found = {f: memo.get("frame encodings", keys[f], lambda: None) for f in shown if memo.holds("frame encodings", keys[f])}
        missing = [f for f in shown if f not in found]
        if missing:
            started = time.perf_counter()
            inputs, _ = self.answerer.question_inputs(missing)
            jobs = [EncodeJob([frame_inputs], [[s for s, _ in shown[f]]], self.scaling) for f, frame_inputs in zip(missing, inputs)]
            with torch.inference_mode():
                for f, encoding in zip(missing, encode_many(self.model, jobs)):
                    found[f] = memo.put("frame encodings", keys[f], encoding)
            self.timings["encode"] += time.perf_counter() - started
        return found
