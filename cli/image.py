"""``garvid image``: ask GAR about regions of one image."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from garvid_cli.app import app
from garvid_cli.console import stderr, warn
from garvid_cli.options import (
    DEFAULT_GENERATION,
    OUTPUT,
    Attn,
    Device,
    Dtype,
    MaskResample,
    Masks,
    MaxNewTokens,
    Model,
    Output,
    ReplayScaling,
    ResizeMasks,
    Sample,
    Seed,
    Temperature,
    TopP,
    borrow_parameters,
    generation_options,
    region_input,
)

from garvid.files import check_outputs, write_json, write_text
from garvid.options import DEFAULT_ATTENTION, PromptOptions
from garvid.presets import random_weights_warning

if TYPE_CHECKING:
    from garvid.qa.image_answering import ImageAnswer

EXAMPLE = (
    "Examples:\n\n"
    "  garvid image frame.png --mask frame_mask.png \"what is object 2 doing to object 1?\"\n\n"
    "  garvid image frame.png --mask ball.png            # describe the one region in detail\n\n"
    "  garvid image frame.png -m a.png -m b.png \"is #1 left of #2?\" --format json -o answer.json\n\n"
    "  garvid image frame.png --object \"the dog\" --object ball \"is object 1 chasing object 2?\""
)

#: The prompt options ``image`` shares with ``track`` (declared once, in track).
IMAGE_PROMPT_OPTIONS = ("box", "point", "object_name", "detector", "object_threshold", "tracker")


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def image(
    image_path: Path = typer.Argument(..., metavar="IMAGE", help="Image file (PNG, JPEG, ...).", show_default=False),
    question: Optional[str] = typer.Argument(
        None, help="Question naming objects as 'object 1', 'obj 2', '#3'. Omit to describe the single region."
    ),
    mask: Masks = [],
    model: Model = None,
    dtype: Dtype = "auto",
    device: Device = "auto",
    attn: Attn = DEFAULT_ATTENTION,
    max_new_tokens: MaxNewTokens = DEFAULT_GENERATION.max_new_tokens,
    sample: Sample = False,
    seed: Seed = DEFAULT_GENERATION.seed,
    temperature: Temperature = DEFAULT_GENERATION.temperature,
    top_p: TopP = DEFAULT_GENERATION.top_p,
    output_format: OutputFormat = typer.Option(
        OutputFormat.text, "--format", help="text: the answer; json: answer and details.", rich_help_panel=OUTPUT
    ),
    output: Output = None,
    resize_masks: ResizeMasks = False,
    mask_resample: MaskResample = "nearest",
    replay_scaling: ReplayScaling = "reference",
    **prompt_options,  # --box, --point, --object, --detector, --object-threshold, --tracker: track's
) -> None:
    from garvid.qa.image_answering import ImageRequest, ask_image, prepare_image  # torch loads here, not for --help

    box, point, object_name, tracker = (prompt_options[name] for name in ("box", "point", "object_name", "tracker"))
    detector, object_threshold = prompt_options["detector"], prompt_options["object_threshold"]

    request = ImageRequest(
        image=image_path,
        masks=tuple(mask),
        question=question,
        prompts=region_input([], box, point, object_name, detector, object_threshold, 0, False),
        tracker=tracker,
        model=model,
        dtype=dtype,
        device=device,
        attn=attn,
        resize_masks=resize_masks,
        generation=generation_options(max_new_tokens, sample, temperature, top_p, seed),
        prompt=PromptOptions(mask_resample=mask_resample, replay_scaling=replay_scaling),
    )
    check_outputs({"-o": output}, request.input_paths())
    for name, kind in ((detector if object_name else None, "detectors"), (tracker if box or point or object_name else None, "trackers")):
        if name and (warning := random_weights_warning(name, kind)):
            warn(warning)
    prepared = prepare_image(request)  # bad input fails here, before GAR loads (objects are found here)
    if model and (warning := random_weights_warning(model)):
        warn(warning)
    stream = output_format is OutputFormat.text and output is None
    answer = ask_image(prepared, on_token=_print_delta if stream else None)
    _render(answer, output_format, output, streamed=stream)


def _print_delta(_token_id: int, text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def _render(answer: ImageAnswer, output_format: OutputFormat, output: Path | None, *, streamed: bool) -> None:
    if output_format is OutputFormat.json:
        write_json(answer.to_json(), output)
    elif streamed:
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        write_text(answer.answer + "\n", output)
    if output is not None:
        stderr.print(f"wrote {output}", highlight=False)


def _register() -> None:
    from garvid_cli.track import track

    borrow_parameters(image, track, include=IMAGE_PROMPT_OPTIONS)
    app.command(help=f"Ask GAR about regions of an image (object N = mask value N, or the N-th prompt).\n\n{EXAMPLE}")(image)


_register()
