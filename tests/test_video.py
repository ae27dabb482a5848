"""Video reading: metadata, frames by index, timestamps, rotation and every bad-input error."""

from __future__ import annotations

import re
from pathlib import Path

import decord
import ffmpeg
import numpy as np
import pytest
from PIL import Image

import garvid.media.source as source_module
from garvid.errors import VideoError
from garvid.media.open import open_video
from garvid.media.torchcodec_file import TorchcodecVideo
from garvid.media.video_file import Video


def _mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_metadata_of_a_small_clip(make_clip) -> None:
    path = make_clip(size=(128, 64), fps=10, seconds=2)
    with open_video(path) as video:
        info = video.info
    assert (info.num_frames, info.fps, info.width, info.height, info.rotation) == (20, 10.0, 128, 64, 0)
    assert info.duration == pytest.approx(2.0, abs=1e-6)
    assert info.to_json() == {
        "path": str(path), "fps": 10.0, "num_frames": 20, "duration": info.duration, "width": 128, "height": 64,
        "decoder": "decord",
    }


def test_frames_in_any_order_match_ffmpeg(make_clip, ffmpeg_frames) -> None:
    path = make_clip(source="testsrc2", seconds=3, codec=("-c:v", "libx264", "-g", "10"))  # 3 keyframes
    reference = ffmpeg_frames(path)
    indices = [29, 0, 14, 14, 3, 25, 10]
    with Video(path) as video:
        frames = video.frames(indices)
        assert frames.shape == (7, 64, 128, 3) and frames.dtype == np.uint8
        for frame, index in zip(frames, indices):
            assert _mean_error(frame, reference[index]) < 1.0, index
        assert video.frames([]).shape == (0, 64, 128, 3)


def test_dropping_read_ahead_parks_decord_and_keeps_frames_right(make_clip, ffmpeg_frames, monkeypatch) -> None:
    path = make_clip(seconds=3.0)
    expected = ffmpeg_frames(path)
    with Video(path) as video:
        seeks: list[int] = []
        real_seek = video._reader.seek
        monkeypatch.setattr(video._reader, "seek", lambda pos: (seeks.append(pos), real_seek(pos)))
        first = video.frames([5, 6])
        video.drop_read_ahead()
        later = video.frames([20, 7])
    assert seeks == [0]
    np.testing.assert_array_equal(first, expected[[5, 6]])
    np.testing.assert_array_equal(later, expected[[20, 7]])


def test_iter_frames_keeps_the_given_order(make_clip) -> None:
    with Video(make_clip()) as video:
        indices = [5, 1, 19, 2, 2, 0, 7]
        expected = video.frames(indices)
        for batch_size in (1, 3, 8):
            got = list(video.iter_frames(indices, batch_size=batch_size))
            assert [index for index, _ in got] == indices
            np.testing.assert_array_equal(np.stack([frame for _, frame in got]), expected)
        with pytest.raises(ValueError, match="batch_size"):
            next(video.iter_frames([0], batch_size=0))


def test_decodes_each_frame_once_ascending_in_bounded_batches(make_clip, monkeypatch) -> None:
    monkeypatch.setattr(source_module, "DECODE_BATCH", 2)
    with Video(make_clip()) as video:
        calls: list[list[int]] = []
        get_batch = video._reader.get_batch

        def spy(indices: list[int]):
            calls.append(list(indices))
            return get_batch(indices)

        monkeypatch.setattr(video._reader, "get_batch", spy)
        video.frames([15, 3, 3, 9, 12])
    assert calls == [[3, 9], [12, 15]]


def test_timestamps(make_clip) -> None:
    with Video(make_clip(fps=25, seconds=1)) as video:
        times = video.timestamps()
        assert times.dtype == np.float64 and times.shape == (25,)
        np.testing.assert_allclose(times, np.arange(25) / 25, atol=1e-6)
        assert video.time_of(10) == pytest.approx(0.4, abs=1e-6)


