"""Shot-cut detection: accuracy on real clips joined at known frames, throughput, and memory
on a 10-minute video against a 10-second one.

1. **Accuracy and the detector's choice.** The four real clips in ``../shared/media``
   (cups, dog, juggle, bedroom) are re-encoded to one size and rate (1280x720 and 426x240,
   30 fps) and joined, so the cut frames are known (3 cuts). A harder set joins two 2.5 s
   pieces of each clip, 1.5 s apart (7 cuts, 4 of them jump cuts inside one scene). Each
   detector setting is run on the same small frames (garvid's ``open_video(max_width=256)``);
   a cut counts as found within 1 frame. garvid's default (AdaptiveDetector, threshold 3,
   min_content 15) is what this table chose; see docs/commands.md#the-detector-and-why.
2. **Throughput** of ``shots_for`` (decode small + detect, no cache) at 720p and 240p, in
   frames per second and times real time, each in a fresh subprocess.
3. **Memory and cost with length.** A 10-minute 426x240 video with 20 cuts (21 pieces of the
   clips, each a clip played forward then backward and looped, so a piece has no cut of its
   own) against its first 10 and 60 seconds: peak RSS (``VmHWM``) of each in a fresh
   subprocess, and seconds per frame. (decord decodes ahead of its reader, a few hundred
   small frames: a 10 s video ends before that fills, which the 60 s one shows.)

Generated videos live in garvid's cache folder (``bench-shots/``), never in the repo, and
are reused by later runs.

    .venv/bin/python benchmarks/bench_shots.py
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json
from garvid.paths import cache_root

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
CLIPS = ("cups", "dog", "juggle", "bedroom")
DEFAULT_JSON = REPO / "benchmarks" / "results" / "shots.json"
ENCODE = ["-an", "-dn", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-r", "30"]
#: Detector settings compared: (name, class, keyword arguments).
SETTINGS = [
    ("adaptive 3 / min content 15 (garvid)", "AdaptiveDetector", {"adaptive_threshold": 3.0, "min_content_val": 15.0}),
    ("adaptive 3 / min content 8", "AdaptiveDetector", {"adaptive_threshold": 3.0, "min_content_val": 8.0}),
    ("adaptive 3 / min content 5", "AdaptiveDetector", {"adaptive_threshold": 3.0, "min_content_val": 5.0}),
    ("content 27 (PySceneDetect default)", "ContentDetector", {"threshold": 27.0}),
    ("content 15", "ContentDetector", {"threshold": 15.0}),
]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-v", "error", *args], check=True)


def _frame_count(path: Path) -> int:
    args = ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"]
    return int(subprocess.run([*args, str(path)], capture_output=True, text=True, check=True).stdout)


def _join(pieces: list[Path], out: Path) -> list[int]:
    """``pieces`` joined (stream copy) into ``out``; the cut frames (where each piece after the first starts)."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{piece}'\n" for piece in pieces))
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out))
    return list(itertools.accumulate(_frame_count(piece) for piece in pieces))[:-1]


def build_videos(work: Path) -> dict[str, tuple[Path, list[int]]]:
    """The test videos (built once into ``work``): name -> (path, cut frames)."""
    manifest = work / "videos.json"
    if manifest.is_file():
        return {name: (Path(path), cuts) for name, (path, cuts) in json.loads(manifest.read_text()).items()}
    work.mkdir(parents=True, exist_ok=True)
    videos: dict[str, tuple[Path, list[int]]] = {}
    for name, size in (("joined-720p", "1280:720"), ("joined-240p", "426:240")):
        pieces = []
        for clip in CLIPS:
            pieces.append(work / f"{clip}-{name}.mp4")
            _ffmpeg("-i", str(MEDIA / f"{clip}.mp4"), "-vf", f"scale={size},setsar=1", *ENCODE, str(pieces[-1]))
        videos[name] = (work / f"{name}.mp4", _join(pieces, work / f"{name}.mp4"))
    jumps = []
    for clip, start in itertools.product(CLIPS, (0, 4)):
        jumps.append(work / f"{clip}-{start}-jump.mp4")
        _ffmpeg("-ss", str(start), "-t", "2.5", "-i", str(MEDIA / f"{clip}.mp4"), "-vf", "scale=426:240,setsar=1", *ENCODE, str(jumps[-1]))
    videos["jump-cuts-240p"] = (work / "jump-cuts-240p.mp4", _join(jumps, work / "jump-cuts-240p.mp4"))
    videos["10min-240p"] = build_long_video(work)
    manifest.write_text(json.dumps({name: [str(path), cuts] for name, (path, cuts) in videos.items()}))
    return videos


