"""Tracking results: per tracked frame, per object, a box, an area, a score and an RLE mask.

``Tracks.to_json`` is the schema ``garvid track`` writes; ``Tracks.from_json`` reads it
back with validation, so a tracks file can serve as a cache for later stages.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from garvid.errors import GarvidError, RegionError, invalid_text
from garvid.media.source import VideoInfo
from garvid.regions.masks import RLE, BBox, decode_rle, encode_rle, mask_bbox, rle_runs
from garvid.shots.shots import Shots
from garvid.tracking.presence import Presence, presence

#: Decimal places kept for scores in JSON (a confidence needs no more).
SCORE_DECIMALS = 4


@dataclass(frozen=True)
class ObjectObservation:
    """One object on one tracked frame."""

    bbox: BBox | None  # inclusive pixels (x1, y1, x2, y2); None when not visible
    area: int  # mask pixels
    score: float  # SAM2's confidence that the object is present: sigmoid(object score logit)
    rle: RLE  # the full-resolution mask

    @property
    def visible(self) -> bool:
        return self.bbox is not None

    @classmethod
    def from_mask(cls, mask: np.ndarray, score: float) -> ObjectObservation:
        """Summarise an ``(H, W)`` boolean mask; its RLE is all that is kept of it."""
        return cls(bbox=mask_bbox(mask), area=int(mask.sum()), score=float(score), rle=encode_rle(mask))

    @classmethod
    def absent(cls, width: int, height: int) -> ObjectObservation:
        """An object not tracked on a frame (no prompt reaches its shot): an empty mask, score 0."""
        return cls(bbox=None, area=0, score=0.0, rle=_empty_rle(width, height))


@dataclass
class Tracks:
    """Masks of every object on every tracked frame of one video."""

    video: VideoInfo
    object_ids: list[int]
    frames: list[int]  # tracked frame indices, ascending
    times: list[float]  # seconds, one per tracked frame
    observations: dict[int, list[ObjectObservation]]  # object id -> one per tracked frame
    tracker: str  # preset name or checkpoint file
    stride: int
    device: str
    prompt_frame: int
    shots: Shots | None = None  # the shots tracking stayed within; None: not known (one shot)

    def observation(self, object_id: int, frame: int) -> ObjectObservation:
        """The observation of ``object_id`` on tracked frame ``frame``."""
        if object_id not in self.observations:
            raise KeyError(f"object {object_id} is not tracked; objects: {self.object_ids}")
        try:
            position = self.frames.index(frame)
        except ValueError:
            raise KeyError(f"frame {frame} was not tracked") from None
        return self.observations[object_id][position]

    def mask(self, object_id: int, frame: int) -> np.ndarray:
        """The ``(H, W)`` boolean mask of ``object_id`` on tracked frame ``frame``."""
        return decode_rle(self.observation(object_id, frame).rle)

    def select(self, object_ids: Sequence[int], frames: Sequence[int]) -> Tracks:
        """``object_ids`` on ``frames`` (ascending tracked frames) only."""
        return combine([self], frames, object_ids)

    def presence(self, object_id: int) -> list[Presence]:
        """When ``object_id`` is tracked and visible (:mod:`garvid.tracking.presence`)."""
        return presence(self.frames, self.times, [o.visible for o in self.observations[object_id]], self.shots)

    def to_json(self) -> dict[str, Any]:
        """The ``garvid track`` JSON: video, shots, tracker settings and per-object presence and frames."""
        shots = {} if self.shots is None else {"shots": self.shots.to_json()}
        return {
            "video": self.video.to_json(),
            **shots,
            "tracker": {
                "name": self.tracker,
                "stride": self.stride,
                "device": self.device,
                "prompt_frame": self.prompt_frame,
            },
            "objects": [
                {
                    "id": object_id,
                    "presence": [interval.to_json() for interval in self.presence(object_id)],
                    "frames": [
                        {
                            "frame": frame,
                            "time": time,
                            "bbox": list(obs.bbox) if obs.bbox is not None else None,
                            "area": obs.area,
                            "score": round(obs.score, SCORE_DECIMALS),
                            "mask": obs.rle,
                        }
                        for frame, time, obs in zip(self.frames, self.times, self.observations[object_id])
                    ],
                }
                for object_id in self.object_ids
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> Tracks:
        """Read :meth:`to_json` output back, checking every field; GarvidError if malformed."""
        return _TracksReader(data).read()


class _TracksReader:
    """Validating reader for the tracks JSON; each failure names the offending field."""

    def __init__(self, data: Any):
        self.data = data

    def fail(self, where: str, what: str) -> GarvidError:
        return GarvidError(f"invalid tracks JSON: {where} {what}")

    def field(self, container: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(container, dict) or key not in container:
            raise self.fail(where, f"lacks {key!r}")
        value = container[key]
        # bool is an int in Python; never accept it where a number is meant
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(f"{where}.{key}", f"must be {_kind_name(kind)}, got {value!r}")
        if not isinstance(value, kind):
            raise self.fail(f"{where}.{key}", f"must be {_kind_name(kind)}, got {type(value).__name__}")
        if isinstance(value, str) and (problem := invalid_text(value)):  # a \udcff escape: no output could hold it
            raise self.fail(f"{where}.{key}", problem)
        return value

    def read(self) -> Tracks:
        video_json = self.field(self.data, "video", dict, "top level")
        video = self.read_video(video_json)
        tracker = self.field(self.data, "tracker", dict, "top level")
        name = self.field(tracker, "name", str, "tracker")
        stride = self.field(tracker, "stride", int, "tracker")
        device = self.field(tracker, "device", str, "tracker")
        prompt_frame = self.field(tracker, "prompt_frame", int, "tracker")
        objects = self.field(self.data, "objects", list, "top level")
        if not objects:
            raise self.fail("objects", "is empty")
        object_ids: list[int] = []
        observations: dict[int, list[ObjectObservation]] = {}
        frames: list[int] | None = None
        times: list[float] = []
        for position, entry in enumerate(objects):
            where = f"objects[{position}]"
            object_id = self.field(entry, "id", int, where)
            if object_id in observations:
                raise self.fail(f"{where}.id", f"repeats object {object_id}")
            entries = self.field(entry, "frames", list, where)
            places = [f"{where}.frames[{i}]" for i in range(len(entries))]
            object_frames = [self.field(item, "frame", int, place) for item, place in zip(entries, places)]
            if frames is None:
                frames = object_frames
                times = [float(self.field(item, "time", (int, float), place)) for item, place in zip(entries, places)]
                self.check_frames(frames, video, prompt_frame, where)
            elif object_frames != frames:
                raise self.fail(f"{where}.frames", "differ from the first object's frames")
            object_ids.append(object_id)
            observations[object_id] = [self.read_observation(e, video, place) for e, place in zip(entries, places)]
        assert frames is not None
        shots = self.read_shots(self.data.get("shots"), video) if isinstance(self.data, dict) else None
        return Tracks(video, object_ids, frames, times, observations, name, stride, device, prompt_frame, shots)

    def read_shots(self, value: Any, video: VideoInfo) -> Shots | None:
        """The optional ``shots`` list (files written before shots existed have none)."""
        if value is None:
            return None
        try:
            shots = Shots.from_json(value)
        except (GarvidError, ValueError) as error:
            raise self.fail("shots", str(error)) from None
        if shots.num_frames != video.num_frames:
            raise self.fail("shots", f"end at frame {shots.num_frames}, but the video has {video.num_frames} frames")
        return shots

    def read_video(self, data: dict[str, Any]) -> VideoInfo:
        info = VideoInfo(
            path=self.field(data, "path", str, "video"),
            num_frames=self.field(data, "num_frames", int, "video"),
            fps=float(self.field(data, "fps", (int, float), "video")),
            width=self.field(data, "width", int, "video"),
            height=self.field(data, "height", int, "video"),
            duration=float(self.field(data, "duration", (int, float), "video")),
            rotation=0,  # frames are stored in display orientation; width/height are after rotation
            decoder=str(data.get("decoder", "")),
        )
        if info.num_frames < 1 or info.width < 1 or info.height < 1:
            raise self.fail("video", "has an empty size or no frames")
        return info

    def check_frames(self, frames: list[int], video: VideoInfo, prompt_frame: int, where: str) -> None:
        if not frames:
            raise self.fail(f"{where}.frames", "is empty")
        if any(b <= a for a, b in zip(frames, frames[1:])):
            raise self.fail(f"{where}.frames", "are not in strictly ascending order")
        if frames[0] < 0 or frames[-1] >= video.num_frames:
            raise self.fail(f"{where}.frames", f"fall outside the video's {video.num_frames} frames")
        if prompt_frame not in frames:
            raise self.fail("tracker.prompt_frame", f"{prompt_frame} is not among the tracked frames")

    def read_observation(self, item: dict[str, Any], video: VideoInfo, where: str) -> ObjectObservation:
        if not isinstance(item, dict) or "bbox" not in item:
            raise self.fail(where, "lacks 'bbox'")
        bbox_json = item["bbox"]
        area = self.field(item, "area", int, where)
        score = float(self.field(item, "score", (int, float), where))
        mask = self.field(item, "mask", dict, where)
        size = self.field(mask, "size", list, f"{where}.mask")
        counts = self.field(mask, "counts", str, f"{where}.mask")
        if size != [video.height, video.width]:
            raise self.fail(
                f"{where}.mask.size",
                f"is {_shown(size)}, but this file's video is {video.width}x{video.height} (video.width, video.height): one of them is wrong",
            )
        if not 0.0 <= score <= 1.0:
            raise self.fail(f"{where}.score", f"must lie in [0, 1], got {_shown(score)}")
        bbox = self.read_bbox(bbox_json, video, f"{where}.bbox")
        if area < 0 or (bbox is None) != (area == 0):
            raise self.fail(f"{where}.area", f"{_shown(area)} does not fit bbox {_shown(bbox_json)}")
        try:  # a corrupt mask is caught here, not when a later stage decodes it
            runs = rle_runs(mask)
        except RegionError as error:
            raise self.fail(f"{where}.mask", str(error)) from None
        if area != int(runs[1::2].sum()):
            raise self.fail(f"{where}.area", f"{_shown(area)} is not the mask's {int(runs[1::2].sum())} pixels")
        return ObjectObservation(bbox=bbox, area=area, score=score, rle={"size": size, "counts": counts})

    def read_bbox(self, value: Any, video: VideoInfo, where: str) -> BBox | None:
        if value is None:
            return None
        if not (isinstance(value, list) and len(value) == 4 and all(type(v) is int for v in value)):
            raise self.fail(where, f"must be null or four integers [x1, y1, x2, y2], got {_shown(value)}")
        x1, y1, x2, y2 = value
        if x1 > x2 or y1 > y2:
            raise self.fail(where, f"{_shown(value)} is inverted: x1 <= x2 and y1 <= y2 are needed")
        if not (0 <= x1 <= x2 < video.width and 0 <= y1 <= y2 < video.height):
            raise self.fail(where, f"{_shown(value)} lies outside the {video.width}x{video.height} frame")
        return x1, y1, x2, y2


@functools.lru_cache(maxsize=8)
def _empty_rle(width: int, height: int) -> RLE:
    """The RLE of an empty ``width`` x ``height`` mask (shared: observations never change their RLE)."""
    return encode_rle(np.zeros((height, width), bool))


def _shown(value: Any, limit: int = 40) -> str:
    """``value`` as a message shows it: cut, with its length, when it is long (a 300-digit area)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 10]}... ({len(text)} characters)"


