"""What one VideoRefer-BenchQ item costs with GAR-8B, measured with GAR-8B-shaped models of reduced depth.

GAR-8B's weights cannot be had here, and a full-depth random copy would not fit the
time of a benchmark on a CPU. So this builds GAR-8B-shaped checkpoints with the real
widths (PE-G: 1536 wide, 16 heads; Llama-3.1-8B: 4096 wide, 32 heads, 8 KV heads, 14336
MLP, the 128,262-token vocabulary), at depth 1 and depth 2 (vision and text layers),
saves them in the released layout (bf16 safetensors) and answers one VideoRefer-BenchQ-
format item with each, through ``garvid eval videorefer-q``'s own path (multi mask mode:
the item's masks, no tracking). The depth-2 minus depth-1 time is the cost of one layer;
the report extrapolates to GAR-8B's 47 vision and 32 text layers, and counts the prompt
tokens and the item's arithmetic (TFLOP), which carry over to any GPU.

The item: a 4 s, 640x360 frame folder cut from ``../shared/media/cups.mp4``, two objects
with masks on 32 uniformly sampled frames (as VideoRefer-BenchQ annotates them), a
relationship question with four options. GAR answers with a letter: generation is capped
at 2 new tokens (the letter and end of turn), as a real answer would stop.

    .venv/bin/python benchmarks/bench_eval_item.py [--repeats 2] [--frames 8] [--json ...]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.eval.videorefer import GivenMasks, evaluate_item
from garvid.files import write_json
from garvid.gar.loading import load_gar
from garvid.gar.model import GARModel
from garvid.gar.tiny import gar_config, random_gar, save_checkpoint
from garvid.options import AnswerOptions, GenerationOptions, KeyframeOptions, ModelOptions, TrackingOptions
from garvid.qa.answers import VideoAnswer
from garvid.qa.video_request import VideoRequest
from garvid.qa.context import AnswerContext
from garvid.qa.video_answering import answer_video
from garvid.regions.masks import encode_rle

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "eval_item.json"
GAR_8B_DEPTHS = {"vision": 47, "text": 32}
PATCHES_PER_TILE = (448 // 14) ** 2
VIDEOREFER_ITEMS = 1000  # VideoRefer-BenchQ's published size (about 1,000 questions)


def gar_8b_shaped(depth: int) -> GARModel:
    config = gar_config(
        "gar-8b", vision_width=1536, vision_depth=depth, vision_heads=16, text_width=4096, text_depth=depth,
        text_heads=32, text_kv_heads=8, text_intermediate=14336,
    )  # fmt: skip
    return random_gar(config)


def videorefer_item(root: Path, seconds: float) -> dict:
    """A frame folder ``clip/`` under ``root`` and a two-object item in VideoRefer-BenchQ's format."""
    frames = root / "clip"
    frames.mkdir(parents=True)
    command = ["ffmpeg", "-v", "error", "-i", str(MEDIA / "cups.mp4"), "-t", str(seconds), "-vf", "scale=640:360", "-q:v", "3"]
    subprocess.run([*command, str(frames / "%05d.jpg")], check=True)
    count = len(list(frames.glob("*.jpg")))
    labels = np.asarray(Image.open(MEDIA / "cups_first_frame.png").resize((640, 360), Image.NEAREST))
    sampled = np.linspace(0, count - 1, 32).round().astype(int)
    annotation = [{str(f): {"segmentation": encode_rle(labels == value)} for f in sampled} for value in (1, 2)]
    return {
        "id": 0,
        "video": "clip",
        "Question": "What is <object1><region> doing to <object0><region>?",
        "type": "Relationship Questions",
        "options": ["(A) Covering it", "(B) Lifting it", "(C) Ignoring it", "(D) Pushing it"],
        "Answer": "(A) Covering it",
        "frame_idx": str(sampled[0]),
        "annotation": annotation,
    }


@dataclass
class Measured:
    encode: float
    generate: float
    other: float  # reading frames and masks, replay, prompt building: independent of depth
    prompt_tokens: int
    tiles: int


def measure(model: GARModel, item: dict, root: Path, frames: int, repeats: int) -> Measured:
    """Best of ``repeats`` per stage, one item answered through the eval path each time."""
    template = AnswerOptions(
        model=ModelOptions(str(model.checkpoint_dir), device="cpu"),
        tracking=TrackingOptions(use_cache=False),
        keyframes=KeyframeOptions(frames=frames),
        generation=GenerationOptions(max_new_tokens=2),
    )
    runs: list[VideoAnswer] = []

    def answer(request: VideoRequest, given: GivenMasks | None) -> str:
        runs.append(answer_video(request, AnswerContext(model=model, tracker=given)))
        return runs[-1].answers[0].text

    for _ in range(repeats):
        record = evaluate_item(item, root, template, "multi", answer)
        if record.get("error"):
            raise SystemExit(f"the item failed: {record['error']}")
    best = min(runs, key=lambda run: run.timings["total"])
    timings = best.timings
    return Measured(
        encode=min(run.timings["encode"] for run in runs),
        generate=min(run.timings["generate"] for run in runs),
        other=timings["total"] - timings["encode"] - timings["generate"] - timings["load"],
        prompt_tokens=best.answers[0].prompt_tokens,
        tiles=len(best.keyframes),
    )


