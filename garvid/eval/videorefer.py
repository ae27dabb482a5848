"""VideoRefer-BenchQ with garvid's temporal protocol: the video number GAR published no code for.

An item names a frame folder (``video``, relative to the video root), a question with
``<objectN><region>`` references, options and the answer, and per object a mask (COCO
RLE) on some of the frames. The j-th object the question mentions is the annotation's
j-th entry and GAR's ``<Prompt{j}>`` (object j+1 in garvid's numbering), whatever its
label N. In ``multi`` mask mode the given masks are the tracks (no SAM2); in ``single``
mode only the masks on ``frame_idx`` are given and SAM2 tracks them, as ``garvid ask``
does. Every item goes through the same code as ``ask``
(:func:`garvid.qa.video_answering.video_steps`), its prompts answered ``--batch-size`` at a
time with other items' (:mod:`garvid.qa.steps`).

Two evaluation protocols decide the question text, the default mask mode and how the
answer's letter is read:

* ``videorefer`` (the default: VideoRefer's published rows were made this way), as
  VideoRefer's ``videorefer/eval/inference_videorefer_q_bench.py`` and
  ``eval_videorefer_bench_q.py`` do it: ``Question.replace('<region>', '[<region>]')``
  with GAR's region token in place of ``<region>``, then ``' '`` and the options joined by
  spaces and ``". Answer with the option's letter from the given choices directly."``;
  single-frame masks (its eval script passes ``--mode single``); the letter is the first
  ``(X)``, else the first ``X)``, else the answer's first character once dots are removed.
* ``garvid``: ``Question: ...`` and one option per line plus GAR's multiple-choice
  instruction, as GAR was evaluated on multiple choice; multi-frame masks; the letter read
  by :func:`garvid.eval.choices.extract_choice`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from garvid.errors import GarvidError, OptionError, RegionError
from garvid.failures import ends_run, failure_text, item_errors
from garvid.eval.choices import check_item_text, check_unique_ids, choices_question, extract_choice, item_options, load_questions
from garvid.eval.results import ResultLog, published_row, refuse_mixed
from garvid.eval.running import answer_items
from garvid.options import AnswerOptions, PromptsPerPass
from garvid.qa.steps import Steps, drive
from garvid.qa.reporting import Reporter
from garvid.qa.video_request import VideoRequest
from garvid.regions.input import RegionInput
from garvid.regions.masks import RLE, decode_rle, rle_runs
from garvid.tracking import ObjectObservation, Tracks

MaskMode = Literal["multi", "single"]
EvalProtocol = Literal["videorefer", "garvid"]
EVAL_PROTOCOLS: tuple[EvalProtocol, ...] = ("videorefer", "garvid")
DEFAULT_MASK_MODES: dict[str, MaskMode] = {"videorefer": "single", "garvid": "multi"}
VIDEOREFER_INSTRUCTION = "Answer with the option's letter from the given choices directly."
TYPE_ORDER = ("Basic Questions", "Sequential Questions", "Relationship Questions", "Reasoning Questions", "Future Predictions")
#: Published accuracies (%) to print beside a run, from VideoRefer's benchmark README
#: (DAMO-NLP-SG/VideoRefer, benchmark/README.md). The GAR paper gives GAR-8B's average
#: (about 72) but no per-type numbers that could be checked here, so it is not listed.
PUBLISHED = {
    "GPT-4o": published_row(TYPE_ORDER, 62.3, 74.5, 66.0, 88.0, 73.7, 71.3),
    "VideoRefer-7B": published_row(TYPE_ORDER, 75.4, 68.6, 59.3, 89.4, 78.1, 71.9),
    "VideoRefer-VideoLLaMA3-7B": published_row(TYPE_ORDER, 88.1, 77.7, 70.2, 88.8, 79.8, 80.1),
}
#: How each published row was made (VideoRefer's scripts and benchmark docs), printed beside it.
PUBLISHED_SETUP = {
    "GPT-4o": "set-of-mark: masks drawn on the first frame each object is in, 16 frames, "
    "VideoRefer's general-MLLM prompt (benchmark/evaluation_general_mllms.md)",
    "VideoRefer-7B": "videorefer protocol, single-frame masks (frame_idx; eval script --mode single)",
    "VideoRefer-VideoLLaMA3-7B": "videorefer protocol but no [ ] around <region>, single-frame masks (frame_idx)",
}
_OBJECT_REFERENCE = re.compile(r"<object(\d+)>(?:\s*<region>)?")
_BRACKETED_REGION = re.compile(r"<object(\d+)>(\s*)\[<region>\]")
REQUIRED_FIELDS = ("id", "video", "Question", "type", "options", "Answer", "annotation")


def load_items(path: Path) -> list[dict[str, Any]]:
    """The benchmark's items, checked for the fields garvid reads."""
    items = load_questions(path, "VideoRefer-BenchQ", REQUIRED_FIELDS)
    check_unique_ids([str(item["id"]) for item in items], path)
    return items


