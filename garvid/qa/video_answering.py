"""Ask GAR about tracked objects over time: the library behind ``garvid ask`` and ``describe``.

The pipeline: open the video and check the prompts and the question; size the prompt
against the model's context (fewer keyframes when it does not fit); find ``--object``
phrases on the prompt frame (then free the detector); track the objects with SAM2 over the frames the keyframes need (or take the tracks from the cache); free the
tracker; load GAR; then per window pick keyframes among the tracked frames, encode them
with their per-frame mask maps, replay each visible object's features from its own frame
and generate. Models are loaded one after the other, so peak memory is the larger one.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from garvid.detection.checkpoints import check_detector, detector_name
from garvid.devices import check_attention, resolve_device
from garvid.errors import GarvidError, OptionError, RegionError
from garvid.gar.processor import GARImageInputs, preprocess_image, with_regions
from garvid.gar.prompt import DESCRIBE_SLOT
from garvid.media.open import open_video_with
from garvid.media.source import FrameSource, VideoInfo
from garvid.presets import random_weights_warning
from garvid.qa.answers import NOT_VISIBLE_TEXT, Answer, VideoAnswer
from garvid.qa.context import AnswerContext
from garvid.qa.steps import AnswerMemo, PromptJob, Steps, drive
from garvid.qa.keyframes import (
    Window,
    fit_keyframes,
    frame_span,
    join_frameless_windows,
    select_keyframes,
    split_windows,
)
from garvid.qa.planning import (
    GarFiles,
    QuestionPlan,
    TemporalPromptBuilder,
    plan_request,
)
from garvid.qa.protocol import Protocol, load_protocol
from garvid.qa.reporting import Reporter
from garvid.options import AnswerOptions
from garvid.qa.video_request import VideoRequest
from garvid.regions.prompts import RegionPrompts, object_names
from garvid.shots.shots import Shots
from garvid.tracking import Tracker, Tracks, auto_stride
from garvid.tracking.cache import request_cache
from garvid.tracking.given import GivenTracks, given_prompts, read_tracks_file
from garvid.tracking.provide import tracks_for
from garvid.tracking.shot_cache import request_shots
from garvid.tracking.reuse import TrackingNeed

if TYPE_CHECKING:
    from garvid.gar.model import GARModel


@dataclass
class VideoJob:
    """A request checked against its video and planned: everything decided before the models run."""

    protocol: Protocol
    prompts: RegionPrompts  # the prompts of the asked-about objects only: nothing else is tracked
    plan: QuestionPlan
    timestamps: np.ndarray
    span: Window
    windows: list[Window]
    files: GarFiles
    builder: TemporalPromptBuilder
    frames: int  # keyframes per window
    tracker_name: str
    need: TrackingNeed  # the frames to track (or to find tracked)
    given: Tracks | None  # the request's --tracks file: the tracks, no tracking
    shots: Shots | None  # what tracking stays within (a --tracks file's own, None when it has none)

    @classmethod
    def open(cls, request: VideoRequest, video: FrameSource, reporter: Reporter, files: GarFiles | str) -> VideoJob:
        """Check the request (fails before any model loads) and plan keyframes and tracking.

        ``files`` are the GAR checkpoint's small files, or its name or path to read them
        from once the request itself is checked.
        """
        from garvid.gar.loading import resolve_dtype

        options = request.options
        check_attention(options.model.attn, options.model.device)
        protocol = load_protocol(options.keyframes.protocol)
        resolve_dtype(options.model.dtype, resolve_device(options.model.device))  # every option is checked before work starts
        info = video.info
        timestamps = video.timestamps()
        given = _given_tracks(request, info, timestamps)
        prompts = given_prompts(given) if given is not None else request.regions.resolve(info, timestamps)
        if given is None:
            check_detector(request.regions)
        plan = plan_request(request, prompts, protocol)
        if request.question is not None and "<Prompt" not in plan.prompt_question:
            reporter.warn(
                "the question names no object (write 'object 2' or '#2'): it is asked about every object, "
                + ", ".join(str(o) for o in plan.objects)
            )
        span = frame_span(timestamps, info.duration, options.keyframes.start, options.keyframes.end)
        windows = split_windows(span, timestamps, options.keyframes.window)
        if isinstance(files, str):
            files = GarFiles.read(files)
        builder = TemporalPromptBuilder(files, protocol, options.prompt, (info.width, info.height))
        asked = prompts.only(plan.objects)
        shots = given.shots if given is not None else request_shots(request.video, options.tracking, on_problem=reporter.warn)[1]
        frames = _fit_frames(request, protocol, builder, plan, span, windows, reporter, _cut_within(shots, span))
        need = _tracking_need(options, asked, shots, span, frames * len(windows), info.num_frames)
        windows = _windows_with_frames(windows, need.in_range(given.frames) if given is not None else need.grid, reporter)
        return cls(
            protocol=protocol,
            prompts=asked,
            plan=plan,
            timestamps=timestamps,
            span=span,
            windows=windows,
            files=files,
            builder=builder,
            frames=frames,
            tracker_name=options.tracking.tracker,
            need=need,
            given=given,
            shots=shots,
        )


#: Where a request's seconds go, in its answer's ``timings``.
STAGES = ("decode", "track", "load", "encode", "generate")


def video_of(request: VideoRequest, context: AnswerContext) -> AbstractContextManager[FrameSource]:
    """The context's video, left open for the next request; else the request's, closed after."""
    if context.video is not None:
        return nullcontext(context.video)
    return open_video_with(request.video, request.options.tracking)


def answer_video(request: VideoRequest, context: AnswerContext | None = None) -> VideoAnswer:
    """Run a request end to end (see the module docstring), each prompt alone: :func:`video_steps` driven."""
    return drive(video_steps(request, context))


def video_steps(request: VideoRequest, context: AnswerContext | None = None) -> Steps[VideoAnswer]:
    """Answer ``request`` as steps (see :mod:`garvid.qa.steps`): the one answering entry for videos.

    Opens the video (unless the context holds it), checks and plans the request before any
    model loads, gets its tracks (the context's where they serve, else the cache's or
    tracked), loads GAR unless the context has it, then answers window after window.
    """
    context = context if context is not None else AnswerContext()
    reporter = context.reporter
    timings = dict.fromkeys(STAGES, 0.0)
    started = time.perf_counter()
    with video_of(request, context) as video:
        job = VideoJob.open(request, video, reporter, context.gar_files(request.options.model.name))
        context.files = job.files
        tracks, tracked_objects = job_tracks_in(context, request, video, job, timings)
        return (yield from _answer(request, video, job, tracks, tracked_objects, context, timings, started))


def track_ahead(request: VideoRequest, context: AnswerContext) -> bool:
    """Plan ``request`` and make sure its tracks are in the cache; True when nothing had to be tracked.

    The first stage of a batch: every item is tracked with the context's tracker, which is
    then freed, and :func:`video_steps` finds the tracks in the cache. The checkpoint's small
    files are read for the first item and kept in the context for the next.
    """
    if not request.options.tracking.use_cache:
        raise ValueError("tracking ahead needs the tracking cache (use_cache=True)")
    with video_of(request, context) as video:
        job = VideoJob.open(request, video, context.reporter, context.gar_files(request.options.model.name))
        context.files = job.files
        return not job_tracks(request, video, job, context.tracker, context.reporter, {})[1]


def job_tracks_in(
    context: AnswerContext, request: VideoRequest, video: FrameSource, job: VideoJob, timings: dict[str, float]
) -> tuple[Tracks, list[int]]:
    """The context's tracks of the job's objects when they serve its frames; else :func:`job_tracks`."""
    held = context.tracks
    if held is not None and job.given is None and job.need.served_by(set(held.frames)):
        return held.select(job.prompts.object_ids, job.need.in_range(held.frames)), []
    return job_tracks(request, video, job, context.tracker, context.reporter, timings)


def _answer(
    request: VideoRequest,
    video: FrameSource,
    job: VideoJob,
    tracks: Tracks,
    tracked_objects: list[int],
    context: AnswerContext,
    timings: dict[str, float],
    started: float,
) -> Steps[VideoAnswer]:
    """Answer a planned job over its tracks, loading GAR into the context unless it holds it."""
    reporter, memo = context.reporter, context.memo
    plan, span, files = job.plan, job.span, job.files
    object_ids = plan.objects
    visible = {o: [f for f in tracks.frames if span.holds(f) and tracks.observation(o, f).visible] for o in object_ids}
    never = [o for o in object_ids if not visible[o]]
    if never and request.question is not None:
        raise RegionError(
            f"object {never[0]} is never visible between {span.start:.2f} s and {span.end:.2f} s "
            "(the tracker lost it): check its mask and --mask-frame, or ask about another span"
        )
    for object_id in never:
        reporter.warn(f"object {object_id} is never visible between {span.start:.2f} s and {span.end:.2f} s")

    detector = detector_name(request.regions.detector) if request.regions.objects and job.given is None else None
    warnings = [random_weights_warning(tracks.tracker, "trackers"), random_weights_warning(files.name)]
    for warning in [*warnings, detector and random_weights_warning(detector, "detectors")]:
        if warning and context.warn_weights:
            reporter.warn(warning)
    if context.model is None:
        context.model = load_request_model(request, files, timings)
    model = context.model
    answerer = WindowAnswerer(request, video, tracks, model, job.builder, plan, reporter, timings, memo, job.prompts.names)
    seen = sorted({f for frames_of in visible.values() for f in frames_of})
    answers: list[Answer] = []
    windows = _windows_with_frames(job.windows, tracks.frames, reporter)  # reused tracks may sit off the planned grid
    for done, window in enumerate(windows):
        reporter.progress("answering", done, len(windows))
        keyframes = select_keyframes(tracks.frames, window, job.frames, request.options.keyframes.strategy, seen)
        answers.extend((yield from answerer.window(window, keyframes)))
    reporter.progress("answering", len(windows), len(windows))

    timings["total"] = time.perf_counter() - started
    used = sorted({f for a in answers for f in a.keyframes})
    return VideoAnswer(
        video=video.info.to_json(),
        question=request.question,
        prompt_question=plan.prompt_question,
        answers=answers,
        windowed=request.options.keyframes.window is not None,
        shots=shots_json(tracks, job.timestamps),
        objects=_object_summaries(tracks, used),
        keyframes=[{"frame": f, "time": float(job.timestamps[f])} for f in used],
        frames_per_window=max(len(answer.keyframes) for answer in answers),
        model={"name": str(model.name), "path": str(model.checkpoint_dir), "dtype": str(model.dtype).removeprefix("torch."), "device": str(model.device)},
        tracker={
            "name": tracks.tracker,
            "stride": tracks.stride,
            "device": tracks.device,
            "tracked_frames": len(tracks.frames),
            "cached": not tracked_objects,
            "tracked_objects": tracked_objects,
            **({"file": str(request.tracks)} if request.tracks is not None else {}),
        },
        protocol=job.protocol.to_json(),
        timings=timings,
    )


def load_request_model(request: VideoRequest, files: GarFiles, timings: dict[str, float]) -> GARModel:
    """GAR as the request asks for it (dtype, device, attention kernel), its loading time in ``timings``."""
    from garvid.gar.loading import load_gar

    loading = time.perf_counter()
    options = request.options.model
    model = load_gar(files.name, dtype=options.dtype, device=options.device, attn_implementation=options.attn)
    timings["load"] = time.perf_counter() - loading
    return model


def _windows_with_frames(windows: list[Window], tracked: list[int], reporter: Reporter) -> list[Window]:
    """``windows``, each one holding no ``tracked`` frame joined to the window before it (warned)."""
    joined = join_frameless_windows(windows, sorted(tracked))
    if len(joined) < len(windows):
        reporter.warn(
            f"{len(windows) - len(joined)} of {len(windows)} windows hold no tracked frame: each was joined to the window "
            "before it (use a smaller --stride or a longer --window for one answer per window)"
        )
    return joined


def _fit_frames(
    request: VideoRequest,
    protocol: Protocol,
    builder: TemporalPromptBuilder,
    plan: QuestionPlan,
    span: Window,
    windows: list[Window],
    reporter: Reporter,
    cuts: bool = False,
) -> int:
    """Keyframes per window: the request's (or protocol's), at most a window's frames, fewer
    when the prompt would not fit (with ``cuts``, a new-shot line before every keyframe but the first)."""
    wanted = request.options.keyframes.frames or protocol.frames
    wanted = min(wanted, max(window.stop - window.first for window in windows))  # no window has more to pick from
    slots = [DESCRIBE_SLOT] if request.question is None else sorted(plan.slot_objects)
    budget = min(protocol.context_tokens, builder.files.context - request.options.generation.max_new_tokens)

    @cache
    def length(keyframes: int) -> int:  # each size is tokenized once, however often the fit asks
        return builder.worst_case_length(keyframes, slots, plan.prompt_question, span.end, cuts)

    one = length(1)
    if one > budget:
        without_question = builder.worst_case_length(1, slots, "", span.end, cuts)
        if without_question <= budget:
            raise GarvidError(
                f"the question is too long: {one - without_question} tokens, and at most "
                f"{budget - without_question} fit beside one keyframe"
            )
    frames = fit_keyframes(length, wanted, budget)
    if frames < wanted:
        reporter.warn(
            f"{wanted} keyframes would not fit the {budget}-token prompt budget "
            f"({protocol.label}, {builder.tokens_per_image} image tokens a frame): using {frames}"
        )
    return frames


def _cut_within(shots: Shots | None, span: Window) -> bool:
    """Whether a shot starts inside ``span`` (after its first frame)."""
    return shots is not None and any(span.first < cut < span.stop for cut in shots.cuts)


def _tracking_need(
    options: AnswerOptions, prompts: RegionPrompts, shots: Shots | None, span: Window, keyframes: int, num_frames: int
) -> TrackingNeed:
    """The tracked grid: the span (extended to reach the prompts in its shots) every ``stride`` frames."""
    stride = options.tracking.stride
    if stride == "auto":
        stride = auto_stride(span.stop - span.first, keyframes, resolve_device(options.model.device).type)
    return TrackingNeed.for_span(span.first, span.stop, stride, prompts, num_frames, shots)


def _given_tracks(request: VideoRequest, info: VideoInfo, timestamps: np.ndarray) -> Tracks | None:
    """The request's ``--tracks`` file read and checked against the video, or None."""
    if request.tracks is None:
        return None
    regions = request.regions
    if regions.masks or regions.boxes or regions.points:
        raise OptionError("tracks", "gives the objects and their masks: give no masks, boxes or points beside it")
    return read_tracks_file(request.tracks, info, list(timestamps))


