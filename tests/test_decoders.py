"""The two video decoders, decord and torchcodec: same frames, times and info on every kind of
clip garvid meets, and how one is chosen (``--decoder``, ``auto`` without decord)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from garvid.errors import OptionError, VideoError
from garvid.media.open import open_video, resolve_decoder
from garvid.media.torchcodec_file import TorchcodecVideo
from garvid.media.video_file import Video
from garvid.options import TrackingOptions
from garvid.tracking.cache import content_digest, video_key


def _both(path: Path, indices: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames at ``indices`` (default: all, backwards) from each decoder, after checking their info and times agree."""
    with Video(path) as decord_video, TorchcodecVideo(path) as torchcodec_video:
        assert torchcodec_video.info == decord_video.info
        assert (decord_video.info.decoder, torchcodec_video.info.decoder) == ("decord", "torchcodec")
        np.testing.assert_array_equal(torchcodec_video.timestamps(), decord_video.timestamps())
        wanted = indices if indices is not None else list(range(decord_video.info.num_frames))[::-1]
        return decord_video.frames(wanted), torchcodec_video.frames(wanted)


def _vfr_clip(path: Path) -> Path:
    """3 s at 30 fps whose second second runs at a third of the rate (frames held 3x longer)."""
    speed = "setpts='if(lt(N,30),N,if(lt(N,60),30+(N-30)*3,120+(N-60)))/(30*TB)'"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=128x64:rate=30:duration=3",
         "-vf", speed, "-fps_mode", "vfr", "-c:v", "libx264", "-g", "15", str(path)],
        check=True,
    )
    return path


@pytest.mark.parametrize(
    "kind",
    ["plain, 3 keyframes", "odd size 127x65", "rotated 90", "rotated 180", "rotated 270", "with audio", "yuvj420p"],
)
def test_decoders_give_the_same_frames_and_times(make_clip, kind: str) -> None:
    clip = {
        "plain, 3 keyframes": lambda: make_clip(source="testsrc2", seconds=3, codec=("-c:v", "libx264", "-g", "10")),
        "odd size 127x65": lambda: make_clip(size=(127, 65), pix_fmt="yuv444p", source="testsrc2"),
        "rotated 90": lambda: make_clip(source="testsrc2", rotate=90),
        "rotated 180": lambda: make_clip(source="testsrc2", rotate=180),
        "rotated 270": lambda: make_clip(source="testsrc2", rotate=270),
        "with audio": lambda: make_clip(source="testsrc2", audio=True),
        "yuvj420p": lambda: make_clip(source="testsrc2", pix_fmt="yuvj420p"),
    }[kind]()
    decord_frames, torchcodec_frames = _both(clip)
    np.testing.assert_array_equal(torchcodec_frames, decord_frames)