def referenced_objects(question: str) -> list[int]:
    """The ``<objectN>`` labels of a question, in order of first mention."""
    return list(dict.fromkeys(_mentions(question)))


def _mentions(question: str) -> list[int]:
    return [int(label) for label in _OBJECT_REFERENCE.findall(question)]


def prompt_question(question: str) -> str:
    """``<objectN><region>`` becomes ``<PromptK>``, K the object's place among the question's objects.

    The labels are names, not positions (a question may name only ``<object3>``): as in
    VideoRefer's own inference, the annotation's j-th entry is the j-th object the question
    mentions, so it takes GAR's j-th region slot.
    """
    slots = {label: slot for slot, label in enumerate(referenced_objects(question))}
    return _OBJECT_REFERENCE.sub(lambda m: f"<Prompt{slots[int(m.group(1))]}>", question)


def videorefer_question(question: str, options: list[str]) -> str:
    """The question as VideoRefer's inference script writes it, GAR's ``<PromptK>`` in place of ``<region>``."""
    slots = {label: slot for slot, label in enumerate(referenced_objects(question))}
    bracketed = question.replace("<region>", "[<region>]")
    text = _BRACKETED_REGION.sub(lambda m: f"<object{m.group(1)}>{m.group(2)}[<Prompt{slots[int(m.group(1))]}>]", bracketed)
    if "<region>" in text:
        raise GarvidError("the question has a <region> that follows no <objectN>")
    return f"{text} {' '.join(options)}. {VIDEOREFER_INSTRUCTION}"


def videorefer_letter(output: str) -> str | None:
    """The letter VideoRefer's ``eval_videorefer_bench_q.py`` reads in an answer (None for an empty one).

    The first ``(X)``, else the first ``X)`` (capital letters), else the first character
    once dots are removed: "Answer: B" is read as "A", as VideoRefer reads it.
    """
    for pattern in (r"\(([A-Z])\)", r"([A-Z])\)"):
        if match := re.search(pattern, output):
            return match.group(1)
    undotted = output.replace(".", "")
    return undotted[0] if undotted else None


def videorefer_answer_key(answer: str) -> str:
    """The item's answer as VideoRefer's scorer takes it: the letter of "(X)", else the whole field."""
    match = re.search(r"\(([A-Z])\)", answer)
    return match.group(1) if match else answer


def object_masks(item: dict[str, Any]) -> list[dict[int, RLE]]:
    """Per object (in the order the question mentions them), its masks by frame index.

    A frame whose ``segmentation`` is null is a frame where the object is not annotated.
    """
    objects = item["annotation"]
    if not isinstance(objects, list) or not objects:
        raise GarvidError("the item has no object annotations")
    mentions = _mentions(str(item["Question"]))
    named = list(dict.fromkeys(mentions))
    if len(objects) == len(mentions) != len(named):  # one entry per mention: keep each object's first
        objects = [objects[mentions.index(label)] for label in named]
    if len(objects) != len(named):
        raise GarvidError(f"the question names {len(named)} object(s) but the annotation has {len(objects)}")
    masks = []
    for index, entry in enumerate(objects):
        if not isinstance(entry, dict):
            raise GarvidError(f"annotation {index} must map frame numbers to masks, not be a {type(entry).__name__}")
        frames = {}
        for frame, value in entry.items():
            if not (str(frame).isascii() and str(frame).isdigit()):
                raise GarvidError(f"annotation {index} has the frame key {frame!r}, not a frame number")
            rle = value.get("segmentation") if isinstance(value, dict) else None
            if rle is not None:
                rle_runs(rle)  # a malformed mask is this item's error, before any work
                frames[int(frame)] = rle
        masks.append(frames)
    return masks


