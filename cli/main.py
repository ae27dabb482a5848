"""The ``garvid`` command: registers every command module on the app and runs it."""

from __future__ import annotations

import sys

from garvid_cli.app import app

from garvid.errors import GarvidError


def _register_commands() -> None:
    # Each command module registers itself on `app` when imported.
    from garvid_cli import ask, batch, chat, evaluate, image, track  # noqa: F401


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors become one line on stderr.

    Click handles its own usage errors, ``--help``, Ctrl-C and closed pipes; garvid's
    errors (bad files, bad prompts, missing weights) arrive here as :class:`GarvidError`.
    """
    _register_commands()
    try:
        app(args=argv, prog_name="garvid")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except GarvidError as error:
        print(f"garvid: error: {error}", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
