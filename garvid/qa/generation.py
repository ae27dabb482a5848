"""Prompts ready for GAR, and running them: one alone (streamed, reusing a memo) or many in a batch.

Answering code (a video window, an object to describe, an image question) is written as
a *steps* generator: it yields each :class:`PromptJob` it needs answered and receives
its :class:`Generated` answer, then returns its result. Who runs the prompts is the
caller's choice: :func:`drive` runs one item's prompts one by one (``garvid ask``,
``chat``, ``image``); :class:`garvid.qa.batching.BatchedAnswering` runs the prompts of
many items together. The item's code is the same either way.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generator, Hashable, Sequence, TypeVar

import torch

from garvid.gar.answering import TokenCallback, decode_answer, decoding_arguments, generate_answer, synchronize
from garvid.gar.encoding import EncodeJob, Encoding, encode_many
from garvid.gar.processor import GARImageInputs
from garvid.options import GenerationOptions, Scaling

if TYPE_CHECKING:
    from garvid.gar.model import GARModel

Result = TypeVar("Result")


class AnswerMemo:
    """What questions about one clip share, computed once: keyframes decoded, preprocessed
    with their mask maps, encoded by the vision tower with their region replays, and the
    key/value cache of the prompt prefix before the question.

    Everything is keyed by what decides it (frames, the objects in each mask map and their
    masks' RLE, the prompt's tokens), so a hit is exactly what would be computed again. A
    memo belongs to one video and one set of prompt options: :func:`~garvid.qa.video_answering.answer_video` uses a
    fresh one unless given one (batch items about one clip share one), a
    :class:`garvid.qa.session.VideoSession` keeps one across questions.
    """

    #: Entries kept per kind: a chat moves between a few keyframe sets at most; a prefix
    #: cache of GAR-8B is about 0.85 GB, so only the latest one is kept.
    LIMITS: ClassVar[dict[str, int]] = {"frames": 256, "inputs": 256, "encodings": 4, "prefix": 1}

    def __init__(self) -> None:
        self._stores: dict[str, OrderedDict] = {kind: OrderedDict() for kind in self.LIMITS}

    def get(self, kind: str, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value stored under ``key``, or ``compute()`` stored there (least recently used dropped)."""
        store = self._stores[kind]
        if key in store:
            store.move_to_end(key)
            return store[key]
        return self.put(kind, key, compute())

    def holds(self, kind: str, key: Hashable) -> bool:
        return key in self._stores[kind]

    def put(self, kind: str, key: Hashable, value: Any) -> Any:
        """Store ``value`` under ``key`` (least recently used dropped) and return it."""
        store = self._stores[kind]
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.LIMITS[kind]:
            store.popitem(last=False)
        return value


@dataclass
class PromptJob:
    """One answer to generate: the prompt's tokens, its frames to encode and how to decode."""

    model: GARModel
    tokenizer: Any
    input_ids: list[int]
    frames: Sequence[GARImageInputs]
    replayed_slots: Sequence[Sequence[int]]  # per frame, the slots replayed from it
    scaling: Scaling
    generation: GenerationOptions
    memo: AnswerMemo | None = None  # shares encodings (and, alone, the prefix's cache) between prompts
    encoding_key: Hashable | None = None  # what decides the encoding, for the memo
    prefix_length: int = 0  # the prompt's leading tokens other questions share (alone: their cache is reused)
    on_token: TokenCallback | None = None  # streams the answer when the prompt runs alone

    @property
    def memoised(self) -> bool:
        """Whether the encoding is looked up in (and kept in) the memo."""
        return self.memo is not None and self.encoding_key is not None

    @property
    def batch_key(self) -> tuple:
        """Prompts with equal keys can be generated in one batch (the seed is per prompt; each
        prompt's answer is decoded by its own tokenizer, the one of the model's checkpoint)."""
        return id(self.model), replace(self.generation, seed=0)

    def encode_job(self) -> EncodeJob:
        return EncodeJob(self.frames, self.replayed_slots, self.scaling)


@dataclass
class Generated:
    """A prompt's answer, and its share of the time spent encoding and generating."""

    text: str
    token_ids: list[int]
    encode_seconds: float
    generate_seconds: float
    streamed: bool  # the text already reached the job's ``on_token``


