"""The native GAR network: layout of the weights, mask embedding, token placement, generation."""

from __future__ import annotations

import pytest
import torch

from garvid.errors import GarvidError
from garvid.gar.model import GARModel
from garvid.gar.replay import merge_tiles, roi_replay
from garvid.gar.tiny import gar_config, random_gar
from garvid.gar.vision import encode_patches

IMAGE, CROPS = 128002, (128004, 128005, 128008, 128010, 128011)
NO_PROMPT = 5 / 255 * 2 - 1  # mask-map value of <NO_Prompt> after normalisation


@pytest.fixture(scope="module", params=["gar-1b", "gar-8b"])
def model(request: pytest.FixtureRequest) -> GARModel:
    return random_gar(gar_config(request.param), seed=0)


@pytest.fixture(scope="module")
def model_8b() -> GARModel:
    return random_gar(gar_config("gar-8b"), seed=0)


def _mask_tiles(tiles: int, region: tuple[slice, slice] | None = None, slot: int = 0) -> torch.Tensor:
    values = torch.full((tiles, 3, 448, 448), NO_PROMPT)
    if region is not None:
        values[:, :, region[0], region[1]] = slot / 255 * 2 - 1
    return values


def test_state_dict_uses_the_released_key_names(model: GARModel) -> None:
    keys = set(model.state_dict())
    prefixes = (
        "mllm.model.vision_tower.timm_model.",
        "mllm.model.multi_modal_projector.linear_1.",
        "mllm.model.multi_modal_projector.linear_2.",
        "mllm.model.language_model.",
    )
    assert all(k.startswith(prefixes) or k in ("mllm.lm_head.weight", "mask_patch_embedding.weight") for k in keys)
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in keys), prefix
    assert {"mllm.lm_head.weight", "mask_patch_embedding.weight"} <= keys
    width = model.config.vision_width
    assert model.state_dict()["mask_patch_embedding.weight"].shape == (width, 3, 14, 14)
    assert "mllm.model.multi_modal_projector.linear_1.weight" in keys
    cls_token = "mllm.model.vision_tower.timm_model.cls_token" in keys
    assert cls_token == model.config.mllm.vision_use_cls_token  # PE-L (GAR-1B) has one, PE-G (GAR-8B) not


def test_tile_features_are_256_tokens_of_text_width(model: GARModel) -> None:
    features = model.encode_images(torch.randn(3, 3, 448, 448), _mask_tiles(3))
    assert features.shape == (3, 256, model.config.mllm.text_config.hidden_size)


def test_zero_mask_embedding_equals_timms_own_forward(model: GARModel) -> None:
    tower = model.mllm.model.vision_tower.timm_model
    pixels = torch.randn(1, 3, 448, 448)
    with torch.inference_mode():
        ours = encode_patches(tower, pixels, torch.zeros(1, model.config.vision_width, 32, 32))
        theirs = tower.forward_features(pixels)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_masks_change_the_image_features(model: GARModel) -> None:
    pixels = torch.randn(1, 3, 448, 448)
    plain = model.encode_images(pixels, _mask_tiles(1))
    masked = model.encode_images(pixels, _mask_tiles(1, (slice(0, 112), slice(0, 112))))
    changed = (plain - masked).abs().amax(dim=-1)[0].reshape(16, 16) > 0
    assert changed.any()
    # which region slot marks the mask does not matter to the embedding (only inside/outside)
    other_slot = model.encode_images(pixels, _mask_tiles(1, (slice(0, 112), slice(0, 112)), slot=3))
    torch.testing.assert_close(masked, other_slot)


def _layout(slots: list[int]) -> torch.Tensor:
    """BOS, 256 image tokens, text, a 256-token crop run per slot, text."""
    ids = [128000, 100, *([IMAGE] * 256), 101, 102]
    for slot in slots:
        ids += [103 + slot, *([CROPS[slot]] * 256), 110]
    return torch.tensor([ids + [111, 112]])


