"""Image and mask-map preprocessing for GAR (PerceptionLM's "thumb+tile" scheme).

A frame becomes a 448x448 thumbnail (the whole frame squashed to one tile) followed by an
``ncw x nch`` grid of 448 tiles cut row-major from the frame resized to
``(ncw*448, nch*448)``; both resizes are bicubic with antialiasing on uint8, then pixels
are normalised with mean = std = 0.5, exactly as the processor the checkpoints were made
with does: transformers 4.56's PerceptionLM fast image processor (and the reference's copy
of it), which resizes with torchvision's v1 ``transforms.functional.resize`` (float32
interpolation, clamp, round). transformers 5 switched to the v2 resize, whose uint8
results differ by a few levels; see ``tests/test_gar_processor.py``. The grid is PLM's choice: the
canvas of at most ``max_num_tiles`` tiles that holds the frame without downsampling and
upsamples its short side the most, else the closest aspect ratio.

GAR adds a mask map: one label image of the frame's size holding the prompt index K
inside region K and 5 (``<NO_Prompt>``) elsewhere. It is tiled with the same grid and
normalised like pixels, so the model reads ids back as ``round((v + 1) / 2 * 255)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as tvF

from garvid.errors import CheckpointError, RegionError
from garvid.options import MaskResample
from garvid.regions.masks import mask_bbox

NO_PROMPT_ID = 5
"""Mask-map value outside every region (``<NO_Prompt>`` = token 128261 - 128256)."""

Grid = tuple[int, int]
NormBox = tuple[float, float, float, float]

_INTERPOLATION = {
    "nearest": tvF.InterpolationMode.NEAREST,
    "bicubic": tvF.InterpolationMode.BICUBIC,
}


@dataclass(frozen=True)
class ImageConfig:
    """Preprocessing constants, read from the checkpoint's processor files."""

    tile_size: int = 448
    max_num_tiles: int = 36
    patch_size: int = 14
    pooling_ratio: int = 2
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255

    @property
    def tokens_per_tile(self) -> int:
        """LLM tokens one tile becomes (16 x 16 = 256 for 448 tiles, patch 14, pooling 2)."""
        side = self.tile_size // self.patch_size // self.pooling_ratio
        return side * side

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str | Path) -> ImageConfig:
        """Read ``preprocessor_config.json`` (and ``processor_config.json`` when present)."""
        directory = Path(checkpoint_dir)
        path = directory / "preprocessor_config.json"
        if not path.is_file():
            raise CheckpointError(f"{directory} has no preprocessor_config.json: is it a GAR checkpoint folder?")
        values = _read_json(path)
        processor_path = directory / "processor_config.json"
        if processor_path.is_file():
            values = {**values, **_read_json(processor_path)}
        vision_input_type = values.get("vision_input_type", "thumb+tile")
        if vision_input_type != "thumb+tile":
            raise CheckpointError(f"{path}: vision_input_type {vision_input_type!r} is not supported (want 'thumb+tile')")
        defaults = cls()
        return cls(
            tile_size=int(values.get("tile_size", defaults.tile_size)),
            max_num_tiles=int(values.get("max_num_tiles", defaults.max_num_tiles)),
            patch_size=int(values.get("patch_size", defaults.patch_size)),
            pooling_ratio=int(values.get("pooling_ratio", defaults.pooling_ratio)),
            image_mean=tuple(float(v) for v in values.get("image_mean", defaults.image_mean)),
            image_std=tuple(float(v) for v in values.get("image_std", defaults.image_std)),
            rescale_factor=float(values.get("rescale_factor", defaults.rescale_factor)),
        )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None


@dataclass
class GARImageInputs:
    """One frame ready for GAR: normalised tiles, mask-map tiles and region boxes."""

    pixel_values: torch.Tensor  # (T, 3, tile, tile) float32
    mask_values: torch.Tensor  # (T, 3, tile, tile) float32, ids encoded like pixels
    grid: Grid  # (ncw, nch) tiles across and down; (1, 1) in single-tile mode
    has_thumbnail: bool  # tile 0 is the whole-frame thumbnail (thumb+tile mode)
    region_boxes: dict[int, NormBox]  # prompt index -> (x1/W, y1/H, x2/W, y2/H), inclusive max pixel
    image_size: tuple[int, int]  # (width, height) of the frame

    @property
    def num_tiles(self) -> int:
        return int(self.pixel_values.shape[0])


