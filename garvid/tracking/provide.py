"""Tracking's entry for a request: the tracks it needs, from the cache where they are, tracked
(shot by shot: :mod:`garvid.tracking.shot_tracking`) where they are not.

:func:`tracks_for` owns what goes around a tracker: tracks given with the request are used
as they are; with a cache, each object has its own entry, keyed by the video's content,
the region prompts' digests, the tracker, the shots' cuts and the object (:mod:`garvid.tracking.cache`),
and only the objects whose entries do not serve the need are tracked
(:mod:`garvid.tracking.reuse`); ``--object`` phrases of those objects are looked for first,
on the first frame of every shot and every ``--redetect`` seconds
(:mod:`garvid.tracking.redetect`), and the detector freed; a tracker given by name is built only when
something must be tracked, and freed right after, so the next model (GAR) loads into the
memory it held.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from garvid.detection.objects import detect_objects
from garvid.media.source import FrameSource
from garvid.regions.input import RegionInput
from garvid.regions.prompts import RegionPrompts
from garvid.tracking.backends import make_tracker
from garvid.tracking.cache import TrackCache, TrackCacheKey, regions_digest, video_key
from garvid.shots.shots import Shots
from garvid.tracking.given import GivenTracks
from garvid.tracking.interface import ProgressCallback, Tracker
from garvid.tracking.redetect import detection_frames, redetect_step
from garvid.tracking.reuse import TrackingNeed, reuse_or_track
from garvid.tracking.shot_tracking import track_within_shots
from garvid.tracking.tracks import Tracks


class ProvidedTracks(NamedTuple):
    """The tracks of the asked objects, and which of them were tracked now."""

    tracks: Tracks
    tracked: list[int]  # empty: every object came from the cache or from given tracks


def tracks_for(
    video: FrameSource,
    regions: RegionInput,
    prompts: RegionPrompts,
    need: TrackingNeed,
    cache: TrackCache | None,
    tracker: Tracker | str,
    *,
    shots: Shots | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
) -> ProvidedTracks:
    """Tracks of ``prompts``' objects on the frames ``need`` asks for, never across a cut of ``shots``.

    ``video`` is the opened video ``regions`` (the prompts as the user gave them, which key
    the cache) were resolved against into ``prompts`` (the objects to provide, names not yet
    found). ``tracker`` is a :class:`Tracker`, or a preset name (or ``.pt`` path) built by
    :func:`make_tracker` on ``device`` only if something must be tracked and freed after;
    :class:`GivenTracks` provide their own tracks on the frames of the need's range. With
    ``cache`` None everything is tracked on ``need.grid``. ``shots`` None is the whole video
    as one shot. ``device`` also runs the detector; ``progress(done, total)`` follows the
    tracked frames.
    """
    if isinstance(tracker, GivenTracks):  # nothing to detect, track or cache
        return ProvidedTracks(tracker.track(video, prompts, range(need.first, need.stop)), [])
    if shots is None:
        shots = Shots.from_cuts([], video.timestamps(), video.info.duration)

    def track(object_ids: list[int], frames: list[int]) -> Tracks:
        asked = prompts.only(object_ids)
        searched = None
        if asked.objects:  # names are looked for on every shot's first frame and every --redetect seconds
            every = redetect_step(regions.redetect, video.info.fps)
            searched = sorted({*detection_frames(shots, need.first, need.stop, every), *need.in_range([asked.frame])})
        wanted, _ = detect_objects(video, asked, regions, device, frames=searched, cuts=shots.cuts)  # freed before the tracker loads
        frames = sorted({*frames, *need.in_range(wanted.prompt_frames)})  # SAM2 must see every frame an object was found on
        if not isinstance(tracker, str):
            return track_within_shots(tracker, video, wanted, frames, shots, progress)
        built = make_tracker(tracker, device)
        try:
            return track_within_shots(built, video, wanted, frames, shots, progress)
        finally:
            del built  # free the tracker before the next model loads: peak memory is the larger one, not the sum
            from garvid.devices import release_memory  # torch: imported only by a run that tracked

            release_memory()

    if cache is None:
        return ProvidedTracks(track(prompts.object_ids, need.grid), prompts.object_ids)
    name = tracker if isinstance(tracker, str) else tracker.name
    video_digest = video_key(video)
    keys = {
        o: TrackCacheKey(video_digest, regions_digest(regions, [o]), name, prompts.frame, o, tuple(shots.cuts))
        for o in prompts.object_ids
    }
    reuse = reuse_or_track(need, prompts.object_ids, {o: cache.load(key) for o, key in keys.items()}, track)
    for object_id, entry in reuse.updated.items():
        cache.store(keys[object_id], entry)
    # entries are keyed by content: the video as read now (its path, its decoder), not as when cached
    return ProvidedTracks(replace(reuse.tracks, video=video.info), reuse.tracked)
