"""``garvid track``: follow objects through a video with SAM2 and write what was tracked."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from garvid_cli.app import app
from garvid_cli.console import progress_bar, stderr, warn
from garvid_cli.options import (
    DEFAULT_TRACKER,
    OUTPUT,
    TRACKING,
    Boxes,
    Detector,
    Device,
    Fps,
    MaskFrame,
    Masks,
    Objects,
    ObjectThreshold,
    Points,
    ResizeMasks,
    Stride,
    Tracker,
    region_input,
)

from garvid.errors import GarvidError
from garvid.files import check_outputs, write_json
from garvid.presets import random_weights_warning
from garvid.tracking.request import DEFAULT_KEYFRAMES, TrackRequest, track_video

EXAMPLE = (
    "Example:\n\n"
    "  garvid track samples/cups.mp4 --mask samples/cups_mask.png -o tracks.json --render overlay.mp4"
)


@app.command(help=f"Track objects through a video with SAM2 and write their masks as JSON.\n\n{EXAMPLE}")
def track(
    video: Path = typer.Argument(..., metavar="VIDEO", help="Video file (anything ffmpeg/decord reads) or folder of frames."),
    mask: Masks = [],
    box: Boxes = [],
    point: Points = [],
    object_name: Objects = [],
    detector: Detector = None,
    object_threshold: ObjectThreshold = None,
    mask_frame: MaskFrame = 0,
    resize_masks: ResizeMasks = False,
    tracker: Tracker = DEFAULT_TRACKER,
    stride: Stride = "auto",
    frames: int = typer.Option(
        DEFAULT_KEYFRAMES, "--frames", help="Keyframes that --stride auto plans for.", min=1, rich_help_panel=TRACKING
    ),
    device: Device = "auto",
    fps: Fps = None,
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write the JSON here instead of stdout.", rich_help_panel=OUTPUT
    ),
    render: Optional[Path] = typer.Option(
        None, "--render", help="Also write an MP4 with coloured, labelled mask overlays.", rich_help_panel=OUTPUT
    ),
) -> None:
    request = TrackRequest(
        video=video,
        regions=region_input(mask, box, point, object_name, detector, object_threshold, mask_frame, resize_masks),
        tracker=tracker,
        stride=stride,
        keyframes=frames,
        device=device,
        fps=fps,
    )
    if render is not None and render.suffix.lower() != ".mp4":
        raise GarvidError(f"--render writes an MP4 file: {render} should end in .mp4")
    check_outputs({"-o": output, "--render": render}, request.input_paths())
    for name, kind in ((tracker, "trackers"), (detector if object_name else None, "detectors")):
        if name and (warning := random_weights_warning(name, kind)):
            warn(warning)
    with progress_bar("tracking") as progress:
        tracks = track_video(request, progress=progress)
    if render is not None:
        from garvid.output.overlay import render_tracks

        with progress_bar("rendering") as progress:
            render_tracks(tracks, render, progress=progress)
    write_json(tracks.to_json(), output)
    if output is not None:
        stderr.print(f"wrote {output}", highlight=False)