def job_tracks(
    request: VideoRequest,
    video: FrameSource,
    job: VideoJob,
    loaded: Tracker | None,
    reporter: Reporter,
    timings: dict[str, float],
) -> tuple[Tracks, list[int]]:
    """Tracks of the job's objects for its need, and the objects SAM2 tracked for it.

    A ``--tracks`` file is used as it is. With the cache, each object's cached tracks are
    reused when they serve the need and only the others are tracked (then cached); see
    :func:`garvid.tracking.provide.tracks_for`. A ``loaded`` tracker is used, else the
    request's is loaded only when something must be tracked, and freed after.
    """
    started = time.perf_counter()
    options = request.options
    cache = request_cache(options.tracking, on_problem=reporter.warn)
    provided = tracks_for(
        video,
        request.regions,
        job.prompts,
        job.need,
        cache,
        GivenTracks(job.given) if job.given is not None else loaded or job.tracker_name,
        shots=job.shots,
        device=options.model.device,
        progress=lambda done, total: reporter.progress("tracking", done, total),
    )
    if job.given is None:
        timings["track"] = time.perf_counter() - started
    return provided


def shots_json(tracks: Tracks, timestamps: np.ndarray) -> list[dict[str, Any]]:
    """The shots ``tracks`` stayed within, as answers report them: the whole video as one shot
    when the tracks know none (a tracks file written before shots existed)."""
    shots = tracks.shots if tracks.shots is not None else Shots.from_cuts([], timestamps, tracks.video.duration)
    return shots.to_json()


