"""Decode cost of K evenly spaced frames versus every frame, decord and torchcodec side by side.

The clips, made from the shared cups.mp4 with ffmpeg in a work folder (kept for the next
run): a 60 s 1280x720 clip with a keyframe every 60 frames (GOP 60), a 10-minute 426x240
clip (x264's default GOP, up to 250), a variable-frame-rate clip (frames held 1, 2 or 3
ticks of 1/30 s in turn) and a phone-style clip stored landscape with a 90-degree display
rotation. ``--clip`` benchmarks given files instead.

Each case (clip, decoder, K or all) runs in a fresh process, which imports both decoders
(and so torch) untimed, then opens the clip through
``garvid.media.open.open_video`` (timed apart from decoding), reads K frames spread evenly
with ``frames`` or walks every frame with ``iter_frames``, and reports its times and its
peak RSS growth: the kernel's high-water mark (``VmHWM``, reset just before opening)
against the RSS before opening, since both decoders allocate in C/C++ where tracemalloc
cannot see, and a fresh process keeps one case's freed memory from hiding the next's.
The child also hashes the frames it read (SHA-256 of the RGB bytes, in order), so the two
decoders' frames are compared pixel for pixel in every case. ``--repeats`` runs each case
that many times (fresh processes each), and the table shows medians.

    .venv/bin/python benchmarks/bench_decode.py                       # the four clips, K = 8 16 64 and all
    .venv/bin/python benchmarks/bench_decode.py --clip other.mp4 --ks 4 64 --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import platform
import resource
import subprocess
import time
from importlib.metadata import version
from pathlib import Path
from statistics import median

import numpy as np
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "media" / "cups.mp4"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "decode.json"
DEFAULT_WORK = Path(os.environ.get("TMPDIR", "/tmp")) / "garvid-bench-decode"
DECODERS = ("decord", "torchcodec")
ENCODE = ["-an", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]

# name -> ffmpeg arguments between the input options and the output file (cups.mp4 is 10 s)
CLIPS = {
    "gop60-720p-60s.mp4": (["-stream_loop", "5"], ["-vf", "scale=1280:720", *ENCODE, "-g", "60", "-keyint_min", "60"]),
    "240p-10min.mp4": (["-stream_loop", "59"], ["-vf", "scale=426:240", *ENCODE]),
    # the frames are shown for 1, 2 and 3 ticks of 1/30 s in turn (300 frames over 20 s)
    "vfr-720p.mp4": ([], ["-vf", "setpts='(6*floor(N/3)+gt(mod(N,3),0)+2*gt(mod(N,3),1))/(30*TB)'", "-fps_mode", "vfr", *ENCODE]),
    "phone-rotated-90.mp4": ([], ["-c", "copy", "-metadata:s:v:0", "rotate=90"]),
}


def prepare_clips(work: Path) -> list[Path]:
    """The benchmark's clips in ``work``, made from the shared cups.mp4 where missing."""
    work.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (before, after) in CLIPS.items():
        path = work / name
        if not path.exists():
            partial = work / f"partial-{name}"
            args = ["ffmpeg", "-loglevel", "error", "-y", *before, "-i", str(SOURCE), *after, str(partial)]
            subprocess.run(args, check=True)
            partial.rename(path)
        paths.append(path)
    return paths


def _status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} missing from /proc/self/status")


def run_case(clip: Path, decoder: str, k: int | None) -> dict:
    """In a fresh process: open ``clip`` with ``decoder``, read K even frames (None: all); times, RSS, digest.

    Both readers' modules are imported first, outside the times and the RSS growth:
    importing torchcodec imports torch (seconds and hundreds of MB), which garvid's
    tracker and GAR import in any run, so it is no cost of the decoder.
    """
    import garvid.media.torchcodec_file  # noqa: F401  (torchcodec is imported when a video opens)
    import garvid.media.video_file  # noqa: F401
    import torchcodec.decoders  # noqa: F401
    from garvid.media.open import open_video

    try:  # reset VmHWM to the current RSS (Linux >= 4.0), so import-time peaks do not count
        Path("/proc/self/clear_refs").write_text("5")
        resettable = True
    except OSError:
        resettable = False
    before = _status_kb("VmRSS")
    digest = hashlib.sha256()
    start = time.perf_counter()
    with open_video(clip, decoder=decoder) as video:
        opened = time.perf_counter()
        count = video.info.num_frames
        if k is None:
            for _, frame in video.iter_frames(range(count)):
                digest.update(frame.tobytes())
        else:
            indices = np.linspace(0, count - 1, min(k, count)).round().astype(int).tolist()
            digest.update(video.frames(indices).tobytes())
        done = time.perf_counter()
        info = video.info.to_json()
    peak = _status_kb("VmHWM") if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "open_s": opened - start,
        "decode_s": done - opened,
        "peak_rss_growth_mb": max(0, peak - before) / 1024,
        "sha256": digest.hexdigest(),
        "video": info,
    }


