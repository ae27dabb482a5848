"""Tracking that never crosses a cut: one tracker run per shot that holds a prompt.

SAM2 carries a mask over a cut onto whatever stands there after it (its memory bank expects
continuous motion). So the tracked frames are split at the video's cuts and each shot is
tracked on its own, from the prompts that lie in it (forward and backward from each, as SAM2
propagates); a shot without a prompt of some object is not tracked for that object: its
frames get :meth:`~garvid.tracking.tracks.ObjectObservation.absent` observations, until a
prompt (``--mask PNG@TIME``, or a detector finding a named object again) reaches it.
"""

from __future__ import annotations

from typing import Sequence

from garvid.media.source import FrameSource
from garvid.regions.prompts import RegionPrompts
from garvid.shots.shots import Shots
from garvid.tracking.interface import ProgressCallback, Tracker
from garvid.tracking.tracks import ObjectObservation, Tracks, common_gap


def track_within_shots(
    tracker: Tracker,
    video: FrameSource,
    prompts: RegionPrompts,
    frames: Sequence[int],
    shots: Shots,
    progress: ProgressCallback | None = None,
) -> Tracks:
    """Every object of ``prompts`` on ``frames`` (ascending, holding every prompt frame that
    matters), each shot tracked alone by ``tracker`` from the prompts on its frames.

    Within a shot, objects whose first prompt lies on the same frame are tracked in one run;
    SAM2 starts propagating at a run's earliest prompt, so an object first prompted later
    gets its own run and every object gets the masks it would get tracked alone (what the
    per-object tracking cache relies on, :mod:`garvid.tracking.reuse`).
    """
    frames = list(frames)
    kept = set(frames)
    runs: list[tuple[list[int], RegionPrompts]] = []
    for shot in shots:
        shot_frames = [f for f in frames if shot.start <= f < shot.end]
        shot_prompts = prompts.keep(lambda frame, object_id: shot.start <= frame < shot.end and frame in kept)
        for group in _by_first_prompt(shot_prompts):
            runs.append((shot_frames, shot_prompts.only(group)))
    total, done = sum(len(shot_frames) for shot_frames, _ in runs), 0
    if progress is not None:
        progress(0, total)
    info = video.info
    absent = ObjectObservation.absent(info.width, info.height)
    observations = {object_id: dict.fromkeys(frames, absent) for object_id in prompts.object_ids}
    device = tracker.device_type  # what a run records when no shot held a prompt
    for shot_frames, shot_prompts in runs:

        def shot_progress(finished: int, _: int, before: int = done) -> None:
            if progress is not None:
                progress(before + finished, total)

        part = tracker.track(video, shot_prompts, shot_frames, shot_progress)
        device = part.device
        for object_id in part.object_ids:
            observations[object_id].update(zip(part.frames, part.observations[object_id]))
        done += len(shot_frames)
        if progress is not None:
            progress(done, total)
    timestamps = video.timestamps()
    return Tracks(
        video=info,
        object_ids=prompts.object_ids,
        frames=frames,
        times=[float(timestamps[f]) for f in frames],
        observations={object_id: [by_frame[f] for f in frames] for object_id, by_frame in observations.items()},
        tracker=tracker.name,
        stride=common_gap(frames),
        device=device,
        prompt_frame=prompts.frame,
        shots=shots,
    )


def _by_first_prompt(prompts: RegionPrompts) -> list[list[int]]:
    """``prompts``' objects grouped by the first frame that prompts them, in frame order."""
    first: dict[int, int] = {}
    for on_frame in prompts.per_frame():
        for object_id in on_frame.own_ids:
            first.setdefault(object_id, on_frame.frame)
    groups: dict[int, list[int]] = {}
    for object_id, frame in sorted(first.items(), key=lambda item: (item[1], item[0])):
        groups.setdefault(frame, []).append(object_id)
    return list(groups.values())
