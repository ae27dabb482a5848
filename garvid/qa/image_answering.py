"""Ask GAR about regions of one image: the library behind ``garvid image``.

With no question and one region, GAR describes it with the reference's single-region
prompt (the region in slot 1). With a question, the regions it names ("object 2",
"#1", ...) become ``<PromptK>`` (object N -> slot N-1) and the multi-region prompt asks
it; a question that names no object is about every region.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from garvid.errors import GarvidError, RegionError
from garvid.gar.answering import TokenCallback
from garvid.gar.processor import NormBox, preprocess_image, to_rgb
from garvid.gar.prompt import (
    DESCRIBE_INSTRUCTION,
    DESCRIBE_SLOT,
    QuestionPlan,
    describe_region_text,
    plan_question,
    region_question_text,
    tokenize_prompt,
)
from garvid.options import GenerationOptions, ModelOptions, PromptOptions, TrackingOptions
from garvid.presets import random_weights_warning
from garvid.qa.context import AnswerContext
from garvid.qa.planning import GarFiles
from garvid.qa.reporting import Reporter
from garvid.qa.steps import PromptJob, Steps, drive
from garvid.regions.input import RegionInput
from garvid.regions.masks import mask_bbox
from garvid.regions.prompts import object_names


@dataclass(frozen=True)
class RegionSummary:
    id: int  # the user's object id (mask value / mask order)
    slot: int  # GAR prompt slot: <Prompt{slot}>
    bbox: tuple[int, int, int, int]  # inclusive pixels x1, y1, x2, y2
    area: int


@dataclass
class ImageAnswer:
    answer: str  # for the user: region tokens read as the objects' names
    answer_token_ids: list[int]
    question: str | None
    prompt_question: str
    regions: list[RegionSummary]
    model: dict[str, str]  # name, path, dtype, device
    timings: dict[str, float] = field(default_factory=dict)  # seconds: preprocess, encode, generate, total
    raw_answer: str = ""  # the model's own text, region tokens kept as <PromptK>
    reference_answer: str = ""  # as the reference decodes it (region tokens dropped): what benchmarks score

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["reference_answer"]  # the raw answer holds it
        data["regions"] = [
            {"id": r.id, "bbox": list(r.bbox), "area": r.area} for r in self.regions
        ]
        data["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return data


def load_image(image: Image.Image | str | Path, *, exif_orientation: bool = True) -> Image.Image:
    """An RGB PIL image from a path or an image; GarvidError when unreadable.

    A file is turned as its EXIF orientation says, so it is the picture as displayed (as a
    video's rotation is applied) and masks are drawn on that; ``exif_orientation=False``
    keeps the stored pixels, as the reference's benchmark code reads its images. An image
    passed in is taken as it is.
    """
    if isinstance(image, Image.Image):
        return to_rgb(image)
    path = Path(image)
    if not path.is_file():
        raise GarvidError(f"image file not found: {path}")
    try:
        with Image.open(path) as opened:
            return to_rgb(ImageOps.exif_transpose(opened) if exif_orientation else opened)
    except (UnidentifiedImageError, OSError) as error:
        raise GarvidError(f"cannot read image {path}: {error}") from None


def _plan_prompt(object_ids: list[int], question: str | None, multiple_choice: bool) -> QuestionPlan:
    """Which slots hold which objects for the question; no question describes the one object."""
    if not object_ids:
        raise RegionError("no regions given: give masks, boxes, points or objects by name")
    if question is None or not question.strip():
        if len(object_ids) != 1:
            raise RegionError(
                f"{len(object_ids)} objects given but no question: ask about them "
                "(e.g. \"what is object 1 doing?\") or give one object to describe"
            )
        return QuestionPlan(list(object_ids), {DESCRIBE_SLOT: object_ids[0]}, DESCRIBE_INSTRUCTION)
    return plan_question(object_ids, question, multiple_choice)


def _user_turn(plan: QuestionPlan, question: str | None) -> str:
    """The user turn an image prompt reads: the region list, crop runs and question (or the describe text)."""
    if question is None or not question.strip():
        return describe_region_text(DESCRIBE_SLOT)
    return region_question_text(sorted(plan.slot_objects), plan.prompt_question)


def regions_steps(
    image: Image.Image | str | Path,
    masks: Mapping[int, np.ndarray],
    question: str | None,
    model,
    *,
    prompt: PromptOptions = PromptOptions(),
    **options: Any,
) -> Steps[ImageAnswer]:
    """Ask ``model`` (a loaded GARModel) about ``masks`` (object id -> bool mask) in ``image``, as
    steps (see :mod:`garvid.qa.steps`). ``options`` are :func:`layout_steps`'s: decoding,
    streaming, and the checkpoint's small files (by default the model's)."""
    frame = load_image(image)
    size = frame.size
    for object_id, mask in masks.items():
        if mask.shape != (size[1], size[0]):
            raise RegionError(
                f"mask of object {object_id} is {mask.shape[1]}x{mask.shape[0]} but the image is {size[0]}x{size[1]}"
            )
    plan = _plan_prompt(sorted(masks), question, prompt.multiple_choice)
    slot_masks = {slot: np.asarray(masks[object_id], dtype=bool) for slot, object_id in plan.slot_objects.items()}
    layout = RegionLayout(_user_turn(plan, question), slot_masks, plan.slot_objects, plan.prompt_question)
    return (yield from layout_steps(frame, layout, model, question=question, prompt=prompt, **options))


@dataclass(frozen=True)
class RegionLayout:
    """How the regions reach GAR: the user turn, the mask map's regions and their replay boxes."""

    text: str  # the user turn: region list, crop runs, question
    masks: dict[int, np.ndarray]  # prompt slot -> the pixels painted with its id (the lowest slot wins on overlap)
    slot_objects: dict[int, int]  # prompt slot -> the user's object id
    prompt_question: str  # the question as GAR reads it
    boxes: dict[int, NormBox] | None = None  # replay box of each replayed slot; None: its own mask's box