def layer_parameters(model: GARModel) -> tuple[int, int, int]:
    """Parameters of one vision block, one text layer, and the rest (embeddings, head, projector)."""
    vision = model.mllm.model.vision_tower.timm_model.blocks
    text = model.mllm.model.language_model.layers
    per_vision = sum(p.numel() for p in vision[0].parameters())
    per_text = sum(p.numel() for p in text[0].parameters())
    total = sum(p.numel() for p in model.parameters())
    return per_vision, per_text, total - per_vision * len(vision) - per_text * len(text)


def item_tflop(per_vision: int, per_text: int, tiles: int, tokens: int) -> tuple[float, float]:
    """Forward arithmetic of one item at GAR-8B depth (vision, text): 2 FLOP per parameter per
    token plus attention (full, not causal: an upper bound)."""
    vision = GAR_8B_DEPTHS["vision"] * tiles * (2 * per_vision * PATCHES_PER_TILE + 4 * PATCHES_PER_TILE**2 * 1536)
    text = GAR_8B_DEPTHS["text"] * (2 * per_text * tokens + 4 * tokens**2 * 4096)
    return vision / 1e12, text / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--frames", type=int, default=None, help="keyframes per item (default: the protocol's)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the clip cut from cups.mp4")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    with tempfile.TemporaryDirectory(prefix="garvid-bench-eval-") as scratch:
        root = Path(scratch)
        item = videorefer_item(root / "videos", args.seconds)
        measured: dict[int, Measured] = {}
        for depth in (1, 2):
            checkpoint = root / f"gar-8b-shaped-depth{depth}"
            model = gar_8b_shaped(depth)
            if depth == 1:
                per_vision, per_text, rest = layer_parameters(model)
            save_checkpoint(model.to(torch.bfloat16), checkpoint, shards=4, max_num_tiles=8)
            del model
            started = time.perf_counter()
            loaded = load_gar(str(checkpoint), dtype="fp32", device="cpu")
            print(f"depth {depth}: loaded in {time.perf_counter() - started:.1f} s; answering the item {args.repeats}x")
            measured[depth] = measure(loaded, item, root / "videos", args.frames, args.repeats)
            del loaded

    shallow, deep = measured[1], measured[2]
    per_vision_layer = max(deep.encode - shallow.encode, 0.0)
    per_text_layer = max(deep.generate - shallow.generate, 0.0)
    encode_full = shallow.encode + (GAR_8B_DEPTHS["vision"] - 1) * per_vision_layer
    generate_full = shallow.generate + (GAR_8B_DEPTHS["text"] - 1) * per_text_layer
    item_seconds = shallow.other + encode_full + generate_full
    parameters = rest + per_vision * GAR_8B_DEPTHS["vision"] + per_text * GAR_8B_DEPTHS["text"]
    vision_tflop, text_tflop = item_tflop(per_vision, per_text, shallow.tiles, shallow.prompt_tokens)

    threads = torch.get_num_threads()
    table = Table(title=f"One VideoRefer-BenchQ item, GAR-8B-shaped, CPU fp32, {threads} threads (best of {args.repeats})")
    for column in ("", "depth 1", "depth 2", "per layer", "GAR-8B (47 + 32 layers)"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("encode keyframes (s)", f"{shallow.encode:.2f}", f"{deep.encode:.2f}", f"{per_vision_layer:.2f}", f"{encode_full:.1f}")
    table.add_row("prefill + answer (s)", f"{shallow.generate:.2f}", f"{deep.generate:.2f}", f"{per_text_layer:.2f}", f"{generate_full:.1f}")
    table.add_row("frames, masks, replay, prompt (s)", f"{shallow.other:.2f}", f"{deep.other:.2f}", "", f"{shallow.other:.2f}")
    table.add_row("item (s)", "", "", "", f"{item_seconds:.0f}")
    console = Console(width=140)
    console.print(table)
    console.print(
        f"keyframes {shallow.tiles}, prompt tokens {shallow.prompt_tokens}, GAR-8B parameters {parameters / 1e9:.2f} B "
        f"(bf16 weights {parameters * 2 / 2**30:.1f} GiB), "
        f"{vision_tflop + text_tflop:.0f} TFLOP per item ({vision_tflop:.0f} vision, {text_tflop:.0f} text); "
        f"{VIDEOREFER_ITEMS} items on this CPU: {VIDEOREFER_ITEMS * item_seconds / 3600:.0f} h"
    )
    write_json(
        {
            **provenance(),
            "machine": platform.machine(),
            "torch": torch.__version__,
            "threads": threads,
            "repeats": args.repeats,
            "keyframes": shallow.tiles,
            "prompt_tokens": shallow.prompt_tokens,
            "measured": {f"depth_{depth}": vars(m) for depth, m in measured.items()},
            "per_layer_seconds": {"vision": per_vision_layer, "text": per_text_layer},
            "gar_8b_item_seconds": {"encode": encode_full, "generate": generate_full, "other": shallow.other, "total": item_seconds},
            "gar_8b_parameters": parameters,
            "gar_8b_item_tflop": {"vision": vision_tflop, "text": text_tflop},
        },
        args.json,
    )
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
