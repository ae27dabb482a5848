"""Temporal prompt protocols: how a question about a clip is laid out for GAR.

A protocol is a TOML file (``configs/protocols/<name>-v<version>.toml``, or any file
passed by path): keyframe count, tiles per keyframe, which keyframes carry region
replays, a prompt-token budget, and the text pieces the prompt is made of. Its fields are
checked here, so a mistyped protocol fails with a clear message before anything runs.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from garvid.errors import GarvidError
from garvid.files import read_input
from garvid.paths import user_path
from garvid.presets import configs_dir

TileMode = Literal["single", "thumb+tiles"]

DEFAULT_PROTOCOL = "temporal-v1"

#: Text that reads like one of the model's control or region tokens (``<|eot_id|>``, ``<Prompt0>``).
_TOKEN_TEXT = re.compile(r"<\|[^<>|]*\|>|<(?:NO_)?Prompt\d*>")

#: Text pieces of a protocol, the fields each may use, and those it must use.
TEXT_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "intro": (frozenset({"objects", "count"}), frozenset({"objects"})),
    "frame": (frozenset({"number", "count", "time", "image"}), frozenset({"image"})),
    "region": (frozenset({"prompt", "crop"}), frozenset({"prompt", "crop"})),
    "not_visible": (frozenset({"prompt"}), frozenset({"prompt"})),
    "question": (frozenset({"question"}), frozenset({"question"})),
    "describe": (frozenset({"prompt"}), frozenset({"prompt"})),
    "yes_no": (frozenset({"statement"}), frozenset({"statement"})),
    "new_shot": (frozenset(), frozenset()),
}
#: Pieces a protocol may leave out: ``garvid when`` refuses a protocol without ``yes_no``, and
#: ``mark_shots = true`` needs ``new_shot``.
OPTIONAL_TEXT = frozenset({"yes_no", "new_shot"})


@dataclass(frozen=True)
class ProtocolText:
    intro: str
    frame: str
    region: str
    not_visible: str
    question: str
    describe: str
    yes_no: str | None = None  # garvid when's yes/no question about a statement
    new_shot: str | None = None  # said before a keyframe in another shot than the one before it


@dataclass(frozen=True)
class Protocol:
    """One temporal prompt protocol (see ``configs/protocols/temporal-v1.toml``)."""

    name: str
    version: int
    frames: int
    tiles: TileMode
    max_tiles: int
    replay_every: int
    context_tokens: int
    text: ProtocolText
    source: str  # the file it came from
    mark_shots: bool = False  # say text.new_shot before a keyframe whose shot differs from the previous keyframe's

    @property
    def label(self) -> str:
        return f"{self.name}-v{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "mark_shots": self.mark_shots}

    def carries_replay(self, keyframe_index: int) -> bool:
        """Whether keyframe ``keyframe_index`` (0-based) gets region replays."""
        return keyframe_index % self.replay_every == 0


def protocol_names() -> list[str]:
    """Names of the protocols shipped in ``configs/protocols/``."""
    return sorted(path.stem for path in (configs_dir() / "protocols").glob("*.toml"))


def load_protocol(name_or_path: str | Path | None = None) -> Protocol:
    """A shipped protocol by name (``temporal-v1``) or a protocol TOML file by path."""
    name = str(name_or_path or DEFAULT_PROTOCOL)
    shipped = configs_dir() / "protocols" / f"{name}.toml"
    path = shipped if shipped.is_file() else user_path(name)
    if not path.exists():
        raise GarvidError(f"unknown protocol {name!r}; shipped protocols: {', '.join(protocol_names())} (or give a .toml file)")
    raw = read_input(path, "protocol")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise GarvidError(f"cannot read protocol {path}: {error}") from None
    return _ProtocolReader(data, str(path)).read()


class _ProtocolReader:
    def __init__(self, data: dict[str, Any], source: str):
        self.data, self.source = data, source

    def fail(self, what: str) -> GarvidError:
        return GarvidError(f"protocol {self.source}: {what}")

    def value(self, key: str, kind: type, table: dict[str, Any] | None = None) -> Any:
        table = self.data if table is None else table
        if key not in table:
            raise self.fail(f"lacks {key!r}")
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.fail(f"{key!r} must be {'an integer' if kind is int else 'a string'}, got {value!r}")
        return value

    def positive(self, key: str) -> int:
        value = self.value(key, int)
        if value < 1:
            raise self.fail(f"{key!r} must be at least 1, got {value}")
        return value

    def read(self) -> Protocol:
        tiles = self.value("tiles", str)
        if tiles not in ("single", "thumb+tiles"):
            raise self.fail(f"'tiles' must be 'single' or 'thumb+tiles', got {tiles!r}")
        text = self.data.get("text")
        if not isinstance(text, dict):
            raise self.fail("lacks the [text] table")
        unknown = sorted(set(text) - set(TEXT_FIELDS))
        if unknown:
            raise self.fail(f"[text] has unknown pieces {unknown}; known: {sorted(TEXT_FIELDS)}")
        mark_shots = self.data.get("mark_shots", False)  # protocols written before shots existed mark none
        if not isinstance(mark_shots, bool):
            raise self.fail(f"'mark_shots' must be true or false, got {mark_shots!r}")
        if mark_shots and "new_shot" not in text:
            raise self.fail("'mark_shots' is true but [text] has no new_shot piece to say")
        return Protocol(
            name=self.value("name", str),
            version=self.positive("version"),
            frames=self.positive("frames"),
            tiles=tiles,
            max_tiles=self.positive("max_tiles"),
            replay_every=self.positive("replay_every"),
            context_tokens=self.positive("context_tokens"),
            text=ProtocolText(
                **{piece: self.template(piece, text) for piece in TEXT_FIELDS if piece in text or piece not in OPTIONAL_TEXT}
            ),
            source=self.source,
            mark_shots=mark_shots,
        )

    def template(self, piece: str, table: dict[str, Any]) -> str:
        template = self.value(piece, str, table)
        allowed, required = TEXT_FIELDS[piece]
        try:
            used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
        except ValueError as error:
            raise self.fail(f"[text] {piece}: {error}") from None
        token = _TOKEN_TEXT.search(template)
        if token:
            raise self.fail(
                f"[text] {piece} contains {token.group()!r}: protocol text is plain text, and images, "
                "regions and crops come only from its {image}, {prompt} and {crop} fields"
            )
        if not used <= allowed or not required <= used:
            raise self.fail(
                f"[text] {piece} must use {{{'}, {'.join(sorted(required))}}} and may use only "
                f"{{{'}, {'.join(sorted(allowed))}}}; it uses {sorted(used) or 'none'}"
            )
        return template
