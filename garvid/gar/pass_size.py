"""``--batch-size auto``: how many prompts a device answers together.

On CUDA the batch is sized from the memory free once GAR is loaded: each prompt of ``T``
tokens (prompt plus answer) holds ``T`` tokens of key/value cache in every text layer,
and while the batch's prompts are read in one pass, each of its tokens also holds one
layer's activations (the MLP's three intermediate tensors and a few hidden-state copies;
the eager kernel adds each head's full ``T x T`` score matrix). A fixed reserve is left
for the vision tower's tile chunks and the allocator. An estimate: a batch that still
runs out of memory is retried smaller (:class:`garvid.qa.steps.PooledAnswering`).

On a CPU, ``auto`` is 1: see :data:`CPU_PER_PASS`.
"""

from __future__ import annotations

import torch

#: Largest batch ``auto`` picks: beyond it the decode step stops being weight-bound on
#: current GPUs, so a larger batch adds latency and memory for little throughput.
MAX_AUTO_PER_PASS = 64
#: Free memory kept back on CUDA: the vision tower's tile chunks (17 tiles of PE-G at
#: 1024 patches), the LM head's logits, the allocator's fragmentation.
RESERVED_BYTES = 3 * 2**30
#: ``auto`` on a CPU. There, decoding prompts together gains well under the batch size and
#: reading prompts costs the same per prompt in any batch, so describing clips gains
#: little and letter answers (one or two tokens) nothing: not worth a batch's wait and
#: memory by default (measured: benchmarks/results/MEASUREMENTS.md, "Batched generation"
#: and "Batched answering"). ``--batch-size 8`` is there for long descriptions of many clips.
CPU_PER_PASS = 1


def kv_bytes_per_token(model) -> int:
    """Key/value cache bytes one token holds across all text layers of ``model``."""
    text = model.config.mllm.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * _element_size(model)


def prefill_bytes_per_token(model) -> int:
    """Activation bytes one prompt token holds while a layer reads the batch (the layer's peak)."""
    text = model.config.mllm.text_config
    return (3 * text.intermediate_size + 4 * text.hidden_size) * _element_size(model)


def fit_prompts_per_pass(free_bytes: int, tokens: int, per_token_bytes: int, per_prompt_bytes: int = 0) -> int:
    """Prompts of ``tokens`` tokens that fit ``free_bytes`` (less the reserve), at least 1."""
    per_prompt = tokens * per_token_bytes + per_prompt_bytes
    return max(1, min(MAX_AUTO_PER_PASS, (free_bytes - RESERVED_BYTES) // max(per_prompt, 1)))


def auto_prompts_per_pass(model, tokens: int) -> int:
    """The batch size for prompts of up to ``tokens`` tokens (answer included) on ``model``'s device."""
    device = model.device
    if device.type != "cuda":
        return CPU_PER_PASS
    free, _ = torch.cuda.mem_get_info(device)
    text = model.config.mllm.text_config
    scores = 0
    if text._attn_implementation == "eager":  # every head's T x T scores in fp32, and their softmax
        scores = 2 * text.num_attention_heads * tokens * tokens * 4
    return fit_prompts_per_pass(free, tokens, kv_bytes_per_token(model) + prefill_bytes_per_token(model), scores)


def _element_size(model) -> int:
    return torch.empty((), dtype=model.dtype).element_size()
