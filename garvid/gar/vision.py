"""The Perception-Encoder forward with GAR's mask embedding.

GAR adds a patch embedding of the binary region mask to the image's patch embeddings,
right after timm's ``patch_embed`` and before the position embedding and class token.
timm's ``Eva.forward_features`` has no hook there, so this module walks the tower's own
submodules in the same order (``patch_embed``, ``_pos_embed``, ``norm_pre``, blocks with
rotary embeddings, ``norm``). With a zero mask embedding it equals timm's forward.
"""

from __future__ import annotations

import torch
from torch import nn


def encode_patches(tower: nn.Module, pixel_values: torch.Tensor, mask_embeds: torch.Tensor | None) -> torch.Tensor:
    """Last hidden states ``(B, tokens, C)`` of a timm Eva/PE tower, mask embedding added.

    ``mask_embeds`` is the ``(B, C, h, w)`` output of GAR's ``mask_patch_embedding``.
    """
    x = tower.patch_embed(pixel_values)
    if mask_embeds is not None:
        x = x + mask_embeds.flatten(2).transpose(1, 2).to(x.dtype)
    x, rope = tower._pos_embed(x)
    x = tower.norm_pre(x)
    per_block_rope = getattr(tower, "rope_mixed", False) and rope is not None
    for index, block in enumerate(tower.blocks):
        x = block(x, rope=rope[index] if per_block_rope else rope)
    return tower.norm(x)
