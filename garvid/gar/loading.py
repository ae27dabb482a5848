"""Load GAR checkpoints in Hugging Face layout without running any hub code.

A checkpoint is a folder with ``config.json`` (``model_type: "GAR"``), safetensors
weights (one file or shards with ``model.safetensors.index.json``), tokenizer and
processor files. It is named by a preset (``configs/models.toml``), a local folder, or a
hub repo id resolved through the Hugging Face cache. The network is built on the meta
device and every tensor is read once from safetensors straight into place, so peak
memory is the model plus one tensor; key names must match exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from garvid.devices import check_attention, resolve_device
from garvid.errors import CheckpointError
from garvid.gar.config import GARConfig
from garvid.gar.model import GARModel
from garvid.hub import fetch_from_hub
from garvid.options import DEFAULT_ATTENTION
from garvid.paths import user_path
from garvid.presets import get_preset, preset_names

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "tokenizer*"]


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bf16 on CUDA (the checkpoints' own dtype) and fp32 on CPU.

    CPU bf16 works (``--dtype bf16``) and halves memory, but most CPUs run it slower.
    """
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if name not in DTYPES:
        raise CheckpointError(f"unknown dtype {name!r}; use auto, bf16, fp16 or fp32")
    return DTYPES[name]


def download_command(repo: str) -> str:
    return f"hf download {repo}"


def _hub_snapshot(repo: str) -> Path:
    from huggingface_hub import snapshot_download

    path, reason = fetch_from_hub(snapshot_download, repo, allow_patterns=_HUB_FILES)
    if path is None:
        raise CheckpointError(
            f"GAR checkpoint {repo} is not in the Hugging Face cache and could not be downloaded ({reason}); "
            f"get it with `{download_command(repo)}` (about 20 GB for GAR-8B) or name a local checkpoint folder as the model"
        )
    return path


def resolve_checkpoint(name_or_path: str) -> tuple[str, Path]:
    """(display name, local folder) of a preset, a local folder or a hub repo id."""
    if name_or_path in preset_names("models"):
        preset = get_preset("models", name_or_path)
        if "tiny" in preset:
            from garvid.gar.tiny import ensure_tiny_checkpoint

            return name_or_path, ensure_tiny_checkpoint(shape=preset["tiny"], seed=int(preset.get("seed", 0)))
        return name_or_path, _hub_snapshot(preset["hf_repo"])
    path = user_path(name_or_path)
    if path.is_dir():
        return str(path), path
    if path.exists() or name_or_path.count("/") != 1 or name_or_path.startswith((".", "/", "~")):
        known = ", ".join(preset_names("models"))
        raise CheckpointError(f"no GAR checkpoint folder at {name_or_path}; give a folder, a hub repo id or a preset ({known})")
    return name_or_path, _hub_snapshot(name_or_path)


def weight_files(checkpoint: Path, source: str) -> list[Path]:
    """The safetensors files of a checkpoint; a clear error when any is missing."""
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [checkpoint / shard for shard in shards]
    else:
        files = [checkpoint / "model.safetensors"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        hint = f"; re-run `{download_command(source)}`" if source.count("/") == 1 else ""
        raise CheckpointError(f"GAR checkpoint {checkpoint} is incomplete: missing {', '.join(missing)}{hint}")
    return files


def _materialise_buffers(model: nn.Module, device: torch.device) -> None:
    """Compute the non-persistent buffers (rotary tables) that are not in checkpoints."""
    for name, module in model.named_modules():
        pending = [b for b in module._non_persistent_buffers_set if getattr(module, b).is_meta]
        if not pending:
            continue
        if hasattr(module, "init_non_persistent_buffers"):  # timm layers
            module.to_empty(device=device, recurse=False)
            module.init_non_persistent_buffers()
        elif hasattr(module, "config"):  # transformers rotary embeddings are rebuilt from their config
            with torch.device(device):
                fresh = type(module)(module.config)
            for buffer in pending:
                module._buffers[buffer] = fresh._buffers[buffer]
        else:
            raise CheckpointError(f"cannot initialise buffers {pending} of {name}")


def load_weights(model: GARModel, files: list[Path], device: torch.device, dtype: torch.dtype) -> None:
    """Read every tensor into ``model`` (built on meta); strict about key names."""
    expected = set(model.state_dict())
    loaded: set[str] = set()
    for path in files:
        with safe_open(str(path), framework="pt", device="cpu") as shard:
            tensors = {}
            for key in shard.keys():
                tensor = shard.get_tensor(key)
                tensors[key] = tensor.to(device, dtype if tensor.is_floating_point() else tensor.dtype)
            model.load_state_dict(tensors, strict=False, assign=True)
            loaded.update(tensors)
    if model.config.tied_embeddings:  # the head is the embedding, as transformers 4.56 ties it on loading
        model.tie_embeddings()
        loaded.add("mllm.lm_head.weight")
    missing, unexpected = sorted(expected - loaded), sorted(loaded - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not match the GAR layout: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    _materialise_buffers(model, device)


def load_gar(
    name_or_path: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    attn_implementation: str = DEFAULT_ATTENTION,
) -> GARModel:
    """Load a GAR checkpoint ready for inference; ``model.name`` and ``model.checkpoint_dir`` say which.

    ``attn_implementation`` is the language model's attention kernel (see :func:`check_attention`).
    """
    check_attention(attn_implementation, device)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    name, checkpoint = resolve_checkpoint(name_or_path)
    config_path = checkpoint / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"GAR checkpoint {checkpoint} has no config.json")
    config = GARConfig.from_file(config_path)
    files = weight_files(checkpoint, name_or_path)
    with torch.device("meta"):
        model = GARModel(config, attn_implementation=attn_implementation)
    load_weights(model, files, torch_device, torch_dtype)
    model.eval()
    model.name = name
    model.checkpoint_dir = checkpoint
    return model
