"""The batch stages on a Ray cluster, with Ray Data: tracking and answering as actor pools.

Each pool's actors load their model once (a GPU each when the cluster has GPUs) and take
one item at a time; items stream from the tracking pool to the answering pool, and the
driver writes every result through the same :class:`~garvid.batch.sink.BatchSink` as the
local engine. The stages hand tracks over through the tracking cache, so on a cluster of
several machines give ``--cache-dir`` on storage every node sees (an answering actor that
finds no tracks tracks the item itself: slower, same answer).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from garvid.batch.runner import BatchPlan, StopCheck, _with_cache
from garvid.batch.sink import BatchSink, BatchSummary
from garvid.devices import memory_errors
from garvid.errors import GarvidError
from garvid.presets import default_preset
from garvid.qa.request import VideoRequest
from garvid.tracking.tracker import LazyTracker


def _stage_classes(template: VideoRequest) -> tuple[type, type]:
    """The two actor classes, with the run's models baked in.

    They take no constructor arguments: Ray keeps those in its object store, from where
    it cannot restart an actor once they are released.
    """
    tracker_name = template.tracker or default_preset("trackers")
    model_name = template.model or default_preset("models")

    class TrackStage:
        """Tracks items into the tracking cache with one tracker."""

        def __init__(self):
            self.tracker = LazyTracker(tracker_name, template.device)

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
            from garvid.qa.video_answering import track_request

            errors = []
            for request in batch["request"]:
                try:
                    track_request(request, tracker=self.tracker)
                    errors.append("")
                except (GarvidError, *memory_errors()) as error:
                    errors.append(f"track: {error}")
            return {**batch, "error": np.array(errors, dtype=object)}

    class AnswerStage:
        """Answers tracked items with one GAR."""

        def __init__(self):
            from garvid.gar.loading import load_gar

            self.model = load_gar(model_name, dtype=template.dtype, device=template.device, attn_implementation=template.attn)

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
            from garvid.qa.video_answering import answer_video

            results, errors = [], []
            for request, error in zip(batch["request"], batch["error"]):
                result = None
                if not error:
                    try:
                        result = answer_video(request, model=self.model)
                    except (GarvidError, *memory_errors()) as failure:
                        error = f"answer: {failure}"
                results.append(result)
                errors.append(error)
            return {"index": batch["index"], "error": np.array(errors, dtype=object), "result": np.array(results, dtype=object)}

    return TrackStage, AnswerStage


def run_ray(
    plan: BatchPlan,
    sink: BatchSink,
    *,
    address: str | None = None,
    should_stop: StopCheck = lambda: False,
    concurrency: int = 1,
) -> BatchSummary:
    """Run the plan's pending items on Ray (joining ``address``, or a local Ray)."""
    try:
        import ray
    except ImportError:
        raise GarvidError("the ray engine needs Ray: pip install 'garvid[ray]'") from None
    template = plan.template
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with tempfile.TemporaryDirectory(prefix="garvid-batch-") as scratch:
            tasks = [task for task, _ in plan.pending]
            requests = [_with_cache(request, Path(scratch)) for _, request in plan.pending]
            if tasks:
                _stream(ray, tasks, requests, template, sink, should_stop, concurrency)
    finally:
        if started_here:
            ray.shutdown()
    summary = sink.finish()
    summary.interrupted = should_stop()
    return summary


def _stream(ray, tasks, requests, template: VideoRequest, sink: BatchSink, should_stop: StopCheck, concurrency: int) -> None:
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    track_stage, answer_stage = _stage_classes(template)
    dataset = ray.data.from_items([{"index": i, "request": request} for i, request in enumerate(requests)])
    tracked = dataset.map_batches(track_stage, batch_size=1, concurrency=concurrency, num_gpus=gpus)
    answered = tracked.map_batches(answer_stage, batch_size=1, concurrency=concurrency, num_gpus=gpus)
    for row in answered.iter_rows():
        index = int(row["index"])
        if row["error"]:
            stage, _, reason = str(row["error"]).partition(": ")
            sink.failed(tasks[index], stage, reason)
        else:
            sink.done(tasks[index], requests[index], row["result"])
        if should_stop() or sink.summary.pipe_closed:
            break
