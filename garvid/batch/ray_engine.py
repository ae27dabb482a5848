"""The batch stages on a Ray cluster, with Ray Data: tracking and answering as actor pools.

Each pool's actors load their model once (a GPU each when the cluster has GPUs) and take
one item at a time; items stream from the tracking pool to the answering pool, and the
driver writes every result through the same :class:`~garvid.batch.sink.BatchSink` as the
local engine. The stages hand tracks over through the tracking cache, so on a cluster of
several machines give ``--cache-dir`` on storage every node sees (an answering actor that
finds no tracks tracks the item itself: slower, same answer).

Which Ray: with no address a fresh local one (``address="local"``), never a cluster that
Ray's temporary files remember (``ray.init(address=None)`` joins the last ``ray start``,
even when it has died since); ``RAY_ADDRESS`` when set, as in Ray; ``auto`` the running
cluster Ray finds; ``HOST:PORT`` (or ``ray://HOST:PORT``) that one. A cluster to join is
reached over TCP first, so a dead one fails in seconds (Ray itself retries for minutes).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import numpy as np

from garvid.batch.runner import BatchPlan, StopCheck, _with_cache, answer_requests, grouped_by_clip
from garvid.batch.sink import BatchSink, BatchSummary
from garvid.errors import CheckpointError, GarvidError, OptionError
from garvid.failures import ends_run, failure_text, item_errors
from garvid.options import AnswerOptions, PromptsPerPass
from garvid.qa.reporting import Reporter
from garvid.tracking.backends import LazyTracker

#: Seconds to wait for a cluster to answer before giving up on it.
CONNECT_TIMEOUT = 5.0
#: Items an answering actor takes at a time with ``--batch-size auto`` (it batches them as
#: its device allows): Ray hands blocks of a size fixed before the actors start.
AUTO_BLOCK = 32


def ray_address(address: str | None) -> str:
    """The address ``ray.init`` gets: the given one, else ``RAY_ADDRESS``, else ``local``."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def _cluster_endpoint(address: str) -> tuple[str, int]:
    """The host and port a join address names (``auto``: the cluster Ray's files name)."""
    if address == "auto":
        # Ray's own lookup for "auto": RAY_ADDRESS; else the one Ray running on this machine;
        # else the last `ray start` in Ray's temporary files
        from ray._private.services import get_ray_address_from_environment

        try:
            address = get_ray_address_from_environment("auto", None)
        except ConnectionError:
            raise OptionError("ray_address", "auto: no running Ray cluster found on this machine") from None
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise GarvidError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT, auto or local")
    return host, port


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail with one line unless the cluster at ``address`` accepts a connection within ``timeout`` s."""
    host, port = _cluster_endpoint(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        named = address if address.endswith(f"{host}:{port}") else f"{address} ({host}:{port})"
        reason = f"no answer within {timeout:g} s" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise GarvidError(f"cannot reach the Ray cluster at {named}: {reason}") from None


@contextmanager
def quiet_ray_output(verbose: bool = False) -> Iterator[None]:
    """Keep Ray's own progress bars and console log lines below ERROR off stderr for the
    block, unless ``verbose``: garvid's progress and summary are what the user reads.

    Ray Data's lines still reach its log file (``logs/ray-data`` in Ray's session folder);
    everything is as Ray set it again on leaving.
    """
    import ray.data

    context = ray.data.DataContext.get_current()
    core = logging.getLogger("ray")  # core Ray's loggers are its children
    consoles = [
        handler
        for handler in logging.getLogger("ray.data").handlers
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
    ]
    saved = context.enable_progress_bars, core.level, [handler.level for handler in consoles]
    if not verbose:
        context.enable_progress_bars = False
        core.setLevel(logging.ERROR)
        for handler in consoles:
            handler.setLevel(max(handler.level, logging.ERROR))
    try:
        yield
    finally:
        context.enable_progress_bars, level, levels = saved
        core.setLevel(level)
        for handler, level in zip(consoles, levels):
            handler.setLevel(level)


@contextmanager
def ray_session(address: str | None = None, *, verbose: bool = False) -> Iterator[None]:
    """Ray for one run (see the module docstring for which), quiet unless ``verbose``.

    Nothing happens when Ray is already initialised (the caller's own session); a session
    started here is shut down on leaving. Joining fails fast, before any work is done.
    """
    try:
        import ray
    except ImportError:
        raise GarvidError("the ray engine needs Ray: pip install 'garvid[ray]'") from None
    if ray.is_initialized():
        yield
        return
    target = ray_address(address)
    with quiet_ray_output(verbose):
        if target != "local":
            check_reachable(target)
        try:
            ray.init(address=target, include_dashboard=False, log_to_driver=verbose, configure_logging=verbose)
        except (ConnectionError, RuntimeError) as error:
            raise GarvidError(f"cannot join the Ray cluster at {target}: {error}") from None
        try:
            yield
        finally:
            ray.shutdown()


def _stage_classes(options: AnswerOptions, per_pass: PromptsPerPass) -> tuple[type, type]:
    """The two actor classes, with the run's models and batch size baked in.

    They take no constructor arguments: Ray keeps those in its object store, from where
    it cannot restart an actor once they are released.
    """
    tracking, model = options.tracking, options.model

    class TrackStage:
        """Tracks items into the tracking cache with one tracker."""

        def __init__(self):
            from garvid.qa.context import AnswerContext

            self.tracker = LazyTracker(tracking.tracker, model.device)
            self.context = AnswerContext(tracker=self.tracker)  # the checkpoint's files read once per actor

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
            from garvid.qa.video_answering import track_ahead

            errors, fatal = [], []
            for request in batch["request"]:
                try:
                    track_ahead(request, self.context)
                    errors.append("")
                    fatal.append(False)
                except item_errors() as error:
                    errors.append(f"track: {failure_text(error)}")
                    fatal.append(ends_run(error))
            return {**batch, "error": np.array(errors, dtype=object), "fatal": np.array(fatal, dtype=bool)}

    class AnswerStage:
        """Answers tracked items with one GAR, ``per_pass`` prompts per forward pass."""

        def __init__(self):
            from garvid.gar.loading import load_gar

            self.model = load_gar(model.name, dtype=model.dtype, device=model.device, attn_implementation=model.attn)

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
            errors = [str(error) for error in batch["error"]]
            results: list[Any] = [None] * len(errors)
            ready = [index for index, error in enumerate(errors) if not error]
            requests = [batch["request"][index] for index in ready]
            for outcome in answer_requests(requests, self.model, per_pass, Reporter(), lambda: False):
                index = ready[outcome.key]
                if outcome.error is not None:
                    errors[index] = f"answer: {failure_text(outcome.error)}"
                else:
                    results[index] = outcome.result
            results_array = np.array(results, dtype=object)
            return {"index": batch["index"], "error": np.array(errors, dtype=object), "fatal": batch["fatal"], "result": results_array}

    return TrackStage, AnswerStage


def run_ray(
    plan: BatchPlan,
    sink: BatchSink,
    *,
    address: str | None = None,
    reporter: Reporter | None = None,
    should_stop: StopCheck = lambda: False,
    concurrency: int = 1,
    verbose: bool = False,
    per_pass: PromptsPerPass = 1,
) -> BatchSummary:
    """Run the plan's pending items on Ray (in the caller's :func:`ray_session`, else one for ``address``),
    each answering actor taking ``per_pass`` items at a time (``auto``: blocks of
    :data:`AUTO_BLOCK` items, batched as the actor's device allows)."""
    import ray

    reporter = reporter or Reporter()
    with ray_session(address, verbose=verbose):
        with tempfile.TemporaryDirectory(prefix="garvid-batch-") as scratch:
            pending = grouped_by_clip(plan.pending)  # one clip's questions reach an actor together
            tasks = [task for task, _ in pending]
            requests = [_with_cache(request, Path(scratch)) for _, request in pending]
            if tasks:
                _stream(ray, tasks, requests, plan.run.options, sink, reporter, should_stop, concurrency, per_pass)
    summary = sink.finish()
    summary.interrupted = should_stop()
    return summary


def _stream(
    ray,
    tasks,
    requests,
    options: AnswerOptions,
    sink: BatchSink,
    reporter: Reporter,
    should_stop: StopCheck,
    concurrency: int,
    per_pass: PromptsPerPass,
) -> None:
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    track_stage, answer_stage = _stage_classes(options, per_pass)
    pool = ray.data.ActorPoolStrategy(size=concurrency)
    dataset = ray.data.from_items([{"index": i, "request": request} for i, request in enumerate(requests)])
    tracked = dataset.map_batches(track_stage, batch_size=1, compute=pool, num_gpus=gpus)
    block = per_pass if isinstance(per_pass, int) else AUTO_BLOCK
    answered = tracked.map_batches(answer_stage, batch_size=block, compute=pool, num_gpus=gpus)
    total, done = len(tasks), 0
    reporter.progress("items", done, total)
    for row in answered.iter_rows():
        index = int(row["index"])
        if row["error"]:
            stage, _, reason = str(row["error"]).partition(": ")
            if row["fatal"]:
                raise CheckpointError(reason)  # as the local engine: no item can escape missing weights
            sink.failed(tasks[index], stage, reason)
        else:
            sink.done(tasks[index], requests[index], row["result"])
        done += 1
        reporter.progress("items", done, total)
        if should_stop() or sink.summary.pipe_closed:
            break
    if done < total:
        reporter.progress("items", total, total)  # stopped early: close the bar
