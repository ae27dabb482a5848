"""The ``garvid`` command: registers every command module on the app and runs it."""

from __future__ import annotations

import sys
import warnings
from typing import Callable

from garvid_cli.app import app

from garvid.errors import GarvidError, GarvidWarning, check_text, printable


def _register_commands() -> None:
    # Each command module registers itself on `app` when imported.
    from garvid_cli import ask, batch, chat, evaluate, image, segment, serve, shots, track, when  # noqa: F401


def _warn_like_garvid(python_show: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing garvid's own warnings as one ``garvid: warning:``
    line, each distinct one once (a batch repeats the same warning for every item), and
    passing any other warning to ``python_show``."""
    said: set[str] = set()

    def show(message, category, *rest) -> None:
        if issubclass(category, GarvidWarning):
            from garvid_cli.console import warn

            if str(message) not in said:
                said.add(str(message))
                warn(str(message))
        else:
            python_show(message, category, *rest)

    return show


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors become one line on stderr.

    Click handles its own usage errors, ``--help``, Ctrl-C and closed pipes; garvid's
    errors (bad files, bad prompts, missing weights) arrive here as :class:`GarvidError`.
    An argument that is not valid Unicode text (bytes that are not UTF-8: a question, a
    phrase, a path garvid could not write into its JSON) is refused before any command runs.
    """
    _register_commands()
    try:
        for position, argument in enumerate(sys.argv[1:] if argv is None else argv, 1):
            check_text(argument, f"argument {position} ({printable(argument)})")  # before any work: exit 2
        from garvid_cli.console import interrupts_handled

        with warnings.catch_warnings(), interrupts_handled():
            warnings.simplefilter("always", GarvidWarning)  # shown once each by the handler, not by location
            warnings.showwarning = _warn_like_garvid(warnings.showwarning)
            app(args=argv, prog_name="garvid")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except GarvidError as error:
        from garvid_cli.options import flag_message

        message = flag_message(error).replace("\r", "\\r").replace("\n", "\\n")  # always one line
        print(f"garvid: error: {message}", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