class GivenMasks:
    """Stands in for the tracker in ``multi`` mode (a :class:`~garvid.tracking.Tracker`): the
    annotated masks are the tracks, on the annotated frames."""

    name = "given-masks"
    device_type = "cpu"  # nothing runs; ``--stride auto`` plans as for a CPU

    def __init__(self, masks: list[dict[int, RLE]]):
        self.masks = masks

    def track(self, video, prompts, frames, progress=None, **_) -> Tracks:
        size = [video.info.height, video.info.width]
        for per_object in self.masks:
            for frame, rle in per_object.items():
                if list(rle["size"]) != size:
                    raise RegionError(f"the mask on frame {frame} is {rle['size'][1]}x{rle['size'][0]}, the video {size[1]}x{size[0]}")
        annotated = sorted({f for per_object in self.masks for f in per_object if 0 <= f < video.info.num_frames})
        times = video.timestamps()
        empty = np.zeros((video.info.height, video.info.width), dtype=bool)
        observations = {
            object_id: [
                ObjectObservation.from_mask(decode_rle(self.masks[object_id - 1][f]) if f in self.masks[object_id - 1] else empty, 1.0)
                for f in annotated
            ]
            for object_id in prompts.object_ids
        }
        gaps = np.diff(annotated)
        return Tracks(
            video.info, prompts.object_ids, annotated, [float(times[f]) for f in annotated], observations,
            self.name, int(np.median(gaps)) if gaps.size else 1, "none", prompts.frame,
        )  # fmt: skip


def _prompt_frame(item: dict[str, Any], masks: list[dict[int, RLE]]) -> int:
    """``frame_idx`` when every object has a mask there, else the first frame where all do."""
    common = set.intersection(*(set(m) for m in masks))
    wanted = str(item.get("frame_idx", ""))
    if wanted.isascii() and wanted.isdigit() and int(wanted) in common:
        return int(wanted)
    if not common:
        raise GarvidError("no annotated frame shows every object")
    return min(common)


def _prompt_masks(masks: list[dict[int, RLE]], frame: int) -> tuple[np.ndarray, ...]:
    """One boolean mask per object on ``frame``, in memory (so overlapping objects keep all their pixels)."""
    return tuple(decode_rle(per_frame[frame]) for per_frame in masks)


AnswerSteps = Callable[[VideoRequest, GivenMasks | None], Steps[str]]
"""How an item's request is answered, as steps: the answer's text."""


def evaluate_item(
    item: dict[str, Any],
    video_root: Path,
    options: AnswerOptions,
    mask_mode: MaskMode,
    answer: Callable[[VideoRequest, GivenMasks | None], str],
    protocol: EvalProtocol = "videorefer",
) -> dict[str, Any]:
    """Ask one item with ``answer``, which runs its own prompts: :func:`item_steps` run alone."""

    def steps(request: VideoRequest, given: GivenMasks | None) -> Steps[str]:
        yield from ()  # no prompt for the caller to run: ``answer`` runs them
        return answer(request, given)

    return drive(item_steps(item, video_root, options, mask_mode, steps, protocol))


