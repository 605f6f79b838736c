"""The command line as a person meets it: progress and log lines sharing the terminal, stage names,
message style, help texts, guard rails. No networks are loaded here."""
from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmet_cli import batch, cli
from cmet_cli.stages import PER_FILE, Stage

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def invoke(*args: str, columns: int = 80):
    return CliRunner().invoke(cli.main, [str(a) for a in args], env={"COLUMNS": str(columns)}, catch_exceptions=False)


# ---------------------------------------------------------------- progress and logs

def test_stages_are_named_for_people():
    assert [s.value for s in PER_FILE] == ["track faces", "read codes", "transfer", "render", "write video"]
    assert Stage.LOAD_MODELS == "load models" and str(Stage.WRITE_VIDEO) == "write video"


def test_finished_rows_leave_the_screen():
    from rich.console import Console

    progress = batch.StageProgress(Console(file=io.StringIO()), total_files=2)
    progress(Stage.LOAD_MODELS, 0, 1)
    assert progress.rows() == ["files", "load models"]
    progress(Stage.LOAD_MODELS, 1, 1)
    assert progress.rows() == ["files"]  # loaded: the row goes
    for stage in PER_FILE:
        progress(stage, 3, 3)
    assert progress.rows() == ["files", *[s.value for s in PER_FILE]]
    progress.file_done()
    assert progress.rows() == ["files"]  # the next file starts its own rows


def test_log_lines_go_through_the_progress_console():
    """A warning logged while the bars are live is printed by the bars' console: on its own line above them."""
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=60)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        handler = cli._setup_logging(0, False, console)
        assert handler.console is console
        with batch.StageProgress(console, total_files=1) as progress:
            progress(Stage.TRACK_FACES, 1, 10)
            logging.getLogger("cmet").warning("variable frame rate: written at its average rate")
            progress(Stage.TRACK_FACES, 10, 10)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [ANSI.sub("", line).strip() for line in screen.getvalue().replace("\r", "\n").splitlines()]
    assert "WARNING  variable frame rate: written at its average rate" in lines


def test_edit_shares_one_console_between_bars_and_logs(tmp_path, monkeypatch):
    seen = {}

    def fake_run(jobs, options, **kwargs):
        seen["console"] = kwargs["console"]
        seen["handlers"] = logging.getLogger().handlers[:]
        return []

    monkeypatch.setattr(batch, "run", fake_run)
    monkeypatch.setattr(batch, "check_presets", lambda options: None)
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = invoke("edit", clip, "-o", tmp_path / "o.mp4", "--preset", "happy")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == 0, result.output
    assert [h.console for h in seen["handlers"]] == [seen["console"]]
