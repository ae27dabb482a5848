"""Objects by name: instance selection on the detectors' real output structures, the cache
key, and every --object user error (one line, exit 2, no output file)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers.models.grounding_dino.modeling_grounding_dino import GroundingDinoObjectDetectionOutput
from transformers.models.sam3.modeling_sam3 import Sam3ImageSegmentationOutput

from garvid.detection.checkpoints import resolve_detector
from garvid.detection.models import Detector, grounding_candidates, phrase_text, sam3_candidates
from garvid.detection.objects import inside_frame
from garvid.detection.selection import select_instances
from garvid.errors import RegionError
from garvid.options import TrackingOptions
from garvid.regions.input import RegionInput
from garvid.regions.prompts import build_region_prompts
from garvid.tracking.cache import regions_digest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "cups.mp4"
SIZE = (90, 160)  # (H, W) of the frame the post-processing scales to


def garvid(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "garvid_cli", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def grounding_processor():
    return Detector.load_processor(resolve_detector("tiny-random"))


@pytest.fixture(scope="module")
def sam3_processor():
    return Detector.load_processor(resolve_detector("tiny-random-sam3"))


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


# four queries: the best, a near-duplicate of it, a distinct second object, a weak third
SCORES = [0.9, 0.85, 0.6, 0.2]
CENTRES = [(0.25, 0.5, 0.2, 0.4), (0.26, 0.5, 0.2, 0.4), (0.75, 0.5, 0.2, 0.4), (0.5, 0.2, 0.1, 0.1)]  # cx, cy, w, h


def _grounding_candidates(processor):
    input_ids = processor.tokenizer(phrase_text("grounding-dino", "the red cup"), return_tensors="pt")["input_ids"]
    logits = torch.full((1, len(SCORES), 256), float("-inf"))  # the model's padding past the text
    logits[0, :, : input_ids.shape[1]] = -30.0
    for query, score in enumerate(SCORES):
        logits[0, query, 1 : input_ids.shape[1] - 1] = _logit(score)  # the phrase's tokens
    outputs = GroundingDinoObjectDetectionOutput(logits=logits, pred_boxes=torch.tensor([CENTRES]), input_ids=input_ids)
    return grounding_candidates(processor, outputs, input_ids, SIZE)


def test_grounding_dino_best_instance_and_its_box_in_pixels(grounding_processor) -> None:
    [best] = select_instances(_grounding_candidates(grounding_processor), "the red cup", 1, 0.35, 0)
    assert best.score == pytest.approx(0.9, abs=1e-4)
    assert best.box == pytest.approx((0.15 * 160, 0.3 * 90, 0.35 * 160, 0.7 * 90), abs=1e-3)
    assert best.mask is None


def test_the_same_phrase_twice_takes_the_best_and_the_second_best_distinct(grounding_processor) -> None:
    first, second = select_instances(_grounding_candidates(grounding_processor), "cup", 2, 0.35, 0)
    assert (first.score, second.score) == pytest.approx((0.9, 0.6), abs=1e-4)  # 0.85 is the best seen again
    assert second.box[0] == pytest.approx(0.65 * 160, abs=1e-3)


def test_too_few_distinct_instances_above_the_threshold(grounding_processor) -> None:
    with pytest.raises(RegionError, match=r"'cup' is given 3 times but frame 7 has only 2 distinct instance\(s\) scoring above 0.35"):
        select_instances(_grounding_candidates(grounding_processor), "cup", 3, 0.35, 7)


def test_no_instance_names_the_phrase_the_frame_and_the_best_score(grounding_processor) -> None:
    with pytest.raises(RegionError) as caught:
        select_instances(_grounding_candidates(grounding_processor), "the red cup", 1, 0.95, 4)
    message = str(caught.value)
    assert "no instance of 'the red cup' on frame 4 scores above 0.95" in message
    assert "the best scores 0.900" in message and "--mask-frame" in message and "--object-threshold" in message


def test_sam3_instance_keeps_its_mask_at_frame_size(sam3_processor) -> None:
    queries = len(SCORES)
    masks = torch.full((1, queries, 8, 8), -10.0)
    masks[0, 0, :, :4] = 10.0  # the best query: the left half
    masks[0, 2, :, 4:] = 10.0  # the distinct second: the right half
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0], [0.4, 0.4, 0.5, 0.5]]])
    outputs = Sam3ImageSegmentationOutput(
        pred_masks=masks,
        pred_boxes=boxes,
        pred_logits=torch.tensor([[_logit(s) for s in SCORES]]),
        presence_logits=torch.tensor([[20.0]]),  # present: the scores are the queries' own
    )
    first, second = select_instances(sam3_candidates(sam3_processor, outputs, SIZE), "ball", 2, 0.5, 0)
    assert first.mask.shape == SIZE and second.mask.shape == SIZE
    assert first.mask[:, :70].all() and not first.mask[:, 90:].any()
    assert second.mask[:, 90:].all() and not second.mask[:, :70].any()
    assert (first.score, second.score) == pytest.approx((0.9, 0.6), abs=1e-4)


def test_a_detector_box_becomes_a_valid_box_prompt_inside_the_frame() -> None:
    assert inside_frame((-5.0, 10.0, 200.0, 10.2), 160, 90) == (0.0, 10.0, 160.0, 11.0)


def test_objects_are_numbered_after_masks_boxes_and_points(tmp_path: Path) -> None:
    from PIL import Image

    mask = tmp_path / "m.png"
    labels = np.zeros((90, 160), np.uint8)
    labels[10:20, 10:20], labels[30:40, 30:40] = 1, 2
    Image.fromarray(labels, mode="L").save(mask)
    prompts = build_region_prompts(mask_paths=[mask], boxes=["1,1,50,50"], objects=["cup", " the  ball "], size=(160, 90), num_frames=3)
    assert sorted(prompts.masks) == [1, 2] and list(prompts.boxes) == [3]
    assert prompts.objects == {4: ("cup", 0), 5: ("the ball", 0)} and prompts.object_ids == [1, 2, 3, 4, 5]
    again = build_region_prompts(points=["5,5"], objects=["cup", "ball", "cup"], size=(160, 90), num_frames=3)
    assert again.objects == {2: ("cup", 0), 3: ("ball", 0), 4: ("cup", 1)}  # the second "cup" takes the second instance
    assert again.only([4]).objects == {4: ("cup", 1)}
    with pytest.raises(RegionError, match="6 objects given"):
        build_region_prompts(mask_paths=[mask], boxes=["1,1,50,50"], points=["5,5"], objects=["a", "b"], size=(160, 90), num_frames=3)

def test_cache_key_holds_detector_phrases_and_threshold() -> None:
    base = RegionInput(objects=("cup",), detector="tiny-random", object_threshold=0.4)
    variants = [
        RegionInput(objects=("ball",), detector="tiny-random", object_threshold=0.4),
        RegionInput(objects=("cup",), detector="tiny-random-sam3", object_threshold=0.4),
        RegionInput(objects=("cup",), detector="tiny-random", object_threshold=0.5),
        RegionInput(objects=("cup",), detector="tiny-random"),  # the preset's 0.3
    ]
    digests = {regions_digest(r, [1]) for r in [base, *variants]}
    assert len(digests) == 5
    same = RegionInput(objects=("  cup ",), detector="tiny-random", object_threshold=0.4)
    assert regions_digest(same, [1]) == regions_digest(base, [1])
    assert regions_digest(RegionInput(boxes=("1,2,3,4",)), [1]) != regions_digest(RegionInput(boxes=("1,2,3,5",)), [1])


def _offline_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--object", "  "], "empty --object phrase"),
        (["--object", "cup", "--detector", "nope"], "unknown detector preset 'nope'"),
        (["--object", "cup", "--detector", "tiny-random", "--object-threshold", "1.5"], "must lie in [0, 1)"),
        pytest.param(["--object", "cup " * 300, "--detector", "tiny-random"], "it reads at most 256", marks=pytest.mark.slow),
        pytest.param(["--object", "a " * 40, "--detector", "tiny-random-sam3"], "it reads at most 32", marks=pytest.mark.slow),
        pytest.param(
            ["--object", "cup", "--detector", "tiny-random-sam3", "--object-threshold", "0.9"],
            "no instance of 'cup' scores above 0.9 on any of the 2 frame(s) searched",  # frame 0 (the shot's first) and 3
            marks=pytest.mark.slow,
        ),
        (["--object", "cup", "--detector", "grounding-dino-tiny"], "get it with `hf download IDEA-Research/grounding-dino-tiny`"),
        (["--object", "cup", "--detector", "sam3"], "facebook/sam3 is gated: request access"),
    ],
)
def test_object_errors_are_one_line_exit_2_and_leave_no_output(tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "out" / "t.json"
    args = ["track", str(SAMPLE), *extra, "--mask-frame", "3", "--tracker", "tiny-random", "--stride", "119", "-o", str(out)]
    done = garvid(*args, env=_offline_env(tmp_path))
    errors = [line for line in done.stderr.splitlines() if line.startswith("garvid: error:")]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not out.exists()


def test_the_detector_is_freed_before_sam2_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    from garvid.tracking.track_request import TrackRequest, track_video
    from garvid.tracking.tracker import Sam2Tracker

    alive: list[weakref.ref] = []
    load = Detector.load.__func__

    def tracked_load(cls, *args, **kwargs):
        detector = load(cls, *args, **kwargs)
        alive.append(weakref.ref(detector.model))
        return detector

    build = Sam2Tracker.from_preset.__func__

    def checked_build(cls, *args, **kwargs):
        assert alive and all(ref() is None for ref in alive), "the detector is still in memory"
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(Detector, "load", classmethod(tracked_load))
    monkeypatch.setattr(Sam2Tracker, "from_preset", classmethod(checked_build))
    regions = RegionInput(objects=("cup",), detector="tiny-random")
    tracks = track_video(TrackRequest(SAMPLE, regions, TrackingOptions("tiny-random", stride=119, use_cache=False), device="cpu"))
    assert tracks.object_ids == [1] and len(alive) == 1


def test_the_second_instance_of_a_phrase_stays_second_when_asked_about_alone() -> None:
    from garvid.detection.objects import detect_objects
    from garvid.media.open import open_video

    regions = RegionInput(objects=("cup", "cup"), detector="tiny-random")
    with open_video(SAMPLE) as video:
        prompts = regions.resolve(video.info)
        both, _ = detect_objects(video, prompts, regions, "cpu")
        alone, [detection] = detect_objects(video, prompts.only([2]), regions, "cpu")
    assert both.boxes[1] != both.boxes[2]
    assert alone.boxes == {2: both.boxes[2]} and detection.object_id == 2


def test_chat_takes_objects_by_name_too(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from garvid_cli.main import run

    monkeypatch.setattr("sys.stdin", io.StringIO("what is object 1?\n"))
    code = run(["chat", str(SAMPLE), "--object", "  ", "--model", "tiny-random", "--tracker", "tiny-random", "--device", "cpu"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("garvid: error:")]
    assert code == 2 and len(errors) == 1 and "empty --object phrase" in errors[0]