def presence_json(tracks: Tracks, object_id: int) -> list[dict[str, Any]]:
    """When ``object_id`` is tracked and visible in ``tracks`` (:mod:`garvid.tracking.presence`)."""
    return [interval.to_json() for interval in tracks.presence(object_id)]


def _object_summaries(tracks: Tracks, keyframes: list[int]) -> list[dict[str, Any]]:
    """When each tracked (asked-about) object is visible, and where it is on each keyframe."""
    summaries = []
    for object_id in tracks.object_ids:
        entries = []
        for frame in keyframes:
            observation = tracks.observation(object_id, frame)
            entries.append(
                {
                    "frame": frame,
                    "time": tracks.times[tracks.frames.index(frame)],
                    "bbox": list(observation.bbox) if observation.bbox is not None else None,
                    "visible": observation.visible,
                }
            )
        summaries.append({"id": object_id, "presence": presence_json(tracks, object_id), "keyframes": entries})
    return summaries


def _prefix_length(tokens) -> int:
    """Where the question starts: just after the prompt's last image or crop token.

    Everything before it depends only on the keyframes and the objects asked about, so
    questions about the same objects share it (and its key/value cache).
    """
    spans = [*tokens.image_spans, *(span for runs in tokens.crop_spans.values() for span in runs)]
    return max(end for _, end in spans)


