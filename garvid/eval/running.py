"""A benchmark's pending items answered with one loaded GAR, ``--batch-size`` prompts at a time."""

from __future__ import annotations

from contextlib import closing
from typing import Any, Callable, Iterable

from garvid.eval.results import ResultLog
from garvid.options import PromptsPerPass
from garvid.qa.steps import PooledAnswering, Steps
from garvid.qa.reporting import Reporter

Record = dict[str, Any]


def answer_items(
    items: Iterable[tuple[str, Callable[[], Steps[Record]]]],
    log: ResultLog,
    per_pass: PromptsPerPass,
    setup: dict[str, str],
    *,
    reporter: Reporter,
    on_item: Callable[[Record], None],
    should_stop: Callable[[], bool],
) -> int:
    """Run each item's steps (``(id, start)``: ``start()`` begins it) with their prompts batched
    (:class:`~garvid.qa.steps.PooledAnswering`), and log each item's record, ``setup`` added,
    as it finishes: not always in the order of ``items``. The number of items answered (records
    with an error not counted).

    Each item's steps turn its own errors (bad input, out of memory) into its record. Items
    still in flight when ``should_stop`` ends the run, or when logging fails, are closed, so
    what they hold (open videos, temporary files) is released at once.
    """
    answering = PooledAnswering.reporting_to(reporter, per_pass)
    answered = 0
    with closing(answering.run(items, should_stop)) as outcomes:
        for outcome in outcomes:  # every outcome has a result: the item's steps record their errors
            record = {**outcome.result, **setup}
            log.add(record)
            on_item(record)
            answered += "error" not in record
    return answered