Steps = Generator[PromptJob, Generated, Result]
"""An item's answering code: yields prompts, receives their answers, returns its result."""


def drive(steps: Steps[Result]) -> Result:
    """Run an item's steps to their result, each prompt alone (:func:`run_prompt`).

    An error while generating is raised inside the item's code at its ``yield``, so it
    leaves as that code would leave it (videos closed, caches cut back).
    """
    reply: Generated | None = None
    while True:
        try:
            job = steps.send(reply)  # type: ignore[arg-type]  # the first send starts the generator
        except StopIteration as finished:
            return finished.value
        try:
            reply = run_prompt(job)
        except BaseException as error:
            steps.throw(error)
            raise


def run_prompt(job: PromptJob) -> Generated:
    """Encode (or find in the memo) and answer one prompt, streaming to ``job.on_token``.

    With a memo and a prefix length, the prefix's key/value cache is kept there and reused
    by the next prompt with the same prefix; it changes no answer (see ``GARModel.generate``).
    """
    model, memo = job.model, job.memo
    started = time.perf_counter()
    with torch.inference_mode():
        features, crops = _encodings([job])[0]
        embeds = model.embed_inputs(torch.tensor([job.input_ids]), features, crops)
        prefix = {}
        if memo is not None and job.prefix_length:
            cache = memo.get("prefix", (job.encoding_key, tuple(job.input_ids[: job.prefix_length])), model.new_cache)
            prefix = {"prefix_length": job.prefix_length, "prefix_cache": cache}
        synchronize(model.device)
        encoded = time.perf_counter()
        text, token_ids = generate_answer(model, job.tokenizer, embeds, job.generation, job.on_token, **prefix)
    synchronize(model.device)
    return Generated(text, token_ids, encoded - started, time.perf_counter() - encoded, streamed=job.on_token is not None)


def run_prompts(jobs: Sequence[PromptJob]) -> list[Generated]:
    """Answer several prompts together: their frames encoded in one pass (what a job's memo
    holds is reused), one left-padded prefill and one decoding loop (``GARModel.generate_batch``).

    Greedy answers equal those of :func:`run_prompt` for each job alone. Every job must share
    one :attr:`PromptJob.batch_key`; each gets an equal share of the time.
    """
    if len({job.batch_key for job in jobs}) != 1:
        raise ValueError("the prompts of one batch must share their model and decoding options")
    model, options = jobs[0].model, jobs[0].generation
    started = time.perf_counter()
    with torch.inference_mode():
        encodings = _encodings(jobs)
        embeds = [model.embed_inputs(torch.tensor([job.input_ids]), *encoding) for job, encoding in zip(jobs, encodings)]
        synchronize(model.device)
        encoded = time.perf_counter()
        answers = model.generate_batch(embeds, **decoding_arguments(options), seeds=[job.generation.seed for job in jobs])
    synchronize(model.device)
    share = 1 / len(jobs)
    encode_seconds, generate_seconds = (encoded - started) * share, (time.perf_counter() - encoded) * share
    return [
        Generated(decode_answer(job.tokenizer, ids), ids, encode_seconds, generate_seconds, streamed=False)
        for job, ids in zip(jobs, answers)
    ]


def _encodings(jobs: Sequence[PromptJob]) -> list[Encoding]:
    """Each job's encoding: from its memo when there, else computed (all missing ones in one
    :func:`encode_many` call, each distinct one once) and stored in the memo."""
    found: dict[int, Encoding] = {}
    missing: dict[Hashable, list[int]] = {}
    for index, job in enumerate(jobs):
        if job.memoised and job.memo.holds("encodings", job.encoding_key):
            found[index] = job.memo.get("encodings", job.encoding_key, lambda: None)
        else:
            shared = (id(job.memo), job.encoding_key) if job.memoised else index
            missing.setdefault(shared, []).append(index)
    computed = encode_many(jobs[0].model, [jobs[indices[0]].encode_job() for indices in missing.values()]) if missing else []
    for indices, encoding in zip(missing.values(), computed):
        first = jobs[indices[0]]
        if first.memoised:
            first.memo.put("encodings", first.encoding_key, encoding)
        found.update(dict.fromkeys(indices, encoding))
    return [found[index] for index in range(len(jobs))]
