"""``garvid ask`` and ``garvid describe``: GAR on tracked objects over time."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from garvid_cli.app import app
from garvid_cli.console import BarsReporter, stderr
from garvid_cli.options import (
    DEFAULT_GENERATION,
    DEFAULT_TRACKER,
    Attn,
    Boxes,
    CacheDir,
    Detector,
    Device,
    Dtype,
    End,
    Format,
    Fps,
    Frames,
    Keyframes,
    MaskFrame,
    MaskResample,
    Masks,
    MaxNewTokens,
    Model,
    MultipleChoice,
    NoCache,
    Objects,
    ObjectThreshold,
    Output,
    Points,
    Protocol,
    ReplayScaling,
    ResizeMasks,
    Sample,
    Seed,
    Start,
    Stride,
    Temperature,
    TopP,
    Tracker,
    TracksFile,
    WindowSeconds,
    borrow_parameters,
    generation_options,
    region_input,
)

from garvid.errors import GarvidError
from garvid.files import check_outputs, write_text
from garvid.options import DEFAULT_ATTENTION, PromptOptions
from garvid.output.formats import FORMATS, SUFFIX_FORMATS, answer_prefix, render_answer
from garvid.qa.keyframes import STRATEGIES, Window
from garvid.qa.request import VideoRequest
from garvid.regions.input import RegionInput

if TYPE_CHECKING:
    from garvid.qa.answers import Answer

EXAMPLES = (
    "Examples:\n\n"
    '  garvid ask clip.mp4 --mask first_frame.png "what does object 1 do to object 2?"\n\n'
    '  garvid ask clip.mp4 -m first_frame.png "where does #2 go?" --window 2.5 -o answers.srt\n\n'
    "  garvid describe clip.mp4 -m first_frame.png --window 5 --format vtt > captions.vtt"
)


class _ShellReporter(BarsReporter):
    """Progress bars and warnings on stderr; streams answers to stdout when asked to."""

    def __init__(self, stream: bool, windowed: bool):
        super().__init__()
        self.stream, self.windowed = stream, windowed

    def progress(self, stage: str, done: int, total: int) -> None:
        if not (self.stream and stage == "answering"):  # the streamed text is the progress
            super().progress(stage, done, total)

    def answer_begins(self, window: Window, object_id: int | None) -> None:
        if self.stream:
            self._write(answer_prefix(window.start, window.end, object_id, self.windowed))

    def token(self, text: str) -> None:
        if self.stream:
            self._write(text)

    def answer_ends(self, answer: Answer) -> None:
        if self.stream:
            self._write("\n")

    @staticmethod
    def _write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


def _output_format(fmt: str | None, output: Path | None) -> str:
    if fmt is None:
        return SUFFIX_FORMATS.get(output.suffix.lower(), "text") if output is not None else "text"
    if fmt not in FORMATS:
        raise GarvidError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def _run(request: VideoRequest, fmt: str | None, output: Path | None) -> None:
    chosen = _output_format(fmt, output)
    if request.strategy not in STRATEGIES:
        raise GarvidError(f"--keyframes must be {' or '.join(STRATEGIES)}, not {request.strategy!r}")
    check_outputs({"-o": output}, request.input_paths())
    stream = chosen == "text" and output is None
    from garvid.qa.video_answering import answer_video  # torch and transformers load here, not for --help

    result = answer_video(request, _ShellReporter(stream, request.window is not None))
    if not stream:
        write_text(render_answer(result, chosen), output)
    if output is not None:
        stderr.print(f"wrote {output}", highlight=False)


@app.command(help=f"Ask GAR a question about tracked objects over time (object N = mask value N).\n\n{EXAMPLES}")
def ask(
    video: Path = typer.Argument(..., metavar="VIDEO", help="Video file (anything ffmpeg/decord reads) or folder of frames."),
    question: Optional[str] = typer.Argument(..., help="Question naming objects as 'object 1', 'obj 2', '#3'."),
    mask: Masks = [],
    box: Boxes = [],
    point: Points = [],
    object_name: Objects = [],
    detector: Detector = None,
    object_threshold: ObjectThreshold = None,
    mask_frame: MaskFrame = 0,
    resize_masks: ResizeMasks = False,
    frames: Frames = None,
    keyframes: Keyframes = "uniform",
    start: Start = None,
    end: End = None,
    window: WindowSeconds = None,
    protocol: Protocol = None,
    model: Model = None,
    tracker: Tracker = DEFAULT_TRACKER,
    stride: Stride = "auto",
    device: Device = "auto",
    fps: Fps = None,
    dtype: Dtype = "auto",
    attn: Attn = DEFAULT_ATTENTION,
    max_new_tokens: MaxNewTokens = DEFAULT_GENERATION.max_new_tokens,
    sample: Sample = False,
    seed: Seed = DEFAULT_GENERATION.seed,
    temperature: Temperature = DEFAULT_GENERATION.temperature,
    top_p: TopP = DEFAULT_GENERATION.top_p,
    multiple_choice: MultipleChoice = False,
    mask_resample: MaskResample = "nearest",
    replay_scaling: ReplayScaling = "reference",
    output_format: Format = None,
    output: Output = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    tracks: TracksFile = None,
) -> None:
    regions = region_input(mask, box, point, object_name, detector, object_threshold, mask_frame, resize_masks)
    request = video_request(
        video,
        regions,
        question,
        frames=frames,
        keyframes=keyframes,
        start=start,
        end=end,
        window=window,
        protocol=protocol,
        model=model,
        tracker=tracker,
        stride=stride,
        device=device,
        fps=fps,
        dtype=dtype,
        attn=attn,
        max_new_tokens=max_new_tokens,
        sample=sample,
        seed=seed,
        temperature=temperature,
        top_p=top_p,
        multiple_choice=multiple_choice,
        mask_resample=mask_resample,
        replay_scaling=replay_scaling,
        cache_dir=cache_dir,
        no_cache=no_cache,
        tracks=tracks,
    )
    _run(request, output_format, output)


def video_request(
    video: Path,
    regions: RegionInput,
    question: str | None,
    *,
    frames: int | None,
    keyframes: str,
    start: float | None,
    end: float | None,
    window: float | None,
    protocol: str | None,
    model: str | None,
    tracker: str,
    stride: str,
    device: str,
    fps: float | None,
    dtype: str,
    attn: str,
    max_new_tokens: int,
    sample: bool,
    seed: int,
    temperature: float,
    top_p: float,
    multiple_choice: bool,
    mask_resample: str,
    replay_scaling: str,
    cache_dir: Path | None,
    no_cache: bool,
    tracks: Path | None = None,
) -> VideoRequest:
    """The library request for ``ask``'s options (``describe`` and ``batch`` share them)."""
    return VideoRequest(
        video=video,
        regions=regions,
        question=question,
        frames=frames,
        strategy=keyframes,
        start=start,
        end=end,
        window=window,
        protocol=protocol,
        model=model,
        tracker=tracker,
        stride=stride,
        device=device,
        fps=fps,
        dtype=dtype,
        attn=attn,
        generation=generation_options(max_new_tokens, sample, temperature, top_p, seed),
        prompt=PromptOptions(mask_resample=mask_resample, replay_scaling=replay_scaling, multiple_choice=multiple_choice),
        cache_dir=cache_dir,
        use_cache=not no_cache,
        tracks=tracks,
    )


def describe(**options) -> None:
    ask(question=None, multiple_choice=False, **options)


# `describe` takes ask's options except the question: one parameter list, declared once.
borrow_parameters(describe, ask, exclude=("question", "multiple_choice"))
app.command(
    help=(
        "Describe what each tracked object does, per window: GAR's detailed description, in temporal form.\n\n"
        f"{EXAMPLES}"
    )
)(describe)
