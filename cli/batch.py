"""``garvid batch``: ask or describe over a folder, a manifest or JSONL tasks on stdin."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from garvid_cli.app import app
from garvid_cli.ask import video_request
from garvid_cli.console import EXIT_INTERRUPTED, BarsReporter, StopOnInterrupt, stderr, warn
from garvid_cli.options import borrow_parameters
from rich.table import Table

from garvid.batch.sink import BATCH_FORMATS, BatchSink, BatchSummary
from garvid.batch.tasks import BatchTask, TaskProblem, tasks_from_folder, tasks_from_lines, tasks_from_manifest
from garvid.errors import GarvidError
from garvid.presets import default_preset, random_weights_warning
from garvid.regions.input import RegionInput

EXAMPLES = (
    "Inputs: a folder of videos, each with its first-frame mask (clip.mp4 + clip.png, or masks/clip.png; -r for "
    "subfolders), a manifest (.csv or .jsonl with video, mask or tracks (a garvid track JSON, used instead of tracking) "
    "and optional question, mask_frame, start, end, id), "
    "or - for JSONL tasks (or bare video paths) on stdin.\n\n"
    "Examples:\n\n"
    '  garvid batch clips/ -r --question "what does object 1 do?" -o answers/\n\n'
    "  garvid batch manifest.csv --describe --window 5 --format srt -o captions/\n\n"
    "  cat tasks.jsonl | garvid batch - --question \"where is #1?\" | jq .answer"
)

# The options of `ask` that a batch applies to every item.
SHARED_OPTIONS = (
    "frames", "keyframes", "start", "end", "window", "protocol", "model", "tracker", "stride", "device", "fps", "dtype",
    "max_new_tokens", "sample", "seed", "temperature", "top_p", "multiple_choice", "mask_resample",
    "replay_scaling", "cache_dir", "no_cache",
)  # fmt: skip

#: Exit code when any item failed (EXIT_INTERRUPTED, 130, after Ctrl-C).
EXIT_FAILED = 1


def read_tasks(source: str, recursive: bool) -> tuple[list[BatchTask], list[TaskProblem]]:
    if source == "-":
        return tasks_from_lines(sys.stdin, Path.cwd())
    path = Path(source)
    if path.is_dir():
        return tasks_from_folder(path, recursive)
    if path.is_file() and path.suffix.lower() in (".csv", ".jsonl", ".json"):
        return tasks_from_manifest(path)
    raise GarvidError(f"batch input {source} is not a folder, a .csv/.jsonl manifest or - (stdin)")


def _summary_table(summary: BatchSummary) -> Table:
    table = Table(title="garvid batch")
    for column in ("done", "skipped", "failed", "time"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.done), str(summary.skipped), str(summary.failed), f"{summary.seconds:.1f} s")
    return table


def batch(
    input_path: str = typer.Argument(..., metavar="INPUT", help="Folder, manifest (.csv/.jsonl) or - for stdin."),
    question: Optional[str] = typer.Option(None, "--question", "-q", help="Question for every item without its own."),
    describe: bool = typer.Option(False, "--describe", help="Describe every object instead of asking."),
    output_dir: str = typer.Option("-", "--output", "-o", help="Folder for one output per item, or - for JSON lines on stdout."),
    output_format: str = typer.Option("json", "--format", "-f", help="json, srt, vtt (one file per item) or jsonl (stdout)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Also take videos in subfolders."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo items whose output already exists."),
    engine: str = typer.Option("local", "--engine", help="local, or ray (pip install 'garvid[ray]')."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (default: start a local Ray)."),
    **options,
) -> None:
    if describe and question:
        raise GarvidError("give --question or --describe, not both")
    if output_format not in BATCH_FORMATS:
        raise GarvidError(f"--format must be one of {', '.join(BATCH_FORMATS)}, not {output_format!r}")
    if engine not in ("local", "ray"):
        raise GarvidError(f"--engine must be local or ray, not {engine!r}")
    out_dir = None if output_dir == "-" else Path(output_dir)
    if out_dir is None and output_format in ("srt", "vtt"):
        raise GarvidError(f"--format {output_format} writes one file per item: give an output folder with -o")
    tasks, problems = read_tasks(input_path, recursive)
    template = video_request(Path(), RegionInput(), question, **options)
    reporter = BarsReporter()
    for name, kind in ((template.tracker, "trackers"), (template.model or default_preset("models"), "models")):
        if warning := random_weights_warning(name, kind):
            reporter.warn(warning)  # said now, not again when the models load

    from garvid.batch.runner import plan_batch, run_local

    sink = BatchSink(out_dir, "jsonl" if out_dir is None else output_format, overwrite=overwrite)
    plan = plan_batch(tasks, problems, template, describe, sink)
    with StopOnInterrupt() as stop:
        if engine == "ray":
            from garvid.batch.ray_engine import run_ray

            summary = run_ray(plan, sink, address=ray_address, should_stop=stop)
        else:
            summary = run_local(plan, sink, reporter, should_stop=stop)
    for failure in summary.failures:
        warn(f"{failure['id']}: {failure['error']}")
    stderr.print(_summary_table(summary))
    if summary.pipe_closed:
        # the reader went away (`| head -n 1`): leave quietly, as Unix filters do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_FAILED)


def _register() -> None:
    from garvid_cli.ask import ask

    borrow_parameters(batch, ask, include=SHARED_OPTIONS)
    app.command(help=f"Ask or describe over many videos, loading each model once; resumable.\n\n{EXAMPLES}")(batch)


_register()