def build_long_video(work: Path) -> tuple[Path, list[int]]:
    """``work/10min-240p.mp4``: 10 minutes at 426x240 with 20 cuts, and its cut frames.

    21 pieces of the clips, each a clip played forward then backward and looped (so a piece
    has no cut of its own), joined.
    """
    loops = []
    for clip in CLIPS:
        loops.append(work / f"{clip}-loop.mp4")
        _ffmpeg("-i", str(MEDIA / f"{clip}.mp4"), "-filter_complex",
                "[0:v]scale=426:240,setsar=1,split[a][b];[b]reverse[r];[a][r]concat=n=2:v=1:a=0", *ENCODE, str(loops[-1]))  # fmt: skip
    pieces = []
    for index in range(21):  # 21 pieces of 600/21 s: 20 cuts in 10 minutes
        pieces.append(work / f"long-{index:02d}.mp4")
        _ffmpeg("-stream_loop", "-1", "-i", str(loops[index % len(loops)]), "-t", f"{600 / 21:.4f}", *ENCODE, str(pieces[-1]))
    return work / "10min-240p.mp4", _join(pieces, work / "10min-240p.mp4")


def head_of(video: tuple[Path, list[int]], seconds: int) -> tuple[Path, list[int]]:
    """The first ``seconds`` of ``video`` (re-encoded once, beside it) and its cuts."""
    path, cuts = video
    head = path.with_name(f"{seconds}s-240p.mp4")
    if not head.is_file():
        _ffmpeg("-i", str(path), "-t", str(seconds), *ENCODE, str(head))
    return head, [cut for cut in cuts if cut < seconds * 30]


def score(found: list[int], cuts: list[int]) -> dict:
    """Cuts missed (none found within 1 frame) and false cuts (within 1 frame of no cut)."""
    missed = [cut for cut in cuts if not any(abs(cut - got) <= 1 for got in found)]
    false = [got for got in found if not any(abs(cut - got) <= 1 for cut in cuts)]
    return {"found": found, "missed": missed, "false": false}


def compare_detectors(videos: dict[str, tuple[Path, list[int]]], names: list[str]) -> tuple[list[dict], list[dict]]:
    """Every setting of SETTINGS on the small frames of each video in ``names``, and the
    margins of garvid's setting on each."""
    import scenedetect
    from scenedetect import FrameTimecode

    from garvid.media.open import open_video
    from garvid.shots.detect import DETECTION_WIDTH

    rows, margins = [], []
    for name in names:
        path, cuts = videos[name]
        with open_video(path, max_width=DETECTION_WIDTH) as video:
            fps = float(video.info.fps)
            frames = [np.ascontiguousarray(frame[..., ::-1]) for _, frame in video.iter_frames(range(video.info.num_frames))]
        for label, kind, kwargs in SETTINGS:
            detector = getattr(scenedetect, kind)(min_scene_len=0.5, **kwargs)
            stats = detector.stats_manager = scenedetect.StatsManager()
            found = [tc.frame_num for i, frame in enumerate(frames) for tc in detector.process_frame(FrameTimecode(i, fps=fps), frame)]
            rows.append({"video": name, "setting": label, "cuts": len(cuts), **score(found, cuts)})
            if kind == "AdaptiveDetector" and label.endswith("(garvid)"):
                margins.append({"video": name, **_margins(stats, detector.get_metrics(), len(frames), fps, cuts)})
    return rows, margins


def _margins(stats, keys: list[str], count: int, fps: float, cuts: list[int]) -> dict:
    """Content change (``content_val``) and adaptive ratio at each cut, and their largest value
    on any other frame (two or more frames from a cut): how far apart the detector's two
    numbers put cuts and everything else."""
    from scenedetect import FrameTimecode

    content_key, ratio_key = keys[0], keys[-1]
    values = {key: np.zeros(count) for key in (content_key, ratio_key)}
    for index in range(1, count):
        for key, value in zip(values, stats.get_metrics(FrameTimecode(index, fps=fps), list(values))):
            values[key][index] = value or 0.0
    near = np.zeros(count, dtype=bool)
    for cut in cuts:
        near[max(cut - 1, 0) : cut + 2] = True
    return {
        name: {"at_cuts": [round(float(values[key][cut]), 1) for cut in cuts], "max_elsewhere": round(float(values[key][~near].max()), 2)}
        for name, key in (("content_val", content_key), ("adaptive_ratio", ratio_key))
    }


