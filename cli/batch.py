"""``garvid batch``: ask or describe over a folder, a manifest or JSONL tasks on stdin."""

from __future__ import annotations

import os
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from garvid_cli.app import app
from garvid_cli.console import EXIT_INTERRUPTED, BarsReporter, StopOnInterrupt, stderr, warn
from garvid_cli.options import ANSWER_OPTIONS, ENGINE, ITEMS, OUTPUT, REGION_OPTIONS, WHEN_OPTIONS, BatchSize, takes
from rich.table import Table

from garvid.batch.sink import BATCH_FORMATS, BatchSink, BatchSummary, check_output_dir
from garvid.batch.tasks import BatchTask, TaskProblem, tasks_from_folder, tasks_from_lines, tasks_from_manifest
from garvid.detection.checkpoints import check_detector, detector_name
from garvid.errors import GarvidError
from garvid.options import DEFAULT_WHEN_WINDOW, AnswerOptions, WhenOptions, parse_prompts_per_pass
from garvid.presets import random_weights_warning
from garvid.regions.input import RegionInput

EXAMPLES = (
    "Inputs: a folder of videos, each with its first-frame mask (clip.mp4 + clip.png, or masks/clip.png; -r for "
    "subfolders; none needed with --object), a manifest (.csv or .jsonl with video, mask or tracks (a garvid track "
    "JSON, used instead of tracking) and optional question, mask_frame, start, end, id, objects), "
    "or - for JSONL tasks (or bare video paths) on stdin.\n\n"
    "Examples:\n\n"
    '  garvid batch clips/ -r --question "what does object 1 do?" -o answers/\n\n'
    "  garvid batch manifest.csv --describe --window 5 --format srt -o captions/\n\n"
    '  garvid batch clips/ --object "the dog" --describe -o captions/     # no masks needed\n\n'
    "  cat tasks.jsonl | garvid batch - --question \"where is #1?\" | jq .answer\n\n"
    '  garvid batch clips/ --when "object 1 holds object 2" --window 2 -o ranges/   # a row\'s question is its statement'
)

#: Exit code when any item failed (EXIT_INTERRUPTED, 130, after Ctrl-C).
EXIT_FAILED = 1


def read_tasks(source: str, recursive: bool, masks_optional: bool = False) -> tuple[list[BatchTask], list[TaskProblem]]:
    if source == "-":
        if hasattr(sys.stdin, "reconfigure"):
            sys.stdin.reconfigure(errors="surrogateescape")  # a line of bytes that are not UTF-8 fails alone
        return tasks_from_lines(sys.stdin, Path.cwd(), masks_optional=masks_optional)
    path = Path(source)
    if path.is_dir():
        return tasks_from_folder(path, recursive, masks_optional)
    if path.is_file() and path.suffix.lower() in (".csv", ".jsonl", ".json"):
        tasks, problems = tasks_from_manifest(path, masks_optional)
        if not tasks and not problems:
            raise GarvidError(f"manifest {path} lists no items (only a header, or blank lines)")
        return tasks, problems
    raise GarvidError(f"batch input {source} is not a folder, a .csv/.jsonl manifest or - (stdin)")


def _summary_table(summary: BatchSummary) -> Table:
    closed = f"stdout's reader closed it: {summary.done} answer(s) delivered" if summary.pipe_closed else None
    table = Table(title="garvid batch", caption=closed)
    for column in ("done", "skipped", "failed", "time", "items/min"):
        table.add_column(column, justify="right")
    rate = f"{summary.done * 60 / summary.seconds:.1f}" if summary.done and summary.seconds > 0 else "-"
    table.add_row(str(summary.done), str(summary.skipped), str(summary.failed), f"{summary.seconds:.1f} s", rate)
    return table


#: batch's --resolution and --threshold as given: checked in a WhenOptions once --window is known
#: (a group built at once would check --resolution against the default window, not the run's).
SCAN_OPTIONS = replace(WHEN_OPTIONS.without("window"), parameter="scan", build=dict)


