"""GAR's prompt text and token layout, byte for byte as the reference evaluates them.

Two templates (the reference's ``evaluation/eval_dataset.py``):

* one region, no question (``SingleRegionCaptionDataset``; the region sits in slot 1)::

    There are some objects I am curious about: <Prompt1>;\\n<Prompt1>: <crop1 x256>Describe this masked region in detail.

* questions about regions (``MultiRegionDataset``)::

    There are some objects I am curious about: <Prompt0>; <Prompt1>; \\n<Prompt0>: <crop0 x256>\\n<Prompt1>: <crop1 x256>\\n\\n<question>

garvid lists the regions in ascending slot order (the reference iterates a Python set).
The text goes into PerceptionLM's chat template after one ``<|image|>``, which is then
expanded to ``256 * tiles`` image tokens. The reference renders the template (it already
writes ``<|begin_of_text|>``) and tokenizes with special tokens on, so its sequences
start with two BOS tokens; garvid does the same by default (``double_bos=True``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Iterable, Mapping, Sequence

from garvid.errors import RegionError
from garvid.gar.tokenizer import (
    CROP_TOKEN_IDS,
    IMAGE_TOKEN_ID,
    NUM_PROMPTS,
    crop_token,
    prompt_token,
)

CROP_TOKENS_PER_REGION = 256
REGION_LIST_PREFIX = "There are some objects I am curious about: "
DESCRIBE_INSTRUCTION = "Describe this masked region in detail."
MULTIPLE_CHOICE_SUFFIX = "Answer with the correct option's letter directly."
DESCRIBE_SLOT = 1
"""Prompt slot of the single-region description prompt (the reference's default ``<Prompt1>``)."""


# --- reusable pieces ---------------------------------------------------------------------


def crop_run(index: int, count: int = CROP_TOKENS_PER_REGION) -> str:
    """Region ``index``'s crop token, ``count`` times: where its replayed features go."""
    return crop_token(index) * count


def region_items(indices: Iterable[int]) -> str:
    """``<P0>; <P1>; ``: the regions of a region list (every item ends ``; ``)."""
    return "".join(f"{prompt_token(i)}; " for i in indices)


def region_list(indices: Iterable[int]) -> str:
    """``There are some objects I am curious about: <P0>; <P1>; ``."""
    return REGION_LIST_PREFIX + region_items(indices)


def region_crop_lines(indices: Iterable[int]) -> str:
    """One ``<PK>: <cropK x256>`` line per region, each ending in a newline."""
    return "".join(f"{prompt_token(i)}: {crop_run(i)}\n" for i in indices)


def describe_region_text(index: int = DESCRIBE_SLOT, instruction: str = DESCRIBE_INSTRUCTION) -> str:
    """The single-region description prompt (no trailing space after ``;``, no newline before the instruction)."""
    token = prompt_token(index)
    return f"{REGION_LIST_PREFIX}{token};\n{token}: {crop_run(index)}{instruction}"


def region_question_text(indices: Sequence[int], question: str) -> str:
    """The multi-region prompt: region list, a newline, the crop lines, a newline, the question.

    ``question`` is a planned question (:func:`plan_question`): user text whose only
    tokens are the ``<PromptK>`` references garvid checked.
    """
    return region_list(indices) + "\n" + region_crop_lines(indices) + "\n" + plain_question(question)


def with_multiple_choice_suffix(question: str) -> str:
    """Append the reference's multiple-choice instruction on its own line."""
    return f"{question}\n{MULTIPLE_CHOICE_SUFFIX}"


# --- object references in user questions -------------------------------------------------

_OBJECT_WORD = re.compile(r"\b(?:object|obj)\.?\s*#?\s*(\d+)\b", re.IGNORECASE)
_HASH_NUMBER = re.compile(r"(?<![\w#&])#(\d+)\b")
_PROMPT_TOKEN = re.compile(r"<Prompt(\d+)>")


def names_an_object(question: str) -> bool:
    """Whether ``question`` refers to an object ("object 2", "obj 2", "#2" or ``<PromptK>``)."""
    return any(pattern.search(question) for pattern in (_OBJECT_WORD, _HASH_NUMBER, _PROMPT_TOKEN))


@dataclass(frozen=True)
class RewrittenQuestion:
    text: str  # the question with every object reference turned into <PromptK>
    slots: list[int]  # prompt slots it names, ascending; all regions when it names none


def rewrite_question(question: str, object_to_slot: Mapping[int, int]) -> RewrittenQuestion:
    """Turn ``object 2``, ``obj 2``, ``Object #2`` and ``#2`` into ``<Prompt{slot}>``.

    ``object_to_slot`` maps the user's object ids (1-based, as in the mask file) to GAR
    prompt slots. Raw ``<PromptK>`` tokens are kept and must name a defined slot. An
    object not among them (masks, boxes, names or a tracks file give them) is a RegionError; a question naming no object is
    about every region.
    """
    defined = ", ".join(str(i) for i in sorted(object_to_slot)) or "none"

    def to_token(match: re.Match[str]) -> str:
        object_id = int(match.group(1))
        if object_id not in object_to_slot:
            raise RegionError(f"the question mentions {match.group(0)!r} but there are objects {defined} only")
        return prompt_token(object_to_slot[object_id])

    text = _HASH_NUMBER.sub(to_token, _OBJECT_WORD.sub(to_token, question))
    named = {int(m) for m in _PROMPT_TOKEN.findall(text)}
    known_slots = set(object_to_slot.values())
    unknown = sorted(named - known_slots)
    if unknown:
        raise RegionError(
            f"the question names {prompt_token(unknown[0])} but no mask fills that slot "
            f"(slots in use: {', '.join(str(s) for s in sorted(known_slots)) or 'none'})"
        )
    return RewrittenQuestion(text=text, slots=sorted(named) if named else sorted(known_slots))


@dataclass(frozen=True)
class QuestionPlan:
    """Which of the user's objects a question is about and which of GAR's region slots each fills.

    The one plan type of image and video answering. A description of several objects, one
    after the other, fills no slot here: each object goes in ``DESCRIBE_SLOT`` in turn.
    """

    objects: list[int]  # the objects asked about (or described), ascending
    slot_objects: dict[int, int]  # GAR prompt slot -> the user's object id, slots ascending
    prompt_question: str  # the question as GAR reads it (<PromptK> for objects)


def plan_question(object_ids: Sequence[int], question: str, multiple_choice: bool = False) -> QuestionPlan:
    """Which slots hold which objects (object N -> slot N-1) for a question about them.

    Only the objects the question names get a slot; a question naming none is about all.
    """
    if not object_ids:
        raise RegionError("no regions given: pass at least one mask, box or point")
    bad = [i for i in object_ids if not 1 <= i <= NUM_PROMPTS]
    if bad:
        raise RegionError(f"object id {bad[0]} is outside 1..{NUM_PROMPTS} (GAR has five region slots)")
    if not question.strip():
        raise RegionError("the question is empty")
    rewritten = rewrite_question(question.strip(), {object_id: object_id - 1 for object_id in object_ids})
    text = with_multiple_choice_suffix(rewritten.text) if multiple_choice else rewritten.text
    return QuestionPlan([slot + 1 for slot in rewritten.slots], {slot: slot + 1 for slot in rewritten.slots}, text)


# --- user text stays text ----------------------------------------------------------------
#
# What a user types (questions, option texts) may contain strings such as "<|eot_id|>" or
# "<|image|>". Tokenized with the prompt's special-token parsing, they would become
# control tokens. So user text is held out of the prompt string as a placeholder (its
# UTF-8 bytes in hex between two private-use characters: nothing a chat template, a
# format string or the special-token scan can touch) and is tokenized as plain text.

_PLAIN_START, _PLAIN_END = "\ue000", "\ue001"
_PLAIN = re.compile(f"{_PLAIN_START}([0-9a-f]*){_PLAIN_END}")
_PROMPT_REFERENCE = re.compile(r"(<Prompt\d+>)")


def plain(text: str) -> str:
    """``text`` as a placeholder that :func:`tokenize_prompt` tokenizes as plain text only."""
    return f"{_PLAIN_START}{text.encode('utf-8').hex()}{_PLAIN_END}"


def plain_question(question: str) -> str:
    """A planned question with its text held as plain text and its ``<PromptK>`` kept as tokens.

    Only :func:`plan_question`'s output belongs here: it has checked that every
    ``<PromptK>`` names a region in use.
    """
    return "".join(piece if index % 2 else plain(piece) for index, piece in enumerate(_PROMPT_REFERENCE.split(question)) if piece)


def _plain_ids(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with no added or special token recognised in it.

    The checkpoint's own normalizer, pre-tokenizer and model do the work, exactly the
    steps its tokenizer runs on the text between two added tokens.
    """
    if not text:
        return []
    backend = tokenizer.backend_tokenizer
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    pieces = backend.pre_tokenizer.pre_tokenize_str(text) if backend.pre_tokenizer is not None else [(text, None)]
    return [token.id for piece, _ in pieces for token in backend.model.tokenize(piece)]


@cache
def _added_token_pattern(added_tokens: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(token) for token in sorted(added_tokens, key=len, reverse=True)))


def visible_text(text: str) -> str:
    """``text`` with every :func:`plain` piece shown as the user's text again."""
    return _PLAIN.sub(lambda match: bytes.fromhex(match.group(1)).decode("utf-8"), text)


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a rendered prompt whose user text is held in :func:`plain` pieces.

    Added tokens (the chat template's, ``<|image|>``, ``<PromptK>``, crop tokens) are
    recognised only in garvid's own text; plain pieces never become one. Text between
    two added tokens, plain pieces included, is tokenized as one piece, as the tokenizer
    itself would.
    """
    vocabulary = tokenizer.get_added_vocab()
    specials = _added_token_pattern(tuple(vocabulary))
    ids: list[int] = []
    pending: list[str] = []  # text since the last added token
    position = 0
    for match in [*_PLAIN.finditer(text), None]:
        own = text[position : match.start() if match else len(text)]
        start = 0
        for token in specials.finditer(own):
            pending.append(own[start : token.start()])
            ids += _plain_ids(tokenizer, "".join(pending)) + [vocabulary[token.group()]]
            pending, start = [], token.end()
        pending.append(own[start:])
        if match:
            pending.append(bytes.fromhex(match.group(1)).decode("utf-8"))
            position = match.end()
    return ids + _plain_ids(tokenizer, "".join(pending))


# --- chat template and tokens ------------------------------------------------------------


@dataclass(frozen=True)
class PromptTokens:
    """Token ids of one prompt and where its images and crop runs sit."""

    input_ids: list[int]
    image_spans: list[tuple[int, int]]  # [start, end) of each image's tokens, in order
    crop_spans: dict[int, list[tuple[int, int]]]  # prompt slot -> [start, end) of each of its crop runs, in order
    text: str  # the rendered chat text (user text restored) before the image placeholders are expanded


def render_chat(tokenizer, chat_template: str, user_text: str, *, num_images: int = 1) -> str:
    """Render one user turn (``num_images`` images first, then text) with the generation prompt added."""
    content = [{"type": "image"}] * num_images + [{"type": "text", "text": user_text}]
    messages = [{"role": "user", "content": content}]
    return tokenizer.apply_chat_template(messages, chat_template=chat_template, add_generation_prompt=True, tokenize=False)


def _expand(ids: list[int], token_id: int, count: int) -> list[int]:
    """``ids`` with every ``token_id`` repeated ``count`` times."""
    return [expanded for value in ids for expanded in ([value] * count if value == token_id else [value])]


def _runs(ids: list[int], token_id: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for position, value in enumerate(ids):
        if value != token_id:
            continue
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    return runs


def tokenize_prompt(
    tokenizer,
    chat_template: str,
    user_text: str,
    tokens_per_image: int,
    *,
    leading_images: int = 1,
    double_bos: bool = True,
) -> PromptTokens:
    """Token ids of a user turn in the chat template, every image placeholder expanded.

    ``leading_images`` images come before the text (the image prompt); a temporal prompt
    passes 0 and writes one ``<|image|>`` per keyframe inside ``user_text``. Each
    placeholder becomes ``tokens_per_image`` image tokens, and images must be separated
    by text. ``double_bos=True`` reproduces the reference's eval path (template BOS +
    tokenizer BOS); ``False`` keeps only the template's BOS, as in training.
    """
    rendered = render_chat(tokenizer, chat_template, user_text, num_images=leading_images)
    ids = encode_prompt(tokenizer, rendered)
    num_images = ids.count(IMAGE_TOKEN_ID)
    if num_images < 1:
        raise ValueError("the prompt holds no image placeholder")
    ids = ([tokenizer.bos_token_id] if double_bos else []) + _expand(ids, IMAGE_TOKEN_ID, tokens_per_image)
    image_runs = _runs(ids, IMAGE_TOKEN_ID)
    if len(image_runs) != num_images or any(end - start != tokens_per_image for start, end in image_runs):
        raise ValueError(f"expected {num_images} separate runs of {tokens_per_image} image tokens, found runs {image_runs}")
    crop_spans: dict[int, list[tuple[int, int]]] = {}
    for slot in range(NUM_PROMPTS):
        runs = _runs(ids, CROP_TOKEN_IDS[slot])
        if any(end - start != CROP_TOKENS_PER_REGION for start, end in runs):
            raise ValueError(f"region slot {slot}: expected runs of {CROP_TOKENS_PER_REGION} crop tokens, found {runs}")
        if runs:
            crop_spans[slot] = runs
    return PromptTokens(input_ids=ids, image_spans=image_runs, crop_spans=crop_spans, text=visible_text(rendered))
