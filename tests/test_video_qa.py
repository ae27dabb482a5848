"""The ask/describe pipeline with the tiny GAR and a scripted tracker (masks chosen by the test).

A scripted tracker stands in for SAM2 so each test decides where every object is on
every frame; everything else (keyframes, mask maps, encoding, replay, prompt, generation)
is the real code path with the tiny-random GAR checkpoint.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from garvid.errors import RegionError
from garvid.gar.loading import load_gar
from garvid.gar.tokenizer import CROP_TOKEN_IDS, IMAGE_TOKEN_ID
from garvid.options import AnswerOptions, GenerationOptions, KeyframeOptions, ModelOptions, TrackingOptions
from garvid.output.formats import answer_cues
from garvid.qa.answers import NOT_VISIBLE_TEXT
from garvid.qa.reporting import Reporter
from garvid.qa.video_request import VideoRequest
from garvid.qa.context import AnswerContext
from garvid.qa.video_answering import answer_video
from garvid.regions.input import RegionInput
from garvid.tracking import ObjectObservation, Tracks

SIZE = (160, 96)
FPS = 10
FRAMES = 40  # 4 s

Placement = Callable[[int, int], tuple[int, int] | None]  # (object id, frame) -> top-left corner or None


def _box_mask(corner: tuple[int, int] | None, side: int = 24) -> np.ndarray:
    mask = np.zeros((SIZE[1], SIZE[0]), dtype=bool)
    if corner is not None:
        x, y = corner
        mask[y : y + side, x : x + side] = True
    return mask


def steady(object_id: int, frame: int) -> tuple[int, int] | None:
    return (10 + 60 * (object_id - 1), 20)


class ScriptedTracker:
    """A tracker whose masks come from ``placement``; records the frames it was asked to track."""

    name = "scripted"
    device_type = "cpu"

    def __init__(self, placement: Placement = steady):
        self.placement = placement
        self.calls: list[list[int]] = []

    def track(self, video, prompts, frames, progress=None, **_):
        self.calls.append(list(frames))
        times = video.timestamps()
        observations = {
            object_id: [ObjectObservation.from_mask(_box_mask(self.placement(object_id, f)), 1.0) for f in frames]
            for object_id in prompts.object_ids
        }
        return Tracks(video.info, prompts.object_ids, list(frames), [float(times[f]) for f in frames], observations, self.name, 1, "cpu", prompts.frame)


class Recorder(Reporter):
    def __init__(self):
        self.warnings: list[str] = []
        self.text: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def token(self, text: str) -> None:
        self.text.append(text)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Path]:
    """A 4 s 160x96 test pattern at 10 fps and a palette mask of two squares (objects 1 and 2)."""
    folder = tmp_path_factory.mktemp("clip")
    video = folder / "clip.mp4"
    source = f"testsrc=size={SIZE[0]}x{SIZE[1]}:rate={FPS}:duration={FRAMES / FPS}"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", source, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
    labels = np.zeros((SIZE[1], SIZE[0]), dtype=np.uint8)
    labels[_box_mask(steady(1, 0))] = 1
    labels[_box_mask(steady(2, 0))] = 2
    mask = folder / "mask.png"
    image = Image.fromarray(labels, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    image.save(mask)
    return video, mask


@pytest.fixture(scope="module")
def model():
    return load_gar("tiny-random", device="cpu")


class EmbedSpy:
    """Wraps ``model.embed_inputs`` to keep what each prompt received."""

    def __init__(self, model):
        self.model, self.original = model, model.embed_inputs
        self.calls: list[tuple[list[int], torch.Tensor, dict[int, torch.Tensor]]] = []

    def __enter__(self) -> EmbedSpy:
        def spy(input_ids, image_features, crop_features):
            self.calls.append((input_ids[0].tolist(), image_features.clone(), {k: v.clone() for k, v in crop_features.items()}))
            return self.original(input_ids, image_features, crop_features)

        self.model.embed_inputs = spy
        return self

    def __exit__(self, *exc) -> None:
        del self.model.embed_inputs


def _request(
    clip, question: str | None = "what does object 2 do to object 1?", generation=GenerationOptions(max_new_tokens=3), **keyframes
) -> VideoRequest:
    video, mask = clip
    options = AnswerOptions(
        model=ModelOptions("tiny-random", device="cpu"),
        tracking=TrackingOptions(use_cache=False),
        keyframes=KeyframeOptions(**{"frames": 4, **keyframes}),
        generation=generation,
    )
    return VideoRequest(video=video, regions=RegionInput(masks=(mask,)), question=question, options=options)


def _runs(ids: list[int], token: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i, t in enumerate(ids):
        if t == token:
            if runs and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
    return runs


def test_prompt_layout_keyframes_and_json(clip, model):
    tracker = ScriptedTracker()
    with EmbedSpy(model) as spy:
        result = answer_video(_request(clip), AnswerContext(tracker=tracker, model=model))
    [(ids, features, crops)] = spy.calls
    keyframes = result.answers[0].keyframes
    assert len(keyframes) == 4 and set(keyframes) <= set(tracker.calls[0])
    assert len(tracker.calls[0]) <= 2 * 4 + 1  # CPU plan: about two tracked frames per keyframe, plus the prompt frame
    images = _runs(ids, IMAGE_TOKEN_ID)
    assert len(images) == 4 and all(e - s == 256 for s, e in images)
    assert features.shape[:2] == (4, 256)  # one single 448 tile per keyframe
    for slot in (0, 1):
        runs = _runs(ids, CROP_TOKEN_IDS[slot])
        assert len(runs) == 4 and crops[slot].shape[:2] == (4, 256)  # one 256-token replay per keyframe
        # each keyframe's crop run follows its own image and precedes the next one
        assert all(images[k][1] < runs[k][0] < (images[k + 1][0] if k < 3 else len(ids)) for k in range(4))
    data = result.to_json()
    assert data["prompt_question"] == "what does <Prompt1> do to <Prompt0>?"
    assert data["protocol"] == {"name": "temporal", "version": 1, "mark_shots": True}
    assert [k["frame"] for k in data["keyframes"]] == keyframes
    assert [o["id"] for o in data["objects"]] == [1, 2]
    assert all(e["visible"] and e["bbox"] is not None for o in data["objects"] for e in o["keyframes"])
    assert set(data["timings"]) == {"decode", "track", "load", "encode", "generate", "total"}
    assert data["video"]["num_frames"] == FRAMES and data["frames_per_window"] == 4
    assert isinstance(data["answer"], str) and data["prompt_tokens"] == len(ids)


def test_masks_of_frame_t_reach_only_frame_t(clip, model):
    baseline = ScriptedTracker()
    with EmbedSpy(model) as spy:
        result = answer_video(_request(clip), AnswerContext(tracker=baseline, model=model))
    keyframes = result.answers[0].keyframes
    moved_frame = keyframes[2]

    def moved(object_id: int, frame: int):
        return (100, 60) if object_id == 1 and frame == moved_frame else steady(object_id, frame)

    with EmbedSpy(model) as moved_spy:
        answer_video(_request(clip), AnswerContext(tracker=ScriptedTracker(moved), model=model))
    (_, features_a, crops_a), (_, features_b, crops_b) = spy.calls[0], moved_spy.calls[0]
    changed = [not torch.equal(crops_a[0][k], crops_b[0][k]) for k in range(4)]
    assert changed == [False, False, True, False]  # object 1's replay changes on the moved keyframe only
    # object 2 did not move: its replays from the other keyframes are untouched (frame t's whole
    # feature map changes with its mask map, through the vision tower's attention)
    assert all(torch.equal(crops_a[1][k], crops_b[1][k]) for k in (0, 1, 3))
    assert [not torch.equal(features_a[k], features_b[k]) for k in range(4)] == [False, False, True, False]  # mask map of that frame


def test_objects_not_visible_are_said_so_not_replayed(clip, model, tmp_path):
    def hidden_late(object_id: int, frame: int):
        return None if object_id == 2 and frame >= 20 else steady(object_id, frame)

    with EmbedSpy(model) as spy:
        result = answer_video(_request(clip), AnswerContext(tracker=ScriptedTracker(hidden_late), model=model))
    ids, _, crops = spy.calls[0]
    keyframes = result.answers[0].keyframes
    shown = sum(f < 20 for f in keyframes)
    assert 0 < shown < 4
    assert len(_runs(ids, CROP_TOKEN_IDS[1])) == shown and crops[1].shape[0] == shown
    assert len(_runs(ids, CROP_TOKEN_IDS[0])) == 4
    text = model_tokenizer_text(ids)
    assert text.count("<Prompt1> is not visible in this frame.") == 4 - shown
    visible = [e["visible"] for e in result.to_json()["objects"][1]["keyframes"]]
    assert visible == [f < 20 for f in keyframes]


def model_tokenizer_text(ids: list[int]) -> str:
    from garvid.gar.tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer().decode(ids)


def test_visible_strategy_keeps_to_frames_with_the_objects(clip, model):
    def late(object_id: int, frame: int):
        return steady(object_id, frame) if frame >= 24 or frame == 0 else None

    result = answer_video(_request(clip, strategy="visible"), AnswerContext(tracker=ScriptedTracker(late), model=model))
    assert all(f >= 24 or f == 0 for f in result.answers[0].keyframes)


def test_object_never_visible_is_an_error(clip, model):
    def gone(object_id: int, frame: int):
        return None if object_id == 2 and frame > 0 else steady(object_id, frame)

    with pytest.raises(RegionError, match="object 2 is never visible"):
        answer_video(_request(clip, start=1.0), AnswerContext(tracker=ScriptedTracker(gone), model=model))


def test_undefined_object_fails_before_tracking(clip, model):
    tracker = ScriptedTracker()
    with pytest.raises(RegionError, match="object 3"):
        answer_video(_request(clip, "where is object 3?"), AnswerContext(tracker=tracker, model=model))
    assert tracker.calls == []


def test_context_budget_reduces_keyframes_and_warns(clip, model, tmp_path):
    from garvid.qa.protocol import load_protocol

    source = Path(load_protocol().source).read_text()
    small = tmp_path / "small.toml"
    small.write_text(source.replace("context_tokens = 32768", "context_tokens = 2600"))
    recorder = Recorder()
    result = answer_video(_request(clip, frames=8, protocol=str(small)), AnswerContext(recorder, tracker=ScriptedTracker(), model=model))
    assert result.frames_per_window < 8 and len(result.answers[0].keyframes) == result.frames_per_window
    assert any("would not fit" in w and f"using {result.frames_per_window}" in w for w in recorder.warnings)


def test_windows_give_one_timed_answer_each(clip, model):
    result = answer_video(_request(clip, window=1.0, frames=2), AnswerContext(tracker=ScriptedTracker(), model=model))
    assert [(a.start, a.end) for a in result.answers] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    assert all(a.start * FPS <= f < a.end * FPS for a in result.answers for f in a.keyframes)
    cues = answer_cues(result)
    assert len(cues) == 4 and cues[1].start == 1.0


def test_describe_each_object_per_window(clip, model):
    def second_leaves(object_id: int, frame: int):
        return None if object_id == 2 and frame >= 20 else steady(object_id, frame)

    recorder = Recorder()
    with EmbedSpy(model) as spy:
        result = answer_video(_request(clip, None, window=2.0, frames=2), AnswerContext(recorder, tracker=ScriptedTracker(second_leaves), model=model))
    assert [(a.start, a.object_id) for a in result.answers] == [(0.0, 1), (0.0, 2), (2.0, 1), (2.0, 2)]
    assert result.answers[3].text == NOT_VISIBLE_TEXT  # object 2 is gone in the second window: no generation
    assert len(spy.calls) == 3
    for ids, _, crops in spy.calls:
        assert set(crops) == {1}  # the described object sits in slot 1, like GAR's description prompt
    data = result.to_json()
    assert [d["start"] for d in data["descriptions"]] == [0.0, 2.0]
    assert [o["id"] for o in data["descriptions"][0]["objects"]] == [1, 2]
    assert "Object 2: (not visible)" in answer_cues(result)[1].text


def test_same_request_is_deterministic(clip, model):
    first = answer_video(_request(clip, generation=GenerationOptions(max_new_tokens=5)), AnswerContext(tracker=ScriptedTracker(), model=model))
    second = answer_video(_request(clip, generation=GenerationOptions(max_new_tokens=5)), AnswerContext(tracker=ScriptedTracker(), model=model))
    assert first.answers[0].token_ids == second.answers[0].token_ids and len(first.answers[0].token_ids) > 0