def combine(parts: Sequence[Tracks], frames: Sequence[int], object_ids: Sequence[int] | None = None) -> Tracks:
    """One :class:`Tracks` of ``object_ids`` (default: every object of ``parts``) on ``frames``.

    Each object comes from the first part that has it, and must be tracked there on every
    one of ``frames``; settings (tracker, device, prompt frame) come from the first part.
    """
    frames = list(frames)
    wanted = list(object_ids) if object_ids is not None else [o for part in parts for o in part.object_ids]
    observations: dict[int, list[ObjectObservation]] = {}
    for object_id in wanted:
        part = next(p for p in parts if object_id in p.observations)
        observations[object_id] = [part.observation(object_id, frame) for frame in frames]
    first = parts[0]
    times = dict(zip(first.frames, first.times))
    for part in parts[1:]:
        times.update(zip(part.frames, part.times))
    return Tracks(
        video=first.video,
        object_ids=sorted(observations),
        frames=frames,
        times=[times[f] for f in frames],
        observations={o: observations[o] for o in sorted(observations)},
        tracker=first.tracker,
        stride=common_gap(frames),
        device=first.device,
        prompt_frame=first.prompt_frame,
        shots=first.shots,
    )


def common_gap(frames: Sequence[int]) -> int:
    """The most common gap between consecutive ``frames`` (1 for a single frame)."""
    gaps = Counter(b - a for a, b in zip(frames, frames[1:]))
    return gaps.most_common(1)[0][0] if gaps else 1


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