def layout_steps(
    frame: Image.Image,
    layout: RegionLayout,
    model,
    *,
    question: str | None = None,
    files: GarFiles | None = None,
    generation: GenerationOptions = GenerationOptions(),
    prompt: PromptOptions = PromptOptions(),
    on_token: TokenCallback | None = None,
    names: Mapping[int, str] | None = None,
) -> Steps[ImageAnswer]:
    """Ask ``model`` about an RGB ``frame`` shown through ``layout`` (``question`` is only recorded),
    as steps (see :mod:`garvid.qa.steps`).

    Every slot whose crop tokens are in the text is replayed, from ``layout.boxes`` when given.
    ``files`` (tokenizer, tile limits, chat template) default to the model's checkpoint's.
    ``names`` (object id -> name) say what the answer calls each object (``object N`` by default).
    """
    started = time.perf_counter()
    checkpoint_dir = Path(model.checkpoint_dir)
    files = files or GarFiles.read(str(checkpoint_dir))
    names = names or object_names(layout.slot_objects.values())
    tokenizer, image_config = files.tokenizer, files.image_config
    inputs = preprocess_image(frame, layout.masks, image_config, mask_resample=prompt.mask_resample)
    if layout.boxes is not None:
        inputs = replace(inputs, region_boxes=dict(layout.boxes))
    tokens = tokenize_prompt(
        tokenizer, files.chat_template, layout.text, image_config.tokens_per_tile * inputs.num_tiles, double_bos=prompt.double_bos
    )
    preprocessed = time.perf_counter()
    generated = yield PromptJob(
        model=model,
        tokenizer=tokenizer,
        input_ids=tokens.input_ids,
        frames=[inputs],
        replayed_slots=[sorted(tokens.crop_spans)],
        scaling=prompt.replay_scaling,
        generation=generation,
        on_token=on_token,
        region_names={slot: names[o] for slot, o in layout.slot_objects.items()},
    )
    regions = [
        RegionSummary(id=layout.slot_objects[slot], slot=slot, bbox=mask_bbox(mask), area=int(np.count_nonzero(mask)))
        for slot, mask in sorted(layout.masks.items())
    ]
    return ImageAnswer(
        answer=generated.text,
        raw_answer=generated.texts.raw_text,
        reference_answer=generated.texts.reference_text,
        answer_token_ids=generated.token_ids,
        question=question,
        prompt_question=layout.prompt_question,
        regions=regions,
        model={
            "name": str(model.name),
            "path": str(checkpoint_dir),
            "dtype": str(model.dtype).removeprefix("torch."),
            "device": str(model.device),
        },
        timings={
            "preprocess": preprocessed - started,
            "encode": generated.encode_seconds,
            "generate": generated.generate_seconds,
            "total": preprocessed - started + generated.encode_seconds + generated.generate_seconds,
        },
    )


