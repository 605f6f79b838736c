"""Exceptions the CLI turns into one-line messages (and exit codes)."""
from __future__ import annotations

from typing import Callable


class CmetError(Exception):
    """An error the user can act on; its message is shown without a traceback."""


class UsageError(CmetError):
    """Bad arguments or options (exit code 2)."""


class WeightsError(CmetError):
    """Missing, corrupt or unloadable model weights."""


class MediaError(CmetError):
    """An input or output media file that cannot be read or written."""


class NoFaceError(CmetError):
    """No face found in a video."""


def one_line(text: str) -> str:
    """``text`` on one line: control characters (a newline in a file name) written as escapes (``\\n``)."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


class OptionError(UsageError):
    """A bad option value. The message is a template whose ``{field}`` places name options: ``str()`` shows
    the library's field names (``intensity must be …``); the CLI shows its flags (``render(flag)``).

    ``values``: other placeholders, filled as given (so that user text never reads as a template).
    """

    def __init__(self, template: str, **values: str) -> None:
        self.template, self.values = template, values
        super().__init__(self.render(lambda field: field))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each field named by ``name(field)``."""
        return self.template.format_map(_Names(name, self.values))

    def __reduce__(self):  # pickled by Ray: keep the template, not only the rendered text
        return (_rebuild, (self.template, self.values))


def _rebuild(template: str, values: dict[str, str]) -> OptionError:
    return OptionError(template, **values)


class _Names(dict):
    def __init__(self, name: Callable[[str], str], values: dict[str, str]) -> None:
        super().__init__(values)
        self.name = name

    def __missing__(self, field: str) -> str:
        return self.name(field)