def test_variable_frame_rate_times_and_frames_agree(tmp_path: Path) -> None:
    clip = _vfr_clip(tmp_path / "vfr.mp4")
    with TorchcodecVideo(clip) as video:
        gaps = np.diff(video.timestamps())
    np.testing.assert_allclose(np.unique(np.round(gaps, 4)), [0.0333, 0.1])
    decord_frames, torchcodec_frames = _both(clip)
    np.testing.assert_array_equal(torchcodec_frames, decord_frames)
    every_frame = ["ffmpeg", "-v", "error", "-i", str(clip), "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    reference = np.frombuffer(subprocess.run(every_frame, capture_output=True, check=True).stdout, np.uint8)
    np.testing.assert_array_equal(torchcodec_frames[::-1], reference.reshape(-1, 64, 128, 3))


def test_ten_bit_video_matches_ffmpeg_and_keys_its_frames(make_clip, ffmpeg_frames) -> None:
    # 10-bit is the one input where the decoders' RGB differs: torchcodec converts as the
    # ffmpeg command line does, decord (its own older FFmpeg) differently; so torchcodec's
    # frames get their own content key, and 8-bit video keeps one key for both.
    clip = make_clip(source="testsrc2", pix_fmt="yuv420p10le")
    decord_frames, torchcodec_frames = _both(clip)
    np.testing.assert_array_equal(torchcodec_frames[::-1], ffmpeg_frames(clip))
    assert np.abs(decord_frames.astype(np.int16) - torchcodec_frames).mean() > 1
    digest = content_digest(clip)
    with Video(clip) as decord_video, TorchcodecVideo(clip) as torchcodec_video:
        assert (video_key(decord_video), video_key(torchcodec_video)) == (digest, f"{digest}+torchcodec")


def test_the_tracking_cache_keys_8_bit_video_by_content_alone(make_clip) -> None:
    clip = make_clip(source="testsrc2")
    with Video(clip) as decord_video, TorchcodecVideo(clip) as torchcodec_video:
        assert video_key(decord_video) == video_key(torchcodec_video) == content_digest(clip)


def test_batches_read_forward_without_seeking_back(make_clip, monkeypatch) -> None:
    import garvid.media.source as source_module

    monkeypatch.setattr(source_module, "DECODE_BATCH", 2)
    with TorchcodecVideo(make_clip(seconds=3)) as video:
        calls: list[list[int]] = []
        real = video._decoder.get_frames_at
        monkeypatch.setattr(video._decoder, "get_frames_at", lambda indices: (calls.append(list(indices)), real(indices))[1])
        video.frames([25, 3, 3, 9, 12])
    assert calls == [[3, 9], [12, 25]]


@pytest.mark.parametrize("rotate", [None, 90])
def test_both_decoders_read_small_and_scan_every_frame_in_order(make_clip, rotate: int | None) -> None:
    # cut detection's path: open_video(max_width=...) then one forward pass (scan; OpenCV's
    # reader under decord's Video), the same pictures as the full frames scaled down
    clip = make_clip(source="testsrc2", size=(160, 96), seconds=3, rotate=rotate, codec=("-c:v", "libx264", "-g", "12"))
    with Video(clip) as video:
        full = video.frames(range(video.info.num_frames))
    small_size = (40, 24) if rotate is None else (40, 66)
    reference = np.stack([np.asarray(Image.fromarray(frame).resize(small_size, Image.Resampling.BOX)) for frame in full])
    for decoder in ("decord", "torchcodec"):
        with open_video(clip, decoder=decoder, max_width=40) as small:
            assert (small.info.width, small.info.height) == small_size
            assert small.frames([7]).shape == (1, small_size[1], small_size[0], 3)
            scanned = np.stack([frame.copy() for frame in small.scan()])
        assert scanned.shape == reference.shape, decoder
        errors = np.abs(scanned[:, None].astype(np.int16) - reference[None]).mean(axis=(2, 3, 4))
        # each scanned frame is closest to the same frame of the video, and close to it
        np.testing.assert_array_equal(errors.argmin(axis=1), np.arange(len(reference)))
        assert errors.diagonal().max() < 8, decoder


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cups.mp4", "dog.mp4", "juggle.mp4", "bedroom.mp4"])
def test_real_clips_decode_alike(media: Path, name: str) -> None:
    with Video(media / name) as video:
        count = video.info.num_frames
    indices = sorted({0, 1, count // 3, count // 2, count // 2 + 1, count - 2, count - 1}, reverse=True)
    decord_frames, torchcodec_frames = _both(media / name, indices)
    np.testing.assert_array_equal(torchcodec_frames, decord_frames)


def test_container_without_frame_timestamps_is_refused_by_torchcodec(make_clip) -> None:
    path = make_clip("clip.avi", source="testsrc2", codec=("-c:v", "mpeg4", "-bf", "2", "-g", "6"))
    with pytest.raises(VideoError, match=r"no timestamp.*--decoder decord"):
        TorchcodecVideo(path)


def test_auto_takes_torchcodec_when_decord_cannot_be_imported(make_clip, monkeypatch) -> None:
    assert resolve_decoder("auto") == "decord"
    monkeypatch.setitem(sys.modules, "decord", None)  # import decord now raises ImportError
    assert resolve_decoder("auto") == "torchcodec"
    with open_video(make_clip()) as video:
        assert isinstance(video, TorchcodecVideo) and video.info.decoder == "torchcodec"
    with pytest.raises(VideoError, match=r"decord cannot be imported.*--decoder torchcodec"):
        open_video(make_clip(), decoder="decord")


def test_neither_decoder_importable(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "decord", None)
    monkeypatch.setitem(sys.modules, "torchcodec", None)
    with pytest.raises(VideoError, match=r"no video decoder: decord cannot be imported .*torchcodec cannot be imported"):
        resolve_decoder("auto")


def test_decoder_options_are_checked_where_built() -> None:
    assert (TrackingOptions().decoder, TrackingOptions().decode_device) == ("auto", "cpu")
    assert TrackingOptions(decoder="torchcodec", decode_device="cuda:1").decode_device == "cuda:1"
    with pytest.raises(OptionError, match="decoder must be one of auto, decord, torchcodec, not 'ffmpeg'"):
        TrackingOptions(decoder="ffmpeg")
    with pytest.raises(OptionError, match="decode_device must be cpu, cuda or cuda:N, not 'gpu'"):
        TrackingOptions(decode_device="gpu")
    with pytest.raises(OptionError, match="decode_device cuda needs the torchcodec decoder"):
        TrackingOptions(decoder="decord", decode_device="cuda")


def test_cuda_decoding_needs_cuda(make_clip) -> None:
    import torch

    assert resolve_decoder("auto", "cuda") == "torchcodec"
    if torch.cuda.is_available():  # NVDEC: never the case on this project's CPU machines, so unmeasured
        with open_video(make_clip(), decode_device="cuda") as video:
            assert video.info.decoder == "torchcodec on cuda:0" and video.frames([3]).shape == (1, 64, 128, 3)
            assert video.frames_key() == "torchcodec-cuda"  # GPU frames keep cache entries of their own
        return
    with pytest.raises(OptionError, match="decode_device 'cuda' asked for, but CUDA is not available"):
        open_video(make_clip(), decoder="torchcodec", decode_device="cuda")


def test_frame_folders_ignore_the_decoder(tmp_path: Path) -> None:
    from PIL import Image

    for index in range(3):
        Image.new("RGB", (8, 6), (index, 0, 0)).save(tmp_path / f"{index:05d}.png")
    with open_video(tmp_path, decoder="torchcodec") as video:
        assert video.info.decoder == "pillow" and video.frames([2])[0, 0, 0, 0] == 2
