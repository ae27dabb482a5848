"""Shared fixtures: small synthetic clips made with ffmpeg, ffmpeg's own decoding, and the real
clips in ``../shared/media`` (the ``media`` fixture).

The slow-test guard (tests/slow_guard.py, loaded here) fails a test that is not marked
``@pytest.mark.slow`` when its call phase takes longer than ``GARVID_SLOW_TEST_SECONDS``
(default 30 s; 0 turns it off), so that ``pytest -m "not slow"`` stays a fast loop. Only the
call phase is timed, not the setup of shared fixtures that build tiny models once.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import settings

# Property tests draw the same cases on every run (a CI run does not depend on luck) and keep
# no example database in the checkout.
settings.register_profile("garvid", derandomize=True, database=None)
settings.load_profile("garvid")

pytest_plugins = ["pytester", "slow_guard"]

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
MEDIA_FILES = ("cups.mp4", "cups_first_frame.png", "dog.mp4", "juggle.mp4", "bedroom.mp4")


@pytest.fixture(scope="session")
def media() -> Path:
    """The real clips folder ``../shared/media`` beside the repo (cups.mp4, dog.mp4, juggle.mp4,
    bedroom.mp4, cups_first_frame.png: see its README.md).

    One policy when it is missing: every test that uses it fails (an error naming the path),
    never skips. CI always has ``../shared`` beside the repo, so a missing folder is a broken
    checkout, not an optional extra to skip over silently.
    """
    missing = [name for name in MEDIA_FILES if not (MEDIA / name).is_file()]
    if missing:
        what = f"there is no folder {MEDIA}" if not MEDIA.is_dir() else f"{MEDIA} lacks {', '.join(missing)}"
        pytest.fail(f"the real test clips are missing: {what} (../shared/media must sit beside the repo)", pytrace=False)
    return MEDIA


def _run(args: list[str]) -> bytes:
    done = subprocess.run(args, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _video_stream(path: Path) -> dict:
    args = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json", str(path)]
    return json.loads(_run(args))["streams"][0]


def _display_rotation(stream: dict) -> float:
    """ffprobe's (counter-clockwise) display-matrix rotation; 0 when there is none."""
    side = [d for d in stream.get("side_data_list", []) if "rotation" in d]
    return float(side[0]["rotation"]) if side else 0.0


def _set_rotation(source: Path, target: Path, degrees: int) -> None:
    """Copy ``source`` with a display rotation, the way this ffmpeg version can write one."""
    ffmpeg = ["ffmpeg", "-v", "error", "-y"]
    attempts = [
        [*ffmpeg, "-i", str(source), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(target)],
        # ffmpeg >= 6 no longer turns the rotate tag into a display matrix
        [*ffmpeg, "-display_rotation", str(degrees), "-i", str(source), "-c", "copy", str(target)],
    ]
    for args in attempts:
        if subprocess.run(args, capture_output=True).returncode == 0 and _display_rotation(_video_stream(target)):
            return
    pytest.skip("this ffmpeg cannot write rotation metadata")


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    """Factory for small test clips in ``tmp_path``.

    ``make_clip(name="clip.mp4", size=(128, 64), fps=10, seconds=2, source="testsrc",
    pix_fmt="yuv420p", codec=("-c:v", "libx264"), audio=False, rotate=None)`` returns the
    path. ``source`` is an ffmpeg lavfi video source (``testsrc``, ``testsrc2``, or
    ``color=c=gray`` ...); odd sizes need ``pix_fmt="yuv444p"``. ``rotate`` adds display
    rotation metadata, the frames staying as encoded (which way it turns depends on the
    ffmpeg version: compare with ``ffmpeg_frames`` rather than assume). Keep widths
    clear of those decord 0.6.0 cannot decode (16, 24, 48, 72: see garvid.media.video_file).
    """

    def make(
        name: str = "clip.mp4",
        *,
        size: tuple[int, int] = (128, 64),
        fps: int = 10,
        seconds: float = 2.0,
        source: str = "testsrc",
        pix_fmt: str = "yuv420p",
        codec: tuple[str, ...] = ("-c:v", "libx264"),
        audio: bool = False,
        rotate: int | None = None,
    ) -> Path:
        path = tmp_path / name
        separator = ":" if "=" in source else "="
        video = f"{source}{separator}size={size[0]}x{size[1]}:rate={fps}:duration={seconds},format={pix_fmt}"
        args = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", video]
        if audio:
            args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
        encoded = path if rotate is None else tmp_path / f"unrotated-{name}"
        _run([*args, *codec, "-pix_fmt", pix_fmt, str(encoded)])
        if rotate is not None:
            _set_rotation(encoded, path, rotate)
        return path

    return make


