"""``garvid serve``: the web page (gradio) for pointing at objects, tracking and asking."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, get_args

import typer
from garvid_cli.app import app
from garvid_cli.console import warn
from garvid_cli.options import ANSWER_OPTIONS, REGION_OPTIONS, OptionGroup, takes

from garvid.options import AnswerOptions
from garvid.presets import random_weights_warning
from garvid.regions.input import RegionInput
from garvid.serve.settings import ServeSettings

SERVER = "Server"
SERVE_REGION_OPTIONS = REGION_OPTIONS.only("detector", "object_threshold", "redetect")
HELP = (
    "Serve a web page to open a video, point at objects on any frame (clicks, boxes, names), track them and "
    "ask about them, with the options below as every question's defaults. Models load once; each browser "
    "session has its own objects, answers and temporary folder. Binding anywhere but loopback needs --auth.\n\n"
    "Examples:\n\n"
    "  garvid serve --root ~/videos\n\n"
    "  garvid serve --model tiny-random --tracker tiny-random\n\n"
    "  garvid serve --host 0.0.0.0 --auth-file users.txt"
)


@app.command(help=HELP)
@takes(SERVE_REGION_OPTIONS, ANSWER_OPTIONS)
def serve(
    root: Optional[Path] = typer.Option(None, "--root", help="Folder whose videos the page may open (nothing outside it).", rich_help_panel=SERVER),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback needs --auth.", rich_help_panel=SERVER),
    port: int = typer.Option(7860, "--port", help="Port to listen on.", rich_help_panel=SERVER),
    auth: Optional[str] = typer.Option(None, "--auth", help="USER:PASSWORD required to use the page.", rich_help_panel=SERVER),
    auth_file: Optional[Path] = typer.Option(None, "--auth-file", help="File of USER:PASSWORD lines.", rich_help_panel=SERVER),
    max_upload_mb: float = typer.Option(500.0, "--max-upload-mb", help="Largest upload, in MB.", rich_help_panel=SERVER),
    max_duration: float = typer.Option(600.0, "--max-duration", help="Longest video the page opens, in seconds.", rich_help_panel=SERVER),
    *,
    regions: RegionInput,
    options: AnswerOptions,
) -> None:
    settings = ServeSettings.build(
        root=root, host=host, port=port, auth=auth, auth_file=auth_file, max_upload_mb=max_upload_mb, max_duration=max_duration
    )
    for name, kind in ((options.model.name, "models"), (options.tracking.tracker, "trackers")):
        if warning := random_weights_warning(name, kind):
            warn(warning)
    from garvid.serve.page import serve as run  # gradio, torch and transformers load here, not for --help

    given = [(SERVE_REGION_OPTIONS, regions), *((part, getattr(options, part.parameter)) for part in ANSWER_OPTIONS.parts)]
    run(settings, regions, options, [flag for group, built in given for flag in changed_flags(group, built)])


def changed_flags(group: OptionGroup, built: Any) -> list[str]:
    """The flags that give ``built`` the values where it differs from ``group``'s defaults: what the
    page adds to the command line it shows, so that command answers as the page does."""
    defaults = group.build(**{flag.field: flag.to_field(flag.default) for flag in group.flags})
    flags: list[str] = []
    for flag in group.flags:
        value = getattr(built, flag.field)
        if value == getattr(defaults, flag.field):
            continue
        is_switch = get_args(flag.annotation)[0] is bool  # --sample, --no-cache: the flag alone
        flags += [flag.option] if is_switch else [flag.option, str(value)]
    return flags
