"""The steps machinery: prompts that answering code yields, and who answers them.

Answering code (a video window, an object to describe, an image question) is written as
a *steps* generator: it yields each :class:`PromptJob` it needs answered and receives
its :class:`Generated` answer, then returns its result. Who runs the prompts is the
caller's choice, and the item's code is the same either way:

- :func:`drive` runs one item's prompts one by one (``garvid ask``, ``chat``, ``image``),
  streaming each answer and reusing an :class:`AnswerMemo`.
- :class:`PooledAnswering` runs many items' prompts together, several per forward pass
  (``--batch-size``; "batch" in garvid is many videos, a *pass* is many prompts at once).
  Items are started a few passes ahead; their pending prompts wait in a pool, and each
  pass takes the oldest prompt with the prompts nearest to it in length (so padding stays
  small and no item waits for ever), runs them together (:func:`run_together`) and hands
  each answer back to its item. A lone prompt runs as ``garvid ask`` runs it
  (:func:`run_prompt`, reusing its clip's prompt-prefix cache). Nothing is lost to a
  failing pass: out of memory halves it (and every later pass) and retries; any other
  error halves it until the one item it belongs to fails alone, with the error it would
  have had on its own.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generator, Generic, Hashable, Iterable, Iterator, Sequence, TypeVar

import torch

from garvid.devices import memory_errors, release_memory
from garvid.errors import first_line
from garvid.failures import item_errors
from garvid.gar.answering import AnswerTexts, RegionNames, TokenCallback, answer_texts, decoding_arguments, generate_answer, synchronize
from garvid.gar.encoding import EncodeJob, Encoding, encode_many
from garvid.gar.pass_size import auto_prompts_per_pass
from garvid.gar.processor import GARImageInputs
from garvid.options import GenerationOptions, PromptsPerPass, Scaling
from garvid.qa.reporting import Reporter

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
    fresh one unless given one (``garvid batch`` items about one clip share one), a
    :class:`garvid.qa.video_session.VideoSession` keeps one across questions.
    """

    #: Entries kept per kind: a chat moves between a few keyframe sets at most; a prefix
    #: cache of GAR-8B is about 0.85 GB, so only the latest one is kept. ``garvid when``
    #: keeps each keyframe's own encoding (``frame encodings``, about 2 MB each for GAR-8B in
    #: bf16): its windows share keyframes, and a scan of a minute looks at a few hundred.
    LIMITS: ClassVar[dict[str, int]] = {"frames": 256, "inputs": 256, "encodings": 4, "prefix": 1, "frame encodings": 512}

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
    region_names: RegionNames | None = None  # how the answer's region tokens read for the user (slot -> name)

    @property
    def memoised(self) -> bool:
        """Whether the encoding is looked up in (and kept in) the memo."""
        return self.memo is not None and self.encoding_key is not None

    @property
    def pass_key(self) -> tuple:
        """Prompts with equal keys can be generated in one pass (the seed is per prompt; each
        prompt's answer is decoded by its own tokenizer, the one of the model's checkpoint)."""
        return id(self.model), replace(self.generation, seed=0)

    def encode_job(self) -> EncodeJob:
        return EncodeJob(self.frames, self.replayed_slots, self.scaling)


@dataclass
class Generated:
    """A prompt's answer, and its share of the time spent encoding and generating."""

    texts: AnswerTexts
    token_ids: list[int]
    encode_seconds: float
    generate_seconds: float
    streamed: bool  # the text already reached the job's ``on_token``

    @property
    def text(self) -> str:
        """The answer as the user reads it."""
        return self.texts.text


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
        texts, token_ids = generate_answer(model, job.tokenizer, embeds, job.generation, job.on_token, job.region_names, **prefix)
    synchronize(model.device)
    return Generated(texts, token_ids, encoded - started, time.perf_counter() - encoded, streamed=job.on_token is not None)


