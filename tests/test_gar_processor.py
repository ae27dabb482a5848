"""GAR preprocessing: equal to transformers' PerceptionLM image processor, mask ids survive tiling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.perception_lm.image_processing_perception_lm import (
    PerceptionLMImageProcessor,
)

from garvid.errors import CheckpointError, RegionError
from garvid.gar.processor import (
    NO_PROMPT_ID,
    ImageConfig,
    choose_grid,
    decode_mask_ids,
    preprocess_image,
    prompt_label_map,
    region_box,
)


def _random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("width", "height", "max_num_tiles"),
    [(1280, 720, 16), (333, 517, 36), (1000, 200, 8), (3000, 2000, 4), (448, 448, 16), (50, 900, 16), (640, 480, 1)],
)
def test_pixels_equal_transformers_perception_lm_processor(width, height, max_num_tiles):
    image = _random_image(width, height, seed=width)
    reference = PerceptionLMImageProcessor(
        max_num_tiles=max_num_tiles, tile_size=448, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    expected = reference(images=[image], return_tensors="pt")["pixel_values"][0]
    ours = preprocess_image(image, {}, ImageConfig(max_num_tiles=max_num_tiles))
    ncw, nch = ours.grid
    assert ours.has_thumbnail
    assert ours.pixel_values.shape == expected.shape == (1 + ncw * nch, 3, 448, 448)
    assert ours.pixel_values.dtype == torch.float32
    assert torch.equal(ours.pixel_values, expected)


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (333, 517), (5000, 300), (20, 20), (448, 1344)])
@pytest.mark.parametrize("max_num_tiles", [1, 4, 8, 16, 36])
def test_grid_equals_transformers_choice(width, height, max_num_tiles):
    reference = PerceptionLMImageProcessor(max_num_tiles=max_num_tiles)
    expected = reference._fit_image_to_canvas(width, height, 448) or reference._find_closest_aspect_ratio(width, height, 448)
    if max_num_tiles == 1:
        expected = (1, 1)
    assert choose_grid(width, height, 448, max_num_tiles) == tuple(expected)


def test_transparency_is_composited_on_white_like_transformers():
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (300, 500, 4), dtype=np.uint8), mode="RGBA")
    reference = PerceptionLMImageProcessor(max_num_tiles=4, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    expected = reference(images=[image], return_tensors="pt")["pixel_values"][0]
    assert torch.equal(preprocess_image(image, {}, ImageConfig(max_num_tiles=4)).pixel_values, expected)


def test_single_tile_mode_is_one_squashed_tile():
    image = _random_image(640, 360)
    out = preprocess_image(image, {2: np.ones((360, 640), bool)}, ImageConfig(max_num_tiles=16), single_tile=True)
    assert out.grid == (1, 1) and not out.has_thumbnail
    assert out.pixel_values.shape == out.mask_values.shape == (1, 3, 448, 448)
    reference = PerceptionLMImageProcessor(vision_input_type="vanilla", image_mean=[0.5] * 3, image_std=[0.5] * 3)
    assert torch.equal(out.pixel_values, reference(images=[image], return_tensors="pt")["pixel_values"][0])


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
    # The mask map is tiled exactly like the image: the NEAREST-resized label map, cut the same way.
    labels = torch.from_numpy(prompt_label_map(masks, (900, 500)))[None, None]
    ncw, nch = out.grid
    canvas = torch.nn.functional.interpolate(labels, size=(nch * 448, ncw * 448), mode="nearest")[0, 0]
    assert torch.equal(ids[1, 0], canvas[:448, :448].long())
    assert torch.equal(ids[-1, 0], canvas[-448:, -448:].long())
    # Normalised like pixels: (v / 255 - 0.5) / 0.5.
    assert torch.allclose(out.mask_values[0, 0, 0, 0], torch.tensor(NO_PROMPT_ID / 127.5 - 1))


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
