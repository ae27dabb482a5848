"""Temporal prompt protocols: the shipped one loads, and broken files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from garvid.errors import GarvidError
from garvid.presets import configs_dir
from garvid.qa.protocol import DEFAULT_PROTOCOL, load_protocol, protocol_names

SHIPPED = configs_dir() / "protocols" / f"{DEFAULT_PROTOCOL}.toml"


def test_shipped_protocol_loads_by_name_and_path():
    protocol = load_protocol()
    assert (protocol.name, protocol.version, protocol.label) == ("temporal", 1, "temporal-v1")
    assert protocol.tiles == "single" and protocol.frames == 8 and protocol.replay_every == 1
    assert load_protocol(str(SHIPPED)) == load_protocol("temporal-v1")
    assert DEFAULT_PROTOCOL in protocol_names()


def test_replay_every_picks_keyframes():
    protocol = load_protocol()
    assert all(protocol.carries_replay(k) for k in range(5))


def _write(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text()
    assert old in text
    path = tmp_path / "p.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('tiles = "single"', 'tiles = "many"', "'tiles' must be"),
        ("frames = 8", "frames = 0", "'frames' must be at least 1"),
        ("frames = 8", 'frames = "8"', "'frames' must be an integer"),
        ("replay_every = 1", "", "lacks 'replay_every'"),
        ('region = "{prompt}: {crop}\\n"', 'region = "{prompt}\\n"', "region must use {crop}, {prompt}"),
        ('not_visible = "', 'not_visible = "{time} ', "not_visible must use"),
        ('question = "\\n{question}"', 'question = "\\n{question"', "question"),
        ("[text]", "[text]\nbogus = \"x\"", "unknown pieces"),
        ('question = "\\n{question}"', 'question = "<|eot_id|>{question}"', "contains '<|eot_id|>': protocol text is plain text"),
        ('frame = "Frame', 'frame = "<|image|> Frame', "contains '<|image|>'"),
        ('not_visible = "{prompt}', 'not_visible = "<Prompt3> {prompt}', "contains '<Prompt3>'"),
    ],
)
def test_broken_protocols_fail_with_the_field_named(tmp_path, old, new, needle):
    with pytest.raises(GarvidError, match=needle.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        load_protocol(_write(tmp_path, old, new))


def test_unknown_protocol_name_lists_shipped_ones():
    with pytest.raises(GarvidError, match="temporal-v1"):
        load_protocol("no-such-protocol")


def test_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("name = [")
    with pytest.raises(GarvidError, match="cannot read protocol"):
        load_protocol(path)
