"""SAM2 tracking: frame selection, prompts, propagation both ways, memory pruning, JSON, weights.

Uses the ``tiny-random`` tracker (randomly initialised hiera-tiny at 256 px): its masks
mean nothing except on the prompt frame, where SAM2 returns the input mask, but every
code path is the real one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from garvid.errors import CheckpointError, GarvidError, RegionError
from garvid.media.video_file import Video
from garvid.regions.masks import decode_rle, mask_bbox
from garvid.regions.prompts import RegionPrompts
from garvid.tracking import Sam2Tracker, Tracks, auto_stride, tracked_frames
from garvid.tracking.checkpoints import resolve_tracker
from garvid.tracking.feed import FrameFeed
from garvid.tracking.model import build_predictor
from garvid.tracking.sam2_run import TrackingSession, memory_reach

WIDTH, HEIGHT, NUM_FRAMES = 128, 96, 30


def make_clip(path: Path, num_frames: int = NUM_FRAMES) -> Path:
    """A white 24x24 square moving right 2 px a frame over black, 10 fps."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"color=c=black:s={WIDTH}x{HEIGHT}:r=10:d={num_frames / 10}",
         "-f", "lavfi", "-i", "color=c=white:s=24x24:r=10",
         "-filter_complex", "[0][1]overlay=x='10+t*20':y=30:shortest=1",
         "-frames:v", str(num_frames), "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)],
        check=True,
    )  # fmt: skip
    return path


def square(frame: np.ndarray) -> np.ndarray:
    return frame[..., 0] > 128


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "square.mp4")


@pytest.fixture(scope="module")
def tracker() -> Sam2Tracker:
    return Sam2Tracker.from_preset("tiny-random", device="cpu")


@pytest.fixture()
def video(clip: Path):
    with Video(clip) as opened:
        yield opened


# --- frame selection -------------------------------------------------------------------