def _status_mb(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field_name} missing from /proc/self/status")


def run_case(path: Path) -> dict:
    """In a fresh process: detect the shots of ``path`` (no cache) and report time and peak RSS."""
    import scenedetect  # noqa: F401  (imported before measuring: OpenCV's own memory is not the video's)

    from garvid.options import ShotOptions
    from garvid.tracking.shot_cache import shots_for

    rss_before = _status_mb("VmRSS")
    start = time.perf_counter()
    info, shots = shots_for(path, ShotOptions())
    seconds = time.perf_counter() - start
    return {
        "video": path.name,
        "frames": info.num_frames,
        "duration_s": info.duration,
        "fps": info.fps,
        "cuts_found": shots.cuts,
        "seconds": round(seconds, 2),
        "frames_per_s": round(info.num_frames / seconds, 1),
        "times_real_time": round(info.duration / seconds, 2),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
    }


def run_child(path: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", str(path)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=cache_root() / "bench-shots", help="where the videos are built (reused)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child)))
        return

    console = Console(stderr=True)
    console.print(f"building the videos in {args.work} (once) ...")
    videos = build_videos(args.work)
    console.print("comparing detector settings ...")
    comparison, margins = compare_detectors(videos, ["joined-240p", "jump-cuts-240p"])
    table = Table(title="Detector settings on small frames (256 px wide): cuts missed / false (within 1 frame)")
    for column in ("video", "setting", "cuts", "missed", "false"):
        table.add_column(column, justify="left" if column in ("video", "setting") else "right")
    for row in comparison:
        table.add_row(row["video"], row["setting"], str(row["cuts"]), str(len(row["missed"])), str(len(row["false"])))
    console.print(table)
    for margin in margins:
        console.print(f"{margin['video']}: " + "; ".join(f"{k} at cuts {v['at_cuts']}, elsewhere at most {v['max_elsewhere']}" for k, v in margin.items() if k != "video"))

    videos |= {"10s-240p": head_of(videos["10min-240p"], 10), "60s-240p": head_of(videos["10min-240p"], 60)}
    runs = []
    for name in ("joined-720p", "joined-240p", "10s-240p", "60s-240p", "10min-240p"):
        console.print(f"garvid's shots_for on {name} (fresh process) ...")
        path, cuts = videos[name]
        run = {"name": name, **run_child(path)}
        run.update({key: value for key, value in score(run["cuts_found"], cuts).items() if key != "found"})
        runs.append(run)
    table = Table(title="garvid shots (decode at 256 px + AdaptiveDetector), CPU")
    for column in ("video", "frames", "cuts missed / false", "frames/s", "x real time", "peak RSS"):
        table.add_column(column, justify="left" if column == "video" else "right")
    for run in runs:
        table.add_row(
            run["name"], str(run["frames"]), f"{len(run['missed'])} / {len(run['false'])}", f"{run['frames_per_s']:.0f}",
            f"{run['times_real_time']:.1f}", f"{run['peak_rss_mb']:.0f} MB",
        )  # fmt: skip
    console.print(table)
    by_name = {run["name"]: run for run in runs}
    long = by_name["10min-240p"]
    ratios = {}
    for short in (by_name["10s-240p"], by_name["60s-240p"]):
        span = short["name"].split("-")[0]
        ratios[f"peak_rss_10min_over_{span}"] = round(long["peak_rss_mb"] / short["peak_rss_mb"], 3)
        ratios[f"seconds_per_frame_10min_over_{span}"] = round((long["seconds"] / long["frames"]) / (short["seconds"] / short["frames"]), 3)
    for name, ratio in ratios.items():
        console.print(f"{name}: [bold]{ratio:.3f}[/bold]")
    write_json(
        {
            **provenance(),
            "benchmark": "shots",
            "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0))},
            "detector_comparison": comparison,
            "margins": margins,
            "runs": runs,
            "ratios": ratios,
        },
        args.json,
    )
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
