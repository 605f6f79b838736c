"""What every command shares: exit codes, the console and logging, ``_fail``, the signal handling
(``Terminated``), and the help layout (options in named sections, click's errors in the tool's style)."""
from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import click

from ..terminal import StyledErrors

if TYPE_CHECKING:  # rich loads when a command runs, not for --help
    from rich.console import Console

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EPILOG = """\b
Exit codes: 0 all inputs done or skipped, 1 some input failed, 2 usage error,
130/143/129 interrupted (Ctrl-C / SIGTERM / SIGHUP; no partial output is left).
"""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (terminal closed), raised in the main thread so that every temporary file is
    cleaned up and every ffmpeg child ended; ``code``: the exit status (128 + the signal)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + int(signum)


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:  # pragma: no cover - exercised by a subprocess test
    raise Terminated(signum)


def _handle_termination() -> None:
    """SIGTERM and SIGHUP end a command the way Ctrl-C does (SIGHUP: where the platform has it), unless the
    command was started ignoring them: ``nohup cmet edit …`` must outlive its terminal, as Python's own
    Ctrl-C handling already stays off for a command started ignoring SIGINT (a background job of a script)."""
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _on_sigterm)


def _console(quiet: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


class LineHandler(logging.Handler):
    """Log records as the tool's one-line messages (``warning: …``, ``error: …``; ``info:``/``debug:`` with
    ``-v``), printed through ``console``: the one the progress bars draw on, so that a line goes above them."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        from ..report import say

        kind = "error" if record.levelno >= logging.ERROR else record.levelname.lower()
        try:
            say(kind, record.getMessage(), self.console)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _setup_logging(verbose: int, quiet: bool, console: Console | None = None) -> logging.Handler:
    """Log records go through ``console`` (see ``LineHandler``), one plain line each, never wrapped."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    handler = LineHandler(console or _console())
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    return handler


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    from ..errors import one_line

    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


# ---------------------------------------------------------------- help layout and message style

SECTION_ORDER = ("Emotion", "Faces", "Output", "Models and performance", "Ray cluster")


class CmetCommand(click.Command):
    """A command whose options are listed in named sections (``sections``: section -> parameter names)."""

    def __init__(self, *args, sections: dict[str, tuple[str, ...]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sections = {name: section for section, names in (sections or {}).items() for name in names}

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self.sections:
            return super().format_options(ctx, formatter)
        rows: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                rows.setdefault(self.sections.get(param.name or "", "Other options"), []).append(record)
        for section in sorted(rows, key=lambda s: SECTION_ORDER.index(s) if s in SECTION_ORDER else len(SECTION_ORDER)):
            with formatter.section(section):
                formatter.write_dl(rows[section])


class CmetGroup(click.Group):
    """The ``cmet`` group: click's own usage errors print as ``error: …``, like the tool's."""

    command_class = CmetCommand

    def make_context(self, *args, **kwargs) -> click.Context:
        with StyledErrors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        with StyledErrors():
            return super().invoke(ctx)