@app.command(help=f"Ask or describe over many videos, loading each model once; resumable.\n\n{EXAMPLES}")
@takes(REGION_OPTIONS.only("object_name", "detector", "object_threshold"), ANSWER_OPTIONS, SCAN_OPTIONS)
def batch(
    input_path: str = typer.Argument(..., metavar="INPUT", help="Folder, manifest (.csv/.jsonl) or - for stdin."),
    question: Optional[str] = typer.Option(
        None, "--question", "-q", help="Question for every item without its own.", rich_help_panel=ITEMS
    ),
    describe: bool = typer.Option(False, "--describe", help="Describe every object instead of asking.", rich_help_panel=ITEMS),
    statement: Optional[str] = typer.Option(
        None, "--when", help="Find when this statement holds (garvid when) in every item without its own question.", rich_help_panel=ITEMS
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Also take videos in subfolders.", rich_help_panel=ITEMS),
    output_dir: str = typer.Option(
        "-", "--output", "-o", help="Folder for one output per item, or - for JSON lines on stdout.", rich_help_panel=OUTPUT
    ),
    output_format: str = typer.Option(
        "json", "--format", "-f", help="json, srt, vtt (one file per item) or jsonl (stdout).", rich_help_panel=OUTPUT
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo items whose output already exists.", rich_help_panel=OUTPUT),
    engine: str = typer.Option("local", "--engine", help="local, or ray (pip install 'garvid\\[ray]').", rich_help_panel=ENGINE),
    ray_address: Optional[str] = typer.Option(
        None,
        "--ray-address",
        help="Ray cluster to join: auto (the running one) or HOST:PORT. Default: RAY_ADDRESS if set, else a fresh local Ray.",
        rich_help_panel=ENGINE,
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also show Ray's own log and progress lines.", rich_help_panel=ENGINE
    ),
    batch_size: BatchSize = "1",
    *,
    regions: RegionInput,
    options: AnswerOptions,
    scan: dict[str, float],
) -> None:
    if sum(map(bool, (describe, question, statement))) > 1:
        raise GarvidError("give one of --question, --describe and --when")
    when = None
    if statement is not None:
        from garvid.qa.when_answering import check_statement

        check_statement(statement)
        when = WhenOptions(options.keyframes.window or DEFAULT_WHEN_WINDOW, **scan)
        if engine == "ray":
            raise GarvidError("--when runs on the local engine: leave out --engine ray")
    if output_format not in BATCH_FORMATS:
        raise GarvidError(f"--format must be one of {', '.join(BATCH_FORMATS)}, not {output_format!r}")
    if engine not in ("local", "ray"):
        raise GarvidError(f"--engine must be local or ray, not {engine!r}")
    if not output_dir.strip():
        raise GarvidError("-o names no folder (it is empty): give a folder, or - for JSON lines on stdout")
    if engine != "ray" and (ray_address or verbose):
        raise GarvidError(f"{'--ray-address' if ray_address else '--verbose'} is for --engine ray")
    batch_size = parse_prompts_per_pass(batch_size)
    out_dir = None if output_dir == "-" else Path(output_dir)
    if out_dir is None and output_format in ("srt", "vtt"):
        raise GarvidError(f"--format {output_format} writes one file per item: give an output folder with -o")
    check_detector(regions)
    tasks, problems = read_tasks(input_path, recursive, masks_optional=bool(regions.objects))

    from garvid.batch.runner import BatchRun, batch_inputs, plan_batch, run_local

    run = BatchRun(options, regions, statement if when is not None else question, describe, when)
    manifest = Path(input_path) if input_path != "-" and Path(input_path).is_file() else None
    inputs = batch_inputs(tasks, run, manifest, problems)
    if out_dir is not None:
        check_output_dir(out_dir, inputs)  # refused at once, before Ray starts
    reporter = BarsReporter()
    detector = detector_name(regions.detector) if regions.objects or any(t.objects for t in tasks) else None
    named = ((options.tracking.tracker, "trackers"), (options.model.name, "models"), (detector, "detectors"))
    for name, kind in named:
        if name and (warning := random_weights_warning(name, kind)):
            reporter.warn(warning)  # said now, not again when the models load
    # Ray is reached before the output folder is touched: an unreachable cluster marks no item
    # failed and leaves an earlier run's files as they were.
    with _engine_session(engine, ray_address, verbose), StopOnInterrupt() as stop:
        sink = BatchSink(out_dir, "jsonl" if out_dir is None else output_format, overwrite=overwrite, inputs=inputs)
        with sink:
            plan = plan_batch(tasks, problems, run, sink)
            if engine == "ray":
                from garvid.batch.ray_engine import run_ray

                summary = run_ray(plan, sink, reporter=reporter, should_stop=stop, per_pass=batch_size)
            else:
                summary = run_local(plan, sink, reporter, should_stop=stop, per_pass=batch_size)
    for failure in summary.failures:  # an input problem's error already says where it is ("stdin line 3: ...")
        said = failure["stage"] == "input" and f"{failure['id']}:" in failure["error"]
        warn(failure["error"] if said else f"{failure['id']}: {failure['error']}")
    stderr.print(_summary_table(summary))
    if summary.pipe_closed:
        # the reader went away (`| head -n 1`): leave quietly, as Unix filters do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_FAILED)


def _engine_session(engine: str, address: str | None, verbose: bool) -> AbstractContextManager:
    if engine != "ray":
        return nullcontext()
    from garvid.batch.ray_engine import ray_session

    return ray_session(address, verbose=verbose)