# --- PLM tile-grid selection -------------------------------------------------------------


@cache
def supported_grids(max_num_tiles: int) -> dict[float, list[Grid]]:
    """Aspect ratio -> grids ``(ncw, nch)`` of at most ``max_num_tiles`` tiles, in PLM's order.

    Tile counts run from ``max_num_tiles`` down to 1 and, within a count, ``ncw`` ascends;
    the order decides ties in :func:`choose_grid` (the later grid wins).
    """
    grids: dict[float, list[Grid]] = {}
    for count in range(max_num_tiles, 0, -1):
        for ncw in range(1, count + 1):
            if count % ncw == 0:
                grid = (ncw, count // ncw)
                grids.setdefault(grid[0] / grid[1], []).append(grid)
    return grids


def _fitted_size(width: int, height: int, canvas_w: int, canvas_h: int) -> tuple[float, float]:
    """Size of the frame scaled (aspect kept) to fit the canvas; the short side is floored."""
    scale = width / height
    factor = min(canvas_w / width, canvas_h / height)
    if scale > 1.0:
        new_w = factor * width
        return new_w, float(np.floor(new_w / scale))
    new_h = factor * height
    return float(np.floor(new_h * scale)), new_h


def _fit_canvas(width: int, height: int, tile_size: int, max_num_tiles: int) -> Grid | None:
    """The grid holding the frame without downsampling that enlarges its short side most."""
    best: Grid | None = None
    best_size: tuple[float, float] | None = None
    landscape = width / height >= 1.0
    for grids in supported_grids(max_num_tiles).values():
        for ncw, nch in grids:
            canvas_w, canvas_h = ncw * tile_size, nch * tile_size
            if canvas_w < width or canvas_h < height:
                continue
            size = _fitted_size(width, height, canvas_w, canvas_h)
            short = 1 if landscape else 0
            if best_size is None or size[short] >= best_size[short]:
                best, best_size = (ncw, nch), size
    return best


def _closest_aspect_grid(width: int, height: int, max_num_tiles: int) -> Grid:
    """For frames larger than every canvas: the grid whose aspect ratio is closest."""
    target = width / height
    grids = supported_grids(max_num_tiles)
    if target >= 1:
        ratio = min((k for k in grids if k <= target), key=lambda k: abs(k - target))
        return max(grids[ratio], key=lambda g: g[0])
    ratio = min((k for k in grids if k > target), key=lambda k: abs(1 / k - 1 / target))
    return max(grids[ratio], key=lambda g: g[1])


def choose_grid(width: int, height: int, tile_size: int, max_num_tiles: int) -> Grid:
    """PLM's tile grid ``(ncw, nch)`` for a ``width x height`` frame."""
    if max_num_tiles <= 1:
        return (1, 1)
    return _fit_canvas(width, height, tile_size, max_num_tiles) or _closest_aspect_grid(width, height, max_num_tiles)


# --- tiling and normalisation ------------------------------------------------------------


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of a PIL image, made as transformers 4.56's ``convert_to_rgb`` made it.

    That is PIL's plain ``convert("RGB")``: transparency is dropped, not composited onto
    white (transformers 5 composites; the checkpoints were made with 4.56).
    """
    return image.convert("RGB")


def _to_chw_uint8(image: Image.Image | np.ndarray) -> torch.Tensor:
    """An RGB frame as a contiguous ``(3, H, W)`` uint8 tensor."""
    if isinstance(image, Image.Image):
        array = np.asarray(to_rgb(image))
    else:
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {array.shape} {array.dtype}")
    return torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1).contiguous()


def _tiles(image: torch.Tensor, grid: Grid, tile_size: int, thumbnail: bool, resample: MaskResample) -> torch.Tensor:
    """``(C, H, W)`` uint8 -> ``(T, C, tile, tile)`` uint8: optional thumbnail, then the grid."""
    interpolation = _INTERPOLATION[resample]
    ncw, nch = grid
    batch = image.unsqueeze(0)
    parts = []
    if thumbnail:
        parts.append(tvF.resize(batch, [tile_size, tile_size], interpolation=interpolation, antialias=True))
    canvas = tvF.resize(batch, [nch * tile_size, ncw * tile_size], interpolation=interpolation, antialias=True)
    channels = canvas.shape[1]
    grid_tiles = (
        canvas.view(channels, nch, tile_size, ncw, tile_size).permute(1, 3, 0, 2, 4).reshape(-1, channels, tile_size, tile_size)
    )
    parts.append(grid_tiles)
    return torch.cat(parts, dim=0)


def normalize(tiles: torch.Tensor, config: ImageConfig) -> torch.Tensor:
    """uint8 tiles -> float32 ``(x * rescale - mean) / std``, computed like transformers' fused op."""
    mean = torch.tensor(config.image_mean) * (1.0 / config.rescale_factor)
    std = torch.tensor(config.image_std) * (1.0 / config.rescale_factor)
    return (tiles.to(torch.float32) - mean[:, None, None]) / std[:, None, None]


# --- regions -----------------------------------------------------------------------------


def prompt_label_map(masks: Mapping[int, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` uint8 map: prompt index K inside region K, :data:`NO_PROMPT_ID` elsewhere.

    Regions are painted in ascending prompt index and never overwrite each other, so the
    lowest index wins where masks overlap.
    """
    width, height = size
    labels = np.full((height, width), NO_PROMPT_ID, dtype=np.uint8)
    free = np.ones((height, width), dtype=bool)
    for index in sorted(masks):
        if not 0 <= index < NO_PROMPT_ID:
            raise RegionError(f"prompt index {index} is outside 0..{NO_PROMPT_ID - 1} (GAR has five region slots)")
        mask = np.asarray(masks[index], dtype=bool)
        if mask.shape != (height, width):
            raise RegionError(f"region mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}")
        paint = mask & free
        labels[paint] = index
        free &= ~mask
    return labels


def region_box(mask: np.ndarray) -> NormBox:
    """GAR's normalised box: ``(x_min/W, y_min/H, x_max/W, y_max/H)``, max pixel inclusive."""
    box = mask_bbox(mask)
    if box is None:
        raise RegionError("a region mask is empty: no pixel marks the object")
    height, width = mask.shape
    x1, y1, x2, y2 = box
    return x1 / width, y1 / height, x2 / width, y2 / height


# --- the entry point ---------------------------------------------------------------------


def preprocess_image(
    image: Image.Image | np.ndarray,
    masks: Mapping[int, np.ndarray],
    config: ImageConfig = ImageConfig(),
    *,
    single_tile: bool = False,
    mask_resample: MaskResample = "nearest",
) -> GARImageInputs:
    """Tile a frame and its region masks (prompt index -> bool mask) for GAR.

    ``single_tile`` gives one squashed 448 tile and no thumbnail (GAR's per-frame video
    mode). ``mask_resample`` picks NEAREST (exact ids, the default) or bicubic (what the
    training code actually fed; ids blur at region edges) for the mask map.
    """
    pixels = _to_chw_uint8(image)
    height, width = pixels.shape[1:]
    if single_tile:
        grid, thumbnail = (1, 1), False
    else:
        grid, thumbnail = choose_grid(width, height, config.tile_size, config.max_num_tiles), True
    frame = GARImageInputs(
        pixel_values=normalize(_tiles(pixels, grid, config.tile_size, thumbnail, "bicubic"), config),
        mask_values=torch.empty(0),
        grid=grid,
        has_thumbnail=thumbnail,
        region_boxes={},
        image_size=(width, height),
    )
    return with_regions(frame, masks, config, mask_resample=mask_resample)


def with_regions(
    frame: GARImageInputs,
    masks: Mapping[int, np.ndarray],
    config: ImageConfig = ImageConfig(),
    *,
    mask_resample: MaskResample = "nearest",
) -> GARImageInputs:
    """``frame`` with other regions: its pixel tiles reused, mask map and boxes made anew."""
    if mask_resample not in _INTERPOLATION:
        raise ValueError(f"mask_resample must be 'nearest' or 'bicubic', not {mask_resample!r}")
    # Every channel of the mask map is the same label map: tile one channel, then copy it.
    labels = torch.from_numpy(prompt_label_map(masks, frame.image_size)).unsqueeze(0)
    label_tiles = _tiles(labels, frame.grid, config.tile_size, frame.has_thumbnail, mask_resample).expand(-1, 3, -1, -1)
    return replace(
        frame,
        mask_values=normalize(label_tiles, config),
        region_boxes={index: region_box(np.asarray(masks[index], dtype=bool)) for index in sorted(masks)},
    )
