"""``garvid when``: the time ranges where a statement about tracked objects holds."""

from __future__ import annotations

import typer
from garvid_cli.app import app
from garvid_cli.ask import chosen_format
from garvid_cli.console import BarsReporter, stderr
from garvid_cli.options import (
    REGION_OPTIONS,
    WHEN_ANSWER_OPTIONS,
    WHEN_OPTIONS,
    BatchSize,
    Format,
    Output,
    TracksFile,
    VideoPath,
    takes,
)

from garvid.files import check_outputs, write_text
from garvid.options import AnswerOptions, WhenOptions, parse_prompts_per_pass
from garvid.output.formats import render_when
from garvid.qa.video_request import VideoRequest
from garvid.regions.input import RegionInput

EXAMPLES = (
    "Each window is scored by GAR's probability of answering yes (no text is generated); where the score "
    "crosses --threshold, windows are halved down to --resolution.\n\n"
    "Examples:\n\n"
    '  garvid when clip.mp4 -m first_frame.png "object 1 picks up object 2"\n\n'
    '  garvid when clip.mp4 -m first_frame.png "is #1 on the sofa?" --window 4 --resolution 0.5 -o sofa.srt\n\n'
    '  garvid when clip.mp4 --tracks tracks.json "object 2 is in front of object 1" --format json | jq .intervals'
)


@app.command(help=f"Find when a statement about tracked objects holds: time ranges, not text.\n\n{EXAMPLES}")
@takes(REGION_OPTIONS, WHEN_ANSWER_OPTIONS, WHEN_OPTIONS)
def when(
    video: VideoPath,
    statement: str = typer.Argument(
        ..., metavar="STATEMENT", help="Statement or yes/no question naming objects as 'object 1', 'obj 2', '#3'."
    ),
    output_format: Format = None,
    output: Output = None,
    tracks: TracksFile = None,
    batch_size: BatchSize = "1",
    *,
    regions: RegionInput,
    options: AnswerOptions,
    when: WhenOptions,
) -> None:
    from garvid.qa.when_answering import check_statement

    check_statement(statement)
    chosen = chosen_format(output_format, output)
    per_pass = parse_prompts_per_pass(batch_size)
    request = VideoRequest(video, regions, statement, options, tracks, when=when)
    check_outputs({"-o": output}, request.input_paths())
    from garvid.qa.context import AnswerContext
    from garvid.qa.when_answering import answer_when  # torch loads here, not for --help

    result = answer_when(request, AnswerContext(BarsReporter()), prompts_per_pass=per_pass)
    write_text(render_when(result, chosen), output)
    if output is not None:
        stderr.print(f"wrote {output}", highlight=False)
