"""Clips per minute: one ``garvid batch`` run versus ``garvid ask`` once per clip.

Both answer the same question about the same clips (cut from ``../shared/media`` and
scaled down) with the tiny-random tracker and GAR, each starting from an empty tracking
cache. ``batch`` loads each model once and runs stage by stage; ``ask`` per clip pays the
interpreter, imports and model loads every time. Cases alternate within each repeat;
medians, clips per minute and the ratio are printed and written as JSON.

    .venv/bin/python benchmarks/bench_batch.py                   # 6 clips of 2 s, 2 repeats
    .venv/bin/python benchmarks/bench_batch.py --clips 10 --seconds 1 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np
from PIL import Image
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "batch.json"
QUESTION = "what does object 1 do to object 2?"
TINY = ["--model", "tiny-random", "--tracker", "tiny-random", "--device", "cpu", "--frames", "4", "--max-new-tokens", "8"]


def make_clips(folder: Path, count: int, seconds: float, width: int) -> list[Path]:
    """``count`` cuts of cups.mp4 at ``width`` px, each with the scaled first-frame mask beside it."""
    source = MEDIA / "cups.mp4"
    labels = np.asarray(Image.open(MEDIA / "cups_first_frame.png"))
    height = round(width * 720 / 1280 / 2) * 2
    clips = []
    for index in range(count):
        clip = folder / f"clip{index:02d}.mp4"
        start = (index * seconds) % max(10.0 - seconds, 1.0)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-ss", f"{start:.2f}", "-i", str(source), "-t", str(seconds), "-an", "-sn", "-dn",
             "-vf", f"scale={width}:{height}", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)],
            check=True,
        )  # fmt: skip
        mask = Image.fromarray(np.where(labels <= 2, labels, 0).astype(np.uint8), mode="P").resize((width, height), Image.NEAREST)
        mask.putpalette([0, 0, 0, 255, 255, 0, 255, 0, 0] + [0] * (256 * 3 - 9))
        mask.save(clip.with_suffix(".png"))
        clips.append(clip)
    return clips


def timed(args: list[str], expected: int = 0) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "garvid_cli", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != expected:
        raise SystemExit(f"garvid {args[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="garvid-bench-batch-"))
    (work / "clips").mkdir()
    clips = make_clips(work / "clips", options.clips, options.seconds, options.width)
    timed(["ask", str(clips[0]), QUESTION, "--mask", str(clips[0].with_suffix(".png")), *TINY, "--no-cache"])  # warm-up
    times: dict[str, list[float]] = {"batch": [], "ask_per_clip": []}
    for repeat in range(options.repeats):
        out = work / f"out-{repeat}"
        batch_args = ["batch", str(work / "clips"), "-q", QUESTION, "-o", str(out), *TINY, "--cache-dir", str(work / f"bc-{repeat}")]
        times["batch"].append(timed(batch_args))
        total = 0.0
        for clip in clips:
            ask_args = ["ask", str(clip), QUESTION, "--mask", str(clip.with_suffix(".png")), *TINY, "--format", "json"]
            total += timed([*ask_args, "--cache-dir", str(work / f"ac-{repeat}"), "-o", str(work / f"{clip.stem}-{repeat}.json")])
        times["ask_per_clip"].append(total)
    shutil.rmtree(work, ignore_errors=True)

    medians = {name: median(values) for name, values in times.items()}
    per_minute = {name: options.clips * 60 / seconds for name, seconds in medians.items()}
    table = Table(title=f"{options.clips} clips of {options.seconds:g} s at {options.width} px, tiny models")
    for column in ("engine", "seconds (median)", "clips / min"):
        table.add_column(column, justify="right" if column != "engine" else "left")
    for name in ("batch", "ask_per_clip"):
        table.add_row(name, f"{medians[name]:.1f}", f"{per_minute[name]:.1f}")
    Console().print(table)
    ratio = per_minute["batch"] / per_minute["ask_per_clip"]
    print(f"batch / ask per clip: {ratio:.2f}x clips per minute")
    write_json(
        {
            **provenance(),
            "clips": options.clips,
            "seconds_per_clip": options.seconds,
            "width": options.width,
            "repeats": options.repeats,
            "seconds": times,
            "clips_per_minute": per_minute,
            "batch_over_ask": ratio,
            "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        },
        options.json,
    )
    print(f"wrote {options.json}")


if __name__ == "__main__":
    main()