def test_tracked_frames_is_a_grid_plus_the_prompt_frame() -> None:
    assert tracked_frames(10, 0, 1) == list(range(10))
    assert tracked_frames(10, 0, 4) == [0, 4, 8]
    assert tracked_frames(10, 5, 4) == [0, 4, 5, 8]
    assert tracked_frames(100, 50, 30, start=10, end=80) == [10, 40, 50, 70]
    assert tracked_frames(10, 9, 100) == [0, 9]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((10, 0, 0), GarvidError),
        ((10, 0, 1, 5, 5), GarvidError),
        ((10, 0, 1, 0, 11), GarvidError),
        ((10, 7, 2, 0, 5), RegionError),
    ],
)
def test_tracked_frames_rejects_bad_ranges(args: tuple[int, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        tracked_frames(*args)


def test_auto_stride_tracks_about_twice_the_keyframes_on_cpu_and_denser_on_cuda() -> None:
    assert auto_stride(300, 16, "cpu") == 10  # 30 frames
    assert auto_stride(300, 16, "cuda") == 2  # 150 frames
    assert auto_stride(300, 16, "cuda:1") == 2
    assert auto_stride(20, 16, "cpu") == 1
    assert auto_stride(9000, 8, "cpu") == 563
    with pytest.raises(GarvidError):
        auto_stride(300, 0, "cpu")
    with pytest.raises(GarvidError):
        auto_stride(300, 4, "mps")


# --- tracking --------------------------------------------------------------------------


def test_mask_prompt_comes_back_on_the_prompt_frame_with_strided_frames(tracker: Sam2Tracker, video: Video) -> None:
    first = video.frames([0])[0]
    prompts = RegionPrompts(frame=0, masks={1: square(first)})
    frames = tracked_frames(NUM_FRAMES, 0, 7)
    calls: list[tuple[int, int]] = []
    tracks = tracker.track(video, prompts, frames, progress=lambda done, total: calls.append((done, total)))

    assert tracks.frames == [0, 7, 14, 21, 28] and tracks.stride == 7 and tracks.object_ids == [1]
    assert tracks.times == pytest.approx([0.0, 0.7, 1.4, 2.1, 2.8])
    assert calls[0] == (0, 5) and calls[-1] == (5, 5) and len(calls) == 6
    observation = tracks.observation(1, 0)
    assert observation.bbox == mask_bbox(square(first)) and observation.area == square(first).sum()
    assert (tracks.mask(1, 0) == square(first)).all()
    assert observation.score > 0.99  # SAM2 scores a given mask as certainly present
    for obs in tracks.observations[1]:
        assert 0.0 <= obs.score <= 1.0 and obs.rle["size"] == [HEIGHT, WIDTH]
        assert obs.visible == (obs.area > 0)
    assert tracks.mask(1, 28).shape == (HEIGHT, WIDTH)
    with pytest.raises(KeyError):
        tracks.mask(1, 3)


def test_middle_prompt_frame_is_tracked_backward_and_forward(tracker: Sam2Tracker, video: Video) -> None:
    middle = 15
    prompts = RegionPrompts(frame=middle, masks={2: square(video.frames([middle])[0])})
    tracks = tracker.track(video, prompts, tracked_frames(NUM_FRAMES, middle, 5))
    assert tracks.frames == [0, 5, 10, 15, 20, 25] and tracks.prompt_frame == middle
    assert len(tracks.observations[2]) == 6
    assert tracks.observation(2, middle).bbox == mask_bbox(square(video.frames([middle])[0]))
    # every tracked frame, before and after the prompt frame, has a real mask entry
    assert all(decode_rle(obs.rle).shape == (HEIGHT, WIDTH) for obs in tracks.observations[2])


def test_box_and_point_prompts_become_masks_next_to_a_mask_prompt(tracker: Sam2Tracker, video: Video) -> None:
    first = video.frames([0])[0]
    prompts = RegionPrompts(
        frame=0,
        masks={1: square(first)},
        boxes={2: (60.0, 10.0, 120.0, 80.0)},
        points={3: [(100.0, 70.0), (90.0, 60.0)]},
    )
    tracks = tracker.track(video, prompts, [0, 3, 6])
    assert tracks.object_ids == [1, 2, 3]
    for object_id in (2, 3):
        # a random network draws arbitrary shapes, but SAM2's prompt encoder gives a mask
        assert tracks.observation(object_id, 0).area > 0
        assert all(0.0 <= obs.score <= 1.0 for obs in tracks.observations[object_id])
    assert tracks.observation(1, 0).bbox == mask_bbox(square(first))


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        (RegionPrompts(frame=0), "no objects"),
        (RegionPrompts(frame=0, boxes={1: (10, 10, 200, 50)}), "box"),
        (RegionPrompts(frame=0, boxes={1: (40, 10, 40, 50)}), "box"),
        (RegionPrompts(frame=0, points={1: [(5, 96)]}), "outside"),
        (RegionPrompts(frame=0, points={1: []}), "empty"),
        (RegionPrompts(frame=0, masks={1: np.ones((10, 10), bool)}), "10x10"),
        (RegionPrompts(frame=0, masks={1: np.zeros((HEIGHT, WIDTH), bool)}), "empty"),
        (RegionPrompts(frame=0, masks={1: np.ones((HEIGHT, WIDTH), bool)}, boxes={1: (1, 1, 9, 9)}), "more than one"),
        (RegionPrompts(frame=2, boxes={1: (1, 1, 9, 9)}), "not among the tracked frames"),
    ],
)
def test_bad_prompts_are_region_errors(
    tracker: Sam2Tracker, video: Video, prompts: RegionPrompts, message: str
) -> None:
    with pytest.raises(RegionError, match=message):
        tracker.track(video, prompts, [0, 5])


# --- JSON ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracks(tracker: Sam2Tracker, clip: Path) -> Tracks:
    with Video(clip) as video:
        first = video.frames([0])[0]
        prompts = RegionPrompts(frame=0, masks={1: square(first)}, boxes={4: (60, 10, 120, 80)})
        return tracker.track(video, prompts, [0, 10, 20])


def test_json_round_trip(tracks: Tracks) -> None:
    data = json.loads(json.dumps(tracks.to_json()))
    assert set(data) == {"video", "tracker", "objects"}
    assert data["tracker"] == {"name": "tiny-random", "stride": 10, "device": "cpu", "prompt_frame": 0}
    assert data["video"]["width"] == WIDTH and data["video"]["num_frames"] == NUM_FRAMES
    assert [o["id"] for o in data["objects"]] == [1, 4]
    entry = data["objects"][0]["frames"][0]
    assert set(entry) == {"frame", "time", "bbox", "area", "score", "mask"}
    assert entry["frame"] == 0 and isinstance(entry["mask"]["counts"], str)
    again = Tracks.from_json(data)
    assert again.to_json() == data
    assert again.frames == tracks.frames and again.object_ids == tracks.object_ids
    assert (again.mask(4, 20) == tracks.mask(4, 20)).all()


