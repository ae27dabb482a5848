"""RoI-aligned region feature replay.

GAR writes, over each region's 256 crop tokens, the image features inside the region's
box resampled to 16x16 by RoI-Align. Here every region of every image (or keyframe) is
replayed by ONE ``roi_align`` call: feature maps are stacked in a batch and each box
names its map.

Scaling: the reference converts the normalised box into feature-map units and also
passes ``spatial_scale = 1/28`` (patch 14 x pooling 2) to ``roi_align``, so the box is
scaled twice and the sampled window shrinks towards the map's top-left corner. The
released weights were trained that way, so ``"reference"`` is the default;
``"single"`` applies the intended single scaling.
"""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

from garvid.options import Scaling

#: Output grid of one replayed region: 16 x 16 = 256 tokens.
REPLAY_SIZE = 16
#: Input pixels per feature cell in the reference (patch 14 x 2x2 pooling).
PIXELS_PER_FEATURE = 28


def merge_tiles(tile_features: torch.Tensor, ncw: int, nch: int) -> torch.Tensor:
    """Join tile features row-major into feature maps.

    ``(ncw * nch, side * side, d)`` becomes one ``(d, H, W)`` map; a leading batch
    dimension (one entry per image or keyframe) gives ``(B, d, H, W)`` maps.
    """
    batched = tile_features.dim() == 4
    features = tile_features if batched else tile_features.unsqueeze(0)
    count, tiles, tokens, dim = features.shape
    side = int(round(tokens**0.5))
    if tiles != ncw * nch or side * side != tokens:
        raise ValueError(f"{tiles} tiles of {tokens} tokens do not form a {ncw}x{nch} grid of square tiles")
    grid = features.reshape(count, nch, ncw, side, side, dim)
    maps = grid.permute(0, 5, 1, 3, 2, 4).reshape(count, dim, nch * side, ncw * side)
    return maps if batched else maps[0]


def roi_replay(
    feature_maps: torch.Tensor,
    boxes: torch.Tensor,
    batch_index: torch.Tensor,
    scaling: Scaling = "reference",
) -> torch.Tensor:
    """Replayed features ``(R, 256, d)`` for ``R`` normalised boxes over ``(B, d, H, W)`` maps.

    ``boxes`` holds ``x1, y1, x2, y2`` in [0, 1] of the image; ``batch_index[r]`` picks
    the map of box ``r``.
    """
    if scaling not in ("reference", "single"):
        raise ValueError(f"unknown replay scaling {scaling!r}")
    height, width = feature_maps.shape[-2:]
    scale = torch.tensor([width, height, width, height], dtype=torch.float64, device=boxes.device)
    feature_boxes = (boxes.to(torch.float64) * scale).to(torch.float32)
    rois = torch.cat([batch_index.to(feature_boxes).unsqueeze(1), feature_boxes], dim=1)
    spatial_scale = 1.0 / PIXELS_PER_FEATURE if scaling == "reference" else 1.0
    pooled = roi_align(
        feature_maps.float(),
        rois.to(feature_maps.device),
        output_size=(REPLAY_SIZE, REPLAY_SIZE),
        spatial_scale=spatial_scale,
        sampling_ratio=2,
        aligned=True,
    )
    return pooled.permute(0, 2, 3, 1).flatten(1, 2).to(feature_maps.dtype)
