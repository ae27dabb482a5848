"""``garvid chat``'s follow-up questions versus the first answer, with GAR-8B-shaped models.

Builds GAR-8B-shaped checkpoints of reduced depth as ``bench_eval_item.py`` does (the real
widths and the 128,262-token vocabulary, 1 vision and 1 text layer by default; ``--depths
1 2`` adds depth 2 and extrapolates to GAR-8B's 47 + 32 layers from the difference),
loads one, and opens a :class:`garvid.qa.video_session.VideoSession` on a 4 s 640x360 clip
with two objects whose tracks come from a tracks file (no SAM2, like ``--tracks``).
Then it times, model loading excluded:

- the first answer (decode keyframes, encode them with their mask maps and replays, read
  the whole prompt, generate);
- a follow-up about the same objects (reads only its question, generates);
- a fresh ``answer_video`` (what ``garvid ask`` does) with the follow-up's question and
  the same loaded model, whose answer tokens must equal the follow-up's.

    .venv/bin/python benchmarks/bench_chat.py [--frames 8] [--max-new-tokens 8] [--depths 1 2] [--json ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from bench_eval_item import GAR_8B_DEPTHS, gar_8b_shaped
from PIL import Image
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json
from garvid.gar.loading import load_gar
from garvid.gar.tiny import save_checkpoint
from garvid.media.open import open_video
from garvid.options import AnswerOptions, GenerationOptions, KeyframeOptions, ModelOptions, TrackingOptions
from garvid.qa.video_request import VideoRequest
from garvid.qa.video_session import VideoSession
from garvid.qa.context import AnswerContext
from garvid.qa.video_answering import answer_video
from garvid.tracking import ObjectObservation, Tracks

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "chat.json"
FIRST = "what does object 2 do to object 1?"
FOLLOW_UP = "where are object 1 and object 2 at the end?"  # the same objects: the prefix is shared


def clip_and_tracks(root: Path, seconds: float) -> tuple[Path, Path]:
    """A 640x360 cut of cups.mp4 and a tracks file holding the first-frame masks on every 4th frame."""
    video = root / "cups.mp4"
    command = ["ffmpeg", "-v", "error", "-i", str(MEDIA / "cups.mp4"), "-t", str(seconds), "-vf", "scale=640:360"]
    subprocess.run([*command, "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
    labels = np.asarray(Image.open(MEDIA / "cups_first_frame.png").resize((640, 360), Image.NEAREST))
    with open_video(video) as opened:
        info, times = opened.info, opened.timestamps()
    frames = list(range(0, info.num_frames, 4))
    observations = {o: [ObjectObservation.from_mask(labels == o, 1.0) for _ in frames] for o in (1, 2)}
    tracks = Tracks(info, [1, 2], frames, [float(times[f]) for f in frames], observations, "given-masks", 4, "none", 0)
    path = root / "tracks.json"
    path.write_text(json.dumps(tracks.to_json()))
    return video, path


def measure(checkpoint: Path, video: Path, tracks: Path, frames: int, max_new_tokens: int) -> dict:
    model = load_gar(str(checkpoint), dtype="fp32", device="cpu")
    options = AnswerOptions(
        model=ModelOptions(str(checkpoint), dtype="fp32", device="cpu"),
        tracking=TrackingOptions(use_cache=False),
        keyframes=KeyframeOptions(frames=frames),
        generation=GenerationOptions(max_new_tokens=max_new_tokens),
    )
    request = VideoRequest(video=video, tracks=tracks, options=options)
    with VideoSession(request, model=model) as session:
        started = time.perf_counter()
        first = session.ask(FIRST)
        first_seconds = time.perf_counter() - started
        started = time.perf_counter()
        follow_up = session.ask(FOLLOW_UP)
        follow_up_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fresh = answer_video(replace(request, question=FOLLOW_UP), AnswerContext(model=model))
    fresh_seconds = time.perf_counter() - started
    return {
        "first_seconds": first_seconds,
        "follow_up_seconds": follow_up_seconds,
        "fresh_ask_seconds": fresh_seconds,
        "first_timings": first.timings,
        "follow_up_timings": follow_up.timings,
        "prompt_tokens": first.answers[0].prompt_tokens,
        "follow_up_prompt_tokens": follow_up.answers[0].prompt_tokens,
        "answer_tokens": len(follow_up.answers[0].token_ids),
        "keyframes": [k["frame"] for k in follow_up.keyframes],
        "same_keyframes_as_fresh": follow_up.keyframes == fresh.keyframes,
        "tokens_equal_fresh_ask": follow_up.answers[0].token_ids == fresh.answers[0].token_ids,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--depths", type=int, nargs="+", default=[1])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    runs: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="garvid-bench-chat-") as scratch:
        root = Path(scratch)
        video, tracks = clip_and_tracks(root, args.seconds)
        for depth in args.depths:
            checkpoint = root / f"gar-8b-shaped-depth{depth}"
            model = gar_8b_shaped(depth)
            save_checkpoint(model.to(torch.bfloat16), checkpoint, shards=4, max_num_tiles=8)
            del model
            runs[depth] = measure(checkpoint, video, tracks, args.frames, args.max_new_tokens)
            print(f"depth {depth}: {runs[depth]['first_seconds']:.1f} s first, {runs[depth]['follow_up_seconds']:.2f} s follow-up")

    table = Table(title=f"garvid chat, GAR-8B-shaped, CPU fp32, {torch.get_num_threads()} threads, {args.frames} keyframes")
    for column in ("depth", "prompt tokens", "first answer s", "follow-up s", "first / follow-up", "fresh ask s", "tokens = fresh ask"):
        table.add_column(column, justify="right")
    for depth, run in runs.items():
        run["ratio"] = run["first_seconds"] / run["follow_up_seconds"]
        table.add_row(
            str(depth), str(run["prompt_tokens"]), f"{run['first_seconds']:.2f}", f"{run['follow_up_seconds']:.2f}",
            f"{run['ratio']:.1f}x", f"{run['fresh_ask_seconds']:.2f}", str(run["tokens_equal_fresh_ask"]),
        )  # fmt: skip
    extrapolated = None
    if 1 in runs and 2 in runs:
        # the first answer grows with both towers' depth; a follow-up only with the text layers
        first_vision = max(runs[2]["first_timings"]["encode"] - runs[1]["first_timings"]["encode"], 0.0)
        first_text = max(runs[2]["first_timings"]["generate"] - runs[1]["first_timings"]["generate"], 0.0)
        follow_text = max(runs[2]["follow_up_seconds"] - runs[1]["follow_up_seconds"], 0.0)
        first = runs[1]["first_seconds"] + (GAR_8B_DEPTHS["vision"] - 1) * first_vision + (GAR_8B_DEPTHS["text"] - 1) * first_text
        follow = runs[1]["follow_up_seconds"] + (GAR_8B_DEPTHS["text"] - 1) * follow_text
        extrapolated = {"first_seconds": first, "follow_up_seconds": follow, "ratio": first / follow}
        table.add_row("47+32 (extrapolated)", "", f"{first:.0f}", f"{follow:.1f}", f"{first / follow:.1f}x", "", "")
    Console(width=150).print(table)
    write_json(
        {
            **provenance(),
            "machine": platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "frames": args.frames,
            "max_new_tokens": args.max_new_tokens,
            "questions": [FIRST, FOLLOW_UP],
            "runs": {f"depth_{d}": run for d, run in runs.items()},
            "gar_8b_extrapolated": extrapolated,
        },
        args.json,
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
