"""``garvid eval``: reproduce GAR's published benchmark numbers with garvid's own code path."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from garvid_cli.app import app
from garvid_cli.ask import video_request
from garvid_cli.console import EXIT_INTERRUPTED, StopOnInterrupt, WarningReporter, stderr, warn
from garvid_cli.options import ITEMS, OUTPUT, borrow_parameters, generation_options
from rich.table import Table

from garvid.errors import GarvidError
from garvid.eval.results import ANSWER_TOKENS, AVERAGE
from garvid.options import PromptOptions
from garvid.presets import default_preset, random_weights_warning
from garvid.qa.protocol import DEFAULT_PROTOCOL
from garvid.regions.input import RegionInput

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


def _finish(log, benchmark, title: str, settings: dict, items: int, interrupted: bool) -> None:
    """Print the table, say what is missing or failed, and write the summary beside the results."""
    from garvid.eval.results import accuracy_table
    from garvid.files import write_json

    records = list(log.records.values())
    errors = sum(1 for record in records if record.get("error"))
    table = accuracy_table(records, benchmark.TYPE_ORDER)
    stderr.print(_table(title, table, benchmark.PUBLISHED))
    if errors:
        warn(f"{errors} item(s) could not be asked and count as wrong: see their 'error' in {log.path}")
    if len(records) < items:
        warn(f"{items - len(records)} of {items} items are not answered yet: run the same command again to resume")
    summary_path = log.path.with_suffix(".summary.json")
    summary = {"benchmark": title, **settings, "items": items, "answered": len(records), "errors": errors}
    write_json({**summary, "results": str(log.path), "accuracy": table, "published": benchmark.PUBLISHED}, summary_path)
    stderr.print(f"wrote {log.path} and {summary_path}", highlight=False)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _progress(record: dict) -> None:
    verdict = "error: " + record["error"] if record.get("error") else ("right" if record["correct"] else "wrong")
    stderr.print(f"{record['id']}: {record['prediction'] or '-'} (answer {record['answer']}) {verdict}", highlight=False)


def videorefer_q(
    annotations: Path = typer.Argument(..., metavar="ANNOTATIONS.json", help="VideoRefer-BenchQ questions."),
    video_root: Path = typer.Option(..., "--video-root", help="Folder holding the items' frame folders (or videos).", rich_help_panel=ITEMS),
    mask_mode: str = typer.Option("multi", "--mask-mode", help="multi: the given per-frame masks; single: the frame_idx mask, tracked by SAM2.", rich_help_panel=ITEMS),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N questions.", rich_help_panel=ITEMS),
    output: Path = typer.Option(Path("videorefer_q.jsonl"), "--output", "-o", help="Results, one JSON line per item (resumable).", rich_help_panel=OUTPUT),
    **options,
) -> None:
    from garvid.eval import videorefer
    from garvid.eval.results import ResultLog

    if not video_root.is_dir():
        raise GarvidError(f"--video-root {video_root} is not a folder")
    items = videorefer.load_items(annotations)[:limit]
    template = video_request(Path(), RegionInput(), None, multiple_choice=True, start=None, end=None, window=None, **options)
    log = ResultLog(output)
    with StopOnInterrupt() as stop:
        videorefer.run_videorefer(items, video_root, template, mask_mode, log, reporter=WarningReporter(), on_item=_progress, should_stop=stop)
    settings = {"model": template.model or default_preset("models"), "protocol": template.protocol or DEFAULT_PROTOCOL, "mask_mode": mask_mode}
    _finish(log, videorefer, "VideoRefer-BenchQ", settings, len(items), stop())


def gar_bench_vqa(
    annotations: Path = typer.Argument(..., metavar="GAR-Bench-VQA.json", help="evaluation/GAR-Bench/annotations/GAR-Bench-VQA.json"),
    image_root: Optional[Path] = typer.Option(None, "--image-root", help="Folder of the images (default: the annotations' folder).", rich_help_panel=ITEMS),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N questions.", rich_help_panel=ITEMS),
    output: Path = typer.Option(Path("gar_bench_vqa.jsonl"), "--output", "-o", help="Results, one JSON line per item (resumable).", rich_help_panel=OUTPUT),
    **options,
) -> None:
    from garvid.eval import gar_bench
    from garvid.eval.results import ResultLog

    items = gar_bench.load_items(annotations)[:limit]
    model = options["model"] or default_preset("models")
    if warning := random_weights_warning(model):
        warn(warning)
    log = ResultLog(output)
    with StopOnInterrupt() as stop:
        gar_bench.run_gar_bench(
            items,
            image_root or annotations.parent,
            log,
            model_name=model,
            dtype=options["dtype"],
            device=options["device"],
            generation=generation_options(
                options["max_new_tokens"], options["sample"], options["temperature"], options["top_p"], options["seed"]
            ),
            prompt=PromptOptions(mask_resample=options["mask_resample"], replay_scaling=options["replay_scaling"]),
            on_item=_progress,
            should_stop=stop,
        )
    _finish(log, gar_bench, "GAR-Bench-VQA", {"model": model}, len(items), stop())


def _register() -> None:
    from garvid_cli.ask import ask
    from garvid_cli.image import image

    video_options = (
        "frames", "keyframes", "protocol", "model", "tracker", "stride", "device", "fps", "dtype", "max_new_tokens",
        "sample", "seed", "temperature", "top_p", "mask_resample", "replay_scaling", "cache_dir", "no_cache",
    )  # fmt: skip
    borrow_parameters(videorefer_q, ask, include=video_options)
    image_options = ("model", "dtype", "device", "max_new_tokens", "sample", "seed", "temperature", "top_p", "mask_resample", "replay_scaling")
    borrow_parameters(gar_bench_vqa, image, include=image_options)
    for command in (videorefer_q, gar_bench_vqa):
        parameter = command.__signature__.parameters["max_new_tokens"]
        parameters = dict(command.__signature__.parameters, max_new_tokens=parameter.replace(default=ANSWER_TOKENS))
        command.__signature__ = command.__signature__.replace(parameters=list(parameters.values()))
    evaluate.command("videorefer-q", help="VideoRefer-BenchQ: multiple-choice questions about regions in videos.")(videorefer_q)
    evaluate.command("gar-bench-vqa", help="GAR-Bench-VQA: multiple-choice questions about image regions.")(gar_bench_vqa)


_register()
