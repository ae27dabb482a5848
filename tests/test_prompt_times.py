"""Prompts on any frame (``--mask PNG@TIME``, ``--box N=...@TIME``, ``--point N=...@TIME``): the
syntax, how times become frames, how ids join prompts on several frames into one object, the
cache digests, and every error (one line, exit 2, before any model loads)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from garvid_cli.main import run
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from garvid.errors import OptionError, RegionError
from garvid.media.source import VideoInfo
from garvid.media.video_file import Video
from garvid.regions.input import RegionInput
from garvid.regions.kinds import BoxPrompt, MaskArray, MaskFile, PointPrompt
from garvid.regions.times import PromptTime, parse_time, split_object_id
from garvid.tracking.cache import regions_digest
from garvid.tracking.segment import segment_prompt_frame

REPO = Path(__file__).resolve().parents[1]
CLIP, CLIP_MASK = REPO / "samples" / "cups.mp4", REPO / "samples" / "cups_mask.png"  # 120 frames, 4 s
INFO = VideoInfo(path="clip.mp4", num_frames=10, fps=10.0, width=40, height=30, duration=1.0, rotation=0)


def _labels(*ids: int) -> np.ndarray:
    """A 40x30 label map marking each of ``ids`` (1..5) in a square of its own."""
    labels = np.zeros((30, 40), np.uint8)
    for object_id in ids:
        labels[2:8, 7 * object_id - 6 : 7 * object_id] = object_id
    return labels


def _png(path: Path, labels: np.ndarray) -> Path:
    Image.fromarray(labels).save(path)
    return path


@pytest.mark.parametrize(
    ("text", "time", "canonical"),
    [("4.5", PromptTime(seconds=4.5), "4.5"), (" 4.50s ", PromptTime(seconds=4.5), "4.5"), ("12", PromptTime(seconds=12.0), "12.0"),
     ("0", PromptTime(seconds=0.0), "0.0"), ("f120", PromptTime(frame=120), "f120"), ("f007", PromptTime(frame=7), "f7")],
)  # fmt: skip
def test_times_parse_to_seconds_or_frames_and_print_canonically(text: str, time: PromptTime, canonical: str) -> None:
    assert parse_time(text, "boxes", f"1,2,3,4@{text}") == time
    assert str(time) == canonical


@given(st.floats(min_value=0, allow_infinity=False, allow_nan=False))
def test_every_finite_time_reads_back_from_its_canonical_text(seconds: float) -> None:
    time = PromptTime(seconds=seconds)
    assert parse_time(str(time), "points", "x") == time and parse_time(f"{time}s", "points", "x") == time


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "bad time ''"), ("soon", "bad time 'soon'"), ("nan", "bad time 'nan'"), ("inf", "bad time 'inf'"), ("1e999", "bad time"),
     ("f", "bad time 'f'"), ("f-1", "bad time"), ("f1.5", "bad time"), ("1_0", "bad time"), ("-0.5", "-0.5 s is negative")],
)  # fmt: skip
def test_bad_times_name_the_option_and_the_prompt(text: str, message: str) -> None:
    with pytest.raises(OptionError, match=message) as error:
        BoxPrompt(f"1,2,3,4@{text}")
    assert error.value.field == "boxes" and f"'1,2,3,4@{text}'" in str(error.value)


def test_object_ids_before_boxes_and_points() -> None:
    assert split_object_id("2=10,20,200,220", "boxes") == (2, "10,20,200,220")
    assert split_object_id(" 3 = 5,6", "points") == (3, " 5,6")
    assert split_object_id("5,6", "points") == (None, "5,6")
    point = PointPrompt("1=320,180@4.5")
    assert (point.object_id, point.coordinates, point.at) == (1, "320,180", PromptTime(seconds=4.5))
    for text, message in (("0=1,1", "object ids start at 1, not 0"), ("a=1,1", "expected an object id before '='"), ("-1=1,1", "object id")):
        with pytest.raises(OptionError, match=message):
            RegionInput(points=(text,))  # checked where the input is built, before any video opens


def test_masks_at_a_time_and_files_named_with_at(tmp_path: Path) -> None:
    mask = _png(tmp_path / "m.png", _labels(1))
    timed = MaskFile(f"{mask}@f3")
    assert (timed.path, timed.at, timed.name) == (mask, PromptTime(frame=3), f"{mask}@f3")
    odd = _png(tmp_path / "m@2x.png", _labels(1))  # an existing file is read whole, '@' and all
    assert (MaskFile(odd).path, MaskFile(odd).at) == (odd, None)
    with pytest.raises(OptionError, match="bad time '3x.png'"):
        RegionInput(masks=(tmp_path / "m@3x.png",))
    regions = RegionInput(masks=(mask, Path(f"{mask}@0.45")))
    assert regions.mask_files == [mask, mask]  # what outputs must not overwrite: the files themselves


def test_the_same_label_on_two_frames_is_one_object(tmp_path: Path) -> None:
    first, later = _png(tmp_path / "a.png", _labels(1, 2)), _png(tmp_path / "b.png", _labels(2, 3))
    prompts = RegionInput(masks=(first, Path(f"{later}@f6")), boxes=("9,9,20,20",), frame=2).resolve(INFO)
    assert prompts.frame == 2 and sorted(prompts.masks) == [1, 2] and prompts.boxes == {4: (9.0, 9.0, 20.0, 20.0)}
    assert [(a.frame, a.own_ids) for a in prompts.anchors] == [(6, [2, 3])]
    assert prompts.object_ids == [1, 2, 3, 4] and prompts.prompt_frames == [2, 6]
    assert np.array_equal(prompts.anchors[0].masks[2], _labels(2, 3) == 2)
    # binary masks of one frame are objects 1..n on that frame as well
    binary = RegionInput(masks=(first, MaskArray(_labels(3) > 0, at="f8"), MaskArray(_labels(4) > 0, at="f8"))).resolve(INFO)
    assert binary.object_ids == [1, 2] and [(a.frame, a.own_ids) for a in binary.anchors] == [(8, [1, 2])]


def test_boxes_and_points_with_an_id_join_that_object() -> None:
    prompts = RegionInput(
        boxes=("1,1,10,10", "2=5,5,15,15@f7", "1=2,2,12,12@0.3"), points=("3,3", "1=4,4@f7", "1=6,6@f7"), objects=("cup",)
    ).resolve(INFO)
    assert prompts.frame == 0 and prompts.boxes == {1: (1.0, 1.0, 10.0, 10.0)} and prompts.points == {2: [(3.0, 3.0)]}
    assert prompts.objects.keys() == {3}
    (at_3, at_7) = prompts.anchors
    assert (at_3.frame, at_3.boxes) == (3, {1: (2.0, 2.0, 12.0, 12.0)})
    assert (at_7.frame, at_7.boxes, at_7.points) == (7, {2: (5.0, 5.0, 15.0, 15.0)}, {1: [(4.0, 4.0), (6.0, 6.0)]})
    assert prompts.object_ids == [1, 2, 3] and prompts.names == {1: "object 1", 2: "object 2", 3: "cup"}
    # a name keeps naming its object where a box prompts it again on another frame
    named = RegionInput(objects=("the red cup",), boxes=("1=1,1,9,9@f5",)).resolve(INFO)
    assert named.names == {1: "the red cup"} and named.anchors[0].boxes == {1: (1.0, 1.0, 9.0, 9.0)}
    assert named.only([1]).prompt_frames == [0, 5]


def test_the_result_lies_on_mask_frame_when_a_prompt_does_else_on_the_earliest() -> None:
    prompts = RegionInput(boxes=("1,1,5,5@f7", "1=1,1,6,6@f3"), frame=5).resolve(INFO)
    assert prompts.frame == 3 and prompts.boxes == {1: (1.0, 1.0, 6.0, 6.0)} and [a.frame for a in prompts.anchors] == [7]
    with_plain = RegionInput(boxes=("1,1,5,5@f7", "1=1,1,6,6@f3", "1=2,2,8,8"), frame=5).resolve(INFO)
    assert with_plain.frame == 5 and [a.frame for a in with_plain.anchors] == [3, 7]


def test_a_time_names_the_frame_starting_nearest_to_it_in_the_video_timestamps() -> None:
    # a variable frame rate: frames 3.. start later than index / fps says
    times = np.array([0.0, 0.1, 0.2, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97])
    at = RegionInput(boxes=("1,1,5,5@0.6",))
    assert at.resolve(INFO, times).frame == 3
    assert at.resolve(INFO).frame == 6  # without timestamps: index / fps
    assert RegionInput(boxes=("1,1,5,5@0.64",)).resolve(INFO).frame == 6  # within half a frame of 0.6 s
    assert RegionInput(boxes=("1,1,5,5@0.66",)).resolve(INFO).frame == 7
    assert RegionInput(boxes=("1,1,5,5@0.99",)).resolve(INFO).frame == 9  # the last frame lasts until the end


@pytest.mark.parametrize(
    ("regions", "error", "message"),
    [
        (RegionInput(boxes=("1,1,5,5@1.0",)), OptionError, r"boxes '1,1,5,5@1.0': 1 s is beyond the video, which ends at 1 s"),
        (RegionInput(points=("1,1@f10",)), OptionError, r"points '1,1@f10': frame 10 is beyond the video \(frames 0..9\)"),
        (RegionInput(masks=(MaskArray(_labels(1), at="12s"),)), OptionError, r"masks '\(an in-memory array\)@12.0': 12 s is beyond"),
        (RegionInput(boxes=("6=1,1,5,5",)), OptionError, "object ids run from 1 to 5"),
        (RegionInput(masks=(_labels(1, 2),), boxes=("2=1,1,5,5",)), RegionError, "object 2 is given a mask and a box on frame 0"),
        (RegionInput(boxes=("1,1,5,5@f4",), points=("1=2,2@f4",)), RegionError, "object 1 is given a box and points on frame 4"),
        (RegionInput(boxes=("1=1,1,5,5@f4", "1=1,1,6,6@f4")), RegionError, "object 1 is given two boxes on frame 4"),
        (RegionInput(boxes=("1=1,1,5,5",), objects=("cup",)), RegionError, r"given a box and a name \(--object\) on frame 0"),
        (RegionInput(masks=(_labels(1, 2, 3),), boxes=("1,1,5,5@f3",) * 3), RegionError, "6 objects given; GAR follows at most 5"),
    ],
)
def test_prompts_that_cannot_be_placed_are_refused(regions: RegionInput, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        regions.resolve(INFO)


def test_a_prompt_at_another_time_is_another_cache_key(tmp_path: Path) -> None:
    mask = _png(tmp_path / "m.png", _labels(1, 2))

    def key(**fields: object) -> str:
        return regions_digest(RegionInput(**fields), [1, 2])

    plain = key(masks=(mask,))
    assert len({plain, key(masks=(Path(f"{mask}@f3"),)), key(masks=(Path(f"{mask}@3"),)), key(masks=(Path(f"{mask}@f4"),))}) == 4
    assert key(masks=(Path(f"{mask}@3"),)) == key(masks=(Path(f"{mask}@3.0s"),))  # the time as typed, canonically
    assert key(masks=(MaskArray(_labels(1, 2)),)) != key(masks=(MaskArray(_labels(1, 2), at="f3"),))
    box = key(boxes=("1,1,5,5",))
    assert len({box, key(boxes=("1,1,5,5@f2",)), key(boxes=("2=1,1,5,5",)), key(boxes=("1=1,1,5,5",))}) == 4
    assert BoxPrompt("2=1, 1,5,5@4.50s").digest() == "2=1, 1,5,5@4.5" and PointPrompt("1,1").digest() == "1,1"


def test_segment_refuses_prompts_on_several_frames_and_segments_the_one_frame_named() -> None:
    with Video(CLIP) as video:
        seg = segment_prompt_frame(video, RegionInput(masks=(Path(f"{CLIP_MASK}@f30"),)), tracker="tiny-random")
        assert seg.frame == 30 and sorted(seg.masks) == [1, 2, 3, 4]
        with pytest.raises(RegionError, match="prompts lie on frames 0, 30, but segmenting writes one frame's masks"):
            segment_prompt_frame(video, RegionInput(masks=(CLIP_MASK, Path(f"{CLIP_MASK}@1.0"))), tracker="tiny-random")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["track", str(CLIP), "--box", "1,2,30,40@soon"], "--box '1,2,30,40@soon': bad time 'soon' after @: expected seconds like 4.5"),
        (["track", str(CLIP), "--point", "1,2@-3"], "--point '1,2@-3': the time -3 s is negative"),
        (["track", str(CLIP), "--box", "1,2,30,40@nan"], "--box '1,2,30,40@nan': bad time 'nan'"),
        (["track", str(CLIP), "--box", "1,2,30,40@9"], "--box '1,2,30,40@9': 9 s is beyond the video, which ends at 4"),
        (["ask", str(CLIP), "what is object 1?", "-m", f"{CLIP_MASK}@f120"], f"--mask '{CLIP_MASK}@f120': frame 120 is beyond the video"),
        (["describe", str(CLIP), "--point", "0=5,5"], "--point '0=5,5': object ids start at 1, not 0"),
        (["track", str(CLIP), "-m", str(CLIP_MASK), "--box", "2=1,2,30,40"], "object 2 is given a mask and a box on frame 0"),
        (["image", str(CLIP_MASK), "--box", "1,2,30,40@f0"], "--box '1,2,30,40@f0' names a time (@f0), but an image has one frame"),
        (["image", str(CLIP_MASK), "-m", f"{CLIP_MASK}@1"], "names a time (@1.0), but an image has one frame"),
        (["segment", str(CLIP_MASK), "--box", "1,2,30,40@2s", "-o", "x.png"], "names a time (@2.0), but an image has one frame"),
        (["segment", str(CLIP), "--box", "1,2,30,40@2s", "-m", str(CLIP_MASK), "-o", "x.png"], "prompts lie on frames 0, 60"),
    ],
)
def test_the_cli_refuses_bad_prompt_times_in_one_line_before_any_model_loads(args, needle, no_model_loads, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = run(args)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("garvid: error: ") and needle in lines[0], err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_mask_at_a_time_is_an_input_no_output_overwrites(no_model_loads, capsys, tmp_path: Path) -> None:
    mask = tmp_path / "m.png"
    mask.write_bytes(CLIP_MASK.read_bytes())
    assert run(["segment", str(CLIP), "-m", f"{mask}@f3", "-o", str(mask)]) == 2
    assert "is an input of this run: refusing to write over it" in capsys.readouterr().err
    assert mask.read_bytes() == CLIP_MASK.read_bytes()


def test_time_to_frame_matches_the_shot_list_reader() -> None:
    """Both read a time the same way (garvid.media.timing): a shot starting at a prompt's time starts on its frame."""
    from garvid.media.timing import frame_at

    times = np.arange(120) / 29.97
    for seconds in (0.0, 0.5, 1.0, 2.017, 3.95):
        index = RegionInput(boxes=(f"1,1,5,5@{seconds}",)).resolve(
            VideoInfo(path="c.mp4", num_frames=120, fps=29.97, width=40, height=30, duration=120 / 29.97, rotation=0), times
        ).frame
        assert index == frame_at(times, seconds, 120 / 29.97) and math.isclose(times[index], seconds, abs_tol=0.5 / 29.97 + 1e-9)