def test_replay_rows_land_on_the_crop_runs_and_nowhere_else(model_8b: GARModel) -> None:
    ids = _layout([0, 2])
    features = model_8b.encode_images(torch.randn(1, 3, 448, 448), _mask_tiles(1))
    feature_map = merge_tiles(features, 1, 1).unsqueeze(0)
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.4, 0.2, 0.9, 0.9]])
    replayed = roi_replay(feature_map, boxes, torch.zeros(2, dtype=torch.long))
    embeds = model_8b.embed_inputs(ids, features, {0: replayed[0], 2: replayed[1]})
    plain = model_8b.input_embeddings(ids)
    differs = (embeds[0] != plain[0]).any(dim=-1)
    image_rows = ids[0] == IMAGE
    crop_rows = {slot: ids[0] == CROPS[slot] for slot in (0, 2)}
    assert crop_rows[0].sum() == crop_rows[2].sum() == 256
    assert torch.equal(differs, image_rows | crop_rows[0] | crop_rows[2])
    torch.testing.assert_close(embeds[0, crop_rows[0]], replayed[0])
    torch.testing.assert_close(embeds[0, crop_rows[2]], replayed[1])
    torch.testing.assert_close(embeds[0, image_rows], features[0])


def test_moving_one_region_changes_only_its_replay(model_8b: GARModel) -> None:
    ids = _layout([0, 1])
    features = model_8b.encode_images(torch.randn(1, 3, 448, 448), _mask_tiles(1))
    feature_map = merge_tiles(features, 1, 1).unsqueeze(0)
    index = torch.zeros(2, dtype=torch.long)

    def embed(first_box: list[float]) -> torch.Tensor:
        replayed = roi_replay(feature_map, torch.tensor([first_box, [0.5, 0.5, 1.0, 1.0]]), index, scaling="single")
        return model_8b.embed_inputs(ids, features, {0: replayed[0], 1: replayed[1]})

    before, after = embed([0.0, 0.0, 0.4, 0.4]), embed([0.3, 0.3, 0.7, 0.7])
    changed = (before[0] != after[0]).any(dim=-1)
    assert changed.any()
    assert torch.equal(changed & ~(ids[0] == CROPS[0]), torch.zeros_like(changed))


def test_placeholder_count_mismatch_is_an_error(model_8b: GARModel) -> None:
    ids = _layout([0])
    features = torch.zeros(1, 256, model_8b.config.mllm.text_config.hidden_size)
    with pytest.raises(GarvidError, match="slot 0: 256 placeholder tokens but 10 feature rows"):
        model_8b.embed_inputs(ids, features, {0: features[0, :10]})
    with pytest.raises(GarvidError, match="image: 256 placeholder tokens but 512"):
        model_8b.embed_inputs(ids, features.repeat(2, 1, 1), {0: features[0]})


def test_greedy_generation_is_deterministic_and_sampling_is_seeded(model_8b: GARModel) -> None:
    embeds = model_8b.input_embeddings(torch.tensor([[128000, 5, 6, 7, 8]]))
    first = model_8b.generate(embeds, max_new_tokens=8, eos_token_ids=())
    assert len(first) == 8
    assert first == model_8b.generate(embeds, max_new_tokens=8, eos_token_ids=())
    # greedy decoding with the cache follows the full-sequence argmax
    logits = model_8b.logits(embeds)
    assert first[0] == int(logits[0, -1].argmax())
    sampled = [model_8b.generate(embeds, max_new_tokens=8, do_sample=True, seed=s, eos_token_ids=()) for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] and sampled[0] != sampled[2]


def test_generation_stops_at_the_stop_token_and_streams(model_8b: GARModel) -> None:
    embeds = model_8b.input_embeddings(torch.tensor([[128000, 5, 6]]))
    free = model_8b.generate(embeds, max_new_tokens=6, eos_token_ids=())
    streamed: list[int] = []
    stopped = model_8b.generate(embeds, max_new_tokens=6, eos_token_ids=(free[2],), on_token=streamed.append)
    assert stopped == free[: free.index(free[2])] == streamed


