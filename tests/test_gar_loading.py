"""Loading GAR checkpoints in the released layout: round trip, strict keys, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from garvid.devices import check_attention
from garvid.errors import CheckpointError, GarvidError
from garvid.gar.config import GARConfig
from garvid.gar.loading import load_gar
from garvid.gar.tiny import (
    ensure_tiny_checkpoint,
    gar_config,
    random_gar,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_checkpoint(cache_dir=tmp_path_factory.mktemp("models"))


def _copy(tiny_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(tiny_dir, target)
    return target


@pytest.mark.parametrize(("shape", "tied"), [("gar-1b", False), ("gar-8b", False), ("gar-1b", True)])
def test_saved_checkpoint_round_trips_with_identical_logits(tmp_path: Path, shape: str, tied: bool) -> None:
    original = random_gar(gar_config(shape, tie_word_embeddings=tied), seed=3)
    save_checkpoint(original, tmp_path / shape)
    loaded = load_gar(str(tmp_path / shape), dtype="fp32", device="cpu")
    index = json.loads((tmp_path / shape / "model.safetensors.index.json").read_text())
    # A tied head is stored once, under the embedding's name, and shared again on loading.
    assert ("mllm.lm_head.weight" in index["weight_map"]) is not tied
    assert (loaded.mllm.lm_head.weight is loaded.input_embeddings.weight) is tied
    ids = torch.tensor([[128000, 1, 2, 3, 4, 5]])
    torch.testing.assert_close(loaded.logits(loaded.input_embeddings(ids)), original.logits(original.input_embeddings(ids)), rtol=0, atol=0)
    pixels, masks = torch.randn(1, 3, 448, 448), torch.zeros(1, 3, 448, 448)
    torch.testing.assert_close(loaded.encode_images(pixels, masks), original.encode_images(pixels, masks), rtol=0, atol=0)
    assert loaded.checkpoint_dir == tmp_path / shape and loaded.name == str(tmp_path / shape)


def test_tied_head_is_the_embedding_even_when_the_checkpoint_stores_one(tmp_path: Path) -> None:
    """transformers 4.56 ties on loading when the text config says so; a stored head is ignored."""
    original = random_gar(gar_config("gar-1b", tie_word_embeddings=True), seed=4)
    save_checkpoint(original, tmp_path / "ckpt", shards=1)
    shard = tmp_path / "ckpt" / "model-00001-of-00001.safetensors"
    tensors = load_file(str(shard))
    tensors["mllm.lm_head.weight"] = torch.randn_like(tensors["mllm.model.language_model.embed_tokens.weight"])
    save_file(tensors, str(shard), metadata={"format": "pt"})
    loaded = load_gar(str(tmp_path / "ckpt"), dtype="fp32", device="cpu")
    assert loaded.mllm.lm_head.weight is loaded.input_embeddings.weight
    assert torch.equal(loaded.input_embeddings.weight, original.input_embeddings.weight)


def test_checkpoint_files_follow_the_released_layout(tiny_dir: Path) -> None:
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "GAR" and config["prompt_numbers"] == 5
    assert config["crop_tokens_ids"] == [128004, 128005, 128008, 128010, 128011]
    assert config["kernel_size"] == [14, 14]
    assert config["mllm_config"]["vision_config"]["do_pooling"] is False
    assert config["mllm_config"]["vision_config"]["model_args"]["ref_feat_shape"] == [32, 32]
    index = json.loads((tiny_dir / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 2
    for name in ("tokenizer.json", "preprocessor_config.json"):
        assert (tiny_dir / name).is_file()


def test_config_round_trips_and_drops_remote_code_pointer(tiny_dir: Path) -> None:
    data = json.loads((tiny_dir / "config.json").read_text())
    data["auto_map"] = {"AutoModel": "modeling_gar.GARModel"}
    data["torch_dtype"] = "bfloat16"
    config = GARConfig.from_dict(data)
    written = config.to_dict()
    assert "auto_map" not in written and written["torch_dtype"] == "bfloat16"
    assert GARConfig.from_dict(written).to_dict() == written


def test_tiny_preset_loads_through_the_normal_loader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GARVID_CACHE", str(tmp_path))
    model = load_gar("tiny-random", device="cpu")
    assert model.name == "tiny-random"
    assert model.checkpoint_dir.parent == tmp_path / "models"
    again = load_gar("tiny-random", device="cpu")
    torch.testing.assert_close(again.mask_patch_embedding.weight, model.mask_patch_embedding.weight, rtol=0, atol=0)


def test_bf16_load_casts_every_weight(tiny_dir: Path) -> None:
    model = load_gar(str(tiny_dir), dtype="bf16", device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.mllm.model.language_model.rotary_emb.inv_freq.dtype == torch.float32


def test_missing_shard_says_the_checkpoint_is_incomplete(tiny_dir: Path, tmp_path: Path) -> None:
    broken = _copy(tiny_dir, tmp_path)
    (broken / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="incomplete: missing model-00002-of-00002.safetensors"):
        load_gar(str(broken), device="cpu")


def test_unexpected_and_missing_keys_are_refused(tiny_dir: Path, tmp_path: Path) -> None:
    broken = _copy(tiny_dir, tmp_path)
    shard = broken / "model-00001-of-00002.safetensors"
    tensors = load_file(str(shard))
    tensors["mllm.extra.weight"] = torch.zeros(1)
    dropped = sorted(tensors)[0]
    del tensors[dropped]
    save_file(tensors, str(shard))
    with pytest.raises(CheckpointError, match=r"1 missing keys .*1 unexpected keys \['mllm.extra.weight'\]"):
        load_gar(str(broken), device="cpu")


def test_missing_hub_checkpoint_says_how_to_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(CheckpointError, match="hf download HaochenWang/GAR-8B"):
        load_gar("gar-8b", device="cpu")


@pytest.mark.parametrize(
    ("name", "message"),
    [("./no/such/folder", "no GAR checkpoint folder"), ("not-a-preset", "no GAR checkpoint folder")],
)
def test_unknown_sources_are_clear_errors(name: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_gar(name, device="cpu")


def test_bad_dtype_and_device_are_clear_errors(tiny_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="unknown dtype 'fp8'"):
        load_gar(str(tiny_dir), dtype="fp8", device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(GarvidError, match="CUDA is not available"):
            load_gar(str(tiny_dir), device="cuda")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_attention_kernel_reaches_the_language_model(tiny_dir: Path, attn: str) -> None:
    model = load_gar(str(tiny_dir), device="cpu", attn_implementation=attn)
    assert model.mllm.model.language_model.config._attn_implementation == attn


def test_flash_attention_needs_cuda_and_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import garvid.devices

    with pytest.raises(GarvidError, match="needs a CUDA device"):
        check_attention("flash_attention_2", "cpu")
    monkeypatch.setattr(garvid.devices, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GarvidError, match="flash-attn package"):
        check_attention("flash_attention_2", "cuda")
    check_attention("eager", "cuda")  # no package needed
