"""The ``garvid`` Typer app; each command module registers its command on it when imported."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="garvid",
    help=(
        "Video region understanding: track objects with SAM2 and ask GAR about them.\n\n"
        "Example:  garvid ask clip.mp4 --mask first_frame.png \"what does object 1 do to object 2?\""
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
