"""``garvid shots``: find a video's shot cuts and print or write the shots."""

from __future__ import annotations

from typing import Optional

import typer
from garvid_cli.app import app
from garvid_cli.console import progress_bar, stderr, warn
from garvid_cli.options import OUTPUT, TRACKING_OPTIONS, Output, VideoPath, takes

from garvid.errors import GarvidError
from garvid.files import check_outputs, write_text
from garvid.options import TrackingOptions
from garvid.shots.formats import SHOT_FORMATS, SUFFIX_FORMATS, render_shots
from garvid.tracking.shot_cache import request_shots

EXAMPLE = (
    "Examples:\n\n"
    "  garvid shots film.mp4\n\n"
    "  garvid shots film.mp4 -o shots.csv   (PySceneDetect's CSV scene list)\n\n"
    "  garvid shots film.mp4 --shots edits.csv --format json   (check a shot list against the video)"
)

#: The shot, cache and frame-folder options of the tracking group (the same flags as every command).
SHOT_OPTIONS = TRACKING_OPTIONS.only("shots", "cut_threshold", "min_shot", "fps", "cache_dir", "no_cache")


@app.command(help=f"Find the shot cuts of a video and list its shots (text, JSON or CSV).\n\n{EXAMPLE}")
@takes(SHOT_OPTIONS)
def shots(
    video: VideoPath,
    output_format: Optional[str] = typer.Option(
        None, "--format", "-f", help=f"{', '.join(SHOT_FORMATS)} (default: from the -o suffix, else text).", rich_help_panel=OUTPUT
    ),
    output: Output = None,
    *,
    tracking: TrackingOptions,
) -> None:
    chosen = output_format or (SUFFIX_FORMATS.get(output.suffix.lower(), "text") if output is not None else "text")
    if chosen not in SHOT_FORMATS:
        raise GarvidError(f"--format must be one of {', '.join(SHOT_FORMATS)}, not {chosen!r}")
    shots = tracking.shot_options
    check_outputs({"-o": output}, (video, shots.file))
    with progress_bar("finding cuts") as progress:
        info, found = request_shots(video, tracking, on_problem=warn, progress=progress)
    source = "detected" if shots.shots == "auto" else shots.shots
    write_text(render_shots(found, info, source, chosen), output)
    if output is not None:
        stderr.print(f"wrote {output} ({len(found)} shots)", highlight=False)

