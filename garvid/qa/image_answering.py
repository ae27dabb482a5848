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
from garvid.gar.processor import ImageConfig, NormBox, preprocess_image, to_rgb
from garvid.gar.prompt import (
    DESCRIBE_INSTRUCTION,
    DESCRIBE_SLOT,
    describe_region_text,
    plan_question,
    region_question_text,
    tokenize_prompt,
)
from garvid.gar.tokenizer import load_chat_template, load_tokenizer
from garvid.options import DEFAULT_ATTENTION, GenerationOptions, PromptOptions
from garvid.presets import default_preset
from garvid.qa.generation import PromptJob, Steps, drive
from garvid.regions.input import RegionInput
from garvid.regions.masks import mask_bbox


@dataclass(frozen=True)
class RegionSummary:
    id: int  # the user's object id (mask value / mask order)
    slot: int  # GAR prompt slot: <Prompt{slot}>
    bbox: tuple[int, int, int, int]  # inclusive pixels x1, y1, x2, y2
    area: int


@dataclass
class ImageAnswer:
    answer: str
    answer_token_ids: list[int]
    question: str | None
    prompt_question: str
    regions: list[RegionSummary]
    model: dict[str, str]  # name, path, dtype, device
    timings: dict[str, float] = field(default_factory=dict)  # seconds: preprocess, encode, generate, total

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
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


@dataclass(frozen=True)
class _PromptPlan:
    slot_objects: dict[int, int]  # GAR prompt slot -> the user's object id
    text: str  # the user turn: region list, crop runs, question
    prompt_question: str  # the question as GAR reads it (<PromptK> for objects)


def _plan_prompt(object_ids: list[int], question: str | None, multiple_choice: bool) -> _PromptPlan:
    """Which slots hold which objects, and the prompt text, for the objects and question."""
    if not object_ids:
        raise RegionError("no regions given: pass --mask, --box, --point or --object")
    if question is None or not question.strip():
        if len(object_ids) != 1:
            raise RegionError(
                f"{len(object_ids)} objects given but no question: ask about them "
                "(e.g. \"what is object 1 doing?\") or give one object to describe"
            )
        return _PromptPlan({DESCRIBE_SLOT: object_ids[0]}, describe_region_text(DESCRIBE_SLOT), DESCRIBE_INSTRUCTION)
    plan = plan_question(object_ids, question, multiple_choice)
    return _PromptPlan(plan.slot_objects, region_question_text(sorted(plan.slot_objects), plan.question), plan.question)


def answer_image(
    image: Image.Image | str | Path, masks: Mapping[int, np.ndarray], question: str | None, model, **options: Any
) -> ImageAnswer:
    """Ask ``model`` (a loaded GARModel) about ``masks`` (object id -> bool mask) in ``image``:
    :func:`image_steps` run alone."""
    return drive(image_steps(image, masks, question, model, **options))


