"""Yes/no scoring: how much GAR's first answer token leans to "yes" over "no" (VQAScore-style).

No text is generated: one forward pass reads the logits where the answer would start,
and the score is ``P(yes) / (P(yes) + P(no))``, each side summed over the tokens its
spellings ("Yes", " yes", "YES", ...) start with. The tokens are found with the
checkpoint's own tokenizer, so no token id is written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

#: The words scored, and the spellings tried for each (cased, with and without a leading space).
WORDS = {"yes": ("yes", "Yes", "YES"), "no": ("no", "No", "NO")}


@dataclass(frozen=True)
class YesNoTokens:
    """The token ids that start "yes" and "no" in one tokenizer: the first answer token of each.

    Each spelling's first token counts (in Llama-3's vocabulary every spelling is one
    token); a token that starts spellings of both words (a lone space in a byte-level
    vocabulary) tells them apart no more than any other and is left out.
    """

    yes: tuple[int, ...]
    no: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer) -> YesNoTokens:
        def first_tokens(spellings: Sequence[str]) -> list[int]:
            found = [tokenizer.encode(text, add_special_tokens=False)[0] for s in spellings for text in (s, " " + s)]
            return list(dict.fromkeys(found))

        yes, no = first_tokens(WORDS["yes"]), first_tokens(WORDS["no"])
        shared = set(yes) & set(no)
        tokens = cls(tuple(t for t in yes if t not in shared), tuple(t for t in no if t not in shared))
        if not tokens.yes or not tokens.no:
            raise ValueError("the tokenizer has no token that starts only 'yes' or only 'no'")
        return tokens


def yes_probability(logits: torch.Tensor, tokens: YesNoTokens) -> torch.Tensor:
    """``P(yes) / (P(yes) + P(no))`` of each row of next-token ``logits`` ``(B, vocab)``.

    Computed as ``sigmoid(logsumexp(yes) - logsumexp(no))`` in float32: the softmax's
    normaliser cancels, and no probability underflows on the way.
    """
    logits = logits.float()
    yes = torch.logsumexp(logits[:, list(tokens.yes)], dim=-1)
    no = torch.logsumexp(logits[:, list(tokens.no)], dim=-1)
    return torch.sigmoid(yes - no)
