"""GAR preprocessing: equal to the processor the checkpoints were made with, mask ids survive tiling.

That processor is transformers 4.56's ``PerceptionLMImageProcessorFast`` (the reference repo
carries a copy): it resizes with torchvision's v1 ``transforms.functional.resize``, called
as ``F.resize(batch, (h, w), interpolation=PILImageResampling.BICUBIC)`` on the uint8
frame, once to the 448 thumbnail and once to the grid canvas, then splits the canvas
row-major and applies the fused rescale+normalise. transformers 5 resizes with v2, whose
uint8 results differ; the tests below pin the v1 behaviour.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as tv1
from torchvision.transforms.v2 import functional as tv2
from transformers.image_utils import PILImageResampling
from transformers.models.perception_lm.image_processing_perception_lm import (
    PerceptionLMImageProcessor,
)

from garvid.errors import CheckpointError, RegionError
from garvid.gar.encoding import EncodeJob, encode_many
from garvid.gar.loading import load_gar
from garvid.gar.processor import (
    NO_PROMPT_ID,
    GARImageInputs,
    ImageConfig,
    choose_grid,
    preprocess_image,
    prompt_label_map,
    region_box,
)
from garvid.gar.prompt import DESCRIBE_SLOT, describe_region_text, tokenize_prompt
from garvid.gar.tiny import gar_config, random_gar, save_checkpoint
from garvid.gar.tokenizer import EOT_TOKEN_ID, load_chat_template, load_tokenizer
from garvid.options import GenerationOptions
from garvid.qa.image_answering import regions_steps
from garvid.qa.steps import drive


def decode_mask_ids(mask_values: torch.Tensor, config: ImageConfig = ImageConfig()) -> torch.Tensor:
    """Recover integer prompt ids from normalised mask tiles (the inverse of the processor's normalisation)."""
    mean = torch.tensor(config.image_mean, device=mask_values.device)[:, None, None]
    std = torch.tensor(config.image_std, device=mask_values.device)[:, None, None]
    return torch.round((mask_values.float() * std + mean) / config.rescale_factor).to(torch.int64)


def _random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _reference_grid(width: int, height: int, max_num_tiles: int) -> tuple[int, int]:
    """PLM's grid, from transformers' own code (unchanged from 4.56 to 5.x but for formatting)."""
    if max_num_tiles <= 1:
        return (1, 1)
    processor = PerceptionLMImageProcessor(max_num_tiles=max_num_tiles)
    grid = processor._fit_image_to_canvas(width, height, 448) or processor._find_closest_aspect_ratio(width, height, 448)
    return tuple(grid)


def _reference_uint8_tiles(
    image: np.ndarray,
    max_num_tiles: int,
    *,
    resize=tv1.resize,
    resample: PILImageResampling = PILImageResampling.BICUBIC,
    thumbnail: bool = True,
) -> torch.Tensor:
    """The uint8 tiles transformers 4.56's PerceptionLM fast processor makes before normalising.

    ``image`` is ``(H, W, 3)`` or a ``(H, W)`` label map; ``resize`` is the torchvision call
    (v1 as in 4.56 and the reference, v2 to show the difference).
    """
    batch = torch.from_numpy(np.array(image, copy=True))
    batch = (batch[None] if batch.ndim == 2 else batch.permute(2, 0, 1))[None]
    height, width = batch.shape[-2:]
    ncw, nch = _reference_grid(width, height, max_num_tiles if thumbnail else 1)
    canvas = resize(batch, (nch * 448, ncw * 448), interpolation=resample)
    channels = canvas.shape[1]
    tiles = canvas.view(1, channels, nch, 448, ncw, 448).permute(0, 2, 4, 1, 3, 5).reshape(-1, channels, 448, 448)
    if not thumbnail:
        return tiles
    return torch.cat([resize(batch, (448, 448), interpolation=resample), tiles])


def _reference_normalize(tiles: torch.Tensor) -> torch.Tensor:
    """transformers' fused rescale + normalise: (x - 0.5 * 255) / (0.5 * 255) in float32."""
    mean = (torch.tensor([0.5, 0.5, 0.5]) * (1.0 / (1 / 255)))[:, None, None]
    std = (torch.tensor([0.5, 0.5, 0.5]) * (1.0 / (1 / 255)))[:, None, None]
    return (tiles.to(torch.float32) - mean) / std


@pytest.mark.parametrize(
    ("width", "height", "max_num_tiles"),
    [(1280, 720, 16), (333, 517, 36), (1000, 200, 8), (3000, 2000, 4), (448, 448, 16), (50, 900, 16), (640, 480, 1)],
)
def test_pixels_equal_the_reference_processor(width, height, max_num_tiles):
    image = _random_image(width, height, seed=width)
    expected = _reference_normalize(_reference_uint8_tiles(np.asarray(image), max_num_tiles))
    ours = preprocess_image(image, {}, ImageConfig(max_num_tiles=max_num_tiles))
    ncw, nch = ours.grid
    assert ours.has_thumbnail
    assert ours.pixel_values.shape == expected.shape == (1 + ncw * nch, 3, 448, 448)
    assert ours.pixel_values.dtype == torch.float32
    assert torch.equal(ours.pixel_values, expected)


@pytest.mark.parametrize(
    ("width", "height", "max_num_tiles", "grid"),
    [
        (3000, 2000, 4, (2, 2)),  # downscale: thumbnail and canvas both shrink the frame
        (600, 400, 16, (5, 3)),  # upscale: a 2240x1344 canvas from a 600x400 frame (GAR-1B's 16 tiles)
        (1000, 200, 8, (5, 1)),  # a non-square grid, one row of five tiles
    ],
)
def test_uint8_tiles_are_torchvision_v1_resize_bit_for_bit(width, height, max_num_tiles, grid):
    image = np.asarray(_random_image(width, height, seed=width + height))
    ours = preprocess_image(Image.fromarray(image), {}, ImageConfig(max_num_tiles=max_num_tiles))
    assert ours.grid == grid
    tiles = decode_mask_ids(ours.pixel_values)  # inverts the normalisation exactly
    v1 = _reference_uint8_tiles(image, max_num_tiles)
    assert torch.equal(tiles, v1.long())
    # These inputs tell the two torchvision resizes apart, so a v2 call would fail above.
    assert not torch.equal(v1, _reference_uint8_tiles(image, max_num_tiles, resize=tv2.resize))


def test_transparency_is_dropped_like_transformers_4_56():
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (300, 500, 4), dtype=np.uint8), mode="RGBA")
    expected = _reference_normalize(_reference_uint8_tiles(np.asarray(image.convert("RGB")), 4))
    assert torch.equal(preprocess_image(image, {}, ImageConfig(max_num_tiles=4)).pixel_values, expected)


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (333, 517), (5000, 300), (20, 20), (448, 1344)])
@pytest.mark.parametrize("max_num_tiles", [1, 4, 8, 16, 36])
def test_grid_equals_transformers_choice(width, height, max_num_tiles):
    reference = PerceptionLMImageProcessor(max_num_tiles=max_num_tiles)
    expected = reference._fit_image_to_canvas(width, height, 448) or reference._find_closest_aspect_ratio(width, height, 448)
    if max_num_tiles == 1:
        expected = (1, 1)
    assert choose_grid(width, height, 448, max_num_tiles) == tuple(expected)


