"""What image and video answering share: streaming decoded text and the decode call."""

from __future__ import annotations

from typing import Callable

import torch

from garvid.gar.tokenizer import EOT_TOKEN_ID
from garvid.options import GenerationOptions

TokenCallback = Callable[[int, str], None]
"""Called once per generated token with its id and the text it adds (may be empty)."""


def synchronize(device: torch.device | str) -> None:
    """Wait for queued CUDA work so the stage timings are honest."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class TextStream:
    """Turns generated ids into text deltas (whole characters only, leading space dropped)."""

    def __init__(self, tokenizer, callback: TokenCallback):
        self.tokenizer, self.callback = tokenizer, callback
        self.ids: list[int] = []
        self.emitted = ""

    def __call__(self, token_id: int) -> None:
        self.ids.append(int(token_id))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
            self.callback(int(token_id), "")
            return
        delta = text[len(self.emitted) :] if text.startswith(self.emitted) else ""
        self.emitted = text
        self.callback(int(token_id), delta)


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
    answer_ids = model.generate(
        inputs_embeds,
        max_new_tokens=options.max_new_tokens,
        do_sample=options.sample,
        temperature=options.temperature,
        top_p=options.top_p,
        seed=options.seed,
        eos_token_ids=(EOT_TOKEN_ID,),
        on_token=TextStream(tokenizer, on_token) if on_token is not None else None,
        **prefix,
    )
    return tokenizer.decode(answer_ids, skip_special_tokens=True).strip(), [int(i) for i in answer_ids]
