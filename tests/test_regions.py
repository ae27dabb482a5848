"""Region prompts: every mask format, numbering, and each validation error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from garvid.errors import RegionError
from garvid.regions.masks import decode_rle, encode_rle, rle_runs
from garvid.regions.prompts import build_region_prompts, load_masks, parse_box, parse_point

SIZE = (40, 30)  # width, height


def _labels() -> np.ndarray:
    labels = np.zeros((30, 40), np.uint8)
    labels[2:10, 3:12] = 1
    labels[15:25, 20:35] = 2
    return labels


def _save(path: Path, array: np.ndarray, mode: str) -> Path:
    """Save a uint8 label array as a PNG of the given mode (P keeps the raw indices)."""
    height, width = array.shape
    if mode == "P":
        image = Image.frombytes("P", (width, height), array.astype(np.uint8).tobytes())
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [128] * (256 * 3 - 9))
    else:
        image = Image.fromarray(array.astype(np.uint8)).convert(mode)
    image.save(path)
    return path


@pytest.mark.parametrize("mode", ["P", "L"])
def test_label_map_gives_one_object_per_value(tmp_path: Path, mode: str) -> None:
    path = _save(tmp_path / "m.png", _labels(), mode)
    masks = load_masks([path], SIZE)
    assert sorted(masks) == [1, 2]
    assert masks[1].dtype == bool and masks[1].sum() == 8 * 9
    assert (masks[2] == (_labels() == 2)).all()


def test_grey_rgb_png_is_a_label_map(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    Image.fromarray(np.repeat(_labels()[..., None], 3, axis=2)).save(path)
    assert sorted(load_masks([path], SIZE)) == [1, 2]


def test_repeated_binary_masks_number_objects_in_order(tmp_path: Path) -> None:
    first = _save(tmp_path / "a.png", (_labels() == 2).astype(np.uint8) * 255, "L")
    second = _save(tmp_path / "b.png", (_labels() == 1).astype(np.uint8) * 255, "1")
    masks = load_masks([first, second], SIZE)
    assert (masks[1] == (_labels() == 2)).all()
    assert (masks[2] == (_labels() == 1)).all()


def test_single_binary_255_mask_is_object_one(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.png", (_labels() > 0).astype(np.uint8) * 255, "L")
    masks = load_masks([path], SIZE)
    assert list(masks) == [1] and masks[1].sum() == (_labels() > 0).sum()


def test_colour_rgb_png_is_refused(tmp_path: Path) -> None:
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[2:10, 3:12] = (255, 0, 0)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(RegionError, match="RGB colour image, not a label map"):
        load_masks([path], SIZE)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_label_maps_are_refused(tmp_path: Path, suffix: str) -> None:
    """JPEG compression adds ids: this map gains stray values around both objects."""
    labels = _labels() * 100  # ids far apart, so the loss shows as many stray values
    path = tmp_path / f"m{suffix}"
    Image.fromarray(labels).save(path, format="JPEG", quality=75)
    assert len(np.unique(np.asarray(Image.open(path)))) > 3  # what would have become objects
    with pytest.raises(RegionError, match=r"JPEG file, whose lossy compression.*save the mask as PNG"):
        load_masks([path], SIZE)
    binary = tmp_path / f"b{suffix}"
    Image.fromarray((_labels() == 1).astype(np.uint8) * 255).save(binary, format="JPEG")
    with pytest.raises(RegionError, match="JPEG"):
        load_masks([_save(tmp_path / "a.png", (_labels() == 2).astype(np.uint8), "L"), binary], SIZE)


def test_repeated_mask_with_several_ids_is_refused_not_merged(tmp_path: Path) -> None:
    binary = _save(tmp_path / "a.png", (_labels() == 2).astype(np.uint8) * 255, "L")
    label_map = _save(tmp_path / "m.png", _labels(), "P")
    with pytest.raises(RegionError, match=r"m\.png holds 2 object ids \(1, 2\).*one binary PNG per object"):
        load_masks([binary, label_map], SIZE)
    assert sorted(load_masks([label_map], SIZE)) == [1, 2]  # alone it is a label map


def test_size_mismatch_names_both_sizes_and_resize_fixes_it(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.png", _labels(), "P")
    with pytest.raises(RegionError, match=r"40x30 but the video is 80x60.*--resize-masks"):
        load_masks([path], (80, 60))
    with pytest.raises(RegionError, match=r"40x30 but the image is 80x60"):
        load_masks([path], (80, 60), target="the image")
    masks = load_masks([path], (80, 60), resize=True)
    assert masks[1].shape == (60, 80)
    assert masks[1].sum() == 4 * 8 * 9  # nearest: every pixel doubled both ways


def test_empty_missing_and_non_image_masks(tmp_path: Path) -> None:
    empty = _save(tmp_path / "empty.png", np.zeros((30, 40), np.uint8), "L")
    with pytest.raises(RegionError, match="empty"):
        load_masks([empty], SIZE)
    with pytest.raises(RegionError, match="object 2\\) is empty"):
        load_masks([_save(tmp_path / "a.png", (_labels() == 1).astype(np.uint8), "L"), empty], SIZE)
    with pytest.raises(RegionError, match="not found"):
        load_masks([tmp_path / "nope.png"], SIZE)
    text = tmp_path / "t.png"
    text.write_text("hello")
    with pytest.raises(RegionError, match="not an image"):
        load_masks([text], SIZE)


def test_more_than_five_objects_is_refused(tmp_path: Path) -> None:
    labels = np.zeros((30, 40), np.uint8)
    for value in range(1, 7):
        labels[value * 4, :] = value
    with pytest.raises(RegionError, match="at most 5"):
        load_masks([_save(tmp_path / "m.png", labels, "L")], SIZE)
    too_many = [_save(tmp_path / f"{i}.png", _labels(), "L") for i in range(6)]
    with pytest.raises(RegionError, match="at most 5"):
        load_masks(too_many, SIZE)


def test_object_ids_beyond_five_are_refused(tmp_path: Path) -> None:
    labels = _labels()
    labels[labels == 2] = 7
    with pytest.raises(RegionError, match="object id 7"):
        load_masks([_save(tmp_path / "m.png", labels, "L")], SIZE)


def test_boxes_and_points_are_numbered_after_masks(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.png", _labels(), "P")
    prompts = build_region_prompts(
        mask_paths=[path], boxes=["1,2,10,12"], points=["5,6", "7.5,8"], frame=3, size=SIZE, num_frames=10
    )
    assert prompts.object_ids == [1, 2, 3, 4, 5]
    assert prompts.boxes == {3: (1.0, 2.0, 10.0, 12.0)}
    assert prompts.points == {4: [(5.0, 6.0)], 5: [(7.5, 8.0)]}
    assert prompts.frame == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no objects given"),
        ({"boxes": ["1,2,3"]}, "expected 4 comma-separated numbers"),
        ({"boxes": ["10,2,5,8"]}, "0 <= x1 < x2"),
        ({"boxes": ["0,0,41,10"]}, "x2 <= 40"),
        ({"points": ["a,b"]}, "expected 2"),
        ({"points": ["40,5"]}, "outside the 40x30 frame"),
        ({"points": ["1,1"], "frame": 10}, "outside the video"),
        ({"points": ["1,1"] * 6}, "at most 5"),
    ],
)
def test_prompt_validation_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(RegionError, match=message):
        build_region_prompts(size=SIZE, num_frames=10, **kwargs)


def test_parsers_accept_spaces_and_floats() -> None:
    assert parse_box(" 1, 2.5 ,3,4", SIZE) == (1.0, 2.5, 3.0, 4.0)
    assert parse_point("0,29.5", SIZE) == (0.0, 29.5)


def test_rle_runs_read_pycocotools_counts_and_refuse_broken_ones():
    rng = np.random.default_rng(0)
    for trial in range(200):
        height, width = (int(n) for n in rng.integers(1, 120, 2))
        mask = rng.random((height, width)) < rng.random() if trial % 2 else np.zeros((height, width), dtype=bool)
        mask[: trial % height, : trial % width] = True  # long runs too, whose counts take several characters
        runs = rle_runs(encode_rle(mask))
        painted = np.repeat(np.arange(runs.size) % 2, runs).astype(bool).reshape(width, height).T  # column-major
        assert np.array_equal(painted, mask)
        assert np.array_equal(decode_rle({"size": [height, width], "counts": runs.tolist()}), mask)
    good = encode_rle(np.eye(8, dtype=bool))
    broken = [
        {**good, "counts": good["counts"][:-1]}, {**good, "counts": good["counts"] + "1"}, {**good, "counts": "zzzz"},
        {**good, "counts": good["counts"] + "`"}, {**good, "size": [8, 0]}, {**good, "counts": [1, 2]}, {"size": [8, 8]}, [good],
    ]  # fmt: skip
    for rle in broken:
        with pytest.raises(RegionError, match="invalid RLE mask"):
            decode_rle(rle)