def keyframe_count(clip: Path) -> int:
    """Keyframes in the clip's video stream (ffprobe's packet flags)."""
    args = ["ffprobe", "-v", "error", "-select_streams", "V:0", "-show_entries", "packet=flags", "-of", "csv=p=0", str(clip)]
    return sum("K" in line for line in subprocess.run(args, capture_output=True, text=True, check=True).stdout.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, nargs="+", help="videos to decode (default: the four clips above)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="where the clips are made and kept")
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 16, 64], help="numbers of evenly spaced frames")
    parser.add_argument("--no-all", action="store_true", help="skip the every-frame cases")
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per case")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    args = parser.parse_args()

    clips = args.clip or prepare_clips(args.work)
    reads: list[int | None] = [*args.ks, *([] if args.no_all else [None])]
    rows = []
    context = multiprocessing.get_context("spawn")
    for clip in clips:
        keyframes = keyframe_count(clip)
        for k in reads:
            runs: dict[str, list[dict]] = {decoder: [] for decoder in DECODERS}
            for _ in range(args.repeats):  # the decoders alternate within each repeat
                for decoder in DECODERS:
                    with context.Pool(1, maxtasksperchild=1) as pool:
                        runs[decoder].append(pool.apply(run_case, (clip, decoder, k)))
            digests = {decoder: {run["sha256"] for run in runs[decoder]} for decoder in DECODERS}
            video = runs["decord"][0]["video"]
            for decoder in DECODERS:
                done = runs[decoder]
                rows.append(
                    {
                        "clip": clip.name,
                        "video": video,
                        "keyframes": keyframes,
                        "decoder": decoder,
                        "case": "all" if k is None else f"K={k}",
                        "frames": video["num_frames"] if k is None else min(k, video["num_frames"]),
                        "open_s": [run["open_s"] for run in done],
                        "decode_s": [run["decode_s"] for run in done],
                        "median_open_s": median(run["open_s"] for run in done),
                        "median_decode_s": median(run["decode_s"] for run in done),
                        "peak_rss_growth_mb": max(run["peak_rss_growth_mb"] for run in done),
                        "frames_equal": len(digests["decord"] | digests["torchcodec"]) == 1,
                    }
                )
            Console(stderr=True).print(f"{clip.name} {rows[-1]['case']}: done", highlight=False)

    table = Table(title=f"decord vs torchcodec, open + read, median of {args.repeats} fresh process(es) per case")
    for column in ("clip", "frames x size", "keyframes", "case", "decoder", "open s", "decode s", "total s",
                   "peak ΔRSS MB", "same frames"):
        table.add_column(column, justify="right")
    for row in rows:
        video = row["video"]
        table.add_row(
            row["clip"],
            f"{video['num_frames']} x {video['width']}x{video['height']}",
            str(row["keyframes"]),
            row["case"],
            row["decoder"],
            f"{row['median_open_s']:.2f}",
            f"{row['median_decode_s']:.2f}",
            f"{row['median_open_s'] + row['median_decode_s']:.2f}",
            f"{row['peak_rss_growth_mb']:.0f}",
            "yes" if row["frames_equal"] else "NO",
        )
    Console(width=max(Console().width, 140)).print(table)
    write_json(
        {
            **provenance(),
            "repeats": args.repeats,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "decord": version("decord"),
                "torchcodec": version("torchcodec"),
                "torch": version("torch"),
            },
            "rows": rows,
        },
        args.json,
    )
    Console(stderr=True).print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
