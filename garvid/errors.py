"""User-facing errors.

Everything garvid raises on bad input derives from :class:`GarvidError`; the CLI prints
its message as one line on stderr and exits non-zero, without a traceback.
"""


class GarvidError(Exception):
    """An error caused by the user's input or environment, with an actionable message."""


class VideoError(GarvidError):
    """A video that cannot be opened or decoded."""


class RegionError(GarvidError):
    """Region prompts (masks, boxes, points) that are missing or invalid."""


class OptionError(GarvidError):
    """An option with a bad value, named by its field (``stride``, ``frames``, ...).

    The library's message reads ``<field> <problem>``; the CLI prints the same problem under
    the flag that sets the field (``--stride must be ...``), so neither names the other's words.
    """

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


class CheckpointError(GarvidError):
    """Model weights or configs that are missing, partial or incompatible."""


def first_line(error: BaseException) -> str:
    """An error's message cut to its first line (its type's name when it has none): one line for a
    record or a report, whatever the message holds."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def invalid_text(text: str) -> str | None:
    """Why ``text`` is not valid Unicode text, or None when it is.

    Bytes that are not UTF-8 reach Python as lone surrogates (``\\udcff``: argv, stdin and file
    names decode with surrogateescape), and so does a ``\\ud800`` escape in JSON; no such text
    can be written to a UTF-8 file, a tokenizer or a JSON record, so it is refused where it enters.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"holds {text[error.start : error.end]!a}, which is not valid Unicode text (bytes that are not UTF-8?)"
    return None


def check_text(text: str, where: str) -> str:
    """``text``, or GarvidError ``<where> holds ..., which is not valid Unicode text``."""
    problem = invalid_text(text)
    if problem:
        raise GarvidError(f"{where} {problem}")
    return text


def printable(text: str) -> str:
    """``text`` with what is not valid Unicode escaped (``\\udcff``): safe in a message or a record."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class GarvidWarning(UserWarning):
    """Input garvid can use but the user should know about (the CLI prints one warning line).

    Raised with :func:`warnings.warn` where no :class:`~garvid.qa.reporting.Reporter` reaches
    (opening a video happens in every command).
    """