def run_together(jobs: Sequence[PromptJob]) -> list[Generated]:
    """Answer several prompts together: their frames encoded in one pass (what a job's memo
    holds is reused), one left-padded prefill and one decoding loop (``GARModel.generate_many``).

    Greedy answers equal those of :func:`run_prompt` for each job alone. Every job must share
    one :attr:`PromptJob.pass_key`; each gets an equal share of the time.
    """
    if len({job.pass_key for job in jobs}) != 1:
        raise ValueError("the prompts of one pass must share their model and decoding options")
    model, options = jobs[0].model, jobs[0].generation
    started = time.perf_counter()
    with torch.inference_mode():
        encodings = _encodings(jobs)
        embeds = [model.embed_inputs(torch.tensor([job.input_ids]), *encoding) for job, encoding in zip(jobs, encodings)]
        synchronize(model.device)
        encoded = time.perf_counter()
        answers = model.generate_many(embeds, **decoding_arguments(options), seeds=[job.generation.seed for job in jobs])
    synchronize(model.device)
    share = 1 / len(jobs)
    encode_seconds, generate_seconds = (encoded - started) * share, (time.perf_counter() - encoded) * share
    return [
        Generated(answer_texts(job.tokenizer, ids, job.region_names), ids, encode_seconds, generate_seconds, streamed=False)
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


Key = TypeVar("Key", bound=Hashable)
#: Items started per prompt a pass holds: enough choice of prompt lengths, few prompts held in memory.
LOOKAHEAD = 4
#: Headroom over the first prompt's length when ``auto`` sizes passes: later prompts vary.
AUTO_LENGTH_MARGIN = 1.25


@dataclass
class Outcome(Generic[Key]):
    """An item's result, or the error it failed with."""

    key: Key
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Pending(Generic[Key]):
    key: Key
    steps: Steps
    job: PromptJob
    begun: bool = False  # in flight (a prompt answered, or started as the stop came): a stop finishes it


class PooledAnswering:
    """Runs items' steps, several of their prompts per forward pass (see the module docstring).

    ``item_errors`` are the errors that fail one item and not the run (bad input, out of
    memory with one prompt a pass); ``on_smaller(size, reason)`` is told when out of memory
    makes the passes smaller.
    """

    def __init__(
        self,
        per_pass: PromptsPerPass,
        item_errors: tuple[type[BaseException], ...],
        on_smaller: Callable[[int, str], None] = lambda size, reason: None,
    ):
        self.per_pass = per_pass
        self.item_errors = item_errors
        self.on_smaller = on_smaller

    @classmethod
    def reporting_to(cls, reporter: Reporter, per_pass: PromptsPerPass) -> PooledAnswering:
        """What a run over many items uses: an item fails on bad input or out of memory (at
        one prompt a pass), and smaller passes are told to ``reporter`` as a warning."""
        return cls(
            per_pass,
            item_errors(),
            on_smaller=lambda size, reason: reporter.warn(f"{reason}: answering {size} at a time from now on"),
        )

    def run(
        self, items: Iterable[tuple[Key, Callable[[], Steps]]], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[Outcome[Key]]:
        """Each item's outcome as it finishes. ``items`` are started lazily; once ``should_stop``
        says so no item is started, those started ahead but not yet answered at all (the
        lookahead) are closed, and the items in flight (a prompt answered, or being started when
        the stop came) are finished, every prompt of each (a describe or ``--window`` item asks
        several): a stop loses no begun work."""
        source = iter(items)
        pool: list[_Pending[Key]] = []
        try:
            while True:
                while not should_stop() and len(pool) < self._pool_size():
                    started = next(source, None)
                    if started is None:
                        break
                    step = self._advance(started[0], started[1](), None)
                    if isinstance(step, Outcome):
                        yield step
                    else:
                        step.begun = should_stop()  # stopped while it was being started: the current item
                        pool.append(step)
                        self._resolve_auto(step.job)
                if should_stop():
                    for waiting in [p for p in pool if not p.begun]:
                        pool.remove(waiting)
                        waiting.steps.close()
                if not pool:
                    return
                prompts = self._next_pass(pool)
                for pending, reply in zip(prompts, self._answer(prompts)):
                    pool.remove(pending)
                    step = self._advance(pending.key, pending.steps, reply)
                    if isinstance(step, Outcome):
                        yield step
                    else:
                        pool.append(step)
        finally:
            for pending in pool:
                pending.steps.close()

    def _pool_size(self) -> int:
        """Items in flight: a few passes' worth; one at a time while ``auto`` is unresolved or at size 1."""
        return self.per_pass * LOOKAHEAD if isinstance(self.per_pass, int) and self.per_pass > 1 else 1

    def _resolve_auto(self, job: PromptJob) -> None:
        if self.per_pass == "auto":
            tokens = int(len(job.input_ids) * AUTO_LENGTH_MARGIN) + job.generation.max_new_tokens
            self.per_pass = auto_prompts_per_pass(job.model, tokens)

    def _advance(self, key: Key, steps: Steps, reply: Generated | BaseException | None) -> _Pending[Key] | Outcome[Key]:
        """Hand ``reply`` (an answer, an error, or None to start) to an item: its next prompt, or its outcome."""
        try:
            job = steps.throw(reply) if isinstance(reply, BaseException) else steps.send(reply)  # type: ignore[arg-type]
        except StopIteration as finished:
            return Outcome(key, result=finished.value)
        except self.item_errors as error:
            return Outcome(key, error=error)
        return _Pending(key, steps, job, begun=reply is not None)

    def _next_pass(self, pool: list[_Pending[Key]]) -> list[_Pending[Key]]:
        """The oldest pending prompt and the ones nearest to it in length that can share its pass."""
        oldest = pool[0]
        size = int(self.per_pass)
        same = sorted((p for p in pool if p.job.pass_key == oldest.job.pass_key), key=lambda p: len(p.job.input_ids))
        at = same.index(oldest)
        spans = [same[start : start + size] for start in range(max(0, at - size + 1), min(at, max(len(same) - size, 0)) + 1)]
        return min(spans, key=lambda span: len(span[-1].job.input_ids) - len(span[0].job.input_ids))

    def _answer(self, prompts: list[_Pending[Key]]) -> list[Generated | BaseException]:
        """Answers of one pass's prompts; a failing pass is halved (see the module docstring)."""
        if len(prompts) == 1:
            try:
                return [run_prompt(prompts[0].job)]
            except self.item_errors as error:
                return [error]
        half, out_of_memory = len(prompts) // 2, None
        try:
            return run_together([pending.job for pending in prompts])
        except memory_errors() as error:
            out_of_memory = first_line(error)
        except self.item_errors:
            pass  # one of the prompts is bad: halving finds it
        if out_of_memory is not None:
            release_memory()  # here, not in the except block, whose traceback still holds the pass's tensors
            if isinstance(self.per_pass, int) and self.per_pass > half:
                self.per_pass = half
                self.on_smaller(half, f"out of memory answering {len(prompts)} prompts together ({out_of_memory})")
        return self._answer(prompts[:half]) + self._answer(prompts[half:])