def test_single_tile_mode_is_one_squashed_tile():
    image = _random_image(640, 360)
    out = preprocess_image(image, {2: np.ones((360, 640), bool)}, ImageConfig(max_num_tiles=16), single_tile=True)
    assert out.grid == (1, 1) and not out.has_thumbnail
    assert out.pixel_values.shape == out.mask_values.shape == (1, 3, 448, 448)
    expected = _reference_uint8_tiles(np.asarray(image), 1, thumbnail=False)
    assert torch.equal(out.pixel_values, _reference_normalize(expected))
    # The temporal protocol's keyframes arrive as decoded (H, W, 3) arrays: the same tiles.
    frame = preprocess_image(np.asarray(image), {2: np.ones((360, 640), bool)}, ImageConfig(), single_tile=True)
    assert torch.equal(frame.pixel_values, out.pixel_values)


def _two_regions(width: int = 900, height: int = 500) -> dict[int, np.ndarray]:
    a = np.zeros((height, width), bool)
    a[50:300, 100:400] = True
    b = np.zeros((height, width), bool)
    b[200:450, 350:800] = True  # overlaps a
    return {0: a, 3: b}


def test_label_map_first_region_wins_and_no_prompt_elsewhere():
    masks = _two_regions()
    labels = prompt_label_map(masks, (900, 500))
    assert labels.dtype == np.uint8
    assert labels[250, 375] == 0  # overlap: slot 0 painted first
    assert labels[400, 700] == 3
    assert labels[10, 10] == NO_PROMPT_ID
    assert set(np.unique(labels)) == {0, 3, NO_PROMPT_ID}


