"""Peak memory with video length: a 10-minute 240p video with 20 cuts against a 10-second one.

Issue 23's target: peak RSS of the 10-minute video at most 1.1x the 10-second one's, for

- **cut detection**, as ``garvid shots`` runs it (``shots_for``, no cache: frames read once at
  256 px wide, PySceneDetect's AdaptiveDetector), whose cost should also be linear in frames;
- **tracking** with the ``tiny-random`` tracker (hiera-tiny at 256 px, random weights) over the
  frames a request tracks: ``--stride auto`` on a CPU with 16 keyframes (about 32 frames
  spread over the whole video), the cups clip's four-object mask on frame 0 (the first piece
  of the video is the cups clip).

The 10-minute video is ``bench_shots.build_long_video``'s (21 pieces of the shared clips at
426x240, 30 fps, joined: 20 cuts); the 10-second one is its first 10 s. Both are built in a
temporary folder. Each case runs in a fresh subprocess and reports its kernel peak RSS
(``VmHWM``), so cases cannot contaminate each other; the ratios compare runs of this one
invocation, side by side.

    .venv/bin/python benchmarks/bench_tracking_memory.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_shots import MEDIA, _status_mb, build_long_video, head_of, score
from bench_shots import run_case as detect_case
from PIL import Image
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "benchmarks" / "results" / "tracking_memory.json"
KEYFRAMES = 16
LENGTHS = ("10s", "10min")


def track_case(clip: Path, mask_png: Path, tracker_name: str) -> dict:
    """Track ``clip`` in this process as a request would, and report time and memory (the child's job)."""
    from garvid.media.open import open_video
    from garvid.regions.prompts import RegionPrompts
    from garvid.tracking import Sam2Tracker, auto_stride, tracked_frames

    tracker = Sam2Tracker.from_preset(tracker_name, device="cpu")
    with open_video(clip) as video:
        info = video.info
        labels = np.array(Image.open(mask_png).resize((info.width, info.height), Image.NEAREST))
        prompts = RegionPrompts(frame=0, masks={int(v): labels == v for v in np.unique(labels) if v != 0})
        stride = auto_stride(info.num_frames, KEYFRAMES, "cpu")
        frames = tracked_frames(info.num_frames, 0, stride)
        rss_before = _status_mb("VmRSS")
        start = time.perf_counter()
        tracker.track(video, prompts, frames, stride=stride)
        seconds = time.perf_counter() - start
    return {
        "video": clip.name,
        "frames": info.num_frames,
        "duration_s": info.duration,
        "objects": len(prompts.object_ids),
        "stride": stride,
        "tracked_frames": len(frames),
        "seconds": round(seconds, 1),
        "s_per_tracked_frame": round(seconds / len(frames), 3),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
    }


def run_child(case: str, clip: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", case, str(clip), "--mask", str(args.mask), "--tracker", args.tracker]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mask", type=Path, default=MEDIA / "cups_first_frame.png")
    parser.add_argument("--tracker", default="tiny-random")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "CLIP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, clip = args.child[0], Path(args.child[1])
        print(json.dumps(detect_case(clip) if case == "cut detection" else track_case(clip, args.mask, args.tracker)))
        return

    console = Console(stderr=True)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        console.print("building the 10-minute video with 20 cuts and its first 10 s ...")
        long = build_long_video(Path(folder))
        videos = {"10min": long, "10s": head_of(long, 10)}
        for case in ("cut detection", "tracking"):
            for length in LENGTHS:
                console.print(f"{case}, {length} (fresh process) ...")
                path, cuts = videos[length]
                run = {"case": case, "length": length, **run_child(case, path, args)}
                if case == "cut detection":
                    run.update({key: value for key, value in score(run["cuts_found"], cuts).items() if key != "found"})
                runs.append(run)

    by = {(run["case"], run["length"]): run for run in runs}
    ratios = {}
    for case in ("cut detection", "tracking"):
        short, long_run = by[case, "10s"], by[case, "10min"]
        ratios[f"{case}: peak RSS 10 min / 10 s"] = round(long_run["peak_rss_mb"] / short["peak_rss_mb"], 3)
    short, long_run = by["cut detection", "10s"], by["cut detection", "10min"]
    ratios["cut detection: seconds per frame 10 min / 10 s"] = round(
        (long_run["seconds"] / long_run["frames"]) / (short["seconds"] / short["frames"]), 3
    )
    table = Table(title=f"Peak memory with length (CPU, {args.tracker} tracker, {len(os.sched_getaffinity(0))} cores)")
    for column in ("case", "video", "frames", "work", "seconds", "RSS before", "peak RSS"):
        table.add_column(column, justify="left" if column in ("case", "work") else "right")
    for run in runs:
        if run["case"] == "cut detection":
            work = f"{run['frames_per_s']:.0f} frames/s, {len(run['cuts_found'])} cuts ({len(run['missed'])} missed, {len(run['false'])} false)"
        else:
            work = f"{run['tracked_frames']} frames x {run['objects']} objects (stride {run['stride']})"
        table.add_row(
            run["case"], run["length"], str(run["frames"]), work, f"{run['seconds']:.1f}",
            f"{run['rss_before_mb']:.0f} MB", f"{run['peak_rss_mb']:.0f} MB",
        )  # fmt: skip
    console.print(table)
    for name, ratio in ratios.items():
        console.print(f"{name}: [bold]{ratio:.3f}[/bold]")
    write_json(
        {
            **provenance(),
            "benchmark": "tracking_memory",
            "tracker": args.tracker,
            "device": "cpu",
            "keyframes": KEYFRAMES,
            "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0))},
            "runs": runs,
            "ratios": ratios,
        },
        args.json,
    )
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