def test_bf16_path_runs_end_to_end() -> None:
    model = random_gar(gar_config("gar-8b"), seed=0).to(torch.bfloat16)
    features = model.encode_images(torch.randn(1, 3, 448, 448), _mask_tiles(1, (slice(0, 50), slice(0, 50))))
    assert features.dtype == torch.bfloat16
    ids = _layout([0])
    replayed = roi_replay(merge_tiles(features, 1, 1).unsqueeze(0), torch.tensor([[0.0, 0.0, 0.2, 0.2]]), torch.zeros(1, dtype=torch.long))
    assert replayed.dtype == torch.bfloat16
    tokens = model.generate(model.embed_inputs(ids, features, {0: replayed[0]}), max_new_tokens=3, eos_token_ids=())
    assert len(tokens) == 3


def test_one_vision_call_per_image_split_only_beyond_the_limit(model_8b: GARModel, monkeypatch) -> None:
    import garvid.gar.model as gar_model

    calls: list[int] = []
    real = gar_model.encode_patches
    monkeypatch.setattr(gar_model, "encode_patches", lambda tower, px, masks: calls.append(px.shape[0]) or real(tower, px, masks))
    pixels, masks = torch.randn(20, 3, 448, 448), _mask_tiles(20, (slice(0, 100), slice(0, 100)))
    whole = model_8b.encode_images(pixels[:17], masks[:17])  # GAR-1B's largest image: thumbnail + 16 tiles
    assert calls == [17]
    calls.clear()
    split = model_8b.encode_images(pixels, masks)
    assert calls == [17, 3]
    torch.testing.assert_close(split[:17], whole)


def _prompts(model: GARModel, lengths: tuple[int, ...]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [model.input_embeddings(torch.randint(0, 128000, (1, length), generator=generator)) for length in lengths]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_batched_greedy_generation_equals_each_prompt_alone(attn: str) -> None:
    model = random_gar(gar_config("gar-8b"), seed=0)
    model.config.mllm.text_config._attn_implementation = attn
    prompts = _prompts(model, (7, 31, 12, 3))
    alone = [model.generate(p, max_new_tokens=10, eos_token_ids=()) for p in prompts]
    assert len({tuple(tokens) for tokens in alone}) == len(prompts)  # the prompts lead to different answers
    stop = alone[2][4]  # the third prompt finishes early, the others run to the limit (or stop too)
    alone = [model.generate(p, max_new_tokens=10, eos_token_ids=(stop,)) for p in prompts]
    assert len(alone[2]) == 4 and max(len(tokens) for tokens in alone) == 10
    assert model.generate_many(prompts, max_new_tokens=10, eos_token_ids=(stop,)) == alone
    kept = model.generate_many(prompts, max_new_tokens=10, eos_token_ids=(stop,), drop_finished=False)
    assert kept == alone
    assert model.generate_many(prompts[:1], max_new_tokens=10, eos_token_ids=(stop,)) == alone[:1]


def test_batched_sampling_draws_each_prompt_from_its_own_seed(model_8b: GARModel) -> None:
    prompts = _prompts(model_8b, (5, 9, 2))
    alone = [model_8b.generate(p, max_new_tokens=6, do_sample=True, seed=s, eos_token_ids=()) for p, s in zip(prompts, (4, 5, 6))]
    assert model_8b.generate_many(prompts, max_new_tokens=6, do_sample=True, seeds=(4, 5, 6), eos_token_ids=()) == alone
    swapped = model_8b.generate_many(prompts[::-1], max_new_tokens=6, do_sample=True, seeds=(6, 5, 4), eos_token_ids=())
    assert swapped == alone[::-1]
