"""The ``garvid`` command: a Typer app whose commands live in one module each."""

from __future__ import annotations

import os
import sys

import click
import typer

from garvid.errors import GarvidError

app = typer.Typer(
    name="garvid",
    help=(
        "Video region understanding: track objects with SAM2 and ask GAR about them.\n\n"
        "Example:  garvid track clip.mp4 --mask first_frame.png -o tracks.json"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _register_commands() -> None:
    # Each command module registers itself on `app` when imported.
    from garvid_cli import track  # noqa: F401


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors become one line on stderr."""
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except GarvidError as error:
        print(f"garvid: error: {error}", file=sys.stderr)
        return 2
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except (KeyboardInterrupt, click.Abort):
        print("garvid: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (`| head`): stop quietly, like other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
