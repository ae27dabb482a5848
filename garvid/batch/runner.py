"""Run ``ask`` / ``describe`` over many videos, stage by stage, loading each model once.

Stage 1 tracks every pending item with one SAM2 (loaded on the first cache miss) and
leaves the tracks in the tracking cache; the tracker is freed; stage 2 loads GAR once and
answers every item, finding its tracks in the cache, ``--batch-size`` prompts per forward
pass (:mod:`garvid.qa.steps`). Peak memory is the larger model, not the sum. A failing
item (bad video or mask, out of memory) is recorded and the run goes on; ``should_stop``
(Ctrl-C in the CLI) ends the run once the items in flight are finished: while tracking, the
item being tracked (then answered); while answering, the items in flight, every prompt of each.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from garvid.batch.sink import BatchSink, BatchSummary
from garvid.batch.tasks import BatchTask, TaskProblem
from garvid.errors import GarvidError
from garvid.failures import ends_run, failure_text, item_errors
from garvid.files import RunInputs
from garvid.options import AnswerOptions, PromptsPerPass, ModelOptions, WhenOptions
from garvid.qa.steps import Outcome, PooledAnswering, Steps
from garvid.qa.reporting import Reporter
from garvid.qa.video_request import VideoRequest, run_input_paths
from garvid.regions.input import RegionInput

if TYPE_CHECKING:
    from garvid.gar.model import GARModel

StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class BatchRun:
    """What a run applies to every item: the option groups, the run's objects by name
    (``--object`` phrases, detector, threshold) and its question, or describe; with ``when``,
    the question (the run's or an item's) is a statement whose time ranges are found."""

    options: AnswerOptions = field(default_factory=AnswerOptions)
    objects: RegionInput = field(default_factory=RegionInput)
    question: str | None = None
    describe: bool = False
    when: WhenOptions | None = None


def item_request(run: BatchRun, task: BatchTask) -> VideoRequest:
    """The request for one item: the run's options with the item's video, mask, question, span
    and objects (a row's own ``objects`` replace the run's ``--object`` phrases)."""
    question = None if run.describe else (task.question or run.question)
    if not run.describe and not question:
        raise GarvidError("no question: give the run a question, or this item a 'question' field")
    keyframes = run.options.keyframes
    span = {"start": task.start, "end": task.end}
    return VideoRequest(
        video=task.video,
        regions=replace(
            run.objects,
            masks=() if task.mask is None else (task.mask,),
            frame=task.mask_frame,
            objects=task.objects or tuple(run.objects.objects),
        ),
        question=question,
        options=replace(run.options, keyframes=replace(keyframes, **{k: v for k, v in span.items() if v is not None})),
        tracks=task.tracks,
        when=run.when,
    )


def batch_inputs(
    tasks: list[BatchTask], run: BatchRun, manifest: Path | None = None, problems: list[TaskProblem] = ()
) -> RunInputs:
    """Every file the run reads: the manifest, every file each item names (video, mask, tracks;
    a row that is not a valid item too), the run's model, tracker and protocol files, so that
    no item's output overwrites its own input or another item's."""
    items = (path for item in (*tasks, *problems) for path in item.reads())
    return RunInputs([manifest, *run_input_paths(run.options), *items])


@dataclass
class BatchPlan:
    """What a run will do: the items to compute, after skipping finished ones."""

    run: BatchRun
    pending: list[tuple[BatchTask, VideoRequest]]


def plan_batch(tasks: list[BatchTask], problems: list[TaskProblem], run: BatchRun, sink: BatchSink) -> BatchPlan:
    """Check every output, skip items finished for this very request, record the input
    problems and build each remaining item's request.

    Refused as a whole (GarvidError) before anything is done or recorded: an attention
    kernel this machine cannot run, an output that would overwrite an input, and earlier
    outputs that answer another request (another question, model, protocol, ...) unless
    the sink overwrites.
    """
    from garvid.devices import check_attention

    check_attention(run.options.model.attn, run.options.model.device)
    for task in tasks:
        sink.check(task)
    planned, failed, other = [], [], []
    for task in tasks:
        try:
            request = item_request(run, task)
        except GarvidError as error:
            failed.append((task, str(error)))
            continue
        earlier = sink.earlier_output(task, request)
        if earlier:
            other.append((task, earlier))
        planned.append((task, request, earlier == []))
    if other:
        (first, fields), more = other[0], len(other) - 1
        change = "its request was not recorded" if fields == ["unknown"] else f"{', '.join(fields)} changed"
        others = f", and {more} more item(s)" if more else ""
        raise GarvidError(
            f"{sink.out_dir} holds answers to another request ({first.id!r}: {change}{others}): "
            "pass --overwrite to redo them, or give another -o"
        )
    for problem in problems:
        sink.failed(problem, "input", problem.reason)
    for task, reason in failed:
        sink.failed(task, "input", reason)
    pending = []
    for task, request, finished in planned:
        if finished:
            sink.skip(task)
        else:
            pending.append((task, request))
    return BatchPlan(run, pending)


def run_local(
    plan: BatchPlan,
    sink: BatchSink,
    reporter: Reporter | None = None,
    should_stop: StopCheck = lambda: False,
    per_pass: PromptsPerPass = 1,
) -> BatchSummary:
    """Track every pending item, then answer every tracked one, ``per_pass`` prompts per forward pass
    (see the module docstring)."""
    reporter = reporter or Reporter()
    with tempfile.TemporaryDirectory(prefix="garvid-batch-") as scratch:
        items = [(task, _with_cache(request, Path(scratch))) for task, request in plan.pending]
        tracked = _track_all(items, plan.run.options, sink, reporter, should_stop)
        if not sink.summary.pipe_closed:
            # stopped while tracking: only the item then in flight is left, and it is finished
            answering_stop = (lambda: False) if should_stop() else should_stop
            _answer_all(tracked, plan.run.options.model, sink, reporter, answering_stop, per_pass)
    summary = sink.finish()
    summary.interrupted = should_stop()
    return summary


def _with_cache(request: VideoRequest, scratch: Path) -> VideoRequest:
    """Stages hand tracks over through the cache; with --no-cache, a scratch one for this run."""
    tracking = request.options.tracking
    if tracking.use_cache:
        return request
    return replace(request, options=replace(request.options, tracking=replace(tracking, use_cache=True, cache_dir=scratch)))


def _track_all(items, options: AnswerOptions, sink: BatchSink, reporter: Reporter, should_stop: StopCheck):
    from garvid.qa.context import AnswerContext
    from garvid.qa.video_answering import track_ahead
    from garvid.tracking.backends import LazyTracker

    tracker = LazyTracker(options.tracking.tracker, options.model.device)
    context = AnswerContext(tracker=tracker)  # one for the stage: the checkpoint's files are read once
    tracked = []
    for done, (task, request) in enumerate(items):
        reporter.progress("tracking", done, len(items))
        try:
            track_ahead(request, context)
            tracked.append((task, request))
        except item_errors() as error:
            if ends_run(error):
                raise  # no tracker weights: no item can be tracked
            sink.failed(task, "track", failure_text(error))
        if should_stop():
            # stopped during this item: it alone is finished (answered); those tracked before
            # wait for a rerun, their tracks in the cache
            tracked = tracked[-1:] if tracked and tracked[-1][0] is task else []
            break
    reporter.progress("tracking", len(items), len(items))
    tracker.free()
    return tracked


def _answer_all(
    items, model_options: ModelOptions, sink: BatchSink, reporter: Reporter, should_stop: StopCheck, per_pass: PromptsPerPass
) -> None:
    from garvid.gar.loading import load_gar

    if not items:
        return
    model = load_gar(
        model_options.name, dtype=model_options.dtype, device=model_options.device, attn_implementation=model_options.attn
    )
    items = grouped_by_clip(items)
    reporter.progress("answering", 0, len(items))
    answered = answer_requests(
        [request for _, request in items], model, per_pass, reporter, lambda: should_stop() or sink.summary.pipe_closed
    )
    for done, outcome in enumerate(answered, start=1):
        task, request = items[outcome.key]
        if outcome.error is not None:
            sink.failed(task, "answer", failure_text(outcome.error))
        else:
            sink.done(task, request, outcome.result)
        reporter.progress("answering", done, len(items))
    reporter.progress("answering", len(items), len(items))


def answer_requests(
    requests: list[VideoRequest], model: GARModel, per_pass: PromptsPerPass, reporter: Reporter, should_stop: StopCheck
) -> Iterator[Outcome[int]]:
    """Answer ``requests`` with one loaded GAR, ``per_pass`` prompts per forward pass: each request's
    outcome (keyed by its index) as it finishes. Neighbouring requests about one clip share an
    :class:`~garvid.qa.steps.AnswerMemo` (keyframes, encodings, prompt prefix)."""
    from garvid.qa.steps import AnswerMemo
    from garvid.qa.planning import GarFiles
    from garvid.qa.context import AnswerContext
    from garvid.qa.video_answering import video_steps
    from garvid.qa.when_answering import when_steps

    files = GarFiles.read(str(model.checkpoint_dir))  # once for the run, not once per request
    memo, clip = AnswerMemo(), None

    def start(request: VideoRequest) -> Callable[[], Steps]:
        nonlocal memo, clip
        if _clip(request) != clip:
            memo, clip = AnswerMemo(), _clip(request)  # what one clip's questions share, dropped when the clip changes
        shared = memo
        steps = video_steps if request.when is None else lambda r, c: when_steps(r, c, per_pass)
        return lambda: steps(request, AnswerContext(model=model, files=files, memo=shared))

    answering = PooledAnswering.reporting_to(reporter, per_pass)
    yield from answering.run(((index, start(request)) for index, request in enumerate(requests)), should_stop)


def _clip(request: VideoRequest) -> tuple:
    """What requests that share an answer memo must have in common: the video and its objects."""
    return request.video, request.options.tracking.fps, repr(request.regions), request.tracks  # a RegionInput may hold lists


def grouped_by_clip(items: list[tuple[BatchTask, VideoRequest]]) -> list[tuple[BatchTask, VideoRequest]]:
    """``items`` with those about the same clip and objects next to each other (first appearance order kept),
    so several questions about one clip are answered one after the other, sharing their keyframes'
    encodings and prompt prefix."""
    first: dict[tuple, int] = {}
    for index, (_, request) in enumerate(items):
        first.setdefault(_clip(request), index)
    return sorted(items, key=lambda item: first[_clip(item[1])])


