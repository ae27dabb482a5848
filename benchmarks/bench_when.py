"""What ``garvid when`` saves against asking every fine window, and what its refinement costs.

1. Cost, with a GAR-8B-shaped model of depth 1 (the real widths: PE-G 1536 wide, Llama-3.1-8B
   4096 wide with 32 heads, 8 KV heads, 14336 MLP, the 128,262-token vocabulary; one vision
   block, one text layer, as ``bench_eval_item.py`` builds them) on the CPU: ``when`` over a
   60 s clip at 2 s windows refined to 0.25 s, against ``ask --window 0.25`` (the same tracks,
   keyframes picked the same way, an answer of up to ``--answer-tokens`` tokens generated per
   window). Both read one tracks file (a still box per object on every frame of a 4 fps clip,
   so a 0.25 s window holds one frame), so tracking is not measured. Asking is measured on
   the first ``--ask-seconds`` of the clip and scaled to 60 s: its windows are alike, each with
   one keyframe, one prompt and one answer; the vision-tower calls are counted the same way.
2. The refinement on step-shaped score curves (no model): windows scored by the scan over 60 s
   with 1, 3 and 10 boundaries, against the 240 windows of an exhaustive 0.25 s scan.

    .venv/bin/python benchmarks/bench_when.py [--frames 2] [--ask-seconds 3] [--json ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json
from garvid.gar.loading import load_gar
from garvid.gar.model import GARModel
from garvid.gar.tiny import gar_config, random_gar, save_checkpoint
from garvid.media.open import open_video
from garvid.options import AnswerOptions, GenerationOptions, KeyframeOptions, ModelOptions, TrackingOptions, WhenOptions
from garvid.qa.context import AnswerContext
from garvid.qa.video_answering import answer_video
from garvid.qa.video_request import VideoRequest
from garvid.qa.when_answering import answer_when
from garvid.qa.when_scan import scan
from garvid.regions.input import RegionInput
from garvid.tracking.tracks import ObjectObservation, Tracks

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "when.json"
SECONDS, FPS, WINDOW, RESOLUTION = 60.0, 4, 2.0, 0.25
STATEMENT = "object 1 is lifted off the table"

sys.path.insert(0, str(REPO / "tests"))
from test_when_scan import coarse_windows, step_scorer  # noqa: E402  (the tests' step curves, the same model of a score)


def gar_8b_shaped() -> GARModel:
    config = gar_config(
        "gar-8b", vision_width=1536, vision_depth=1, vision_heads=16, text_width=4096, text_depth=1,
        text_heads=32, text_kv_heads=8, text_intermediate=14336,
    )  # fmt: skip
    return random_gar(config)


def clip_and_tracks(root: Path) -> tuple[Path, Path]:
    """A 60 s, 4 fps, 320x180 clip (cups.mp4 looped) and a tracks file with one still object on every frame."""
    video = root / "clip.mp4"
    command = ["ffmpeg", "-v", "error", "-stream_loop", "6", "-i", str(MEDIA / "cups.mp4"), "-t", str(SECONDS)]
    subprocess.run([*command, "-vf", f"fps={FPS},scale=320:180", "-an", str(video)], check=True)
    with open_video(video) as source:
        info, times = source.info, [float(t) for t in source.timestamps()]
    box = np.zeros((info.height, info.width), dtype=bool)
    box[60:140, 100:180] = True
    frames = list(range(info.num_frames))
    tracks = Tracks(info, [1], frames, times, {1: [ObjectObservation.from_mask(box, 1.0) for _ in frames]}, "still box", 1, "cpu", 0)
    path = root / "tracks.json"
    path.write_text(json.dumps(tracks.to_json()))
    return video, path


class TowerCalls:
    """Counts vision-tower calls and the tiles they encode."""

    def __init__(self) -> None:
        self.calls = self.tiles = 0
        self.encode = GARModel.encode_images

    def __enter__(self) -> TowerCalls:
        def counted(model, pixels, masks, *rest):
            self.calls += 1
            self.tiles += int(pixels.shape[0])
            return self.encode(model, pixels, masks, *rest)

        GARModel.encode_images = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        GARModel.encode_images = self.encode  # type: ignore[method-assign]


def measure_cost(model: GARModel, video: Path, tracks: Path, frames: int, answer_tokens: int, ask_seconds: float, per_pass: int) -> dict:
    options = AnswerOptions(
        model=ModelOptions(str(model.checkpoint_dir), device="cpu"),
        tracking=TrackingOptions(use_cache=False),
        keyframes=KeyframeOptions(frames=frames),
        generation=GenerationOptions(max_new_tokens=answer_tokens),
    )
    request = VideoRequest(video, RegionInput(), STATEMENT, options, tracks, when=WhenOptions(WINDOW, RESOLUTION))
    with TowerCalls() as when_tower:
        started = time.perf_counter()
        found = answer_when(request, AnswerContext(model=model), prompts_per_pass=per_pass)
        when_seconds = time.perf_counter() - started
    coarse = sum(1 for w in found.scan if w.end - w.start >= WINDOW - 1e-6)
    asked = replace(
        request, when=None, options=replace(options, keyframes=replace(options.keyframes, window=RESOLUTION, end=ask_seconds))
    )
    with TowerCalls() as ask_tower:
        started = time.perf_counter()
        answered = answer_video(asked, AnswerContext(model=model))
        ask_seconds_measured = time.perf_counter() - started
    scale = SECONDS / ask_seconds
    ask = {
        "windows": round(len(answered.answers) * scale),
        "seconds": ask_seconds_measured * scale,
        "tower_calls": round(ask_tower.calls * scale),
        "tower_tiles": round(ask_tower.tiles * scale),
        "measured_windows": len(answered.answers),
        "measured_seconds": ask_seconds_measured,
        "prompt_tokens": answered.answers[0].prompt_tokens,
        "answer_tokens": float(np.mean([len(a.token_ids) for a in answered.answers])),
    }
    when = {
        "windows": len(found.scan),
        "coarse_windows": coarse,
        "refined_windows": len(found.scan) - coarse,
        "boundaries": sum((i.opens is not None) + (i.closes is not None) for i in found.intervals),
        "seconds": when_seconds,
        "tower_calls": when_tower.calls,
        "tower_tiles": when_tower.tiles,
        "distinct_keyframes": len({f for w in found.scan for f in w.keyframes}),
        "timings": found.timings,
    }
    return {"when": when, "ask": ask}


def refinement_counts() -> list[dict]:
    """Windows the scan scores on step curves over 60 s with 1, 3 and 10 boundaries."""
    rows = []
    for count in (1, 3, 10):
        times = list(np.linspace(0, SECONDS, count + 2)[1:-1].round(3) + 0.37)  # off the window grid
        truth = list(zip(times[::2], times[1::2] + [SECONDS] * (len(times) % 2)))
        calls: list[int] = []
        found = scan(coarse_windows(0.0, SECONDS, WINDOW), RESOLUTION, 0.5, step_scorer(truth, calls))
        error = max(float(abs(a - b)) for i, (s, e) in zip(found.intervals, truth) for a, b in ((i.start, s), (i.end, e)))
        rows.append(
            {"boundaries": count, "windows": sum(calls), "rounds": len(calls), "exhaustive": int(SECONDS / RESOLUTION), "max_error": error}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2, help="keyframes per window")
    parser.add_argument("--answer-tokens", type=int, default=32, help="tokens each ask window generates at most")
    parser.add_argument("--ask-seconds", type=float, default=3.0, help="seconds of the clip asked about, scaled to 60 s")
    parser.add_argument("--batch-size", type=int, default=4, help="when's windows per forward pass")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    refinement = refinement_counts()
    with tempfile.TemporaryDirectory(prefix="garvid-bench-when-") as scratch:
        root = Path(scratch)
        video, tracks = clip_and_tracks(root)
        model = gar_8b_shaped()
        save_checkpoint(model.to(torch.bfloat16), root / "gar-8b-shaped", shards=4, max_num_tiles=8)
        del model
        loaded = load_gar(str(root / "gar-8b-shaped"), dtype="fp32", device="cpu")
        cost = measure_cost(loaded, video, tracks, args.frames, args.answer_tokens, args.ask_seconds, args.batch_size)

    when, ask = cost["when"], cost["ask"]
    threads = torch.get_num_threads()
    console = Console(width=140)
    table = Table(title=f"60 s clip, GAR-8B-shaped depth 1, CPU fp32, {threads} threads: when (2 s -> 0.25 s) vs ask --window 0.25")
    for column in ("", "when", "ask --window 0.25", "ratio"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("windows", str(when["windows"]), str(ask["windows"]), f"{ask['windows'] / when['windows']:.1f}x")
    table.add_row("seconds", f"{when['seconds']:.0f}", f"{ask['seconds']:.0f}", f"{ask['seconds'] / when['seconds']:.1f}x")
    table.add_row("vision-tower calls", str(when["tower_calls"]), str(ask["tower_calls"]), f"{ask['tower_calls'] / when['tower_calls']:.1f}x")
    table.add_row("frames encoded", str(when["tower_tiles"]), str(ask["tower_tiles"]), f"{ask['tower_tiles'] / when['tower_tiles']:.1f}x")
    console.print(table)
    console.print(
        f"when: {when['coarse_windows']} coarse + {when['refined_windows']} refined windows, {when['boundaries']} boundaries, "
        f"{when['distinct_keyframes']} distinct keyframes; ask measured on {ask['measured_windows']} windows "
        f"({ask['measured_seconds']:.0f} s, {ask['prompt_tokens']} prompt tokens, {ask['answer_tokens']:.0f} answer tokens each), scaled to 60 s"
    )
    steps = Table(title="Refinement on step curves (60 s, 2 s windows, 0.25 s resolution)")
    for column in ("boundaries", "windows scored", "rounds", "exhaustive", "ratio", "max boundary error (s)"):
        steps.add_column(column, justify="right")
    for row in refinement:
        ratio = row["exhaustive"] / row["windows"]
        steps.add_row(str(row["boundaries"]), str(row["windows"]), str(row["rounds"]), str(row["exhaustive"]), f"{ratio:.1f}x", f"{row['max_error']:.3f}")
    console.print(steps)
    write_json(
        {
            **provenance(),
            "machine": platform.machine(),
            "torch": torch.__version__,
            "threads": threads,
            "clip": {"seconds": SECONDS, "fps": FPS, "size": [320, 180]},
            "window": WINDOW,
            "resolution": RESOLUTION,
            "frames": args.frames,
            "batch_size": args.batch_size,
            "answer_tokens": args.answer_tokens,
            "ask_seconds": args.ask_seconds,
            **cost,
            "refinement": refinement,
        },
        args.json,
    )
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