@dataclass(frozen=True)
class ImageRequest:
    """Everything ``garvid image`` needs, as files and names: the CLI's options one to one."""

    image: Path
    regions: RegionInput = field(default_factory=RegionInput)  # boxes, points and objects become masks (detector, SAM2)
    question: str | None = None
    model: ModelOptions = field(default_factory=ModelOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)  # its tracker segments boxes and points
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    prompt: PromptOptions = field(default_factory=PromptOptions)

    def input_paths(self) -> tuple[Path | str | None, ...]:
        """What the request reads from disk (a model that is not a path is a preset or hub id)."""
        return (self.image, *self.regions.mask_files, self.model.name, self.tracking.tracker, self.regions.detector)


def answer_image(request: ImageRequest, context: AnswerContext | None = None) -> ImageAnswer:
    """Answer ``request`` end to end, its prompt alone: :func:`image_steps` driven."""
    return drive(image_steps(request, context))


def image_steps(request: ImageRequest, context: AnswerContext | None = None) -> Steps[ImageAnswer]:
    """Answer ``request`` as steps (see :mod:`garvid.qa.steps`): the one answering entry for images.

    Everything that can go wrong with the user's input (the image, masks, prompts and the
    question) fails before GAR loads; the context's model is used, else the request's is
    loaded into it. Answers stream to the context's reporter.
    """
    from garvid.devices import check_attention

    context = context if context is not None else AnswerContext()
    check_attention(request.model.attn, request.model.device)
    frame = load_image(request.image)
    masks, names = _request_masks(request, frame, context.reporter)  # the question is checked against them there
    if context.warn_weights and (warning := random_weights_warning(request.model.name)):
        context.reporter.warn(warning)
    if context.model is None:
        from garvid.gar.loading import load_gar

        wanted = request.model
        context.model = load_gar(wanted.name, dtype=wanted.dtype, device=wanted.device, attn_implementation=wanted.attn)
    files = context.files = context.files or GarFiles.read(str(context.model.checkpoint_dir))
    return (
        yield from regions_steps(
            frame,
            masks,
            request.question,
            context.model,
            files=files,
            generation=request.generation,
            prompt=request.prompt,
            on_token=lambda _id, text: context.reporter.token(text),
            names=names,
        )
    )


def _request_masks(request: ImageRequest, frame: Image.Image, reporter: Reporter) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """The request's regions as masks on the image: its mask files, else every prompt segmented
    (detector for names, SAM2 for boxes and points), the question checked against the objects first;
    and what answers call each object."""
    from garvid.regions.prompts import load_masks

    regions = request.regions
    regions.check_one_frame("an image")
    if not (regions.boxes or regions.points or regions.objects):
        masks = load_masks(list(regions.masks), frame.size, resize=regions.resize_masks, target="the image (as displayed)")
        _plan_prompt(sorted(masks), request.question, request.prompt.multiple_choice)
        return masks, object_names(masks)
    from garvid.media.still import StillImage
    from garvid.tracking.segment import segment_prompt_frame

    regions = replace(regions, frame=0)
    tracker = request.tracking.tracker
    for name, kind in ((regions.detector if regions.objects else None, "detectors"), (tracker, "trackers")):
        if name and (warning := random_weights_warning(name, kind)):
            reporter.warn(warning)
    with StillImage(np.asarray(frame), str(request.image)) as still:
        prompts = regions.resolve(still.info)
        _plan_prompt(prompts.object_ids, request.question, request.prompt.multiple_choice)
        masks = segment_prompt_frame(still, regions, tracker=tracker, device=request.model.device).masks
    for object_id, mask in masks.items():
        if not mask.any():
            raise RegionError(f"object {object_id}'s mask on {request.image} is empty: prompt it differently")
    return masks, prompts.names
