"""``garvid image``: ask GAR about regions of one image."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from garvid_cli.app import app
from garvid_cli.console import stderr
from garvid_cli.options import (
    GENERATION_OPTIONS,
    MODEL_OPTIONS,
    OUTPUT,
    PROMPT_OPTIONS,
    REGION_OPTIONS,
    TRACKING_OPTIONS,
    Output,
    takes,
)

from garvid.batch.tasks import VIDEO_SUFFIXES
from garvid.errors import GarvidError
from garvid.files import check_outputs, write_json, write_text
from garvid.options import GenerationOptions, ModelOptions, PromptOptions, TrackingOptions
from garvid.qa.reporting import Reporter
from garvid.regions.input import RegionInput

if TYPE_CHECKING:
    from garvid.qa.image_answering import ImageAnswer

EXAMPLE = (
    "Examples:\n\n"
    "  garvid image frame.png --mask frame_mask.png \"what is object 2 doing to object 1?\"\n\n"
    "  garvid image frame.png --mask ball.png            # describe the one region in detail\n\n"
    "  garvid image frame.png -m a.png -m b.png \"is #1 left of #2?\" --format json -o answer.json\n\n"
    "  garvid image frame.png --object \"the dog\" --object ball \"is object 1 chasing object 2?\""
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


@app.command(help=f"Ask GAR about regions of an image (object N = mask value N, or the N-th prompt).\n\n{EXAMPLE}")
@takes(
    REGION_OPTIONS.without("mask_frame", "redetect"),
    TRACKING_OPTIONS.only("tracker"),
    MODEL_OPTIONS,
    GENERATION_OPTIONS,
    PROMPT_OPTIONS.without("multiple_choice"),
)
def image(
    image_path: Path = typer.Argument(..., metavar="IMAGE", help="Image file (PNG, JPEG, ...).", show_default=False),
    question: Optional[str] = typer.Argument(
        None, help="Question naming objects as 'object 1', 'obj 2', '#3'. Omit to describe the single region."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.text, "--format", help="text: the answer; json: answer and details.", rich_help_panel=OUTPUT
    ),
    output: Output = None,
    *,
    regions: RegionInput,
    tracking: TrackingOptions,
    model: ModelOptions,
    generation: GenerationOptions,
    prompt: PromptOptions,
) -> None:
    from garvid.qa.context import AnswerContext
    from garvid.qa.image_answering import ImageRequest, answer_image  # torch loads here, not for --help

    if image_path.is_file() and image_path.suffix.lower() in VIDEO_SUFFIXES:
        raise GarvidError(f"{image_path} is a video, not a still image: ask about it with `garvid ask` (or describe, chat)")
    request = ImageRequest(image_path, regions, question, model, tracking, generation, prompt)
    check_outputs({"-o": output}, request.input_paths())
    stream = output_format is OutputFormat.text and output is None
    answer = answer_image(request, AnswerContext(_StreamingReporter() if stream else Reporter()))
    _render(answer, output_format, output, streamed=stream)


class _StreamingReporter(Reporter):
    """The answer's text on stdout as it is generated."""

    def token(self, text: str) -> None:
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