def item_steps(
    item: dict[str, Any],
    video_root: Path,
    options: AnswerOptions,
    mask_mode: MaskMode,
    answer: AnswerSteps,
    protocol: EvalProtocol = "videorefer",
) -> Steps[dict[str, Any]]:
    """Ask one item, as steps (see :mod:`garvid.qa.steps`): the record for the results file
    (prediction None when no letter was given).

    Its prompt masks are passed in memory (nothing is written to disk). Bad input and
    running out of memory are the item's error, in its record.
    """
    videorefer = protocol == "videorefer"
    record: dict[str, Any] = {"id": item["id"], "type": str(item["type"]), "answer": None, "protocol": protocol, "mask_mode": mask_mode}
    try:
        check_item_text(item)
        choices = item_options(item, "options")
        key = videorefer_answer_key(str(item["Answer"])) if videorefer else extract_choice(str(item["Answer"]), choices)
        record["answer"] = key
        masks = object_masks(item)
        frame = _prompt_frame(item, masks)
        if videorefer:
            question = videorefer_question(str(item["Question"]), choices)
        else:
            question = choices_question(prompt_question(str(item["Question"])), choices)
        tracking = replace(options.tracking, use_cache=options.tracking.use_cache and mask_mode == "single")
        request = VideoRequest(
            video=video_root / str(item["video"]),
            regions=RegionInput(masks=_prompt_masks(masks, frame), frame=frame),
            question=question,
            literal_question=videorefer,
            options=replace(options, prompt=replace(options.prompt, multiple_choice=not videorefer), tracking=tracking),
        )
        output = yield from answer(request, GivenMasks(masks) if mask_mode == "multi" else None)
    except item_errors() as error:
        if ends_run(error):
            raise
        return _failed(record, failure_text(error))
    prediction = videorefer_letter(output) if videorefer else extract_choice(output, choices)
    correct = prediction is not None and key is not None and prediction.lower() == key.lower()
    return {**record, "prediction": prediction, "correct": correct, "output": output}


def _failed(record: dict[str, Any], error: str) -> dict[str, Any]:
    return {**record, "prediction": None, "correct": False, "output": None, "error": error}


def run_videorefer(
    items: list[dict[str, Any]],
    video_root: Path,
    options: AnswerOptions,
    mask_mode: MaskMode,
    log: ResultLog,
    *,
    protocol: EvalProtocol = "videorefer",
    reporter: Reporter | None = None,
    on_item: Callable[[dict[str, Any]], None] = lambda record: None,
    should_stop: Callable[[], bool] = lambda: False,
    per_pass: PromptsPerPass = 1,
) -> int:
    """Answer every item not yet in ``log`` with one GAR (and, in single mode, one SAM2),
    ``per_pass`` prompts per forward pass (:mod:`garvid.qa.steps`); the number of items
    answered (errors not counted).

    Records are logged as items finish, which with batches is not always their order in ``items``.
    """
    if protocol not in EVAL_PROTOCOLS:
        raise OptionError("eval_protocol", f"must be {' or '.join(EVAL_PROTOCOLS)}, not {protocol!r}")
    if mask_mode not in ("multi", "single"):
        raise OptionError("mask_mode", f"must be multi or single, not {mask_mode!r}")
    from garvid.gar.loading import load_gar

    # what decides an answer, in every record: a results file is resumed only by the same setup
    setup = {"model": options.model.name, "max_new_tokens": str(options.generation.max_new_tokens)}
    refuse_mixed(log, protocol=protocol, mask_mode=mask_mode, **setup)
    from garvid.qa.planning import GarFiles
    from garvid.qa.context import AnswerContext
    from garvid.qa.video_answering import video_steps
    from garvid.tracking.backends import LazyTracker

    pending = [item for item in items if not log.done(str(item["id"]))]
    if not pending:
        return 0
    wanted = options.model
    model = load_gar(wanted.name, dtype=wanted.dtype, device=wanted.device, attn_implementation=wanted.attn)
    files = GarFiles.read(str(model.checkpoint_dir))  # once for the run, not once per item
    tracker = LazyTracker(options.tracking.tracker, wanted.device)
    reporter = reporter or Reporter()

    def answer(request: VideoRequest, given: GivenMasks | None) -> Steps[str]:
        context = AnswerContext(reporter, model=model, files=files, tracker=given or tracker)
        answered = yield from video_steps(request, context)
        return answered.answers[0].reference_text

    def start(item: dict[str, Any]) -> Callable[[], Steps[dict[str, Any]]]:
        return lambda: item_steps(item, video_root, options, mask_mode, answer, protocol)

    started = ((str(item["id"]), start(item)) for item in pending)
    return answer_items(started, log, per_pass, setup, reporter=reporter, on_item=on_item, should_stop=should_stop)
