"""What image and video answering share: streaming decoded text and the decode call."""

from __future__ import annotations

import re
from typing import Any, Callable

import torch

from garvid.gar.tokenizer import CLEAN_UP_REACH, EOT_TOKEN_ID, clean_up_tokenization, wants_clean_up
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

    def __init__(self, tokenizer, callback: TokenCallback):
        self.tokenizer, self.callback = tokenizer, callback
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
        raw = _decode(self.tokenizer, self.ids).rstrip("\ufffd")  # an incomplete UTF-8 sequence waits
        self._emit(int(token_id), answer_text(self.tokenizer, raw[: _settled_end(raw, self.reach)]))

    def finish(self, answer: str) -> None:
        """Emit whatever of the final ``answer`` is still held back."""
        if self.ids and answer != self.emitted:
            self._emit(self.ids[-1], answer)


def _decode(tokenizer, token_ids: list[int]) -> str:
    """Token ids to text, special tokens dropped, no clean-up (garvid applies it: :func:`answer_text`)."""
    return tokenizer.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def answer_text(tokenizer, text: str) -> str:
    """Decoded text as the reference's answer: the checkpoint's clean-up applied, then stripped."""
    return (clean_up_tokenization(text) if wants_clean_up(tokenizer) else text).strip()


def decode_answer(tokenizer, token_ids: list[int]) -> str:
    """Generated ids as the answer's text (special tokens dropped, the checkpoint's clean-up, stripped)."""
    return answer_text(tokenizer, _decode(tokenizer, token_ids))


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
    **prefix,
) -> tuple[str, list[int]]:
    """Decode an answer from prompt embeddings: its text (special tokens dropped) and token ids.

    ``prefix`` passes :meth:`GARModel.generate`'s ``prefix_length`` and ``prefix_cache``.
    """
    stream = TextStream(tokenizer, on_token) if on_token is not None else None
    answer_ids = model.generate(inputs_embeds, **decoding_arguments(options), seed=options.seed, on_token=stream, **prefix)
    answer = decode_answer(tokenizer, answer_ids)
    if stream is not None:
        stream.finish(answer)
    return answer, [int(i) for i in answer_ids]