def test_mask_ids_survive_nearest_tiling_exactly():
    masks = _two_regions()
    out = preprocess_image(_random_image(900, 500), masks, ImageConfig(max_num_tiles=8))
    ids = decode_mask_ids(out.mask_values)
    assert ids.shape == out.mask_values.shape
    assert torch.equal(ids[:, 0], ids[:, 1]) and torch.equal(ids[:, 0], ids[:, 2])
    assert set(torch.unique(ids).tolist()) == {0, 3, NO_PROMPT_ID}
    # The mask map is tiled exactly like the image: thumbnail and grid of the label map, resized
    # with torchvision v1 NEAREST as the reference's mask processor (resample = NEAREST) does.
    labels = prompt_label_map(masks, (900, 500))
    expected = _reference_uint8_tiles(labels, 8, resample=PILImageResampling.NEAREST)
    assert torch.equal(ids[:, :1], expected.long())
    # Normalised like pixels: (v / 255 - 0.5) / 0.5.
    assert torch.allclose(out.mask_values[0, 0, 0, 0], torch.tensor(NO_PROMPT_ID / 127.5 - 1))


@pytest.mark.parametrize(("width", "height", "max_num_tiles"), [(900, 500, 8), (600, 400, 16)])
def test_bicubic_mask_map_is_the_v1_bicubic_label_map(width, height, max_num_tiles):
    """``--mask-resample bicubic``: the label map through the image's own v1 bicubic resize."""
    masks = _two_regions(width, height)
    out = preprocess_image(_random_image(width, height), masks, ImageConfig(max_num_tiles=max_num_tiles), mask_resample="bicubic")
    expected = _reference_uint8_tiles(prompt_label_map(masks, (width, height)), max_num_tiles)
    assert torch.equal(decode_mask_ids(out.mask_values)[:, :1], expected.long())


def test_bicubic_mask_map_differs_only_at_region_edges():
    masks = _two_regions()
    image = _random_image(900, 500)
    nearest = decode_mask_ids(preprocess_image(image, masks, ImageConfig(max_num_tiles=8)).mask_values)
    bicubic = decode_mask_ids(preprocess_image(image, masks, ImageConfig(max_num_tiles=8), mask_resample="bicubic").mask_values)
    differ = (nearest != bicubic)[:, 0]
    assert differ.any()
    # Every differing pixel lies within a few pixels of a label edge in the NEAREST map.
    labels = nearest[:, 0].float()[:, None]
    edges = torch.nn.functional.max_pool2d(labels, 9, 1, 4) != -torch.nn.functional.max_pool2d(-labels, 9, 1, 4)
    assert not (differ & ~edges[:, 0]).any()


def test_region_boxes_like_the_reference():
    mask = np.zeros((500, 900), bool)
    mask[50:300, 100:400] = True
    # reference: argwhere min/max (inclusive) divided by width/height
    coords = np.argwhere(mask)
    (y_min, x_min), (y_max, x_max) = coords.min(0), coords.max(0)
    assert region_box(mask) == (x_min / 900, y_min / 500, x_max / 900, y_max / 500) == (100 / 900, 50 / 500, 399 / 900, 299 / 500)
    out = preprocess_image(_random_image(900, 500), {2: mask}, ImageConfig(max_num_tiles=4))
    assert out.region_boxes == {2: region_box(mask)}