def _broken(data: dict, path: list, value: object) -> dict:
    data = json.loads(json.dumps(data))
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["objects"], [], "objects is empty"),
        (["tracker", "stride"], "10", "tracker.stride must be an integer"),
        (["objects", 0, "frames", 1, "score"], 1.5, r"score must lie in \[0, 1\]"),
        (["objects", 0, "frames", 1, "bbox"], [0, 0, 500, 5], "outside"),
        (["objects", 0, "frames", 1, "mask", "size"], [10, 10], "mask.size"),
        (["objects", 1, "frames", 1, "frame"], 11, "differ"),
        (["objects", 1, "id"], 1, "repeats"),
        (["objects", 0, "frames", 0, "area"], KeyError, "lacks 'area'"),
        (["tracker", "prompt_frame"], 5, "prompt_frame"),
        (["video"], KeyError, "lacks 'video'"),
    ],
)
def test_from_json_rejects_malformed_tracks(tracks: Tracks, path: list, value: object, message: str) -> None:
    with pytest.raises(GarvidError, match=message):
        Tracks.from_json(_broken(tracks.to_json(), path, value))


# --- memory: lazy frames and pruning ---------------------------------------------------


def test_feed_prepares_frames_like_sam2_and_holds_few(video: Video, tmp_path: Path) -> None:
    from sam2.utils.misc import _load_img_as_tensor

    frames = list(range(0, NUM_FRAMES, 2))
    feed = FrameFeed(video, frames, 256, torch.device("cpu"), batch_size=3)
    assert len(feed) == len(frames)
    png = tmp_path / "frame.png"
    Image.fromarray(video.frames([frames[4]])[0]).save(png)
    reference, height, width = _load_img_as_tensor(str(png), 256)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert (height, width) == (HEIGHT, WIDTH)
    assert torch.allclose(feed[4], ((reference.float() - mean) / std), atol=1e-5)
    for index in [*range(len(frames)), *reversed(range(len(frames)))]:
        assert feed[index].shape == (3, 256, 256)
        assert len(feed._cache) <= 6


SMALL_MEMORY = [
    "++model.num_maskmem=4",
    "++model.memory_temporal_stride_for_eval=2",
    "++model.max_obj_ptrs_in_encoder=4",
]


@pytest.mark.parametrize(
    ("overrides", "num_frames", "middle", "reach"),
    [
        pytest.param(SMALL_MEMORY, 24, 10, 5, id="short-memory"),
        pytest.param([], 64, 20, 15, id="sam2.1-memory", marks=pytest.mark.slow),
    ],
)
def test_pruning_gives_sam2s_own_results_with_bounded_state(
    tmp_path: Path, overrides: list[str], num_frames: int, middle: int, reach: int
) -> None:
    """Our pruned propagation vs sam2's propagate_in_video (which keeps everything).

    A short memory (4 mask memories on a stride-2 grid, 4 object pointers) makes pruning
    bite within 24 frames; SAM2.1's own (7 memories, 16 pointers) needs a longer clip. A
    prompt frame in the middle exercises both directions.
    """
    spec = replace(resolve_tracker("tiny-random"), image_size=128)  # 3x faster than 256
    predictor = build_predictor(spec, torch.device("cpu"), overrides=overrides)
    frames = list(range(num_frames))
    assert memory_reach(predictor, num_frames) == reach
    with Video(make_clip(tmp_path / "clip.mp4", num_frames)) as video:
        prompt_mask = square(video.frames([middle])[0])
        prompts = RegionPrompts(frame=middle, masks={1: prompt_mask}, boxes={2: (60, 10, 120, 80)})

        reference_session = TrackingSession(predictor, video, frames)
        reference_session.add_prompts(prompts)
        reference = {}
        for reverse in (False, True):
            state = reference_session.state
            for index, _, logits in predictor.propagate_in_video(state, start_frame_idx=middle, reverse=reverse):
                reference[index] = logits[:, 0] > 0
        stored_by_sam2 = len(reference_session.state["output_dict_per_obj"][0]["non_cond_frame_outputs"])

        session = TrackingSession(predictor, video, frames)
        session.add_prompts(prompts)
        ours, most_stored = {}, 0
        for index, masks, _ in session.propagate():
            ours[index] = masks
            for obj_idx in (0, 1):
                stored = session.state["output_dict_per_obj"][obj_idx]["non_cond_frame_outputs"]
                most_stored = max(most_stored, len(stored))
                assert len(session.state["frames_tracked_per_obj"][obj_idx]) <= len(stored) + 1

    assert sorted(ours) == frames
    assert all(torch.equal(ours[i], reference[i]) for i in frames)
    assert stored_by_sam2 == num_frames - 1
    assert most_stored <= 2 * reach  # the reach behind, plus what the backward pass needs


# --- weights ---------------------------------------------------------------------------


