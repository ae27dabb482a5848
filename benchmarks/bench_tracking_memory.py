"""Peak memory of SAM2 tracking: a 10 s clip versus the same clip looped to 60 s.

garvid's tracker decodes frames lazily and drops SAM2's per-frame memory once no later
frame can read it, so peak RSS should not grow with the video's length: the 60 s / 10 s
ratio should be close to 1.

Two things would make memory grow, and both are handled: SAM2 keeps every frame's outputs
(garvid prunes what no later frame reads), and decord 0.6.0 keeps decoding ahead in the
background after a seek while its caller is busy (dmlc/decord#157; garvid's frame feed
stops it after every batch with ``Video.drop_read_ahead``). As a control, the 60 s clip
is also tracked with sam2's own ``propagate_in_video`` over the same lazy frames (every
frame's outputs kept), which shows the growth that pruning avoids.

The clip (cups.mp4 with its four-object mask, scaled to 480 px wide) is looped with
ffmpeg ``-stream_loop`` in a temporary folder. Each case runs in a fresh subprocess and
reports its kernel peak RSS (``VmHWM``), so cases cannot contaminate each other. The
``tiny-random`` tracker (hiera-tiny at 256 px, random weights) keeps this to minutes.

    .venv/bin/python benchmarks/bench_tracking_memory.py                 # stride 5
    .venv/bin/python benchmarks/bench_tracking_memory.py --stride 6 --tracker tiny-random
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "tracking_memory.json"
WIDTH = 480
UNPRUNED = "sam2-unpruned"
CASES = [("garvid", "short"), ("garvid", "long"), (UNPRUNED, "long")]


def _status_mb(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field_name} missing from /proc/self/status")


def prepare_clips(source: Path, folder: Path, loops: int) -> tuple[Path, Path]:
    """``source`` scaled to WIDTH px wide (video only), and the same looped ``loops`` times."""
    short, long = folder / "short.mp4", folder / "long.mp4"
    encode = ["-an", "-dn", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), "-vf", f"scale={WIDTH}:-2", *encode, str(short)],
        check=True,
    )
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(short), *encode, str(long)],
        check=True,
    )
    return short, long


def run_case(case: str, clip: Path, mask_png: Path, stride: int, tracker_name: str) -> dict:
    """Track ``clip`` in this process and report times and memory (the child's job)."""
    import torch

    from garvid.media.video_file import Video
    from garvid.regions.prompts import RegionPrompts
    from garvid.tracking import Sam2Tracker, tracked_frames
    from garvid.tracking.sam2_run import TrackingSession

    started = time.perf_counter()
    tracker = Sam2Tracker.from_preset(tracker_name, device="cpu")
    with Video(clip) as video:
        info = video.info
        labels = np.array(Image.open(mask_png).resize((info.width, info.height), Image.NEAREST))
        prompts = RegionPrompts(frame=0, masks={int(v): labels == v for v in np.unique(labels) if v != 0})
        frames = tracked_frames(info.num_frames, 0, stride)
        rss_before = _status_mb("VmRSS")
        track_start = time.perf_counter()
        if case == "garvid":
            tracker.track(video, prompts, frames)
        else:  # sam2's own propagation over the same lazy frames: nothing is dropped
            session = TrackingSession(tracker.predictor, video, frames)
            session.add_prompts(prompts)
            with torch.inference_mode():
                for _ in tracker.predictor.propagate_in_video(session.state):
                    pass
        track_s = time.perf_counter() - track_start
    return {
        "case": case,
        "clip": clip.name,
        "video_frames": info.num_frames,
        "duration_s": info.duration,
        "size": f"{info.width}x{info.height}",
        "objects": len(prompts.object_ids),
        "tracked_frames": len(frames),
        "track_s": round(track_s, 1),
        "s_per_frame": round(track_s / len(frames), 3),
        "total_s": round(time.perf_counter() - started, 1),
        "rss_before_track_mb": round(rss_before, 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
    }


def run_child(case: str, clip: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, __file__, "--child", case, str(clip),
        "--mask", str(args.mask), "--stride", str(args.stride), "--tracker", args.tracker,
    ]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=MEDIA / "cups.mp4")
    parser.add_argument("--mask", type=Path, default=MEDIA / "cups_first_frame.png")
    parser.add_argument("--loops", type=int, default=6, help="copies of the clip in the long one")
    parser.add_argument("--stride", type=int, default=5)
    parser.add_argument("--tracker", default="tiny-random")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "CLIP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child[0], Path(args.child[1]), args.mask, args.stride, args.tracker)))
        return

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as folder:
        console.print(f"preparing clips ({WIDTH} px wide, x{args.loops} loop) ...")
        short, long = prepare_clips(args.clip, Path(folder), args.loops)
        runs = []
        for case, clip in CASES:
            console.print(f"tracking {clip} clip: {case} (stride {args.stride}) ...")
            runs.append(run_child(case, short if clip == "short" else long, args))

    peak = {(run["case"], run["clip"]): run["peak_rss_mb"] for run in runs}
    ratios = {
        "garvid": peak["garvid", "long.mp4"] / peak["garvid", "short.mp4"],
        "sam2-unpruned over garvid 10 s": peak[UNPRUNED, "long.mp4"] / peak["garvid", "short.mp4"],
    }
    table = Table(title=f"SAM2 tracking peak memory ({args.tracker}, CPU, stride {args.stride})")
    for column in ("case", "video", "tracked", "s/frame", "RSS before", "peak RSS"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for run in runs:
        table.add_row(
            run["case"], f"{run['duration_s']:.0f} s", f"{run['tracked_frames']} x {run['objects']}",
            f"{run['s_per_frame']:.3f}", f"{run['rss_before_track_mb']:.0f} MB", f"{run['peak_rss_mb']:.0f} MB",
        )  # fmt: skip
    console.print(table)
    for name, ratio in ratios.items():
        console.print(f"peak RSS ratio 60 s / 10 s, {name}: [bold]{ratio:.3f}[/bold]")
    write_json(
        {
            **provenance(),
            "benchmark": "tracking_memory",
            "tracker": args.tracker,
            "device": "cpu",
            "stride": args.stride,
            "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
            "runs": runs,
            "peak_rss_ratio_long_over_short": {name: round(ratio, 3) for name, ratio in ratios.items()},
        },
        args.json,
    )
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
