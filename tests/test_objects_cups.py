"""Objects by name end to end on the real cups clip with the tiny random detectors, SAM2
and GAR: numbering with mixed kinds, both detector families, the cache key, ``garvid
segment``'s PNG round trip through ``--mask``, its preview, and folders for batch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from garvid_cli.main import run
from PIL import Image

from garvid.batch.tasks import tasks_from_folder, tasks_from_manifest
from garvid.detection.checkpoints import resolve_detector
from garvid.detection.models import Detector
from garvid.detection.selection import select_instances
from garvid.media.video_file import Video
from garvid.output.overlay import object_colour
from garvid.regions.masks import decode_rle

SAM3 = ["--detector", "tiny-random-sam3", "--object-threshold", "0.1"]
TINY = ["--tracker", "tiny-random", "--device", "cpu"]
GAR = ["--model", "tiny-random", "--frames", "2", "--max-new-tokens", "4", "--format", "json"]


@pytest.fixture(scope="module")
def cups(media: Path) -> Path:
    return media / "cups.mp4"


@pytest.fixture(scope="module")
def cups_mask(media: Path) -> Path:
    """The palette mask of frame 0: 1 ball, 2 held cup, 3 middle cup, 4 right cup."""
    return media / "cups_first_frame.png"


def _frame0(cups: Path) -> np.ndarray:
    with Video(cups) as video:
        return video.frames([0])[0]


def _frame0_masks(track_json: Path) -> dict[int, np.ndarray]:
    data = json.loads(track_json.read_text())
    return {o["id"]: decode_rle(o["frames"][0]["mask"]) for o in data["objects"]}


@pytest.mark.slow
def test_track_numbers_masks_boxes_points_then_objects_and_keeps_sam3_masks(cups, cups_mask, tmp_path: Path, capsys) -> None:
    ball = tmp_path / "ball.png"
    Image.fromarray(((np.asarray(Image.open(cups_mask)) == 1) * 255).astype(np.uint8)).save(ball)
    out = tmp_path / "t.json"
    args = ["track", str(cups), "--object", "red cup", "--point", "900,500", "--box", "500,300,700,600", "--mask", str(ball)]
    assert run([*args, *SAM3, *TINY, "--stride", "299", "-o", str(out)]) == 0, capsys.readouterr().err
    masks = _frame0_masks(out)
    assert sorted(masks) == [1, 2, 3, 4]  # the mask, the box, the point, then the object by name
    assert (masks[1] == (np.asarray(Image.open(cups_mask)) == 1)).all()
    detector = Detector.load(resolve_detector("tiny-random-sam3"), torch.device("cpu"), ["red cup"])
    [instance] = select_instances(detector.candidates(_frame0(cups), "red cup"), "red cup", 1, 0.1, 0)
    assert instance.mask.any() and (masks[4] == instance.mask).all()  # SAM 3's mask is the object's prompt


@pytest.mark.slow
def test_ask_with_grounding_dino_objects_is_answered_and_cached_by_detector_settings(cups, tmp_path: Path, capsys) -> None:
    cache, out = tmp_path / "cache", tmp_path / "a.json"
    args = ["ask", str(cups), "what does object 2 do to object 1?", "--object", "cup", "--object", "cup"]
    base = [*args, "--detector", "tiny-random", *TINY, *GAR, "--stride", "150", "--cache-dir", str(cache), "-o", str(out)]
    assert run(base) == 0, capsys.readouterr().err
    first = json.loads(out.read_text())
    assert [o["id"] for o in first["objects"]] == [1, 2] and first["tracker"]["cached"] is False
    assert "its detections are meaningless" in capsys.readouterr().err
    assert run(base) == 0
    assert json.loads(out.read_text())["tracker"]["cached"] is True
    assert run([*base, "--object-threshold", "0.31"]) == 0  # another threshold: other detections, tracked again
    assert json.loads(out.read_text())["tracker"]["cached"] is False


@pytest.mark.slow
def test_describe_with_a_sam3_object_and_a_box(cups, tmp_path: Path, capsys) -> None:
    out = tmp_path / "d.json"
    args = ["describe", str(cups), "--box", "500,300,700,600", "--object", "red cup", *SAM3, *TINY, *GAR]
    assert run([*args, "--stride", "150", "--no-cache", "-o", str(out)]) == 0, capsys.readouterr().err
    [window] = json.loads(out.read_text())["descriptions"]
    assert [o["id"] for o in window["objects"]] == [1, 2]


@pytest.mark.slow
def test_segment_png_round_trips_through_mask_and_the_preview_paints_each_mask(cups, cups_mask, tmp_path: Path, capsys) -> None:
    png, preview = tmp_path / "cups.png", tmp_path / "preview.png"
    args = ["segment", str(cups), "--mask", str(cups_mask), "--object", "red cup", *SAM3, *TINY]
    assert run([*args, "-o", str(png), "--preview", str(preview)]) == 0
    err = capsys.readouterr().err
    assert "object 'red cup'" in err and "mask" in err and f"wrote {png}" in err
    written = Image.open(png)
    assert written.mode == "P"
    labels = np.asarray(written)
    given = np.asarray(Image.open(cups_mask))
    assert ((labels == given) | (given == 0)).all()  # mask objects 1-4 keep their pixels (lower ids win)
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4, 5}
    tracked = tmp_path / "t.json"
    assert run(["track", str(cups), "--mask", str(png), *TINY, "--stride", "299", "-o", str(tracked)]) == 0
    masks = _frame0_masks(tracked)
    assert sorted(masks) == [1, 2, 3, 4, 5]
    assert all((masks[i] == (labels == i)).all() for i in masks)  # the same masks come back through --mask
    frame, drawn = _frame0(cups).astype(np.float64), np.asarray(Image.open(preview).convert("RGB")).astype(np.float64)
    for object_id in range(1, 6):
        inside = labels == object_id
        inner = inside & np.roll(inside, 3, 0) & np.roll(inside, -3, 0) & np.roll(inside, 3, 1) & np.roll(inside, -3, 1)
        blend = 0.5 * frame[inner] + 0.5 * np.asarray(object_colour(object_id))
        assert inner.sum() > 50 and np.abs(drawn[inner] - blend).mean() < 2.0, object_id
    background = labels == 0
    assert (drawn[background] == frame[background]).all(axis=1).mean() > 0.97  # the number tags aside


def _clips(folder: Path, cups: Path) -> None:
    folder.mkdir()
    for name in ("a", "b"):
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(cups), "-t", "0.5", "-an", "-vf", "scale=320:180", str(folder / f"{name}.mp4")],
            check=True,
        )


@pytest.mark.slow
def test_segment_a_folder_then_batch_finds_the_masks(cups, tmp_path: Path, capsys) -> None:
    clips = tmp_path / "clips"
    _clips(clips, cups)
    args = ["segment", str(clips), "--object", "cup", "--detector", "tiny-random", *TINY, "--preview", str(tmp_path / "previews")]
    assert run(args) == 0, capsys.readouterr().err
    assert (clips / "a.png").is_file() and (clips / "b.png").is_file() and (tmp_path / "previews" / "a.png").is_file()
    before = (clips / "a.png").read_bytes()
    assert run(args) == 0 and "exists, kept" in capsys.readouterr().err and (clips / "a.png").read_bytes() == before
    tasks, problems = tasks_from_folder(clips)
    assert [t.mask for t in tasks] == [clips / "a.png", clips / "b.png"] and not problems
    out = tmp_path / "answers"
    batch = ["batch", str(clips), "--describe", "--model", "tiny-random", *TINY, "--stride", "7", "--frames", "2"]
    assert run([*batch, "--max-new-tokens", "3", "-o", str(out)]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.glob("*.json")) == ["a.json", "b.json"]


@pytest.mark.slow
def test_image_objects_by_name(cups, tmp_path: Path, capsys) -> None:
    frame = tmp_path / "f.png"
    Image.fromarray(_frame0(cups)).resize((320, 180)).save(frame)
    args = ["image", str(frame), "--object", "cup", "--detector", "tiny-random", "--tracker", "tiny-random", "--model", "tiny-random"]
    assert run([*args, "--device", "cpu", "--max-new-tokens", "4", "--format", "json", "-o", str(tmp_path / "a.json")]) == 0
    regions = json.loads((tmp_path / "a.json").read_text())["regions"]
    assert [r["id"] for r in regions] == [1] and regions[0]["area"] > 0


def test_batch_objects_make_masks_optional_and_rows_give_their_own(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.mp4").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    tasks, problems = tasks_from_folder(tmp_path)
    assert [t.id for t in tasks] == ["a"] and [p.id for p in problems] == ["b", "c"]
    tasks, problems = tasks_from_folder(tmp_path, masks_optional=True)
    assert [(t.id, t.mask) for t in tasks] == [("a", tmp_path / "a.png"), ("b", None), ("c", None)] and not problems
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,objects\nb.mp4,the red cup; ball\nc.mp4,\n")
    tasks, problems = tasks_from_manifest(manifest)
    assert [(t.id, t.objects) for t in tasks] == [("b", ("the red cup", "ball"))] and [p.id for p in problems] == ["c"]
    lines = tmp_path / "m.jsonl"
    lines.write_text('{"video": "b.mp4", "objects": ["dog", "dog"]}\n{"video": "c.mp4", "objects": ["  "]}\n')
    tasks, problems = tasks_from_manifest(lines)
    assert [t.objects for t in tasks] == [("dog", "dog")] and "empty phrase" in problems[0].reason


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "mask.jpg"], "should end in .png"),
        ([], "give the label PNG to write with -o"),
        (["-o", "m.png", "--preview", "p.gif"], "should end in .png or .jpg or .jpeg"),
        (["-o", "m.png", "--preview", "p.png", "--object-threshold", "0.99"], "no instance of 'cup' on frame 0"),
        (["-o", "m.png", "--preview", "m.png"], "are the same file"),
    ],
)
def test_segment_errors_are_one_line_and_leave_no_file(tmp_path: Path, capsys, monkeypatch, extra, message) -> None:
    monkeypatch.chdir(tmp_path)
    sample = Path(__file__).resolve().parents[1] / "samples" / "cups.mp4"
    code = run(["segment", str(sample), "--object", "cup", "--detector", "tiny-random-sam3", *TINY, *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("previews", "extra", "message"),
    [
        ("clips", ["-r"], "the preview of sub/c, and the mask of sub/c, are the same file"),
        ("clips", ["-r", "--masks-folder"], "is where the mask of c.mp4 is looked for"),
    ],
)
def test_segment_a_folder_refuses_previews_over_masks_before_any_work(tmp_path: Path, capsys, previews, extra, message) -> None:
    """`segment clips/ -r --preview clips/` wrote each clip's RGB preview over its mask; now refused
    up front, in one line, every file left as it was."""
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    (clips / "sub" / "c.mp4").write_bytes(b"not read: refused before any clip opens")
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    args = ["segment", str(clips), *extra, "--object", "dog", "--detector", "tiny-random", *TINY, "--preview", str(tmp_path / previews)]
    assert run(args) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the random-weights warning
    assert err.startswith("garvid: error: ") and message in err
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before


def test_segment_warns_for_every_object_missing_from_the_png(cups: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """One rule: an object with no pixel in the written PNG is named, whether its mask was
    empty (a phrase resolved to nothing) or a lower id covers it."""
    import garvid.tracking.segment as segment
    from garvid.tracking.segment import SegmentedObject, Segmentation

    def segmented(video, regions, *, tracker, device="auto") -> Segmentation:
        whole = np.ones((video.info.height, video.info.width), bool)
        inside = np.zeros_like(whole)
        inside[100:120, 100:140] = True
        return Segmentation(0, [
            SegmentedObject(1, "object", whole, 0.9, "table"),
            SegmentedObject(2, "object", np.zeros_like(whole), 0.5, "cup"),  # resolved to an empty mask
            SegmentedObject(3, "object", inside, 0.8, "ball"),  # covered by object 1
        ])  # fmt: skip

    monkeypatch.setattr(segment, "segment_prompt_frame", segmented)
    out = tmp_path / "m.png"
    args = ["segment", str(cups), "--object", "table", "--object", "cup", "--object", "ball", "--detector", "tiny-random", "-o", str(out)]
    assert run(args) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert np.unique(np.asarray(Image.open(out))).tolist() == [1]
    for object_id in (2, 3):
        assert f"object {object_id} has no pixel in m.png" in err, err
