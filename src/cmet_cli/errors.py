"""Exceptions the CLI turns into one-line messages (and exit codes)."""
from __future__ import annotations


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