def test_clip_with_audio(make_clip, ffmpeg_frames) -> None:
    path = make_clip(audio=True)
    with Video(path) as video:
        assert (video.info.num_frames, video.info.width, video.info.height) == (20, 128, 64)
        last = video.frames([19])[0]
    assert _mean_error(last, ffmpeg_frames(path)[19]) < 1.0


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_turns_frames_and_size(make_clip, ffmpeg_frames, degrees: int) -> None:
    path = make_clip("rotated.mp4", size=(128, 64), seconds=1, rotate=degrees)
    plain = make_clip("plain.mp4", size=(128, 64), seconds=1)
    with Video(path) as video, Video(plain) as unrotated:
        info = video.info
        assert info.rotation in (90, 180, 270)
        assert (info.width, info.height) == ((64, 128) if info.rotation in (90, 270) else (128, 64))
        frames = video.frames([0, 7])
        # rotation is clockwise; np.rot90 turns counter-clockwise
        expected = np.rot90(unrotated.frames([0, 7]), k=-info.rotation // 90, axes=(1, 2))
    assert _mean_error(frames, expected) < 1.5
    reference = ffmpeg_frames(path)
    assert reference.shape[1:3] == frames.shape[1:3]
    assert _mean_error(frames, reference[[0, 7]]) < 1.0


def test_container_without_timestamps_still_gives_the_right_frames(make_clip, ffmpeg_frames) -> None:
    # MPEG-4 part 2 with B-frames in AVI has no per-frame timestamps; decord's seeks then
    # land on wrong frames, so the reader must decode straight through instead.
    path = make_clip("clip.avi", source="testsrc2", codec=("-c:v", "mpeg4", "-bf", "2", "-g", "6"))
    reference = ffmpeg_frames(path)
    with Video(path) as video:
        np.testing.assert_allclose(video.timestamps(), np.arange(20) / 10)
        indices = [12, 3, 19, 7, 7, 0]
        frames = video.frames(indices)
        later = video.frames([15, 16])
    for frame, index in zip([*frames, *later], [*indices, 15, 16]):
        assert _mean_error(frame, reference[index]) < 1.0, index


def _read_all(path: Path, decoder: str = "decord") -> None:
    with {"decord": Video, "torchcodec": TorchcodecVideo}[decoder](path) as video:
        video.frames(range(video.info.num_frames))


def _cut(path: Path, fraction: float) -> Path:
    """A copy of ``path`` with only the first ``fraction`` of its bytes."""
    data = path.read_bytes()
    cut = path.with_name(f"cut-{path.name}")
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


def _bad_file(kind: str, make_clip, tmp_path: Path) -> Path:
    if kind == "empty":
        (tmp_path / "empty.mp4").write_bytes(b"")
        return tmp_path / "empty.mp4"
    if kind == "text":
        (tmp_path / "notes.mp4").write_text("not a video\n" * 20)
        return tmp_path / "notes.mp4"
    if kind in ("png", "png named mp4"):
        path = tmp_path / ("still.png" if kind == "png" else "still.mp4")
        Image.new("RGB", (32, 24), (200, 10, 10)).save(path, format="PNG")
        return path
    if kind == "truncated, index at end":  # the moov box never arrives
        return _cut(make_clip(seconds=4, source="testsrc2"), 0.5)
    if kind == "truncated, index first":  # the index promises frames that are missing
        faststart = ("-c:v", "libx264", "-g", "25", "-movflags", "+faststart")
        return _cut(make_clip(size=(320, 240), fps=25, seconds=4, source="testsrc2", codec=faststart), 0.6)
    if kind == "corrupt middle":  # a fifth of the frame data overwritten with zeros
        path = make_clip(size=(320, 240), fps=25, seconds=4, source="testsrc2")
        data = bytearray(path.read_bytes())
        start, stop = len(data) * 2 // 5, len(data) * 3 // 5
        data[start:stop] = bytes(stop - start)  # same length: the container's offsets stay valid
        path.write_bytes(data)
        return path
    if kind == "audio only":
        path = tmp_path / "sound.m4a"
        ffmpeg.input("sine=duration=1", f="lavfi").output(str(path)).global_args("-v", "error").run()
        return path
    if kind == "missing":
        return tmp_path / "nowhere.mp4"
    assert kind == "directory"
    return tmp_path


BAD_FILES = {
    "empty": "empty (0 bytes)",
    "text": "not a readable video",
    "png": "still image",
    "png named mp4": "still image",
    "truncated, index at end": "not a readable video",
    "truncated, index first": "truncated",
    "corrupt middle": "damaged",
    "audio only": "no video stream",
    "missing": "no such file",
    "directory": "not a regular file",
}


@pytest.mark.parametrize("decoder", ["decord", "torchcodec"])
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_give_one_line_video_error_naming_the_file(make_clip, tmp_path: Path, kind: str, decoder: str) -> None:
    path = _bad_file(kind, make_clip, tmp_path)
    with pytest.raises(VideoError) as caught:
        _read_all(path, decoder)
    message = str(caught.value)
    assert str(path) in message and BAD_FILES[kind] in message
    assert "\n" not in message and "github" not in message and ".cc:" not in message


def test_out_of_range_and_non_integer_indices(make_clip) -> None:
    path = make_clip()
    with Video(path) as video:
        for bad in ([20], [0, -1], [3, 1000]):
            with pytest.raises(VideoError, match=r"out of range; the video has 20 frames \(0\.\.19\)") as caught:
                video.frames(bad)
            assert str(path) in str(caught.value)
        with pytest.raises(VideoError, match="out of range"):
            video.time_of(20)
        with pytest.raises(VideoError, match="out of range"):
            next(video.iter_frames([0, 20]))
        with pytest.raises(TypeError, match="integers"):
            video.frames([1.5])
        assert video.frames([19]).shape == (1, 64, 128, 3)


def test_width_decord_cannot_decode_is_refused_up_front(make_clip) -> None:
    path = make_clip(size=(48, 64))
    with pytest.raises(VideoError, match=re.escape(f"{path}: decord 0.6.0 cannot decode frames 48 pixels wide")):
        Video(path)


def test_closed_video_cannot_decode(make_clip) -> None:
    video = Video(make_clip())
    video.close()
    with pytest.raises(ValueError, match="closed"):
        video.frames([0])
    with pytest.raises(ValueError, match="num_threads"):
        Video(make_clip(), num_threads=-1)


def test_frames_are_numpy_even_under_a_torch_bridge(make_clip) -> None:
    with Video(make_clip(), num_threads=2) as video:
        plain = video.frames([4, 2])
        with decord.bridge.use_torch():
            bridged = video.frames([4, 2])
    assert isinstance(bridged, np.ndarray)
    np.testing.assert_array_equal(bridged, plain)


# file -> width, height, frames, fps, duration (s), from media/README.md
REAL_CLIPS = {
    "cups.mp4": (1280, 720, 300, 29.97, 10.0),
    "dog.mp4": (1280, 720, 289, 29.97, 9.7),
    "juggle.mp4": (1280, 720, 247, 24.0, 10.3),
    "bedroom.mp4": (960, 540, 200, 30.0, 6.7),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REAL_CLIPS))
def test_real_clips(media: Path, name: str) -> None:
    path = media / name
    width, height, num_frames, fps, duration = REAL_CLIPS[name]
    with Video(path) as video:
        info = video.info
        assert (info.width, info.height, info.num_frames, info.rotation) == (width, height, num_frames, 0)
        assert info.fps == pytest.approx(fps, abs=0.01)
        # the README rounds to 0.1 s, and some clips' audio outlasts the video by ~20 ms
        assert info.duration == pytest.approx(duration, abs=0.1)
        times = video.timestamps()
        assert times[0] == 0.0 and (np.diff(times) > 0).all()
        assert times[-1] == pytest.approx((num_frames - 1) / info.fps, abs=1e-3)
        middle = num_frames // 2
        frames = video.frames([0, middle, num_frames - 1])
    assert frames.shape == (3, height, width, 3)
    # the middle frame, decoded by ffmpeg itself
    selected = ffmpeg.input(str(path)).filter("select", f"eq(n,{middle})")
    output = selected.output("pipe:", format="rawvideo", pix_fmt="rgb24", vsync="0", vframes=1)
    raw, _ = output.global_args("-v", "error").run(capture_stdout=True)
    reference = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
    assert _mean_error(frames[1], reference) < 1.0
