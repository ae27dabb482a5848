"""What image and video answering share: streaming decoded text and the decode call.

GAR writes region tokens in its answers (``<Prompt1> is beside <Prompt0>.``). The
reference decodes with special tokens skipped, so they vanish (``is beside.``); garvid
keeps three texts of each answer (:class:`AnswerTexts`): the user's, with each region
token replaced by the name of the object in that slot; the model's raw text, tokens
kept; and the reference's, which benchmarks score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from garvid.gar.tokenizer import CLEAN_UP_REACH, EOT_TOKEN_ID, PROMPT_TOKENS, clean_up_tokenization, wants_clean_up
from garvid.options import GenerationOptions

TokenCallback = Callable[[int, str], None]
"""Called once per generated token with its id and the text it adds (may be empty), and
once more after the last token (with its id) with any text held back until the end."""


def synchronize(device: torch.device | str) -> None:
    """Wait for queued CUDA work so the stage timings are honest."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _settled_end(text: str, reach: int) -> int:
    """Length of the prefix of ``text`` no later token can change once decoded and stripped.

    The cut must follow ``reach`` non-space characters (the clean-up's patterns start with
    a space and span at most ``reach + 1`` characters; trailing whitespace is stripped from
    the final answer), or the start of the text.
    """
    for word in reversed(list(re.finditer(r"\S+", text))):
        if word.end() - word.start() >= reach or word.start() == 0:
            return word.end()
    return 0


class TextStream:
    """Turns generated ids into text deltas whose concatenation is the final answer.

    Text is emitted once it is settled: whole characters only, leading whitespace dropped,
    trailing whitespace and (with the checkpoint's clean-up on) the last few characters
    held back until a later token or :meth:`finish` settles them.
    """

    def __init__(self, tokenizer, callback: TokenCallback, names: RegionNames | None = None):
        self.tokenizer, self.callback, self.names = tokenizer, callback, names or {}
        self.region_tokens = _region_token_ids(tokenizer)  # looked up once, not once per token
        self.reach = CLEAN_UP_REACH if wants_clean_up(tokenizer) else 1
        self.ids: list[int] = []
        self.emitted = ""

    def _emit(self, token_id: int, text: str) -> None:
        # settled text only grows (see _settled_end), so it extends what was emitted
        delta = text[len(self.emitted) :] if text.startswith(self.emitted) else ""
        self.emitted += delta
        self.callback(token_id, delta)

    def __call__(self, token_id: int) -> None:
        self.ids.append(int(token_id))
        raw = _named(_decode_raw(self.tokenizer, self.ids, self.region_tokens), self.names).rstrip("\ufffd")  # an incomplete UTF-8 sequence waits
        self._emit(int(token_id), answer_text(self.tokenizer, raw[: _settled_end(raw, self.reach)]))

    def finish(self, answer: str) -> None:
        """Emit whatever of the final ``answer`` is still held back."""
        if self.ids and answer != self.emitted:
            self._emit(self.ids[-1], answer)


def _decode(tokenizer, token_ids: list[int]) -> str:
    """Token ids to text, special tokens dropped, no clean-up (garvid applies it: :func:`answer_text`)."""
    return tokenizer.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


RegionNames = Mapping[int, str]
"""How each region token of an answer reads for the user: prompt slot -> the name of its object."""

_REGION_TOKEN = re.compile(r"(\s*)(?:<Prompt(\d+)>|<NO_Prompt>)")


@dataclass(frozen=True)
class AnswerTexts:
    """One answer's texts (each with the checkpoint's clean-up applied, stripped)."""

    text: str  # for the user: each region token replaced by its object's name (unknown slots dropped)
    raw_text: str  # the model's own text, region tokens kept as ``<PromptK>``
    reference_text: str  # as the reference decodes it (region tokens dropped): what benchmarks score


def _region_token_ids(tokenizer) -> dict[int, str]:
    """The checkpoint's ids of GAR's region tokens (``<Prompt0>``.. and ``<NO_Prompt>``)."""
    ids = tokenizer.convert_tokens_to_ids(PROMPT_TOKENS)
    return {token_id: token for token_id, token in zip(ids, PROMPT_TOKENS) if token_id != tokenizer.unk_token_id}


def _decode_raw(tokenizer, token_ids: list[int], region_tokens: Mapping[int, str]) -> str:
    """Token ids to text with GAR's region tokens (``region_tokens``: id -> token) kept as
    ``<PromptK>`` and every other special token dropped."""
    parts, run = [], []
    for token_id in token_ids:
        if token_id in region_tokens:
            parts += [_decode(tokenizer, run), region_tokens[token_id]]
            run = []
        else:
            run.append(token_id)
    return "".join([*parts, _decode(tokenizer, run)])


def _named(raw: str, names: RegionNames) -> str:
    """``raw`` with each region token replaced by its object's name, or dropped with the space
    before it when no object fills its slot (``is beside <Prompt3>.`` reads ``is beside.``)."""

    def name(match: re.Match[str]) -> str:
        slot = match.group(2)
        named = names.get(int(slot)) if slot is not None else None
        return match.group(1) + named if named is not None else ""

    return _REGION_TOKEN.sub(name, raw)


def answer_texts(tokenizer, token_ids: list[int], names: RegionNames | None = None) -> AnswerTexts:
    """Generated ids as the answer's three texts (see :class:`AnswerTexts`)."""
    raw = _decode_raw(tokenizer, token_ids, _region_token_ids(tokenizer))
    return AnswerTexts(
        text=answer_text(tokenizer, _named(raw, names or {})),
        raw_text=answer_text(tokenizer, raw),
        reference_text=answer_text(tokenizer, _decode(tokenizer, token_ids)),
    )


def answer_text(tokenizer, text: str) -> str:
    """Decoded text as the reference's answer: the checkpoint's clean-up applied, then stripped."""
    return (clean_up_tokenization(text) if wants_clean_up(tokenizer) else text).strip()


def decoding_arguments(options: GenerationOptions) -> dict[str, Any]:
    """What :meth:`GARModel.generate` and ``generate_many`` take from ``options`` (the seed aside:
    one for a prompt, one per prompt for a batch); answers end at the end-of-turn token."""
    return {
        "max_new_tokens": options.max_new_tokens,
        "do_sample": options.sample,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "eos_token_ids": (EOT_TOKEN_ID,),
    }


def generate_answer(
    model,
    tokenizer,
    inputs_embeds: torch.Tensor,
    options: GenerationOptions,
    on_token: TokenCallback | None = None,
    names: RegionNames | None = None,
    **prefix,
) -> tuple[AnswerTexts, list[int]]:
    """Decode an answer from prompt embeddings: its texts (region tokens read as ``names``) and token ids.

    The stream sends the user's text. ``prefix`` passes :meth:`GARModel.generate`'s
    ``prefix_length`` and ``prefix_cache``.
    """
    stream = TextStream(tokenizer, on_token, names) if on_token is not None else None
    answer_ids = [int(i) for i in model.generate(inputs_embeds, **decoding_arguments(options), seed=options.seed, on_token=stream, **prefix)]
    texts = answer_texts(tokenizer, answer_ids, names)
    if stream is not None:
        stream.finish(texts.text)
    return texts, answer_ids
