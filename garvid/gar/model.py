"""GAR: PerceptionLM plus a mask patch embedding and region feature replay.

``GARModel``'s module names are those of the released checkpoints (``mllm.*`` and
``mask_patch_embedding.weight``), so their safetensors load by name with no mapping.
The PerceptionLM parts (vision tower, projector, Llama) come from transformers; what GAR
adds lives here: the mask embedding in the vision forward, placing image features and
replayed region features into the token embeddings, and a KV-cached generation loop.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import nn
from transformers import DynamicCache, LlamaModel, PerceptionLMForConditionalGeneration

from garvid.errors import GarvidError
from garvid.gar.config import GARConfig
from garvid.gar.vision import encode_patches

#: transformers renamed the decoder's KV-cache argument from ``past_key_values`` to
#: ``cache`` (5.2x, the old name is deprecated); pass whichever this version takes.
_CACHE_ARGUMENT = "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"

#: Most tiles one vision-tower call takes. The reference sends all tiles of an image in one
#: call; this covers the largest image a released checkpoint tiles (GAR-1B: a thumbnail and
#: 16 tiles), so an image is encoded exactly that way. More tiles (many keyframes) are split
#: into calls of this size to bound activation memory; in bf16 on CUDA, matmul kernels can
#: depend on the batch size, so split results may differ from one call in the last bits.
VISION_TILES_PER_CALL = 17


class GARModel(nn.Module):
    """The GAR network; build with :func:`garvid.gar.loading.load_gar` to get weights."""

    def __init__(self, config: GARConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        config.mllm._attn_implementation = attn_implementation
        config.mllm.text_config._attn_implementation = attn_implementation
        self.config = config
        self.name = "GAR"  # preset, repo id or folder: set by the loader
        self.checkpoint_dir: Path | None = None
        self.mllm = PerceptionLMForConditionalGeneration(config.mllm)
        self.mask_patch_embedding = nn.Conv2d(
            3, config.vision_width, kernel_size=config.kernel_size, stride=config.kernel_size, bias=False
        )
        if config.tied_embeddings:
            self.tie_embeddings()

    def tie_embeddings(self) -> None:
        """Make the LM head use the input embedding's weight (one tensor, as in the checkpoint)."""
        self.mllm.lm_head.weight = self.input_embeddings.weight

    @property
    def device(self) -> torch.device:
        return self.mask_patch_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mask_patch_embedding.weight.dtype

    @property
    def input_embeddings(self) -> nn.Embedding:
        return self.mllm.model.language_model.embed_tokens

    def mask_embeddings(self, mask_values: torch.Tensor) -> torch.Tensor:
        """Patch embedding of the binary region mask, recovered from normalised mask maps.

        Mask maps are normalised like pixels; ids come back as round((v + 1) / 2 * 255),
        clamped to ``prompt_numbers``; the embedding sees only "inside any region".
        """
        ids = torch.round((mask_values.float() + 1.0) / 2.0 * 255.0).clamp(0, self.config.prompt_numbers)
        inside = (ids != self.config.no_prompt_id).to(self.dtype)
        return self.mask_patch_embedding(inside)

    @torch.inference_mode()
    def encode_images(
        self, pixel_values: torch.Tensor, mask_values: torch.Tensor, tiles_per_call: int = VISION_TILES_PER_CALL
    ) -> torch.Tensor:
        """Projected, pooled features ``(T, tokens_per_tile, d_text)`` of ``T`` tiles.

        One vision-tower call when ``T <= tiles_per_call`` (as the reference), else calls of
        ``tiles_per_call`` tiles.
        """
        if pixel_values.shape != mask_values.shape:
            raise GarvidError(f"pixel tiles {tuple(pixel_values.shape)} and mask tiles {tuple(mask_values.shape)} differ")
        tower = self.mllm.model.vision_tower.timm_model
        projector = self.mllm.model.multi_modal_projector
        outputs = []
        for start in range(0, pixel_values.shape[0], tiles_per_call):
            pixels = pixel_values[start : start + tiles_per_call].to(self.device, self.dtype)
            masks = self.mask_embeddings(mask_values[start : start + tiles_per_call].to(self.device))
            hidden = encode_patches(tower, pixels, masks)
            if self.config.mllm.vision_use_cls_token:
                hidden = hidden[:, 1:, :]
            outputs.append(projector(hidden))
        return torch.cat(outputs)

    @torch.inference_mode()
    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        image_features: torch.Tensor,
        crop_features: Mapping[int, torch.Tensor],
    ) -> torch.Tensor:
        """Token embeddings ``(1, L, d)`` with image and replayed region features in place.

        Image features fill the image-token positions in order. ``crop_features[slot]``
        holds one row per occurrence of that slot's crop token, in order of appearance
        (256 rows per region run; a video prompt has one run per keyframe).
        """
        ids = input_ids.to(self.device)
        if ids.dim() != 2 or ids.shape[0] != 1:
            raise GarvidError(f"expected input_ids of shape (1, L), got {tuple(ids.shape)}")
        embeds = self.input_embeddings(ids)
        positions = [torch.nonzero(ids[0] == self.config.image_token_id).squeeze(1)]
        features = [image_features.reshape(-1, embeds.shape[-1])]
        for slot, rows in sorted(crop_features.items()):
            positions.append(torch.nonzero(ids[0] == self.config.crop_tokens_ids[slot]).squeeze(1))
            features.append(rows.reshape(-1, embeds.shape[-1]))
        for where, what, name in zip(positions, features, ["image", *(f"slot {s}" for s in sorted(crop_features))]):
            if where.numel() != what.shape[0]:
                raise GarvidError(f"{name}: {where.numel()} placeholder tokens but {what.shape[0]} feature rows")
        embeds[0, torch.cat(positions)] = torch.cat(features).to(embeds.dtype)
        return embeds

    @torch.inference_mode()
    def logits(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(1, L, vocab)`` for every position (tests, scoring)."""
        hidden = self.mllm.model.language_model(inputs_embeds=inputs_embeds).last_hidden_state
        return self.mllm.lm_head(hidden)

    def new_cache(self) -> DynamicCache:
        """An empty key/value cache for :meth:`generate`'s ``prefix_cache``."""
        return DynamicCache(config=self.config.mllm.text_config)

    @torch.inference_mode()
    def generate(
        self,
        inputs_embeds: torch.Tensor,
        *,
        max_new_tokens: int = 1024,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        eos_token_ids: Sequence[int] = (128009,),
        on_token: Callable[[int], None] | None = None,
        prefix_length: int = 0,
        prefix_cache: DynamicCache | None = None,
    ) -> list[int]:
        """New token ids (stop token excluded): greedy by default, or seeded sampling.

        With ``prefix_length`` the prompt is read in two passes, its first
        ``prefix_length`` tokens and then the rest. ``prefix_cache`` is a cache (from
        :meth:`new_cache`) that is either empty, and then receives the prefix, or already
        holds exactly that prefix of an earlier call with the same leading embeddings,
        which is then not read again. The two passes run alike whether the prefix is
        reused or not, so reuse changes no answer; the cache is cut back to the prefix
        afterwards, also when generation is interrupted.
        """
        cache = prefix_cache if prefix_cache is not None else self.new_cache()
        held = cache.get_seq_length()
        if held not in (0, prefix_length) or not 0 <= prefix_length < inputs_embeds.shape[1]:
            raise ValueError(f"a prefix cache of {held} tokens does not fit a {prefix_length}-token prefix")
        prefix_read = bool(held) or not prefix_length
        try:
            if not prefix_read:
                self._read(inputs_embeds[:, :prefix_length], cache)
                prefix_read = True
            hidden = self._read(inputs_embeds[:, prefix_length:], cache)[:, -1]
            sampling = _Sampling(temperature, top_p, [seed], self.device) if do_sample else None
            streams = (lambda _row, token: on_token(token)) if on_token is not None else None
            return self._decode(hidden, cache, None, max_new_tokens, sampling, eos_token_ids, streams)[0]
        finally:
            if prefix_cache is not None:  # an interrupted prefix pass may have filled some layers only
                _truncate(cache, prefix_length if prefix_read else 0)

    @torch.inference_mode()
    def generate_many(
        self,
        prompts: Sequence[torch.Tensor],
        *,
        max_new_tokens: int = 1024,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seeds: Sequence[int] | None = None,
        eos_token_ids: Sequence[int] = (128009,),
        drop_finished: bool = True,
    ) -> list[list[int]]:
        """:meth:`generate` for several prompts ``(1, L_i, d)`` at once: the new token ids of each.

        The prompts are left-padded to the longest and read in one pass (padding masked
        out, positions counted from each prompt's first real token), then decoded together,
        one token per live prompt per step. A prompt that stops is dropped from the batch
        (its rows leave the key/value cache), so it costs no more work; ``drop_finished=False``
        keeps decoding it and ignores its tokens (the benchmark's comparison). Greedy answers
        are those of :meth:`generate` for each prompt alone, up to floating-point reduction
        order; sampling draws each prompt's tokens from its own generator (``seeds[i]``), so
        they too do not depend on the batch.
        """
        if not prompts:
            return []
        embeds, mask = self._left_padded(prompts)
        cache = self.new_cache()
        hidden = self._read(embeds, cache, mask)[:, -1]
        seeds = list(seeds) if seeds is not None else [0] * len(prompts)
        sampling = _Sampling(temperature, top_p, seeds, self.device) if do_sample else None
        return self._decode(hidden, cache, mask, max_new_tokens, sampling, eos_token_ids, None, drop_finished)

    @torch.inference_mode()
    def answer_logits(self, prompts: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits ``(B, vocab)`` of the first answer token of each prompt ``(1, L_i, d)``: where
        :meth:`generate_many` would pick it, read in one left-padded pass (yes/no scoring)."""
        embeds, mask = self._left_padded(prompts)
        return self.mllm.lm_head(self._read(embeds, self.new_cache(), mask)[:, -1])

    def _left_padded(self, prompts: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts ``(1, L_i, d)`` left-padded into one batch ``(B, max L, d)``, and its padding mask."""
        lengths = [int(p.shape[1]) for p in prompts]
        if any(p.dim() != 3 or p.shape[0] != 1 for p in prompts):
            raise ValueError("every prompt must be embeddings of shape (1, L, d)")
        width, dim = max(lengths), prompts[0].shape[-1]
        embeds = prompts[0].new_zeros(len(prompts), width, dim, device=self.device)
        mask = torch.zeros(len(prompts), width, dtype=torch.long, device=self.device)
        for row, (prompt, length) in enumerate(zip(prompts, lengths)):
            embeds[row, width - length :] = prompt[0].to(self.device)
            mask[row, width - length :] = 1
        return embeds, mask

    def _read(self, embeds: torch.Tensor, cache: DynamicCache, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run the language model over ``embeds`` after what ``cache`` holds (which grows by them).

        ``mask`` is the ``(B, cached + new)`` padding mask (1 = a real token) of a left-padded
        batch; positions then count real tokens only. Without it every token is real.
        """
        extra = {}
        if mask is not None:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -embeds.shape[1] :]
            extra = {"attention_mask": mask, "position_ids": positions}
        language_model = self.mllm.model.language_model
        return language_model(inputs_embeds=embeds, use_cache=True, **{_CACHE_ARGUMENT: cache}, **extra).last_hidden_state

    def _decode(
        self,
        hidden: torch.Tensor,
        cache: DynamicCache,
        mask: torch.Tensor | None,
        max_new_tokens: int,
        sampling: _Sampling | None,
        eos_token_ids: Sequence[int],
        on_token: Callable[[int, int], None] | None,
        drop_finished: bool = True,
    ) -> list[list[int]]:
        """The decoding loop shared by :meth:`generate` and :meth:`generate_many`.

        ``hidden`` ``(B, d)`` is the last prompt position's state of each row, ``cache``
        holds the prompts, ``mask`` their padding (None: one unpadded row). Returns the new
        tokens of each row, stop token excluded; ``on_token(row, token)`` sees each as it comes.
        """
        stops = set(int(i) for i in eos_token_ids)
        outputs: list[list[int]] = [[] for _ in range(hidden.shape[0])]
        live = list(range(hidden.shape[0]))  # the prompt of each batch row
        running = [True] * len(live)  # rows kept for drop_finished=False stay, not running
        for _ in range(max_new_tokens):
            logits = self.mllm.lm_head(hidden).float()
            picks = sampling.pick(logits, live) if sampling is not None else logits.argmax(-1).tolist()
            for index, (row, token) in enumerate(zip(live, picks)):
                if not running[index]:
                    continue
                if token in stops:
                    running[index] = False
                    continue
                outputs[row].append(token)
                if on_token is not None:
                    on_token(row, token)
                running[index] = len(outputs[row]) < max_new_tokens
            if not any(running):
                break
            if drop_finished and not all(running):
                keep = [index for index, going in enumerate(running) if going]
                selected = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(selected)
                mask = mask[selected] if mask is not None else None
                live, picks, running = [live[i] for i in keep], [picks[i] for i in keep], [True] * len(keep)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            step = self.input_embeddings(torch.tensor(picks, device=self.device).unsqueeze(1))
            hidden = self._read(step, cache, mask)[:, -1]
        return outputs


class _Sampling:
    """Seeded temperature / top-p sampling with one generator per prompt, so a prompt's
    draws do not depend on the others in its batch."""

    def __init__(self, temperature: float, top_p: float, seeds: Sequence[int], device: torch.device):
        self.temperature, self.top_p = temperature, top_p
        self.generators = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]

    def pick(self, logits: torch.Tensor, rows: Sequence[int]) -> list[int]:
        """One token per row of ``logits``; ``rows[i]`` is the prompt of row ``i``."""
        return [_pick(logits[index], self.generators[row], self.temperature, self.top_p) for index, row in enumerate(rows)]


def _truncate(cache: DynamicCache, keep: int) -> None:
    """Cut every layer of ``cache`` back to its first ``keep`` tokens."""
    for layer in cache.layers:
        extra = layer.get_seq_length() - keep
        if extra > 0:
            layer.crop(-extra)  # a negative count removes that many tokens from the end


def _pick(logits: torch.Tensor, generator: torch.Generator, temperature: float, top_p: float) -> int:
    """Sample one token with temperature and nucleus (top-p) filtering."""
    probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    keep = sorted_probs.cumsum(0) - sorted_probs < top_p
    sorted_probs = sorted_probs * keep
    choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
    return int(order[choice])
