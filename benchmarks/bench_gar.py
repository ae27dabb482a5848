"""GAR inference costs on this machine, for the tiny model and a GAR-8B-shaped model.

The GAR-8B-shaped model has the real widths (PE-G 1536, Llama 4096 with GQA, 128k
vocabulary) and reduced depth, so per-layer costs are real while it fits anywhere.
Reports: vision encoding per tile, garvid's replay (one RoI-Align for all regions, one
scatter) vs the reference's per-region loop (merge, roi_align, splice per region; side
by side, same inputs, checked equal), prefill and decode tokens/s.

    .venv/bin/python benchmarks/bench_gar.py [--json benchmarks/results/gar.json] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Callable

import torch
import torchvision
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.gar.model import GARModel
from garvid.gar.replay import merge_tiles, roi_replay
from garvid.gar.tiny import gar_config, random_gar

REGIONS = 5
GRID = (2, 2)  # ncw, nch: 4 tiles + thumbnail, a typical 16:9 frame
DECODE_TOKENS = 16


def reference_loop_replay(
    inputs_embeds: torch.Tensor, input_ids: torch.Tensor, tile_features: torch.Tensor, boxes: dict[int, tuple[float, ...]]
) -> torch.Tensor:
    """The reference's replay, step for step: per region, find the crop run, merge the
    tiles again, build the box in Python, one roi_align, splice the sequence with cat."""
    ncw, nch = GRID
    sequence = inputs_embeds[0]
    for crop_token, (x1, y1, x2, y2) in boxes.items():
        where = input_ids[0].eq(crop_token).nonzero().squeeze()
        head, tail = where.min().item(), where.max().item()
        tiles = tile_features.reshape(ncw * nch, 16, 16, -1).permute(0, 3, 1, 2).unsqueeze(0)
        feature_map = tiles.view(1, nch, ncw, tiles.shape[2], 16, 16).permute(0, 3, 1, 4, 2, 5).reshape(1, -1, nch * 16, ncw * 16)
        feat_h, feat_w = feature_map.shape[2:]
        orig_h, orig_w = feat_h * 28, feat_w * 28
        scale = feat_w / orig_w
        roi = torch.tensor([0, x1 * orig_w * scale, y1 * orig_h * scale, x2 * orig_w * scale, y2 * orig_h * scale])
        pooled = torchvision.ops.roi_align(feature_map.float(), roi.unsqueeze(0), (16, 16), scale, 2, True)
        replay = pooled.permute(0, 2, 3, 1).flatten(1, 2).to(feature_map.dtype).squeeze()
        sequence = torch.cat([sequence[:head], replay, sequence[tail + 1 :]])
    return sequence.unsqueeze(0)


def garvid_replay(model: GARModel, input_ids: torch.Tensor, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """garvid's replay: one merge, one roi_align for all regions, one scatter (it also
    re-embeds the tokens and places the image features, which the loop is spared)."""
    ncw, nch = GRID
    feature_map = merge_tiles(features[1:], ncw, nch).unsqueeze(0)
    replayed = roi_replay(feature_map, boxes, torch.zeros(len(boxes), dtype=torch.long))
    return model.embed_inputs(input_ids, features, dict(enumerate(replayed)))


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(name: str, model: GARModel, repeat: int) -> dict[str, float | str]:
    ncw, nch = GRID
    tiles = 1 + ncw * nch
    pixels = torch.randn(tiles, 3, 448, 448)
    masks = torch.full_like(pixels, 5 / 255 * 2 - 1)
    masks[:, :, 100:300, 50:250] = -1.0
    model.encode_images(pixels[:1], masks[:1])  # warm-up
    encode = best_of(repeat, lambda: model.encode_images(pixels, masks))
    features = model.encode_images(pixels, masks)
    boxes = [(0.05 * i, 0.1, 0.3 + 0.1 * i, 0.8) for i in range(REGIONS)]
    crop_ids = model.config.crop_tokens_ids
    ids = [128000] + [model.config.image_token_id] * (tiles * 256) + [100]
    for slot in range(REGIONS):
        ids += [101, *([crop_ids[slot]] * 256)]
    input_ids = torch.tensor([ids + [102]])
    box_tensor = torch.tensor(boxes, dtype=torch.float64)
    # Both start from the embeddings with image features already placed (identical work).
    embedded = model.embed_inputs(input_ids[:, : 1 + tiles * 256], features, {})
    base = torch.cat([embedded, model.input_embeddings(input_ids[:, 1 + tiles * 256 :])], dim=1)
    by_token = {crop_ids[slot]: box for slot, box in enumerate(boxes)}
    inner = 10
    looped = best_of(repeat, lambda: [reference_loop_replay(base, input_ids, features[1:], by_token) for _ in range(inner)]) / inner
    vectorised = best_of(repeat, lambda: [garvid_replay(model, input_ids, features, box_tensor) for _ in range(inner)]) / inner
    torch.testing.assert_close(
        garvid_replay(model, input_ids, features, box_tensor), reference_loop_replay(base, input_ids, features[1:], by_token)
    )
    prompt_tokens = tiles * 256 + REGIONS * 256 + 64
    embeds = torch.randn(1, prompt_tokens, model.config.mllm.text_config.hidden_size, dtype=model.dtype) * 0.02
    prefill = best_of(repeat, lambda: model.generate(embeds, max_new_tokens=1, eos_token_ids=()))
    with_decode = best_of(repeat, lambda: model.generate(embeds, max_new_tokens=1 + DECODE_TOKENS, eos_token_ids=()))
    return {
        "model": name,
        "encode_s_per_tile": encode / tiles,
        "replay_vectorised_ms": vectorised * 1e3,
        "replay_loop_ms": looped * 1e3,
        "replay_speedup": looped / vectorised,
        "prompt_tokens": prompt_tokens,
        "prefill_tokens_per_s": prompt_tokens / prefill,
        "decode_tokens_per_s": DECODE_TOKENS / max(with_decode - prefill, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/gar.json"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    models = {
        "tiny-random": lambda: random_gar(gar_config("gar-8b")),
        "gar-8b-shaped, depth 1+1": lambda: random_gar(
            gar_config(
                "gar-8b", vision_width=1536, vision_depth=1, vision_heads=16, text_width=4096, text_depth=1,
                text_heads=32, text_kv_heads=8, text_intermediate=14336,
            )
        ),
    }
    rows = []
    for name, build in models.items():
        rows.append(measure(name, build(), args.repeat))
    table = Table(title=f"GAR inference, CPU fp32, {torch.get_num_threads()} threads (best of {args.repeat})")
    for column in ("model", "encode s/tile", "replay vec ms", "replay loop ms", "replay speed-up", "prefill tok/s", "decode tok/s"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for row in rows:
        table.add_row(
            str(row["model"]), f"{row['encode_s_per_tile']:.4f}", f"{row['replay_vectorised_ms']:.3f}",
            f"{row['replay_loop_ms']:.3f}", f"{row['replay_speedup']:.1f}x", f"{row['prefill_tokens_per_s']:.0f}",
            f"{row['decode_tokens_per_s']:.1f}",
        )
    Console(width=130).print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**provenance(), "machine": platform.machine(), "torch": torch.__version__, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
