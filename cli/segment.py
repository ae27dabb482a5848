"""``garvid segment``: every prompt resolved to a mask on the prompt frame, written as the
label PNG ``--mask`` reads, with a preview to check it; for a folder, ``clip.png`` beside
each clip (what ``garvid batch`` looks for)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from garvid_cli.app import app
from garvid_cli.console import stderr, warn
from garvid_cli.options import IMAGE_SUFFIXES, ITEMS, OUTPUT, REGION_OPTIONS, takes
from garvid_cli.track import DEVICE_OPTION, TRACKER_OPTIONS
from rich.table import Table
from rich.text import Text

from garvid.batch.tasks import VIDEO_SUFFIXES, list_videos
from garvid.errors import GarvidError
from garvid.files import check_outputs
from garvid.media.source import FrameSource
from garvid.options import ModelOptions, TrackingOptions
from garvid.presets import random_weights_warning
from garvid.regions.input import RegionInput
from garvid.regions.masks import mask_bbox

EXAMPLES = (
    "Examples:\n\n"
    '  garvid segment clip.mp4 --object "the red cup" --object ball -o clip.png --preview check.jpg\n\n'
    '  garvid segment photo.jpg --box 10,20,200,180 --object dog -o photo_mask.png\n\n'
    '  garvid segment clips/ -r --object "the dog" --preview previews/'
)

PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg")


def _open(path: Path, tracking: TrackingOptions) -> FrameSource:
    """A still image (by its suffix) as one frame; any other file is read as a video."""
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        from garvid.media.still import StillImage
        from garvid.qa.image_answering import load_image

        return StillImage(np.asarray(load_image(path)), str(path))
    from garvid.media.open import open_video_with

    return open_video_with(path, tracking)


def segment_one(path: Path, regions: RegionInput, output: Path, preview: Path | None, *, tracking: TrackingOptions, device: str) -> None:
    """Segment the prompt frame of one video or image and write the label PNG (and preview)."""
    from garvid.output.masks import label_map, write_label_png, write_preview
    from garvid.tracking.segment import segment_prompt_frame

    with _open(path, tracking) as video:
        segmentation = segment_prompt_frame(video, regions, tracker=tracking.tracker, device=device)
        frame = video.frames([segmentation.frame])[0]
        labels = label_map(segmentation.masks, (video.info.width, video.info.height))
    table = Table(title=f"{path.name}: frame {segmentation.frame}", title_justify="left")
    for column, justify in (("object", "right"), ("from", "left"), ("box", "left"), ("area", "right"), ("score", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for item in segmentation.objects:
        written = labels == item.id
        box = mask_bbox(written)
        source = f"{item.source} {item.phrase!r}" if item.phrase else item.source
        score = "-" if item.score is None else f"{item.score:.3f}"
        table.add_row(str(item.id), Text(source), "-" if box is None else ",".join(map(str, box)), str(int(written.sum())), score)
        if box is None:
            warn(f"object {item.id} has no pixel in {output.name} (an empty mask, or covered by a lower id): --mask would not see it")
    write_label_png(labels, output)
    if preview is not None:
        write_preview(frame, labels, preview)
    stderr.print(table)
    stderr.print(f"wrote {output}" + (f" and {preview}" if preview is not None else ""), highlight=False)


def _check_suffix(path: Path | None, suffixes: tuple[str, ...], what: str) -> None:
    if path is not None and path.suffix.lower() not in suffixes:
        raise GarvidError(f"{what} writes {' or '.join(s.lstrip('.').upper() for s in suffixes)}: {path} should end in {' or '.join(suffixes)}")


def _is_clip_folder(path: Path, recursive: bool) -> bool:
    return path.is_dir() and (recursive or any(p.suffix.lower() in VIDEO_SUFFIXES for p in path.iterdir() if p.is_file()))


@app.command(
    help=(
        "Resolve the prompts (masks, boxes, points, --object names) on the prompt frame and write the label PNG "
        f"that --mask reads, with a preview.\n\n{EXAMPLES}"
    )
)
@takes(REGION_OPTIONS, TRACKER_OPTIONS.without("stride"), DEVICE_OPTION)
def segment(
    input_path: Path = typer.Argument(..., metavar="VIDEO|IMAGE|FOLDER", help="Video, image, folder of frames, or folder of clips."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="The label PNG to write (one video or image).", rich_help_panel=OUTPUT
    ),
    preview: Optional[Path] = typer.Option(
        None,
        "--preview",
        help="Also write the frame with the masks drawn on (PNG/JPEG); for a folder of clips, a folder of previews.",
        rich_help_panel=OUTPUT,
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="A folder of clips, subfolders included.", rich_help_panel=ITEMS),
    masks_folder: bool = typer.Option(
        False, "--masks-folder", help="For a folder of clips: write masks/clip.png, not clip.png beside the clip.", rich_help_panel=OUTPUT
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="For a folder of clips: redo clips whose mask exists (kept by default).", rich_help_panel=OUTPUT
    ),
    *,
    regions: RegionInput,
    tracking: TrackingOptions,
    model: ModelOptions,
) -> None:
    tracker, device = tracking.tracker, model.device
    for name, kind in ((tracker, "trackers"), (regions.detector if regions.objects else None, "detectors")):
        if name and (warning := random_weights_warning(name, kind)):
            warn(warning)
    if _is_clip_folder(input_path, recursive):
        if output is not None:
            raise GarvidError("for a folder of clips the masks are written beside each clip: drop -o (--masks-folder puts them under masks/)")
        _segment_folder(input_path, regions, preview, recursive, masks_folder, overwrite, tracking=tracking, device=device)
        return
    if output is None:
        raise GarvidError("give the label PNG to write with -o mask.png")
    _check_suffix(output, (".png",), "-o")
    _check_suffix(preview, PREVIEW_SUFFIXES, "--preview")
    check_outputs({"-o": output, "--preview": preview}, _inputs(input_path, regions=regions, tracker=tracker))
    segment_one(input_path, regions, output, preview, tracking=tracking, device=device)


def _inputs(*clips: Path, regions: RegionInput, tracker: str) -> tuple:
    """What a segment run reads: the clips, the prompt masks, the tracker and detector."""
    return (*clips, *regions.mask_files, tracker, regions.detector)


def _folder_outputs(
    folder: Path, videos: list[Path], regions: RegionInput, previews: Path | None, masks_folder: bool, tracker: str
) -> list[tuple[str, Path, Path, Path | None]]:
    """Each clip's id, video, mask and preview, checked before any work as single files are: no
    output over an input or another output (a preview over a mask), and no preview where
    ``--mask`` pairing would take it for a clip's mask (``clip.png``, ``masks/clip.png``)."""
    items, outputs = [], {}
    for video in videos:
        clip_id = video.relative_to(folder).with_suffix("").as_posix()
        target = video.parent / "masks" / f"{video.stem}.png" if masks_folder else video.with_suffix(".png")
        preview = previews / f"{clip_id}.png" if previews is not None else None
        items.append((clip_id, video, target, preview))
        outputs[f"the mask of {clip_id},"] = target
        outputs[f"the preview of {clip_id},"] = preview
    check_outputs(outputs, _inputs(*videos, regions=regions, tracker=tracker))
    mask_places = {os.path.realpath(p): v for v in videos for p in (v.with_suffix(".png"), v.parent / "masks" / f"{v.stem}.png")}
    for clip_id, _, _, preview in items:
        if preview is not None and (video := mask_places.get(os.path.realpath(preview))):
            raise GarvidError(
                f"the preview of {clip_id}, {preview}, is where the mask of {video.name} is looked for: give --preview a folder outside {folder}"
            )
    return items


def _segment_folder(
    folder: Path, regions: RegionInput, previews: Path | None, recursive: bool, masks_folder: bool, overwrite: bool, **options
) -> None:
    failed = skipped = done = 0
    for clip_id, video, target, preview in _folder_outputs(folder, list_videos(folder, recursive), regions, previews, masks_folder, options["tracking"].tracker):
        if target.exists() and not overwrite:
            skipped += 1
            stderr.print(f"{clip_id}: {target} exists, kept (--overwrite redoes it)", highlight=False)
            continue
        try:
            segment_one(video, regions, target, preview, **options)
            done += 1
        except GarvidError as error:
            failed += 1
            warn(f"{clip_id}: {error}")
    stderr.print(f"segmented {done}, kept {skipped}, failed {failed}", highlight=False)
    if failed:
        raise typer.Exit(1)

