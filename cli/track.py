"""``garvid track``: follow objects through a video with SAM2 and write what was tracked."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from garvid_cli.app import app
from garvid_cli.console import progress_bar, stderr, warn
from garvid_cli.options import MODEL_OPTIONS, OUTPUT, REGION_OPTIONS, TRACKING, TRACKING_OPTIONS, VideoPath, takes

from garvid.errors import GarvidError
from garvid.files import check_outputs, write_json
from garvid.options import ModelOptions, TrackingOptions
from garvid.presets import random_weights_warning
from garvid.regions.input import RegionInput
from garvid.tracking.track_request import DEFAULT_KEYFRAMES, TrackRequest, track_video

EXAMPLE = (
    "Example:\n\n"
    "  garvid track samples/cups.mp4 --mask samples/cups_mask.png -o tracks.json --render overlay.mp4"
)


#: The tracking options ``segment`` takes (no cache: it segments one frame).
TRACKER_OPTIONS = TRACKING_OPTIONS.only("tracker", "stride", "fps", "decoder", "decode_device")
DEVICE_OPTION = MODEL_OPTIONS.only("device")


@app.command(
    help="Track objects through a video with SAM2 and write their masks as JSON. Each object's tracks are "
    f"kept in the tracking cache and reused, as by ask and describe; --render draws every frame.\n\n{EXAMPLE}"
)
@takes(REGION_OPTIONS, TRACKING_OPTIONS, DEVICE_OPTION)
def track(
    video: VideoPath,
    frames: int = typer.Option(
        DEFAULT_KEYFRAMES, "--frames", help="Keyframes that --stride auto plans for.", rich_help_panel=TRACKING
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write the JSON here instead of stdout.", rich_help_panel=OUTPUT
    ),
    render: Optional[Path] = typer.Option(
        None,
        "--render",
        help="Also write an MP4 of every frame with coloured, labelled mask overlays (masks of the nearest tracked frame).",
        rich_help_panel=OUTPUT,
    ),
    *,
    regions: RegionInput,
    tracking: TrackingOptions,
    model: ModelOptions,
) -> None:
    request = TrackRequest(video=video, regions=regions, tracking=tracking, keyframes=frames, device=model.device)
    if render is not None and render.suffix.lower() != ".mp4":
        raise GarvidError(f"--render writes an MP4 file: {render} should end in .mp4")
    check_outputs({"-o": output, "--render": render}, request.input_paths())
    for name, kind in ((tracking.tracker, "trackers"), (regions.detector if regions.objects else None, "detectors")):
        if name and (warning := random_weights_warning(name, kind)):
            warn(warning)
    with progress_bar("tracking") as progress:
        tracks = track_video(request, progress=progress)
    if render is not None:
        from garvid.output.overlay import render_tracks

        with progress_bar("rendering") as progress:
            render_tracks(tracks, render, progress=progress, decoder=tracking.decoder, decode_device=tracking.decode_device)
    write_json(tracks.to_json(), output)
    if output is not None:
        stderr.print(f"wrote {output}", highlight=False)
