"""Objects found again (--redetect): which frames the detector runs on, which instance is which
object from one detection frame to the next, detection on several frames with the tiny
random SAM 3, and the option's values (its CLI errors: tests/test_option_errors.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from garvid.detection.models import Detector
from garvid.detection.objects import detect_objects
from garvid.detection.selection import Candidates, best_assignment, match_instances
from garvid.errors import OptionError, RegionError
from garvid.media.open import open_video
from garvid.regions.input import RegionInput
from garvid.shots.shots import Shots
from garvid.tracking.redetect import detection_frames, redetect_step

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "cups.mp4"

#: 40 frames at 10 fps, cut before frames 10 and 25
SHOTS = Shots.from_cuts([10, 25], [i / 10 for i in range(40)], 4.0)


@pytest.mark.parametrize(
    ("first", "stop", "every", "frames"),
    [
        (0, 40, None, [0, 10, 25]),  # each shot's first frame
        (0, 40, 4, [0, 4, 8, 10, 14, 18, 22, 25, 29, 33, 37]),  # the step starts again at every shot
        (12, 30, 5, [12, 17, 22, 25]),  # the shot begun before `first` is looked at from `first`; none past `stop`
        (12, 13, 5, [12]),
        (0, 10, None, [0]),  # the shot starting at `stop` is outside
        (9, 11, None, [9, 10]),
    ],
)
def test_detection_frames(first: int, stop: int, every: int | None, frames: list[int]) -> None:
    assert detection_frames(SHOTS, first, stop, every) == frames


def test_detection_frames_refuse_a_step_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        detection_frames(SHOTS, 0, 40, 0)


def test_redetect_seconds_become_a_frame_step() -> None:
    assert redetect_step(2.0, 30000 / 1001) == 60
    assert redetect_step(0.01, 10.0) == 1  # at least every frame
    assert redetect_step(None, 25.0) is None


def test_the_assignment_maximises_the_summed_overlap() -> None:
    # greedy would give row 0 column 0 (0.9) and leave row 1 without a match (1.5 > 0.9)
    assert best_assignment(np.array([[0.9, 0.8], [0.7, 0.0]])) == {0: 1, 1: 0}
    assert best_assignment(np.array([[0.0, 0.0], [0.0, 0.3]])) == {1: 1}  # no overlap is no match
    assert best_assignment(np.zeros((2, 0))) == {}


LEFT, RIGHT, MIDDLE = (0.0, 0.0, 10.0, 10.0), (50.0, 0.0, 60.0, 10.0), (25.0, 0.0, 35.0, 10.0)


def _candidates(*scored: tuple[float, tuple[float, float, float, float]]) -> Candidates:
    return Candidates(np.array([s for s, _ in scored]), np.array([b for _, b in scored]))


def _boxes(chosen: dict) -> dict[int, tuple[float, ...]]:
    return {object_id: instance.box for object_id, instance in chosen.items()}


def test_objects_keep_their_instances_by_overlap_when_the_scores_swap() -> None:
    # cup 1 was on the left, cup 2 on the right; now the right one scores higher
    candidates = _candidates((0.9, (51.0, 1.0, 61.0, 11.0)), (0.6, (1.0, 0.0, 11.0, 10.0)))
    chosen = match_instances(candidates, "cup", {1: 0, 2: 1}, {1: LEFT, 2: RIGHT}, 0.3)
    assert _boxes(chosen) == {1: (1.0, 0.0, 11.0, 10.0), 2: (51.0, 1.0, 61.0, 11.0)}
    assert chosen[2].score == pytest.approx(0.9)


def test_without_earlier_boxes_objects_take_instances_by_rank() -> None:
    candidates = _candidates((0.5, LEFT), (0.8, RIGHT), (0.2, MIDDLE))  # MIDDLE is below the threshold
    assert _boxes(match_instances(candidates, "cup", {1: 0, 2: 1}, {}, 0.3)) == {1: RIGHT, 2: LEFT}
    assert _boxes(match_instances(candidates, "cup", {2: 1}, {}, 0.3)) == {2: LEFT}  # the second cup alone skips the first


def test_an_object_overlapping_nothing_takes_the_best_instance_left() -> None:
    candidates = _candidates((0.9, LEFT), (0.8, MIDDLE), (0.7, RIGHT))
    # cup 2 is still on the right; cup 1 was somewhere none of them is
    chosen = match_instances(candidates, "cup", {1: 0, 2: 1}, {1: (0.0, 80.0, 10.0, 90.0), 2: RIGHT}, 0.3)
    assert _boxes(chosen) == {1: LEFT, 2: RIGHT}
    # cup 1 still on the left; cup 2 not seen yet in this shot takes the best left
    assert _boxes(match_instances(candidates, "cup", {1: 0, 2: 1}, {1: LEFT}, 0.3)) == {1: LEFT, 2: MIDDLE}


def test_an_object_without_an_instance_left_is_not_on_the_frame() -> None:
    candidates = _candidates((0.9, RIGHT), (0.85, (50.5, 0.0, 60.5, 10.0)))  # one cup seen twice
    assert _boxes(match_instances(candidates, "cup", {1: 0, 2: 1}, {2: RIGHT}, 0.3)) == {2: RIGHT}
    assert match_instances(_candidates(), "cup", {1: 0}, {1: LEFT}, 0.3) == {}


class _Recorded:
    """A frame source that records which frames were decoded, and in which calls."""

    def __init__(self, video):
        self.video, self.calls = video, []

    def frames(self, indices):
        self.calls.append(list(indices))
        return self.video.frames(indices)


@pytest.fixture(scope="module")
def sam3_on_frames():
    """The tiny random SAM 3 looking for a cup on frames 0, 40 and 80 of the cups clip (a
    shot cut before frame 60), beside a box prompt; threshold 0: its random scores count."""

    regions = RegionInput(boxes=("1,1,50,50",), objects=("cup",), detector="tiny-random-sam3", object_threshold=0.0)
    with open_video(SAMPLE) as video:
        prompts = regions.resolve(video.info)
        recorded = _Recorded(video)
        found, detections = detect_objects(recorded, prompts, regions, "cpu", frames=[80, 0, 40, 40], cuts=[60])
    return prompts, found, detections, recorded.calls


def test_every_found_instance_is_a_prompt_of_its_object_on_its_frame(sam3_on_frames) -> None:
    prompts, found, detections, calls = sam3_on_frames
    assert calls == [[0], [40], [80]]  # once each, one at a time, ascending
    assert found.frame == 0 and found.boxes == {1: prompts.boxes[1]} and found.objects == {}
    assert [anchor.frame for anchor in found.anchors] == [40, 80]
    for part in found.per_frame():
        assert list(part.masks) == [2] and part.masks[2].shape == (360, 640) and part.masks[2].any()
    assert [(d.frame, d.object_id, d.phrase) for d in detections] == [(0, 2, "cup"), (40, 2, "cup"), (80, 2, "cup")]
    assert prompts.objects == {2: ("cup", 0)} and not prompts.masks  # the caller's prompts are untouched


class _Blind:
    """A detector that finds nothing."""

    def candidates(self, image, phrase):
        return Candidates(np.zeros(0), np.zeros((0, 4)))


def test_an_object_found_on_none_of_the_frames_names_the_phrase_and_the_frames_searched(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setattr(Detector, "load", classmethod(lambda cls, *args: _Blind()))
    regions = RegionInput(objects=("ball", "cup", "cup"), detector="tiny-random-sam3", object_threshold=0.5)
    with open_video(SAMPLE) as video:
        prompts = regions.resolve(video.info)
        with pytest.raises(RegionError) as caught:
            detect_objects(video, prompts, regions, "cpu", frames=[0, 50])
        assert str(caught.value) == (
            "no instance of 'ball' scores above 0.5 on any of the 2 frame(s) searched: "
            "give a lower --object-threshold, or mark it with --mask/--box"
        )
        with pytest.raises(RegionError, match=r"^no instance of 'cup' for object 3 \(its instance 2\) scores above 0.5 on any"):
            detect_objects(video, prompts.only([3]), regions, "cpu", frames=[0, 50, 100])
        with pytest.raises(RegionError, match="no instance of 'cup' on frame 0 scores above 0.5"):  # one frame: as before
            detect_objects(video, prompts.only([2]), regions, "cpu")


class _Scripted:
    """A box detector that answers each call with the next of ``answers``."""

    def __init__(self, answers: list[Candidates]):
        self.answers = answers

    def candidates(self, image, phrase):
        return self.answers.pop(0)


def test_objects_are_followed_by_overlap_within_a_shot_and_by_rank_after_a_cut(monkeypatch: pytest.MonkeyPatch) -> None:

    answers = [
        _candidates((0.9, LEFT), (0.8, RIGHT)),  # frame 0: by rank, cup 1 the left one
        _candidates((0.9, RIGHT), (0.8, LEFT)),  # frame 10, same shot: the scores swap, the cups do not
        _candidates((0.9, RIGHT), (0.8, LEFT)),  # frame 20, after the cut at 15: by rank again
    ]
    monkeypatch.setattr(Detector, "load", classmethod(lambda cls, *args: _Scripted(answers)))
    regions = RegionInput(objects=("cup", "cup"), detector="tiny-random", object_threshold=0.5)
    with open_video(SAMPLE) as video:
        found, detections = detect_objects(video, regions.resolve(video.info), regions, "cpu", frames=[0, 10, 20], cuts=[15])
    assert [(part.frame, part.boxes, part.masks) for part in found.per_frame()] == [
        (0, {1: LEFT, 2: RIGHT}, {}),
        (10, {1: LEFT, 2: RIGHT}, {}),
        (20, {1: RIGHT, 2: LEFT}, {}),
    ]
    assert [d.score for d in detections] == pytest.approx([0.9, 0.8, 0.8, 0.9, 0.9, 0.8])


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "often", ""])
def test_redetect_must_be_positive_seconds_or_off(value: str) -> None:
    with pytest.raises(OptionError, match="must be a positive number of seconds, or off"):
        RegionInput(redetect=value)


def test_redetect_reads_seconds_and_off() -> None:
    assert RegionInput(redetect=" off ").redetect is None
    assert RegionInput(redetect="2.5").redetect == 2.5
    assert RegionInput(redetect=None).redetect is None


def test_the_cache_key_holds_how_often_names_are_found_again() -> None:
    from garvid.tracking.cache import regions_digest

    keys = {regions_digest(RegionInput(objects=("cup",), redetect=value), [1]) for value in (None, 2.0, 5.0)}
    assert len(keys) == 3
    assert regions_digest(RegionInput(objects=("cup",), redetect="off"), [1]) == regions_digest(RegionInput(objects=("cup",), redetect=None), [1])
