"""Overlay rendering: colours on the masks only, frame count and rate, atomic output."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import garvid.output.overlay as render_module
from garvid.errors import VideoError
from garvid.media.source import VideoInfo
from garvid.media.video_file import Video
from garvid.output.overlay import (
    OBJECT_COLOURS,
    draw_overlay,
    object_colour,
    render_overlay,
    render_tracks,
)
from garvid.shots.shots import Shots
from garvid.tracking.tracks import ObjectObservation, Tracks

WIDTH, HEIGHT = 97, 65  # odd on purpose: yuv420p output needs padding


def _rect(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[top:bottom, left:right] = True
    return mask


def _left_of_1(frame: int) -> int:
    return 4 + 2 * frame


def _masks_for(frame: int) -> dict[int, np.ndarray]:
    """Object 1 (20 px wide) slides right two pixels per frame; object 2 stays put."""
    left = _left_of_1(frame)
    return {1: _rect(32, left, 56, left + 20), 2: _rect(32, 66, 56, 90)}


def _blend(background: np.ndarray, object_id: int, alpha: float = 0.5) -> np.ndarray:
    return background * (1 - alpha) + np.asarray(object_colour(object_id)) * alpha


def test_palette_is_distinct_and_cycles() -> None:
    assert len(set(OBJECT_COLOURS)) == len(OBJECT_COLOURS) >= 5
    assert object_colour(1) == OBJECT_COLOURS[0]
    assert object_colour(len(OBJECT_COLOURS) + 2) == OBJECT_COLOURS[1]
    with pytest.raises(ValueError):
        object_colour(0)


def test_draw_overlay_blends_outlines_and_labels() -> None:
    frame = np.full((HEIGHT, WIDTH, 3), 100, np.uint8)
    masks = _masks_for(0)
    out = draw_overlay(frame, masks, alpha=0.5)
    np.testing.assert_array_equal(frame, 100)  # the input is left alone
    interior = out[36:52, 8:20]
    np.testing.assert_allclose(interior, np.broadcast_to(_blend(np.full(3, 100.0), 1), interior.shape), atol=1)
    assert (out[32, 15] == object_colour(1)).all() and (out[55, 15] == object_colour(1)).all()  # contour
    assert (out[40, 4] == object_colour(1)).all() and (out[40, 23] == object_colour(1)).all()
    np.testing.assert_array_equal(out[32:56, 24:66], 100)  # between the objects
    np.testing.assert_array_equal(out[56:], 100)  # below them
    # the labels sit just above each box's top-left corner, filled with the object's colour
    for object_id, left in ((1, 4), (2, 66)):
        label = out[18:32, left : left + 8].reshape(-1, 3)
        assert (label == object_colour(object_id)).all(axis=1).mean() > 0.3
    with pytest.raises(ValueError, match="mask of object 1"):
        draw_overlay(frame, {1: np.ones((10, 10), bool)})
    np.testing.assert_array_equal(draw_overlay(frame, {3: np.zeros((HEIGHT, WIDTH), bool)}), frame)


@pytest.fixture
def grey_clip(make_clip) -> Path:
    return make_clip("grey.mp4", size=(WIDTH, HEIGHT), fps=10, seconds=2, source="color=c=gray", pix_fmt="yuv444p")


def test_render_overlay_puts_colours_on_the_masks_only(grey_clip: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "renders" / "overlay.mp4"
    frames = list(range(0, 20, 2))
    progress: list[tuple[int, int]] = []
    with Video(grey_clip) as video:
        background = video.frames([0])[0, 5, 5].astype(float)
        render_overlay(video, frames, _masks_for, out_path, progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (10, 10) and len(progress) == 10
    assert sorted(p.name for p in out_path.parent.iterdir()) == ["overlay.mp4"]  # no temp file left
    with Video(out_path) as rendered:
        info = rendered.info
        assert (info.width, info.height) == (WIDTH + 1, HEIGHT + 1)  # padded to even
        assert info.num_frames == len(frames)
        assert info.fps == pytest.approx(5.0)  # 10 fps video, every 2nd frame: real speed
        output = rendered.frames(range(len(frames))).astype(float)
    for position, frame in enumerate(frames):
        image = output[position, :HEIGHT, :WIDTH]  # the padding is black
        left = _left_of_1(frame)
        inside_1 = image[37:51, left + 4 : left + 16].reshape(-1, 3).mean(axis=0)
        inside_2 = image[37:51, 70:86].reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(inside_1, _blend(background, 1), atol=6)
        np.testing.assert_allclose(inside_2, _blend(background, 2), atol=6)
        # object 1's blended columns on one row: where this frame's mask is, not a neighbour's
        columns = np.flatnonzero(np.abs(image[44] - _blend(background, 1)).sum(axis=1) < 40)
        assert abs(columns.min() - (left + 1)) <= 1 and abs(columns.max() - (left + 18)) <= 1, (frame, columns)
        for untouched in (image[:14], image[60:], image[37:51, left + 23 : 63]):
            if untouched.size:
                np.testing.assert_allclose(untouched.reshape(-1, 3).mean(axis=0), background, atol=3)
                assert np.abs(untouched - background).max() < 20


def test_explicit_fps(grey_clip: Path, tmp_path: Path) -> None:
    with Video(grey_clip) as video:
        render_overlay(video, [0, 1, 2, 3], _masks_for, tmp_path / "fast.mp4", fps=25)
    with Video(tmp_path / "fast.mp4") as rendered:
        assert (rendered.info.fps, rendered.info.num_frames) == (25.0, 4)


def test_failure_leaves_no_file_and_keeps_the_old_one(grey_clip: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "out" / "overlay.mp4"
    out_path.parent.mkdir()
    out_path.write_bytes(b"previous render")

    def failing_masks(frame: int) -> dict[int, np.ndarray]:
        if frame == 4:
            raise RuntimeError("tracker exploded")
        return _masks_for(frame)

    with Video(grey_clip) as video, pytest.raises(RuntimeError, match="exploded"):
        render_overlay(video, range(10), failing_masks, out_path)
    assert [p.name for p in out_path.parent.iterdir()] == ["overlay.mp4"]
    assert out_path.read_bytes() == b"previous render"


def test_ffmpeg_failure_is_a_video_error_and_leaves_nothing(grey_clip: Path, tmp_path: Path, monkeypatch) -> None:
    encoder_args = render_module._encoder_args

    def broken_args(*args: object) -> list[str]:
        ffmpeg, *rest = encoder_args(*args)
        return [ffmpeg, "-no_such_option", "1", *rest]

    monkeypatch.setattr(render_module, "_encoder_args", broken_args)
    out_path = tmp_path / "overlay.mp4"
    expected = "ffmpeg could not write .*overlay.mp4: .*no_such_option"
    with Video(grey_clip) as video, pytest.raises(VideoError, match=expected):
        render_overlay(video, range(20), _masks_for, out_path)
    assert [p.name for p in tmp_path.iterdir()] == [grey_clip.name]


def test_render_tracks_uses_visible_masks_and_checks_the_video(grey_clip: Path, tmp_path: Path) -> None:
    with Video(grey_clip) as video:
        info = video.info
    frames = [0, 5, 10]
    hidden = np.zeros((HEIGHT, WIDTH), bool)
    masks = {1: [_masks_for(f)[1] for f in frames], 2: [_masks_for(0)[2], hidden, _masks_for(0)[2]]}

    def tracks_of(video_info: VideoInfo) -> Tracks:
        return Tracks(
            video=video_info,
            object_ids=[1, 2],
            frames=frames,
            times=[f / 10 for f in frames],
            observations={i: [ObjectObservation.from_mask(m, 0.9) for m in masks[i]] for i in masks},
            tracker="test",
            stride=5,
            device="cpu",
            prompt_frame=0,
        )

    render_tracks(tracks_of(info), tmp_path / "tracks.mp4")
    with Video(tmp_path / "tracks.mp4") as rendered:
        # every frame the tracks span (stride 5 around frames 0..10: frames 0..14), at the video's rate
        assert (rendered.info.num_frames, rendered.info.fps) == (15, info.fps)
        drawn = rendered.frames(range(15)).astype(float)
    hidden_on = [f for f in range(15) if np.abs(drawn[f, 37:51, 68:86] - drawn[f, 5, 5]).max() < 10]
    assert hidden_on == [3, 4, 5, 6, 7]  # object 2 is hidden on tracked frame 5: held on the frames nearest to it
    with pytest.raises(VideoError, match="not the video these tracks were made from"):
        render_tracks(tracks_of(replace(info, num_frames=99)), tmp_path / "never.mp4")
    assert not (tmp_path / "never.mp4").exists()


def test_render_tracks_never_draws_a_mask_across_a_cut(grey_clip: Path, tmp_path: Path) -> None:
    with Video(grey_clip) as video:
        info, times = video.info, video.timestamps()
    frames = [0, 5, 10]
    still = _masks_for(0)[2]  # object 2, visible on every tracked frame
    tracks = Tracks(info, [2], frames, [float(times[f]) for f in frames], {2: [ObjectObservation.from_mask(still, 0.9)] * 3},
                    "test", 5, "cpu", 0, Shots.from_cuts([3, 4], times, info.duration))  # fmt: skip
    render_tracks(tracks, tmp_path / "cut.mp4")
    with Video(tmp_path / "cut.mp4") as rendered:
        drawn = rendered.frames(range(15)).astype(float)
    bare = [f for f in range(15) if np.abs(drawn[f, 37:51, 68:86] - drawn[f, 5, 5]).max() < 10]
    assert bare == [3]  # frame 3 is a shot of its own: its nearest tracked frames (0 and 5) lie across cuts
