"""RoI-aligned replay: one vectorised call equals the reference's per-region loop."""

from __future__ import annotations

import pytest
import torch
import torchvision

from garvid.gar.replay import merge_tiles, roi_replay


def reference_merge(tiles: torch.Tensor, ncw: int, nch: int) -> torch.Tensor:
    """The reference's `_merge` on (1, n, c, h, w) tiles, written out for comparison."""
    batch, count, channels, height, width = tiles.shape
    tiles = tiles.view(batch, nch, ncw, channels, height, width).permute(0, 3, 1, 4, 2, 5).contiguous()
    return tiles.view(batch, channels, nch * height, ncw * width)


def reference_replay(feature_map: torch.Tensor, box: tuple[float, ...], single: bool = False) -> torch.Tensor:
    """One region, computed exactly as the reference does (box scaled twice unless `single`)."""
    feat_h, feat_w = feature_map.shape[2:]
    orig_h, orig_w = feat_h * 28, feat_w * 28
    x1, y1, x2, y2 = box
    spatial_scale = feat_w / orig_w
    roi = torch.tensor(
        [0, x1 * orig_w * spatial_scale, y1 * orig_h * spatial_scale, x2 * orig_w * spatial_scale, y2 * orig_h * spatial_scale],
        dtype=torch.float32,
    )
    pooled = torchvision.ops.roi_align(
        feature_map.float(), roi.unsqueeze(0), output_size=(16, 16),
        spatial_scale=1.0 if single else spatial_scale, sampling_ratio=2, aligned=True,
    )
    return pooled.permute(0, 2, 3, 1).flatten(1, 2).to(feature_map.dtype).squeeze(0)


@pytest.mark.parametrize(("ncw", "nch"), [(1, 1), (3, 2), (2, 4)])
def test_merge_tiles_matches_reference_layout(ncw: int, nch: int) -> None:
    features = torch.randn(ncw * nch, 256, 8)
    ours = merge_tiles(features, ncw, nch)
    tiles = features.unsqueeze(0).reshape(1, ncw * nch, 16, 16, 8).permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(ours, reference_merge(tiles, ncw, nch)[0], rtol=0, atol=0)
    # tile (row 0, col 1) sits right of tile 0
    if ncw > 1:
        torch.testing.assert_close(ours[:, :16, 16:32], features[1].reshape(16, 16, 8).permute(2, 0, 1))


def test_merge_tiles_rejects_wrong_grid() -> None:
    with pytest.raises(ValueError, match="do not form a 2x2 grid"):
        merge_tiles(torch.randn(3, 256, 4), 2, 2)


@pytest.mark.parametrize("scaling", ["reference", "single"])
def test_vectorised_replay_equals_per_region_loop(scaling: str) -> None:
    torch.manual_seed(0)
    feature_map = merge_tiles(torch.randn(6, 256, 12), 3, 2).unsqueeze(0)
    boxes = [(0.0, 0.0, 1.0, 1.0), (0.1, 0.2, 0.35, 0.9), (0.5, 0.5, 0.52, 0.51), (0.7, 0.05, 0.999, 0.3), (0.2, 0.6, 0.8, 0.99)]
    ours = roi_replay(feature_map, torch.tensor(boxes, dtype=torch.float64), torch.zeros(5, dtype=torch.long), scaling=scaling)
    assert ours.shape == (5, 256, 12)
    for row, box in zip(ours, boxes):
        torch.testing.assert_close(row, reference_replay(feature_map, box, single=scaling == "single"), rtol=0, atol=0)


def test_batched_maps_replay_each_box_from_its_own_map() -> None:
    maps = torch.randn(3, 4, 16, 16)
    boxes = torch.tensor([[0.1, 0.1, 0.9, 0.9]] * 3)
    together = roi_replay(maps, boxes, torch.tensor([2, 0, 1]))
    for row, frame in zip(together, (2, 0, 1)):
        torch.testing.assert_close(row, reference_replay(maps[frame : frame + 1], tuple(boxes[0].tolist())))


def test_reference_scaling_shrinks_the_box_towards_the_origin() -> None:
    """Double scaling samples the top-left 1/28 of the map: far-away content is ignored."""
    feature_map = torch.zeros(1, 1, 16, 16)
    feature_map[..., 8:, 8:] = 1.0  # bottom-right quarter lit
    box = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    single = roi_replay(feature_map, box, torch.zeros(1, dtype=torch.long), scaling="single")
    reference = roi_replay(feature_map, box, torch.zeros(1, dtype=torch.long), scaling="reference")
    assert single.mean() > 0.9
    assert reference.abs().max() == 0


def test_replay_keeps_the_feature_dtype() -> None:
    feature_map = torch.randn(1, 4, 16, 16, dtype=torch.bfloat16)
    out = roi_replay(feature_map, torch.tensor([[0.0, 0.0, 0.5, 0.5]]), torch.zeros(1, dtype=torch.long))
    assert out.dtype == torch.bfloat16 and out.shape == (1, 256, 4)
