"""Multiple-choice questions as GAR was evaluated on them, and the letter in its answer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from garvid.errors import GarvidError, invalid_text, printable
from garvid.files import read_input

_LEADING = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*[\)\]]?\s*(?:$|[.):,\]]|\s*[-:]\s)")
# "The answer is C", "Option (d)": a bare letter must be a capital ("the answer is a red cup" names no option).
_ANSWER_IS = re.compile(r"\b(?i:answer|option|choice)\s*(?i:is|:)?\s*[:\-]?\s*(?:[\(\[]([A-Za-z])[\)\]]|([A-Z]))(?![A-Za-z])")
_BRACKETED = re.compile(r"[\(\[]([A-Z])[\)\]]")
_OPTION_PREFIX = re.compile(r"^\s*[\(\[]?[A-Za-z][\)\].:]\s*")


def load_questions(path: Path, benchmark: str, required: Sequence[str]) -> list[dict[str, Any]]:
    """A benchmark's JSON list of questions, each checked for the fields garvid reads."""
    raw = read_input(path, f"{benchmark} annotations")
    try:
        items = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise GarvidError(f"cannot read {benchmark} annotations {path}: {error}") from None
    if not isinstance(items, list):
        raise GarvidError(f"{path}: expected a JSON list of questions")
    for position, item in enumerate(items):
        missing = [f for f in required if not isinstance(item, dict) or f not in item]
        if missing:
            raise GarvidError(f"{path}: item {position} lacks {', '.join(missing)}")
        problem = invalid_text(json.dumps(item, ensure_ascii=False))
        if problem:  # that item fails alone (:func:`check_item_text`), its record's text escaped
            items[position] = {**_escaped(item), BAD_TEXT: f"item {position} {problem}"}
    return items


#: Set by :func:`load_questions` on an item whose text is not valid Unicode: what its record's error says.
BAD_TEXT = "garvid: invalid text"


def check_item_text(item: dict[str, Any]) -> None:
    """GarvidError (the item's own error) for an item :func:`load_questions` found invalid text in."""
    if BAD_TEXT in item:
        raise GarvidError(item[BAD_TEXT])


def _escaped(value: Any) -> Any:
    """``value`` (JSON) with every string :func:`~garvid.errors.printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {printable(str(k)): _escaped(v) for k, v in value.items()}
    return value


def check_unique_ids(ids: Sequence[str], path: Path) -> None:
    """Refuse a benchmark whose items repeat an id: results are resumed by id, so a repeated
    one would be answered once and reported as missing forever."""
    first: dict[str, int] = {}
    for position, item_id in enumerate(ids):
        if item_id in first:
            raise GarvidError(f"{path}: item {position} repeats the id {item_id!r} of item {first[item_id]}: ids must be unique")
        first[item_id] = position


def item_options(item: dict[str, Any], field: str) -> list[str]:
    """An item's options (``field``) as text; GarvidError (that item's error) when they are not a list."""
    options = item[field]
    if not isinstance(options, list) or not options:
        raise GarvidError(f"the item's {field!r} must be a non-empty list of options, not {type(options).__name__}")
    return [str(option) for option in options]


def choices_question(question: str, options: Sequence[str]) -> str:
    """``Question: ...`` and the options one per line, as the reference's VQA evaluation writes it.

    The answer instruction ("Answer with the correct option's letter directly.") is added
    by the prompt builder's multiple-choice option.
    """
    return f"Question: {question}\nOptions:" + "".join(f"\n{option}" for option in options)


def option_letters(options: Sequence[str]) -> str:
    return "".join(chr(ord("A") + i) for i in range(len(options)))


def extract_choice(text: str, options: Sequence[str]) -> str | None:
    """The option letter an answer picks, or None when it names none (counted wrong).

    Accepts "B", "(B)", "B.", "b", "B) the cup", "The answer is C", "Option (d)", or the
    text of exactly one option as whole words; a letter that is not an option's, or a
    word that merely contains an option's text, is no answer.
    """
    letters = option_letters(options)
    answer = text.strip()
    candidates = []
    leading = _LEADING.match(answer)
    if leading and (len(answer) <= 3 or leading.group(1).isupper()):
        candidates.append(leading.group(1))
    candidates += [m.group(1) or m.group(2) for m in _ANSWER_IS.finditer(answer)]
    candidates += [m.group(1) for m in _BRACKETED.finditer(answer)]
    for candidate in candidates:
        if candidate.upper() in letters:
            return candidate.upper()
    bodies = [_OPTION_PREFIX.sub("", option).strip().rstrip(".") for option in options]
    named = [letters[i] for i, body in enumerate(bodies) if body and _names(answer, body)]
    return named[0] if len(named) == 1 else None


def _names(answer: str, phrase: str) -> bool:
    """Whether ``answer`` holds ``phrase`` as whole words ("no" is not in "I don't know")."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", answer, re.IGNORECASE) is not None
