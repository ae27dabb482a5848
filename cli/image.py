"""``garvid image``: ask GAR about regions of one image."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from garvid_cli.console import stderr, warn
from garvid_cli.main import app

from garvid.gar.loading import has_meaningless_output
from garvid.image_qa import (
    GenerationOptions,
    ImageAnswer,
    ImageRequest,
    PromptOptions,
    ask_image,
    prepare_image,
)
from garvid.outputs import write_json, write_text

EXAMPLE = (
    "Examples:\n\n"
    "  garvid image frame.png --mask frame_mask.png \"what is object 2 doing to object 1?\"\n\n"
    "  garvid image frame.png --mask ball.png            # describe the one region in detail\n\n"
    "  garvid image frame.png -m a.png -m b.png \"is #1 left of #2?\" --format json -o answer.json"
)

class OutputFormat(str, Enum):
    text = "text"
    json = "json"


@app.command(help=f"Ask GAR about masked regions of an image (object N = mask value N).\n\n{EXAMPLE}")
def image(
    image_path: Path = typer.Argument(..., metavar="IMAGE", help="Image file (PNG, JPEG, ...).", show_default=False),
    question: Optional[str] = typer.Argument(
        None, help="Question naming objects as 'object 1', 'obj 2', '#3'. Omit to describe the single region."
    ),
    mask: list[Path] = typer.Option(
        ..., "--mask", "-m", help="Palette/grayscale label PNG (value N = object N), or repeat for one binary PNG per object."
    ),
    model: Optional[str] = typer.Option(None, "--model", help="Model preset (configs/models.toml) or checkpoint folder."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens", min=1, help="Stop after this many answer tokens."),
    sample: bool = typer.Option(False, "--sample", help="Sample instead of greedy decoding."),
    seed: int = typer.Option(0, "--seed", help="Random seed for --sample."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0, help="Sampling temperature (with --sample)."),
    top_p: float = typer.Option(0.9, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass (with --sample)."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", help="text: the answer; json: answer and details."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here (atomically) instead of stdout."),
    resize_masks: bool = typer.Option(False, "--resize-masks", help="Resize masks to the image size (nearest)."),
    mask_resample: str = typer.Option(
        "nearest", "--mask-resample", help="Tile the mask map with nearest (exact ids) or bicubic (as in training)."
    ),
    replay_scaling: str = typer.Option(
        "reference", "--replay-scaling", help="reference (the released weights' double box scaling) or single."
    ),
) -> None:
    request = ImageRequest(
        image=image_path,
        masks=tuple(mask),
        question=question,
        model=model,
        dtype=dtype,
        device=device,
        resize_masks=resize_masks,
        generation=GenerationOptions(
            max_new_tokens=max_new_tokens, sample=sample, temperature=temperature, top_p=top_p, seed=seed
        ),
        prompt=PromptOptions(mask_resample=mask_resample, replay_scaling=replay_scaling),
    )
    prepared = prepare_image(request)  # bad input fails here, before the model loads
    if model and has_meaningless_output(model):
        warn(f"{model} has random weights: its text is meaningless (for tests and smoke checks)")
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