class WindowAnswerer:
    """Answers one window at a time with a loaded GAR, reusing what ``memo`` holds."""

    def __init__(self, request, video, tracks, model, builder, plan, reporter, timings, memo, names=None):
        self.request: VideoRequest = request
        self.video: FrameSource = video
        self.tracks: Tracks = tracks
        self.model = model
        self.builder: TemporalPromptBuilder = builder
        self.plan: QuestionPlan = plan
        self.names: dict[int, str] = names or object_names(plan.objects)  # object id -> what answers call it
        self.reporter: Reporter = reporter
        self.timings: dict[str, float] = timings
        self.memo: AnswerMemo = memo

    def window(self, window: Window, keyframes: list[int]) -> Steps[list[Answer]]:
        if self.request.question is None:
            return (yield from self._describe(window, keyframes, self.pixels(keyframes), self.times(keyframes)))
        inputs, shown = self.question_inputs(keyframes)
        answer = yield from self._generate(window, keyframes, inputs, sorted(self.plan.slot_objects), self.times(keyframes), shown, None)
        return [answer]

    def pixels(self, keyframes: list[int]) -> list[np.ndarray]:
        """The keyframes decoded (each once per memo)."""
        decoding = time.perf_counter()
        pixels = [self.memo.get("frames", frame, lambda frame=frame: self.video.frames([frame])[0]) for frame in keyframes]
        self.timings["decode"] += time.perf_counter() - decoding
        return pixels

    def times(self, keyframes: list[int]) -> list[float]:
        return [self.tracks.times[self.tracks.frames.index(f)] for f in keyframes]

    def shots(self, keyframes: list[int]) -> list[int]:
        """The shot of each keyframe (none when the tracks know no shots: one shot)."""
        shots = self.tracks.shots
        return [] if shots is None else [shots.index_of(f) for f in keyframes]

    def question_inputs(self, keyframes: list[int]) -> tuple[list[GARImageInputs], list[tuple[tuple[int, int], ...]]]:
        """The keyframes preprocessed with the mask maps of the question's objects (each once per memo), and
        the ``(slot, object)`` pairs shown on each."""
        shown = [self.shown(frame, self.plan.slot_objects) for frame in keyframes]
        inputs = [
            self.memo.get(
                "inputs", self.key(frame, on), lambda image=image, frame=frame, on=on: self._preprocess(image, self._masks(frame, on))
            )
            for image, frame, on in zip(self.pixels(keyframes), keyframes, shown)
        ]
        return inputs, shown

    def _describe(self, window: Window, keyframes: list[int], pixels: list[np.ndarray], times: list[float]) -> Steps[list[Answer]]:
        bare = [self.memo.get("inputs", self.key(frame, ()), lambda image=image: self._preprocess(image, {})) for frame, image in zip(keyframes, pixels)]  # fmt: skip
        config, resample = self.builder.image_config, self.request.options.prompt.mask_resample
        answers = []
        for object_id in self.plan.objects:
            shown = [self.shown(frame, {DESCRIBE_SLOT: object_id}) for frame in keyframes]
            if not any(shown):
                answer = Answer(window.start, window.end, keyframes, NOT_VISIBLE_TEXT, object_id=object_id, reference_text=NOT_VISIBLE_TEXT)
                self.reporter.answer_begins(window, object_id)
                self.reporter.token(answer.text)
                self.reporter.answer_ends(answer)
                answers.append(answer)
                continue
            inputs = [
                self.memo.get(
                    "inputs",
                    ("describe", *self.key(frame, on)),
                    lambda base=base, frame=frame, on=on: with_regions(base, self._masks(frame, on), config, mask_resample=resample),
                )
                for base, frame, on in zip(bare, keyframes, shown)
            ]
            answers.append((yield from self._generate(window, keyframes, inputs, [DESCRIBE_SLOT], times, shown, object_id)))
        return answers

    def shown(self, frame: int, slot_objects: dict[int, int]) -> tuple[tuple[int, int], ...]:
        """``(slot, object)`` of the objects visible on ``frame``, slots ascending: what its mask map holds."""
        return tuple(sorted((s, o) for s, o in slot_objects.items() if self.tracks.observation(o, frame).visible))

    def key(self, frame: int, shown: tuple[tuple[int, int], ...]) -> tuple:
        """What decides a keyframe's mask map: the frame, its (slot, object) pairs and their masks' RLE."""
        return frame, shown, tuple(self.tracks.observation(o, frame).rle["counts"] for _, o in shown)

    def _masks(self, frame: int, shown: tuple[tuple[int, int], ...]) -> dict[int, np.ndarray]:
        """Masks of the ``shown`` objects on ``frame``, by prompt slot."""
        return {slot: self.tracks.mask(object_id, frame) for slot, object_id in shown}

    def _preprocess(self, image: np.ndarray, masks: dict[int, np.ndarray]) -> GARImageInputs:
        return preprocess_image(
            image,
            masks,
            self.builder.image_config,
            single_tile=self.builder.single_tile,
            mask_resample=self.request.options.prompt.mask_resample,
        )

    def _generate(
        self,
        window: Window,
        keyframes: list[int],
        inputs: list[GARImageInputs],
        slots: list[int],
        times: list[float],
        shown: list[tuple[tuple[int, int], ...]],
        object_id: int | None,
    ) -> Steps[Answer]:
        layouts = self.builder.layout(times, [[slot for slot, _ in on] for on in shown], slots, self.shots(keyframes))
        tokens = self.builder.tokens(slots, layouts, self.plan.prompt_question)
        replayed = [layout.replayed for layout in layouts]
        scaling = self.request.options.prompt.replay_scaling
        self.reporter.answer_begins(window, object_id)
        slot_objects = self.plan.slot_objects if object_id is None else {DESCRIBE_SLOT: object_id}
        generated = yield PromptJob(
            model=self.model,
            tokenizer=self.builder.files.tokenizer,
            input_ids=tokens.input_ids,
            frames=inputs,
            replayed_slots=replayed,
            scaling=scaling,
            generation=self.request.options.generation,
            memo=self.memo,
            encoding_key=(self.request.question is None, tuple(self.key(f, on) for f, on in zip(keyframes, shown)), tuple(map(tuple, replayed)), scaling),
            prefix_length=_prefix_length(tokens),
            on_token=lambda _id, delta: self.reporter.token(delta),
            region_names={slot: self.names[o] for slot, o in slot_objects.items()},
        )
        self.timings["encode"] += generated.encode_seconds
        self.timings["generate"] += generated.generate_seconds
        if not generated.streamed:
            self.reporter.token(generated.text)
        texts = generated.texts
        answer = Answer(
            window.start, window.end, keyframes, texts.text, generated.token_ids, object_id, len(tokens.input_ids), texts.raw_text, texts.reference_text
        )
        self.reporter.answer_ends(answer)
        return answer
