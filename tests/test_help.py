"""Command help: every command's options are grouped into named panels."""

from __future__ import annotations

import pytest
import typer
from garvid_cli.app import app
from garvid_cli.main import _register_commands, run
from typer.core import TyperGroup, TyperOption


def _commands() -> dict:
    """Every command by its full name (``eval videorefer-q``), as typer builds them."""
    _register_commands()
    found = {}

    def walk(group: TyperGroup, prefix: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, TyperGroup):
                walk(command, f"{prefix}{name} ")
            else:
                found[f"{prefix}{name}"] = command

    walk(typer.main.get_command(app), "")
    return found


def test_every_option_of_every_command_is_in_a_panel():
    commands = _commands()
    assert {"ask", "describe", "when", "track", "image", "segment", "batch", "eval videorefer-q", "eval gar-bench-vqa"} <= set(commands)
    for name, command in commands.items():
        options = [p for p in command.params if isinstance(p, TyperOption)]
        assert len(options) >= 5, name
        loose = [p.opts[0] for p in options if not p.rich_help_panel]
        assert loose == [], f"garvid {name}: options outside a panel"


VIDEO_PANELS = ["Keyframes and windows", "Models and devices", "Video and tracking", "Prompt and decoding"]


@pytest.mark.parametrize(
    "command, panels, option",
    [
        (["ask"], ["Output", "Objects", *VIDEO_PANELS], "--format"),
        (["batch"], ["Items", "Output", "Engine", "Objects", *VIDEO_PANELS, "Scan"], "--question"),
        (["when"], ["Output", "Objects", "Engine", *VIDEO_PANELS, "Scan"], "--format"),
        (["segment"], ["Output", "Items", "Objects", "Models and devices", "Video and tracking"], "--output"),
        (["eval", "videorefer-q"], ["Items", "Output", "Engine", *VIDEO_PANELS], "--video-root"),
    ],
)
def test_help_shows_the_panels_with_their_options(command, panels, option, capsys):
    assert run([*command, "--help"]) == 0
    text = capsys.readouterr().out
    titles = [line.split("─ ", 1)[1].split(" ─")[0] for line in text.splitlines() if line.startswith("╭─ ")]
    assert titles == ["Arguments", "Options", *panels]
    assert _panel(text, "Options").count("--") == 1  # --help alone
    assert option in _panel(text, panels[0])


def _panel(text: str, title: str) -> str:
    return text.split(f"╭─ {title} ")[1].split("╰")[0]


def test_track_help_says_what_the_cache_and_render_do(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per sentence
    assert run(["track", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "kept in the tracking cache and reused, as by ask and describe; --render draws every frame" in text
    assert "--cache-dir" in text and "--no-cache" in text
