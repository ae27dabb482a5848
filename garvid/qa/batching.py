"""Answer many items with one GAR, several prompts per forward pass: ``--batch-size``.

Each item is its answering code as steps (:mod:`garvid.qa.generation`). Items are started
a few batches ahead; their pending prompts wait in a pool, and each batch takes the
oldest prompt with the prompts nearest to it in length (so padding stays small and no
item waits for ever), runs them together (:func:`~garvid.qa.generation.run_prompts`)
and hands each answer back to its item, which goes on to its next prompt or its result.
A lone prompt runs as ``garvid ask`` runs it (:func:`~garvid.qa.generation.run_prompt`,
reusing its clip's prompt-prefix cache).

Nothing is lost to a failing batch: out of memory halves it (and every later batch) and
retries; any other error halves it until the one item it belongs to fails alone, with
the error it would have had on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Iterable, Iterator, TypeVar

from garvid.devices import memory_errors, release_memory
from garvid.errors import GarvidError, first_line
from garvid.gar.batch_size import auto_batch_size
from garvid.options import BatchSize
from garvid.qa.generation import Generated, PromptJob, Steps, run_prompt, run_prompts
from garvid.qa.reporting import Reporter

Key = TypeVar("Key", bound=Hashable)
#: Items started per batch slot: enough choice of prompt lengths, few prompts held in memory.
LOOKAHEAD = 4
#: Headroom over the first prompt's length when ``auto`` sizes batches: later prompts vary.
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


class BatchedAnswering:
    """Runs items' steps with their prompts batched (see the module docstring).

    ``item_errors`` are the errors that fail one item and not the run (bad input, out of
    memory at batch size 1); ``on_smaller(size, reason)`` is told when out of memory
    makes the batches smaller.
    """

    def __init__(
        self,
        batch_size: BatchSize,
        item_errors: tuple[type[BaseException], ...],
        on_smaller: Callable[[int, str], None] = lambda size, reason: None,
    ):
        self.batch_size = batch_size
        self.item_errors = item_errors
        self.on_smaller = on_smaller

    @classmethod
    def reporting_to(cls, reporter: Reporter, batch_size: BatchSize) -> BatchedAnswering:
        """What a run over many items uses: an item fails on bad input or out of memory (at
        batch size 1), and smaller batches are told to ``reporter`` as a warning."""
        return cls(
            batch_size,
            (GarvidError, *memory_errors()),
            on_smaller=lambda size, reason: reporter.warn(f"{reason}: answering {size} at a time from now on"),
        )

    def run(
        self, items: Iterable[tuple[Key, Callable[[], Steps]]], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[Outcome[Key]]:
        """Each item's outcome as it finishes. ``items`` are started lazily; ``should_stop``
        ends the run between batches (items not finished by then are dropped, not failed)."""
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
                        pool.append(step)
                        self._resolve_auto(step.job)
                if not pool or should_stop():
                    return
                batch = self._next_batch(pool)
                for pending, reply in zip(batch, self._answer(batch)):
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
        """Items in flight: a few batches' worth; one at a time while ``auto`` is unresolved or at size 1."""
        return self.batch_size * LOOKAHEAD if isinstance(self.batch_size, int) and self.batch_size > 1 else 1

    def _resolve_auto(self, job: PromptJob) -> None:
        if self.batch_size == "auto":
            tokens = int(len(job.input_ids) * AUTO_LENGTH_MARGIN) + job.generation.max_new_tokens
            self.batch_size = auto_batch_size(job.model, tokens)

    def _advance(self, key: Key, steps: Steps, reply: Generated | BaseException | None) -> _Pending[Key] | Outcome[Key]:
        """Hand ``reply`` (an answer, an error, or None to start) to an item: its next prompt, or its outcome."""
        try:
            job = steps.throw(reply) if isinstance(reply, BaseException) else steps.send(reply)  # type: ignore[arg-type]
        except StopIteration as finished:
            return Outcome(key, result=finished.value)
        except self.item_errors as error:
            return Outcome(key, error=error)
        return _Pending(key, steps, job)

    def _next_batch(self, pool: list[_Pending[Key]]) -> list[_Pending[Key]]:
        """The oldest pending prompt and the ones nearest to it in length that can share its batch."""
        oldest = pool[0]
        size = int(self.batch_size)
        same = sorted((p for p in pool if p.job.batch_key == oldest.job.batch_key), key=lambda p: len(p.job.input_ids))
        at = same.index(oldest)
        spans = [same[start : start + size] for start in range(max(0, at - size + 1), min(at, max(len(same) - size, 0)) + 1)]
        return min(spans, key=lambda span: len(span[-1].job.input_ids) - len(span[0].job.input_ids))

    def _answer(self, batch: list[_Pending[Key]]) -> list[Generated | BaseException]:
        """Answers of the batch's prompts; a failing batch is halved (see the module docstring)."""
        if len(batch) == 1:
            try:
                return [run_prompt(batch[0].job)]
            except self.item_errors as error:
                return [error]
        half, out_of_memory = len(batch) // 2, None
        try:
            return run_prompts([pending.job for pending in batch])
        except memory_errors() as error:
            out_of_memory = first_line(error)
        except self.item_errors:
            pass  # one of the prompts is bad: halving finds it
        if out_of_memory is not None:
            release_memory()  # here, not in the except block, whose traceback still holds the batch's tensors
            if isinstance(self.batch_size, int) and self.batch_size > half:
                self.batch_size = half
                self.on_smaller(half, f"out of memory answering {len(batch)} prompts together ({out_of_memory})")
        return self._answer(batch[:half]) + self._answer(batch[half:])