@pytest.fixture
def ffmpeg_frames() -> Callable[[Path], np.ndarray]:
    """Reference decoder: every frame of a file as (N, H, W, 3) RGB, decoded (and rotated) by ffmpeg."""

    def decode(path: Path) -> np.ndarray:
        stream = _video_stream(path)
        width, height = stream["width"], stream["height"]
        if _display_rotation(stream) % 180 == 90:
            width, height = height, width
        raw = _run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)

    return decode


@pytest.fixture(scope="session")
def two_object_clip(tmp_path_factory) -> tuple[Path, Path]:
    """A 1.5 s 96x64 test pattern at 10 fps and a label mask (PNG) with objects 1 and 2."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("two-objects")
    video = folder / "clip.mp4"
    source = "testsrc=size=96x64:rate=10:duration=1.5"
    _run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", source, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)])
    labels = np.zeros((64, 96), dtype=np.uint8)
    labels[5:25, 5:25] = 1
    labels[30:60, 50:90] = 2
    mask = folder / "mask.png"
    Image.fromarray(labels).save(mask)
    return video, mask


@pytest.fixture(scope="session")
def two_object_tracks(two_object_clip) -> Callable[..., Any]:
    """A maker of hand-made tracks of ``two_object_clip`` on every frame, each object on its square
    of the label mask: object 2 up to frame ``last``, then gone (an empty mask, or ``absent``: not
    tracked there), cut into shots before each frame of ``cuts`` (None: tracks that know no shots)."""
    from PIL import Image

    from garvid.media.open import open_video
    from garvid.shots.shots import Shots
    from garvid.tracking.tracks import ObjectObservation, Tracks

    video, mask = two_object_clip
    with open_video(video) as source:
        info, times = source.info, [float(t) for t in source.timestamps()]
    labels = np.array(Image.open(mask))
    frames = list(range(info.num_frames))

    def make(last: int, *, absent: bool = False, cuts: list[int] | None = None) -> Tracks:
        gone = ObjectObservation.absent(info.width, info.height) if absent else ObjectObservation.from_mask(np.zeros_like(labels, dtype=bool), 1.0)
        observations = {
            1: [ObjectObservation.from_mask(labels == 1, 1.0) for _ in frames],
            2: [ObjectObservation.from_mask(labels == 2, 1.0) if f <= last else gone for f in frames],
        }
        shots = None if cuts is None else Shots.from_cuts(cuts, times, info.duration)
        return Tracks(info, [1, 2], frames, times, observations, "hand-made", 1, "cpu", 0, shots)

    return make


def _forbidden(*args, **kwargs):
    raise AssertionError("work started before the input was checked")


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any model load (GAR, SAM2, a detector) is a failure of the test."""
    import garvid.gar.loading
    from garvid.detection.models import Detector
    from garvid.tracking.tracker import Sam2Tracker

    monkeypatch.setattr(garvid.gar.loading, "load_gar", _forbidden)
    monkeypatch.setattr(Sam2Tracker, "from_preset", classmethod(_forbidden))
    monkeypatch.setattr(Detector, "load", classmethod(_forbidden))
