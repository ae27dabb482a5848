"""``garvid eval``: reproduce GAR's published benchmark numbers with garvid's own code path."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from garvid_cli.app import app
from garvid_cli.console import EXIT_INTERRUPTED, StopOnInterrupt, stderr, warn
from garvid_cli.options import (
    ANSWER_OPTIONS,
    GENERATION_OPTIONS,
    ITEMS,
    KEYFRAME_OPTIONS,
    MODEL_OPTIONS,
    OUTPUT,
    PROMPT_OPTIONS,
    BatchSize,
    takes,
)
from rich.table import Table

from garvid.errors import GarvidError
from garvid.eval.results import ANSWER_TOKENS, AVERAGE, ResultLog
from garvid.files import check_outputs, exclusive_lock
from garvid.options import AnswerOptions, GenerationOptions, ModelOptions, PromptOptions, parse_prompts_per_pass
from garvid.presets import random_weights_warning
from garvid.qa.protocol import DEFAULT_PROTOCOL
from garvid.qa.reporting import Reporter
from garvid.qa.video_request import run_input_paths

evaluate = typer.Typer(help="Benchmarks of GAR's published numbers (VideoRefer-BenchQ, GAR-Bench-VQA).", no_args_is_help=True)
app.add_typer(evaluate, name="eval")

def _table(title: str, table: dict[str, dict[str, float]], published: dict[str, dict[str, float]]) -> Table:
    """The published layout: a row per question type and the average; this run's accuracy
    and counts, then published results for comparison."""
    rendered = Table(title=title, caption="other columns: published results" if published else None)
    rendered.add_column("type", no_wrap=True)
    for column in ("this run", "correct", *published):
        rendered.add_column(column, justify="right", overflow="fold")
    for name, row in table.items():
        others = (f"{accuracies[name]:.1f}" if name in accuracies else "-" for accuracies in published.values())
        style = "bold" if name == AVERAGE else None
        rendered.add_row(name, f"{row['accuracy']:.1f}", f"{row['correct']}/{row['total']}", *others, style=style)
    return rendered


def _summary_path(results: Path) -> Path:
    return results.with_suffix(".summary.json")


@contextmanager
def _results_log(results: Path, inputs: list) -> Iterator[ResultLog]:
    """The results log, held by this run alone (a second run on it is refused: both would
    answer the same items); it, its summary and its lock file must be writable and
    overwrite no input (checked before any work)."""
    lock = results.with_name(results.name + ".lock")
    check_outputs({"-o": results, "its summary": _summary_path(results), "its lock": lock}, inputs)
    with exclusive_lock(lock, f"another garvid eval is writing to {results}: wait for it to finish, or give another -o"):
        yield ResultLog(results)


def _finish(
    log, benchmark, title: str, settings: dict, this_run: str, items: int, interrupted: bool, answered: int, seconds: float
) -> None:
    """Print the table and how each of its columns was made, say what is missing or failed and
    how fast this run answered (``answered`` items in ``seconds``, model loading included), and
    write the summary beside the results."""
    from garvid.eval.results import accuracy_table
    from garvid.files import write_json

    records = list(log.records.values())
    errors = sum(1 for record in records if record.get("error"))
    table = accuracy_table(records, benchmark.TYPE_ORDER)
    stderr.print(_table(title, table, benchmark.PUBLISHED))
    setup = {"this run": this_run, **benchmark.PUBLISHED_SETUP}
    for name, how in setup.items():
        stderr.print(f"  {name}: {how}", highlight=False, soft_wrap=True)
    if errors:
        warn(f"{errors} item(s) could not be asked and count as wrong: see their 'error' in {log.path}")
    if len(records) < items:
        warn(f"{items - len(records)} of {items} items are not answered yet: run the same command again to resume")
    rate = answered * 60 / seconds if answered and seconds > 0 else None
    shown = f"{rate:.1f} items/min" if rate is not None else "- items/min"
    stderr.print(f"this run: {answered} item(s) answered in {seconds:.1f} s ({shown})", highlight=False)
    summary_path = _summary_path(log.path)
    summary = {"benchmark": title, **settings, "items": items, "answered": len(records), "errors": errors}
    # this run alone (items resumed from the results file not counted), model loading included
    summary.update(answered_this_run=answered, seconds=round(seconds, 2), items_per_minute=None if rate is None else round(rate, 2))
    write_json({**summary, "results": str(log.path), "accuracy": table, "published": benchmark.PUBLISHED, "setup": setup}, summary_path)
    stderr.print(f"wrote {log.path} and {summary_path}", highlight=False)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _progress(record: dict) -> None:
    verdict = "error: " + record["error"] if record.get("error") else ("right" if record["correct"] else "wrong")
    stderr.print(f"{record['id']}: {record['prediction'] or '-'} (answer {record['answer']}) {verdict}", highlight=False)


#: Benchmarks answer with a letter: short answers, no multiple-choice flag (the protocol decides).
EVAL_GENERATION = GENERATION_OPTIONS.defaults(max_new_tokens=ANSWER_TOKENS)
EVAL_PROMPT = PROMPT_OPTIONS.without("multiple_choice")


@evaluate.command("videorefer-q", help="VideoRefer-BenchQ: multiple-choice questions about regions in videos.")
@takes(ANSWER_OPTIONS.replacing(KEYFRAME_OPTIONS.only("frames", "keyframes", "protocol"), EVAL_GENERATION, EVAL_PROMPT))
def videorefer_q(
    annotations: Path = typer.Argument(..., metavar="ANNOTATIONS.json", help="VideoRefer-BenchQ questions."),
    video_root: Path = typer.Option(..., "--video-root", help="Folder holding the items' frame folders (or videos).", rich_help_panel=ITEMS),
    eval_protocol: str = typer.Option(
        "videorefer",
        "--eval-protocol",
        help="videorefer: VideoRefer's question text, single-frame masks and letter reading (as its published rows); "
        "garvid: GAR's multiple-choice layout, multi-frame masks, robust letter reading.",
        rich_help_panel=ITEMS,
    ),
    mask_mode: Optional[str] = typer.Option(
        None,
        "--mask-mode",
        help="multi: the given per-frame masks; single: the frame_idx mask, tracked by SAM2 (default: the protocol's).",
        rich_help_panel=ITEMS,
    ),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N questions.", rich_help_panel=ITEMS),
    output: Path = typer.Option(Path("videorefer_q.jsonl"), "--output", "-o", help="Results, one JSON line per item (resumable).", rich_help_panel=OUTPUT),
    batch_size: BatchSize = "1",
    *,
    options: AnswerOptions,
) -> None:
    from garvid.eval import videorefer

    batch_size = parse_prompts_per_pass(batch_size)
    if not video_root.is_dir():
        raise GarvidError(f"--video-root {video_root} is not a folder")
    mask_mode = mask_mode or videorefer.DEFAULT_MASK_MODES.get(eval_protocol, "")
    items = videorefer.load_items(annotations)[:limit]
    videos = [video_root / str(item["video"]) for item in items]
    inputs = [annotations, *videos, *run_input_paths(options)]
    with _results_log(output, inputs) as log, StopOnInterrupt() as stop:
        started = time.perf_counter()
        answered = videorefer.run_videorefer(
            items, video_root, options, mask_mode, log, protocol=eval_protocol, reporter=Reporter(), on_item=_progress,
            should_stop=stop, per_pass=batch_size,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        settings = {
            "model": options.model.name,
            "protocol": options.keyframes.protocol or DEFAULT_PROTOCOL,
            "eval_protocol": eval_protocol,
            "mask_mode": mask_mode,
            "max_new_tokens": options.generation.max_new_tokens,
            "attn": options.model.attn,
            "batch_size": batch_size,
        }
        masks = "single-frame masks (frame_idx, tracked by SAM2)" if mask_mode == "single" else "multi-frame masks (every annotated frame)"
        this_run = f"{eval_protocol} protocol, {masks}, GAR through garvid's {settings['protocol']} prompt"
        _finish(log, videorefer, "VideoRefer-BenchQ", settings, this_run, len(items), stop(), answered, seconds)


@evaluate.command("gar-bench-vqa", help="GAR-Bench-VQA: multiple-choice questions about image regions.")
@takes(MODEL_OPTIONS, EVAL_GENERATION, EVAL_PROMPT)
def gar_bench_vqa(
    annotations: Path = typer.Argument(..., metavar="GAR-Bench-VQA.json", help="evaluation/GAR-Bench/annotations/GAR-Bench-VQA.json"),
    image_root: Optional[Path] = typer.Option(None, "--image-root", help="Folder of the images (default: the annotations' folder).", rich_help_panel=ITEMS),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N questions.", rich_help_panel=ITEMS),
    output: Path = typer.Option(Path("gar_bench_vqa.jsonl"), "--output", "-o", help="Results, one JSON line per item (resumable).", rich_help_panel=OUTPUT),
    reference_compat: bool = typer.Option(
        True,
        "--reference-compat/--corrected",
        help=(
            "reference: show GAR each item as the reference's evaluation did (set order of regions, every box the "
            "last mask's, <Prompt5>+ as plain text), as the published numbers were made; corrected: garvid image's path."
        ),
        rich_help_panel=ITEMS,
    ),
    batch_size: BatchSize = "1",
    *,
    model: ModelOptions,
    generation: GenerationOptions,
    prompt: PromptOptions,
) -> None:
    from garvid.eval import gar_bench

    batch_size = parse_prompts_per_pass(batch_size)
    items = gar_bench.load_items(annotations)[:limit]
    root = image_root or annotations.parent
    with _results_log(output, [annotations, *(root / str(item["image"]) for item in items), model.name]) as log, StopOnInterrupt() as stop:
        if warning := random_weights_warning(model.name):
            warn(warning)
        started = time.perf_counter()
        answered = gar_bench.run_gar_bench(
            items,
            root,
            log,
            model=model,
            generation=generation,
            prompt=prompt,
            reference_compat=reference_compat,
            reporter=Reporter(),
            on_item=_progress,
            should_stop=stop,
            per_pass=batch_size,
        )
        seconds = time.perf_counter() - started
        settings = {
            "model": model.name,
            "mode": gar_bench.mode_name(reference_compat),
            "max_new_tokens": generation.max_new_tokens,
            "attn": model.attn,
            "batch_size": batch_size,
        }
        scoring = "exact-match scoring" if reference_compat else "garvid's letter reading"
        this_run = f"{settings['mode']} mode, {scoring}"
        _finish(log, gar_bench, "GAR-Bench-VQA", settings, this_run, len(items), stop(), answered, seconds)

