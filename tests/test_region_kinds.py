"""Region prompt kinds: each owns its digest and its conversion; a kind without a digest cannot
be built; in-memory masks work as mask files do; cache digests keep their format-2 values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from garvid.errors import RegionError
from garvid.media.source import VideoInfo
from garvid.regions.input import RegionInput
from garvid.regions.kinds import (
    BoxPrompt,
    MaskArray,
    MaskFile,
    NamePrompt,
    PointPrompt,
    RegionPrompt,
    digests,
)
from garvid.regions.prompts import resolve_prompts
from garvid.tracking.cache import file_digest, regions_digest

INFO = VideoInfo(path="clip.mp4", num_frames=10, fps=10.0, width=40, height=30, duration=1.0, rotation=0)


def _labels() -> np.ndarray:
    labels = np.zeros((30, 40), np.uint8)
    labels[2:10, 3:12] = 1
    labels[15:25, 20:35] = 2
    return labels


def test_a_prompt_kind_without_a_digest_cannot_be_built() -> None:
    class Scribble(RegionPrompt):
        group = "scribbles"

        def __init__(self, strokes: str):
            self.strokes = strokes

    with pytest.raises(TypeError, match="abstract method.*digest"):
        Scribble("1,1 2,2")

    class MaskFromNowhere(MaskFile):  # a mask source inherits its parent's digest: fine
        pass

    assert MaskFromNowhere("m.png").group == "masks"

    class DigestedScribble(Scribble):
        def digest(self) -> str:
            return self.strokes

    scribble = DigestedScribble("1,1 2,2")
    assert digests([BoxPrompt("1,2,3,4"), scribble]) == {"boxes": ["1,2,3,4"], "scribbles": ["1,1 2,2"]}
    with pytest.raises(TypeError, match="no conversion to SAM2 prompts for DigestedScribble"):
        resolve_prompts([scribble], frame=0, size=(40, 30), num_frames=10)  # never silently dropped


def test_each_kind_digests_what_decides_its_mask(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    Image.fromarray(_labels()).save(path)
    assert MaskFile(path).digest() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert BoxPrompt("1, 2,3,4").digest() == "1, 2,3,4" and PointPrompt("5,6").digest() == "5,6"
    assert NamePrompt("  the   red cup ").digest() == "the red cup"
    assert MaskArray(_labels()).digest() == MaskArray(_labels().copy()).digest()
    assert MaskArray(_labels()).digest() != MaskArray(_labels().astype(np.int32)).digest()  # dtype counts
    assert MaskArray(np.asfortranarray(_labels())).digest() == MaskArray(_labels()).digest()  # memory layout does not count
    prompts = RegionInput(masks=(path, _labels()), boxes=("1,2,3,4",), points=("5,6",), objects=("cup",)).prompts()
    assert [type(p).__name__ for p in prompts] == ["MaskFile", "MaskArray", "BoxPrompt", "PointPrompt", "NamePrompt"]


def test_the_regions_digest_is_the_canonical_json_of_the_key(tmp_path: Path) -> None:
    """The key as documented: each kind's digests in its group, the frame, and for names the
    detector, its threshold and how often it looks again (a file's content, not its name)."""
    path = tmp_path / "m.png"
    Image.fromarray(_labels()).save(path)
    regions = RegionInput(masks=(path,), boxes=("1,2,10,12",), points=("5,6", "7.5, 8"), frame=3, objects=("cup", " a  ball "), detector="tiny-random")
    key = {
        "objects": [2],
        "masks": [file_digest(path)],
        "boxes": ["1,2,10,12"],
        "points": ["5,6", "7.5, 8"],
        "frame": 3,
        "resize_masks": False,
        "detect": {"detector": "tiny-random", "phrases": ["cup", "a ball"], "threshold": 0.3, "redetect": regions.redetect},
    }
    expected = hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert regions_digest(regions, [2]) == expected
    # prompts without names, times or ids keep the digests they had before names could be found again
    plain = RegionInput(boxes=("1,2,10,12",), points=("5,6",))
    assert regions_digest(plain, [1]) == "f7bcc5b16679712f0e3a4da791db0f7af1824a92e38c2ab3fd01602e599c1533"


def test_in_memory_masks_resolve_as_mask_files_do(tmp_path: Path) -> None:
    labels = _labels()
    label_file = tmp_path / "labels.png"
    Image.fromarray(labels).save(label_file)
    from_file = RegionInput(masks=(label_file,), boxes=("1,2,10,12",)).resolve(INFO)
    from_array = RegionInput(masks=(labels,), boxes=("1,2,10,12",)).resolve(INFO)
    assert sorted(from_array.masks) == sorted(from_file.masks) == [1, 2] and from_array.boxes == from_file.boxes == {3: (1.0, 2.0, 10.0, 12.0)}
    assert all(np.array_equal(from_array.masks[i], from_file.masks[i]) for i in (1, 2))
    # one boolean array per object, overlapping: each keeps all its pixels
    first, second = labels == 1, (labels == 1) | (labels == 2)
    binary = RegionInput(masks=(first, second)).resolve(INFO)
    assert np.array_equal(binary.masks[1], first) and np.array_equal(binary.masks[2], second)
    resized = RegionInput(masks=(np.kron(labels, np.ones((2, 2), np.uint8)),), resize_masks=True).resolve(INFO)
    assert np.array_equal(resized.masks[2], labels == 2)


def test_in_memory_masks_are_copied_compared_and_hashed_by_content() -> None:
    labels = _labels()
    regions = RegionInput(masks=(labels,))
    digest = regions_digest(regions, [1])
    labels[0, 0] = 2  # the caller's array changes: the input keeps its own copy
    assert regions_digest(regions, [1]) == digest and regions.masks[0].array[0, 0] == 0
    assert regions == RegionInput(masks=(_labels(),)) and hash(regions) == hash(RegionInput(masks=(_labels(),)))
    assert regions != RegionInput(masks=(labels,)) and regions_digest(RegionInput(masks=(labels,)), [1]) != digest
    assert regions.mask_files == [] and "MaskArray(40x30 uint8" in repr(regions)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 30, 40), np.uint8), "2-D integer or boolean"),
        (np.zeros((30, 40), np.float32), "2-D integer or boolean"),
        (np.full((30, 40), -1, np.int64), "negative labels"),
    ],
)
def test_bad_in_memory_masks_are_refused(array: np.ndarray, message: str) -> None:
    with pytest.raises(RegionError, match=message):
        RegionInput(masks=(array,))


def test_in_memory_mask_errors_say_it_is_in_memory() -> None:
    with pytest.raises(RegionError, match=r"mask \(an in-memory array\) is 20x15 but the video is 40x30"):
        RegionInput(masks=(np.ones((15, 20), bool),)).resolve(INFO)
    with pytest.raises(RegionError, match=r"mask \(an in-memory array\) is empty"):
        RegionInput(masks=(np.zeros((30, 40), bool),)).resolve(INFO)