def test_bad_regions_raise_region_error():
    image = _random_image(100, 80)
    with pytest.raises(RegionError, match="empty"):
        preprocess_image(image, {0: np.zeros((80, 100), bool)})
    with pytest.raises(RegionError, match="100x80"):
        preprocess_image(image, {0: np.ones((10, 10), bool)})
    with pytest.raises(RegionError, match="slot|index"):
        preprocess_image(image, {5: np.ones((80, 100), bool)})


def test_image_config_from_checkpoint(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"max_num_tiles": 8, "tile_size": 448}))
    (tmp_path / "processor_config.json").write_text(json.dumps({"patch_size": 14, "pooling_ratio": 2}))
    config = ImageConfig.from_checkpoint(tmp_path)
    assert config.max_num_tiles == 8 and config.tokens_per_tile == 256
    with pytest.raises(CheckpointError):
        ImageConfig.from_checkpoint(tmp_path / "missing")


def _reference_frame(image: np.ndarray, mask: np.ndarray, max_num_tiles: int) -> GARImageInputs:
    """The frame as the reference feeds GAR: 4.56's tiles (v1 resize), its NEAREST mask map."""
    height, width = mask.shape
    labels = prompt_label_map({DESCRIBE_SLOT: mask}, (width, height))
    mask_tiles = _reference_uint8_tiles(labels, max_num_tiles, resample=PILImageResampling.NEAREST)
    return GARImageInputs(
        pixel_values=_reference_normalize(_reference_uint8_tiles(image, max_num_tiles)),
        mask_values=_reference_normalize(mask_tiles.expand(-1, 3, -1, -1)),
        grid=_reference_grid(width, height, max_num_tiles),
        has_thumbnail=True,
        region_boxes={DESCRIBE_SLOT: region_box(mask)},
        image_size=(width, height),
    )


@pytest.mark.slow
def test_tokens_on_an_upscaled_grid_equal_the_reference_with_a_gar_1b_shaped_model(tmp_path, monkeypatch):
    """GAR-1B's shape (PE-L with a CLS token, tied embeddings, 16 tiles) on a 600x400 frame
    upscaled to a 5x3 grid: garvid's ``regions_steps`` sees the prompt the reference sees."""
    save_checkpoint(random_gar(gar_config("gar-1b", tie_word_embeddings=True), seed=5), tmp_path / "gar-1b", max_num_tiles=16)
    model = load_gar(str(tmp_path / "gar-1b"), dtype="fp32", device="cpu")
    assert model.config.mllm.vision_use_cls_token and model.mllm.lm_head.weight is model.input_embeddings.weight
    image = np.asarray(_random_image(600, 400, seed=11))
    mask = np.zeros((400, 600), bool)
    mask[100:300, 150:420] = True

    prompts: list[torch.Tensor] = []
    generate = model.generate
    monkeypatch.setattr(model, "generate", lambda embeds, **kw: prompts.append(embeds) or generate(embeds, **kw))
    ours = drive(regions_steps(Image.fromarray(image), {1: mask}, None, model, generation=GenerationOptions(max_new_tokens=12)))

    frame = _reference_frame(image, mask, 16)
    assert frame.grid == (5, 3) and frame.num_tiles == 16
    tokenizer = load_tokenizer(tmp_path / "gar-1b")
    text = describe_region_text(DESCRIBE_SLOT)
    tokens = tokenize_prompt(tokenizer, load_chat_template(tmp_path / "gar-1b", tokenizer), text, 256 * frame.num_tiles)
    features, crops = encode_many(model, [EncodeJob([frame], [sorted(tokens.crop_spans)])])[0]
    reference = model.embed_inputs(torch.tensor([tokens.input_ids]), features, crops)
    expected = generate(reference, max_new_tokens=12, eos_token_ids=(EOT_TOKEN_ID,))

    assert ours.answer_token_ids == expected
    # Every next-token distribution along the prompt is the same, bit for bit.
    assert torch.equal(model.logits(prompts[0]), model.logits(reference))
