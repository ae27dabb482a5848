"""Per-item results as JSON lines (resumable) and accuracy per question type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from garvid.errors import GarvidError
from garvid.files import atomic_path

AVERAGE = "Average"
#: Answer tokens for a multiple-choice question: a letter needs one or two; longer answers are wrong anyway.
ANSWER_TOKENS = 64


def published_row(order: Sequence[str], *accuracies: float) -> dict[str, float]:
    """A published result: accuracy (%) per question type in ``order``, then the average."""
    names = (*order, AVERAGE)
    if len(accuracies) != len(names):
        raise ValueError(f"expected {len(names)} accuracies, got {len(accuracies)}")
    return dict(zip(names, accuracies))


class ResultLog:
    """``results.jsonl``: one line per finished item, flushed as it goes.

    Reopening it resumes a run: items already in it are done. A line cut short by a
    crash or a kill is dropped (that item runs again), never half-trusted. The file is
    created with the first result, so a run that fails before any item leaves nothing.
    """

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "id" in record:
                    self.records[str(record["id"])] = record
            if len(self.records) < len(lines) or (text and not text.endswith("\n")):
                # drop the cut-off line (atomically) before appending after it
                with atomic_path(path) as temp:
                    temp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records.values()), encoding="utf-8")

    def done(self, item_id: str) -> bool:
        return str(item_id) in self.records

    def add(self, record: dict[str, Any]) -> None:
        self.records[str(record["id"])] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record, ensure_ascii=False) + "\n")
            log.flush()


def refuse_mixed(log: ResultLog, **settings: str) -> None:
    """One results file, one setup: refuse to resume a file whose records were made with other settings."""
    for name, value in settings.items():
        others = sorted({str(r[name]) for r in log.records.values() if name in r} - {value})
        if others:
            raise GarvidError(f"{log.path} holds results made with {name} {others[0]}, not {value}: write this run elsewhere with -o")


def accuracy_table(records: Sequence[dict[str, Any]], order: Sequence[str] = ()) -> dict[str, dict[str, float]]:
    """``{type: {"correct", "total", "accuracy"}}`` in ``order`` (then first appearance), plus the average.

    The average is over all items (every item counts once), as the published tables report it.
    """
    types = [t for t in order if any(r["type"] == t for r in records)]
    types += [t for t in dict.fromkeys(r["type"] for r in records) if t not in types]
    table = {}
    for name in types:
        group = [r for r in records if r["type"] == name]
        table[name] = _score(group)
    table[AVERAGE] = _score(list(records))
    return table


def _score(group: Sequence[dict[str, Any]]) -> dict[str, float]:
    correct = sum(1 for r in group if r.get("correct"))
    return {"correct": correct, "total": len(group), "accuracy": round(100.0 * correct / len(group), 1) if group else 0.0}
