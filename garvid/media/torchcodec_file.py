"""Lazy, random-access video reading on top of torchcodec (PyTorch's own FFmpeg decoder).

The twin of :mod:`garvid.media.video_file` for machines decord has no wheels for (Linux
aarch64, macOS arm64), and the reader that can decode on an NVIDIA GPU (NVDEC). It gives
the same frames as decord, pixel for pixel, on 8-bit video (tests/test_decoders.py); on
10-bit video it matches FFmpeg's own RGB conversion while decord's differs.

One ffprobe run both validates the file (:func:`~garvid.media.probe.probe_video`, shared
with the decord reader, so the errors are the same) and lists the stream's packets. Their
timestamps, sorted, are the frames' times, and they are handed to torchcodec as its
"custom frame mappings", so torchcodec finds frame ``i`` exactly without scanning the file
a second time. Frames are read with ``get_frames_at`` on ascending indices: torchcodec
decodes forward from the keyframe before the first one and seeks only when a later
keyframe lies before the next index, never backwards. torchcodec applies the container's
display rotation itself, as decord does, and scales frames down (``max_width``) with its
own decoder-side resize.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from garvid.errors import OptionError, VideoError, first_line
from garvid.media.probe import bits_per_sample, convert_hint, display_size, file_info, probe_video, round_times
from garvid.media.source import FrameSource, scaled_size


class TorchcodecVideo(FrameSource):
    """Lazy torchcodec-backed reader. Context manager. Never holds the whole video.

    ``device`` is ``cpu``, ``cuda`` or ``cuda:N`` (NVDEC; frames are copied back to the
    host). ``num_threads`` is the number of FFmpeg decoding threads; 0 (the default) means one.
    ``max_width`` asks for small frames (a quick pass such as cut detection): torchcodec
    resizes each frame as it decodes it (bilinear, antialiased), and ``info`` gives that size.
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", num_threads: int = 0, max_width: int | None = None):
        if num_threads < 0:
            raise ValueError(f"num_threads must be 0 (default) or positive, got {num_threads}")
        self._path = Path(path)
        self._name = str(path)
        probed = probe_video(self._path, self._name, packets=True)
        stream = probed["stream"]
        frames = _frame_list(probed["packets"], self._name)
        self._device = _decode_device(device)
        width, height = display_size(stream)
        decode_size = None if max_width is None else scaled_size(width, height, max_width)
        self._decoder: Any = self._open_decoder(frames, num_threads or 1, decode_size)
        num_frames = len(frames)
        if self._decoder.metadata.num_frames != num_frames:
            raise VideoError(
                f"{self._name}: the header promises {self._decoder.metadata.num_frames} frames but {num_frames} are in "
                f"the file; it may be truncated or damaged. {convert_hint(self._name)}"
            )
        base = frames[0]["pts"]
        time_base = _time_base(stream)
        self._times = round_times([(frame["pts"] - base) * time_base for frame in frames])
        self._high_bit_depth = bits_per_sample(stream) > 8
        decoder = "torchcodec" if self._device == "cpu" else f"torchcodec on {self._device}"
        self.info = file_info(self._name, stream, self._times, decoder)
        if decode_size is not None:
            self.info = replace(self.info, width=decode_size[0], height=decode_size[1])

    def close(self) -> None:
        """Free torchcodec's decoder; the video cannot decode any more."""
        self._decoder = None

    def frames_key(self) -> str:
        """``torchcodec`` for video of more than 8 bits a sample, whose RGB frames decord makes
        differently, and ``torchcodec-cuda`` for any video decoded on a GPU, whose frames no
        test has compared (see :meth:`FrameSource.frames_key`); ``""`` otherwise."""
        if self._device != "cpu":
            return "torchcodec-cuda"
        return "torchcodec" if self._high_bit_depth else ""

    def _decode_ascending(self, indices: np.ndarray) -> np.ndarray:
        """Frames at strictly ascending ``indices``."""
        if self._decoder is None:
            raise ValueError(f"{self._name}: the video is closed")
        try:
            batch = self._decoder.get_frames_at(indices.tolist())
        except (RuntimeError, ValueError, IndexError) as error:
            raise VideoError(
                f"{self._name}: cannot decode frames {int(indices[0])}..{int(indices[-1])} ({first_line(error)}); "
                f"it may be truncated or damaged. {convert_hint(self._name)}"
            ) from None
        frames = batch.data.cpu().numpy()
        if frames.shape[1:] != (self.info.height, self.info.width, 3):
            raise VideoError(
                f"{self._name}: decoder returned {frames.shape[2]}x{frames.shape[1]} frames, "
                f"expected {self.info.width}x{self.info.height}"
            )
        return frames

    def _open_decoder(self, frames: list[dict[str, int]], num_threads: int, size: tuple[int, int] | None) -> Any:
        from torchcodec.decoders import VideoDecoder  # imported here: it loads FFmpeg's libraries
        from torchcodec.transforms import Resize

        try:
            return VideoDecoder(
                str(self._path.resolve()),  # absolute, so "http:x.mp4" is never taken for a protocol
                dimension_order="NHWC",
                num_ffmpeg_threads=num_threads,
                device=self._device,
                custom_frame_mappings=json.dumps({"frames": frames}),
                transforms=None if size is None else [Resize(size=(size[1], size[0]))],
            )
        except (RuntimeError, ValueError) as error:
            raise VideoError(
                f"{self._name}: torchcodec cannot read this video ({first_line(error)}); it may be truncated "
                f"or damaged. {convert_hint(self._name)}"
            ) from None


def _frame_list(packets: list[dict[str, Any]], name: str) -> list[dict[str, int]]:
    """The stream's frames in display order as torchcodec's frame mappings: pts, duration, key flag.

    Packets flagged ``D`` (discarded: an edit list cuts them) are no frames. A container
    without a timestamp per packet (AVI with B-frames) cannot be placed frame by frame:
    torchcodec returns the neighbouring frame there, so such files are refused.
    """
    frames = []
    for packet in packets:
        flags = packet.get("flags", "")
        if "D" in flags:
            continue
        if not isinstance(packet.get("pts"), int):
            raise VideoError(
                f"{name}: the container gives some frames no timestamp, which torchcodec needs to find them; "
                f"use --decoder decord, or re-encode it (ffmpeg -i {name} fixed.mp4)"
            )
        duration = packet.get("duration")
        frames.append({"pts": packet["pts"], "duration": duration if isinstance(duration, int) else 0, "key_frame": int("K" in flags)})
    if not frames:
        raise VideoError(f"{name}: the video stream has no frames")
    frames.sort(key=lambda frame: frame["pts"])
    if any(a["pts"] == b["pts"] for a, b in zip(frames, frames[1:])):
        raise VideoError(f"{name}: two frames share a timestamp; {convert_hint(name)}")
    return frames


def _time_base(stream: dict[str, Any]) -> float:
    numerator, denominator = (int(part) for part in stream["time_base"].split("/"))
    return numerator / denominator


def _decode_device(name: str) -> str:
    """``cpu``, or a CUDA device that is there (NVDEC): OptionError for ``decode_device`` otherwise."""
    if name == "cpu":
        return name
    from garvid.devices import resolve_device  # torch: loaded anyway by torchcodec

    try:
        return str(resolve_device(name))
    except OptionError as error:
        raise OptionError("decode_device", error.problem) from None