def test_tiny_random_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    spec = resolve_tracker("tiny-random")
    first = build_predictor(spec, torch.device("cpu")).state_dict()
    second = build_predictor(spec, torch.device("cpu")).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert first["image_encoder.trunk.patch_embed.proj.weight"].abs().sum() > 0


def test_missing_checkpoint_says_how_to_get_it(tmp_path: Path) -> None:
    code = (
        "from garvid.tracking.checkpoints import resolve_tracker\n"
        "try:\n    resolve_tracker('sam2.1-tiny')\n"
        "except Exception as error:\n    print(type(error).__name__, error)\n"
    )
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    env.pop("HF_HUB_CACHE", None)
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert output.startswith("CheckpointError ")
    assert "hf download facebook/sam2.1-hiera-tiny sam2.1_hiera_tiny.pt" in output
    assert "huggingface-cli download facebook/sam2.1-hiera-tiny sam2.1_hiera_tiny.pt" in output
    assert "--tracker" in output and len(output.strip().splitlines()) == 1


def test_preset_checkpoint_comes_from_the_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # tiny-random has hiera-tiny's tensors (only the input size differs), so it can stand
    # in for the real sam2.1-tiny checkpoint in a hand-made cache
    weights = build_predictor(resolve_tracker("tiny-random"), torch.device("cpu")).state_dict()
    repo = tmp_path / "hub" / "models--facebook--sam2.1-hiera-tiny"
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.save({"model": weights}, repo / "snapshots" / commit / "sam2.1_hiera_tiny.pt")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    tracker = Sam2Tracker.from_preset("sam2.1-tiny", device="cpu")
    assert tracker.name == "sam2.1-tiny" and tracker.predictor.image_size == 1024
    assert all(torch.equal(v, weights[k]) for k, v in tracker.predictor.state_dict().items())


def test_local_checkpoint_loads_strictly(tmp_path: Path) -> None:
    weights = build_predictor(resolve_tracker("tiny-random"), torch.device("cpu")).state_dict()
    good = tmp_path / "finetuned.pt"
    torch.save({"model": weights}, good)
    loaded = Sam2Tracker.from_preset(good, device="cpu", config="tiny-random")
    assert loaded.name == "finetuned.pt"
    assert all(torch.equal(v, weights[k]) for k, v in loaded.predictor.state_dict().items())

    partial = tmp_path / "partial.pt"
    torch.save({"model": {k: v for k, v in weights.items() if not k.startswith("memory_encoder.")}}, partial)
    with pytest.raises(CheckpointError, match="does not fit SAM2 config .* missing"):
        Sam2Tracker.from_preset(partial, device="cpu", config="tiny-random")
    with pytest.raises(CheckpointError, match="cannot tell which SAM2 model"):
        Sam2Tracker.from_preset(good, device="cpu")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        Sam2Tracker.from_preset(tmp_path / "junk.pt", device="cpu", config="tiny-random")
    with pytest.raises(CheckpointError, match="not found"):
        Sam2Tracker.from_preset(tmp_path / "absent.pt", device="cpu")


def test_device_names_are_checked() -> None:
    with pytest.raises(GarvidError, match="device must be auto, cpu, cuda or cuda:N"):
        Sam2Tracker.from_preset("tiny-random", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(GarvidError, match="CUDA is not available"):
            Sam2Tracker.from_preset("tiny-random", device="cuda")


def test_importing_the_package_loads_neither_torch_nor_sam2() -> None:
    code = "import sys, garvid.tracking; print(sorted({'torch', 'sam2', 'hydra'} & set(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


# --- real footage ----------------------------------------------------------------------


@pytest.mark.slow
def test_cups_four_objects_every_30th_frame(media: Path, tracker: Sam2Tracker) -> None:
    labels = np.array(Image.open(media / "cups_first_frame.png"))
    masks = {value: labels == value for value in (1, 2, 3, 4)}
    with Video(media / "cups.mp4") as video:
        frames = tracked_frames(video.info.num_frames, 0, 30)
        tracks = tracker.track(video, RegionPrompts(frame=0, masks=masks), frames)
    assert tracks.object_ids == [1, 2, 3, 4] and len(tracks.frames) == 10
    assert all(len(tracks.observations[i]) == 10 for i in tracks.object_ids)
    for object_id, mask in masks.items():
        assert tracks.observation(object_id, 0).bbox == mask_bbox(mask)
        assert all(0.0 <= obs.score <= 1.0 for obs in tracks.observations[object_id])
    assert Tracks.from_json(json.loads(json.dumps(tracks.to_json()))).frames == list(range(0, 300, 30))