def image_steps(
    image: Image.Image | str | Path,
    masks: Mapping[int, np.ndarray],
    question: str | None,
    model,
    *,
    prompt: PromptOptions = PromptOptions(),
    **options: Any,
) -> Steps[ImageAnswer]:
    """Ask ``model`` about ``masks`` (object id -> bool mask) in ``image``, as steps (see
    :mod:`garvid.qa.generation`). ``options`` are :func:`layout_steps`'s: decoding, streaming, and
    the tokenizer, tile limits and chat template (by default the model's checkpoint's)."""
    frame = load_image(image)
    size = frame.size
    for object_id, mask in masks.items():
        if mask.shape != (size[1], size[0]):
            raise RegionError(
                f"mask of object {object_id} is {mask.shape[1]}x{mask.shape[0]} but the image is {size[0]}x{size[1]}"
            )
    plan = _plan_prompt(sorted(masks), question, prompt.multiple_choice)
    slot_masks = {slot: np.asarray(masks[object_id], dtype=bool) for slot, object_id in plan.slot_objects.items()}
    layout = RegionLayout(plan.text, slot_masks, plan.slot_objects, plan.prompt_question)
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
    tokenizer=None,
    image_config: ImageConfig | None = None,
    chat_template: str | None = None,
    generation: GenerationOptions = GenerationOptions(),
    prompt: PromptOptions = PromptOptions(),
    on_token: TokenCallback | None = None,
) -> Steps[ImageAnswer]:
    """Ask ``model`` about an RGB ``frame`` shown through ``layout`` (``question`` is only recorded),
    as steps (see :mod:`garvid.qa.generation`).

    Every slot whose crop tokens are in the text is replayed, from ``layout.boxes`` when given.
    Tokenizer, tile limits and chat template default to the model's checkpoint files.
    """
    started = time.perf_counter()
    checkpoint_dir = Path(model.checkpoint_dir)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(checkpoint_dir)
    image_config = image_config or ImageConfig.from_checkpoint(checkpoint_dir)
    chat_template = chat_template or load_chat_template(checkpoint_dir, tokenizer)
    inputs = preprocess_image(frame, layout.masks, image_config, mask_resample=prompt.mask_resample)
    if layout.boxes is not None:
        inputs = replace(inputs, region_boxes=dict(layout.boxes))
    tokens = tokenize_prompt(
        tokenizer, chat_template, layout.text, image_config.tokens_per_tile * inputs.num_tiles, double_bos=prompt.double_bos
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
    )
    regions = [
        RegionSummary(id=layout.slot_objects[slot], slot=slot, bbox=mask_bbox(mask), area=int(np.count_nonzero(mask)))
        for slot, mask in sorted(layout.masks.items())
    ]
    return ImageAnswer(
        answer=generated.text,
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
    masks: tuple[Path, ...]
    question: str | None = None
    prompts: RegionInput = RegionInput()  # boxes, points and objects: masks on the image (detector, SAM2)
    tracker: str | None = None  # SAM2 preset for boxes, points and box detectors; None = the default
    model: str | None = None  # preset name or checkpoint folder; None = configs/models.toml's default
    dtype: str = "auto"
    device: str = "auto"
    resize_masks: bool = False
    attn: str = DEFAULT_ATTENTION  # the language model's attention kernel
    generation: GenerationOptions = GenerationOptions()
    prompt: PromptOptions = PromptOptions()

    def input_paths(self) -> tuple[Path | str | None, ...]:
        """What the request reads from disk (a model that is not a path is a preset or hub id)."""
        return (self.image, *self.masks, self.model, self.tracker, self.prompts.detector)


@dataclass
class PreparedImage:
    """A request whose image and masks were read and checked against the question."""

    request: ImageRequest
    frame: Image.Image
    masks: dict[int, np.ndarray]


def prepare_image(request: ImageRequest) -> PreparedImage:
    """Read the image and masks and check the question names only defined objects.

    Everything that can go wrong with the user's input fails here, before the slow model load.
    """
    from garvid.devices import check_attention
    from garvid.regions.prompts import load_masks

    check_attention(request.attn, request.device)
    frame = load_image(request.image)
    if not (request.prompts.boxes or request.prompts.points or request.prompts.objects):
        masks = load_masks(list(request.masks), frame.size, resize=request.resize_masks, target="the image (as displayed)")
        _plan_prompt(sorted(masks), request.question, request.prompt.multiple_choice)
        return PreparedImage(request=request, frame=frame, masks=masks)
    return PreparedImage(request=request, frame=frame, masks=_segment(request, frame))


def _segment(request: ImageRequest, frame: Image.Image) -> dict[int, np.ndarray]:
    """Every prompt as a mask on the image; the question is checked against the objects first."""
    from garvid.media.still import StillImage
    from garvid.tracking.segment import segment_prompt_frame

    regions = replace(request.prompts, masks=request.masks, resize_masks=request.resize_masks, frame=0)
    with StillImage(np.asarray(frame), str(request.image)) as still:
        _plan_prompt(regions.resolve(still.info).object_ids, request.question, request.prompt.multiple_choice)
        tracker = request.tracker or default_preset("trackers")
        masks = segment_prompt_frame(still, regions, tracker=tracker, device=request.device).masks
    for object_id, mask in masks.items():
        if not mask.any():
            raise RegionError(f"object {object_id}'s mask on {request.image} is empty: prompt it differently")
    return masks


def ask_image(request: ImageRequest | PreparedImage, *, on_token: TokenCallback | None = None) -> ImageAnswer:
    """Load GAR (preset or checkpoint folder) and answer a (prepared) request."""
    from garvid.gar.loading import load_gar

    prepared = request if isinstance(request, PreparedImage) else prepare_image(request)
    options = prepared.request
    model = load_gar(
        options.model or default_preset("models"), dtype=options.dtype, device=options.device, attn_implementation=options.attn
    )
    return answer_image(
        prepared.frame,
        prepared.masks,
        options.question,
        model,
        generation=options.generation,
        prompt=options.prompt,
        on_token=on_token,
    )
