"""Output for people and for logs: tables never cut in a pipe, click's errors in the tool's own style."""
from __future__ import annotations

import re
from typing import IO

import click

WIDE = 100_000  # "no limit": a table is as wide as its longest cell needs


def table_console(console):
    """Where to print a table: ``console`` itself on a terminal; in a pipe or a log, a console on the same
    file that never wraps (a table takes its natural width, so no path is cut at 80 columns)."""
    if console.is_terminal or console.quiet:
        return console
    from rich.console import Console

    return Console(file=console.file, width=WIDE, color_system=None, highlight=False, soft_wrap=False)


def error_text(message: str) -> str:
    """click's sentence-case message in the tool's style: ``missing option '-o'``, no final full stop."""
    message = message.strip().rstrip(".")
    if re.match(r"[A-Z][a-z]", message):
        message = message[0].lower() + message[1:]
    return message


def show_click_error(exc: click.ClickException, file: IO | None = None) -> None:
    """One line, ``error: …`` (as every other message of the tool), saying where help is for a usage error."""
    ctx = getattr(exc, "ctx", None)
    hint = ""
    if isinstance(exc, click.UsageError) and ctx is not None:
        hint = f" (see '{ctx.command_path} {ctx.help_option_names[0]}')"
    click.echo(f"error: {error_text(exc.format_message())}{hint}", file=file, err=file is None)


class StyledErrors:
    """Context manager: a ClickException raised inside shows itself with ``show_click_error``."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if isinstance(exc, click.ClickException):
            exc.show = lambda file=None, exc=exc: show_click_error(exc, file)  # type: ignore[method-assign]
        return False
