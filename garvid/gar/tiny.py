"""Tiny randomly initialised GAR checkpoints for tests, benchmarks and smoke checks.

They keep everything that shapes the token layout (448 px tiles, patch 14, 2x2 pooling,
256 tokens per tile, the real special-token ids) and shrink the widths and depths. A tiny
checkpoint is written once in the released checkpoints' layout (config.json, sharded
safetensors, tokenizer and processor files) and then loaded like a real one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, PerceptionLMConfig, TimmWrapperConfig

from garvid.files import build_folder_once
from garvid.gar.config import GARConfig
from garvid.gar.model import GARModel
from garvid.gar.tokenizer import build_tiny_tokenizer, write_tiny_processor_files
from garvid.paths import cache_root

Shape = Literal["gar-1b", "gar-8b"]

#: Bump when the tiny layout changes, so stale cached checkpoints are not reused.
TINY_VERSION = 1

# GAR-1B uses PE-L (with a CLS token, dropped after the tower), GAR-8B PE-G (no CLS).
_ARCHITECTURES = {"gar-1b": "vit_pe_core_large_patch14_336", "gar-8b": "vit_pe_core_gigantic_patch14_448"}
_TILE, _PATCH = 448, 14


def gar_config(
    shape: Shape = "gar-8b",
    *,
    vision_width: int = 32,
    vision_depth: int = 2,
    vision_heads: int = 2,
    text_width: int = 64,
    text_depth: int = 2,
    text_heads: int = 4,
    text_kv_heads: int = 2,
    text_intermediate: int = 128,
    vocab_size: int | None = None,
    tie_word_embeddings: bool = False,
) -> GARConfig:
    """A GAR config shaped like GAR-1B or GAR-8B with the given widths and depths.

    ``tie_word_embeddings`` shares the LM head with the input embedding, as GAR-1B does.
    """
    vision = TimmWrapperConfig(
        architecture=_ARCHITECTURES[shape],
        do_pooling=False,
        model_args={
            "embed_dim": vision_width,
            "depth": vision_depth,
            "num_heads": vision_heads,
            "img_size": [_TILE, _TILE],
            "ref_feat_shape": [_TILE // _PATCH, _TILE // _PATCH],
            "global_pool": "",
            "use_post_transformer_norm": False,
            "init_values": 0.1,
        },
    )
    text = LlamaConfig(
        hidden_size=text_width,
        intermediate_size=text_intermediate,
        num_hidden_layers=text_depth,
        num_attention_heads=text_heads,
        num_key_value_heads=text_kv_heads,
        vocab_size=vocab_size or len(build_tiny_tokenizer()),
        max_position_embeddings=131072,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        bos_token_id=128000,
        eos_token_id=[128001, 128009],
        tie_word_embeddings=tie_word_embeddings,
    )
    mllm = PerceptionLMConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        projector_pooling_ratio=2,
        vision_use_cls_token=shape == "gar-1b",
        image_token_id=128002,
        video_token_id=128003,
    )
    return GARConfig(mllm=mllm, kernel_size=(_PATCH, _PATCH))


def random_gar(config: GARConfig, seed: int = 0) -> GARModel:
    """A randomly initialised GAR, the same for the same config and seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GARModel(config).eval()


def save_checkpoint(
    model: GARModel, directory: Path, *, shards: int = 2, max_num_tiles: int = 16, clean_up: bool = False
) -> None:
    """Write ``model`` in the released layout: config, sharded safetensors + index, tokenizer.

    ``clean_up`` is the tokenizer's ``clean_up_tokenization_spaces`` (the released ones set it).
    """
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save(directory)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tied_embeddings:  # stored once, under the embedding's name, like transformers saves it
        del state["mllm.lm_head.weight"]
    keys = sorted(state)
    weight_map = {}
    for index in range(shards):
        name = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[index::shards]
        save_file({k: state[k] for k in part}, str(directory / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    index_data = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index_data, indent=2) + "\n")
    write_tiny_processor_files(directory, max_num_tiles=max_num_tiles, clean_up=clean_up)


def ensure_tiny_checkpoint(shape: Shape = "gar-8b", seed: int = 0, cache_dir: Path | None = None) -> Path:
    """The folder of the tiny checkpoint, built once (atomically) under the garvid cache."""
    root = Path(cache_dir) if cache_dir else cache_root() / "models"
    target = root / f"tiny-random-{shape}-seed{seed}-v{TINY_VERSION}"

    def build(staging: Path) -> None:
        save_checkpoint(random_gar(gar_config(shape), seed), staging)

    return build_folder_once(target, "model.safetensors.index.json", build)
