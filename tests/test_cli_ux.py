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

from cmet_cli import cli, presets, report, runner
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

    progress = report.StageProgress(Console(file=io.StringIO()), total_files=2)
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
        handler = cli.common._setup_logging(0, False, console)
        assert handler.console is console
        with report.StageProgress(console, total_files=1) as progress:
            progress(Stage.TRACK_FACES, 1, 10)
            logging.getLogger("cmet").warning("variable frame rate: written at its average rate")
            progress(Stage.TRACK_FACES, 10, 10)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [ANSI.sub("", line).strip() for line in screen.getvalue().replace("\r", "\n").splitlines()]
    assert "warning: variable frame rate: written at its average rate" in lines  # one line, the tool's style


def test_edit_shares_one_console_between_bars_and_logs(tmp_path, monkeypatch):
    seen = {}

    def fake_run(jobs, options, **kwargs):
        seen["console"] = kwargs["reporter"].console
        seen["handlers"] = logging.getLogger().handlers[:]
        return []

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(presets, "check_presets", lambda options: None)
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


# ---------------------------------------------------------------- message style

@pytest.mark.parametrize("args, message", [
    (("edit",), "error: missing argument 'INPUTS...'"),
    (("edit", "a.mp4", "-o", "b.mp4", "--intensity", "strong"), "error: invalid value for '--intensity': 'strong' is not a valid float"),
    (("edit", "a.mp4", "-o", "b.mp4", "--detector", "eyes"), "error: invalid value for '--detector': 'eyes' is not one of"),
    (("no-such-command",), "error: no such command 'no-such-command'"),
])
def test_click_usage_errors_speak_like_the_tool(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr  # one line (issue 24), with where help is
    assert "Error:" not in result.stderr and "(see 'cmet" in lines[0]


def test_folder_input_with_a_video_name_as_output_is_a_usage_error(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    result = invoke("edit", folder, "-o", tmp_path / "something.mp4", "--preset", "happy")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: -o must be a folder when the input is a folder, not a video file name ({tmp_path / 'something.mp4'})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips"]  # no folder named something.mp4
    result = invoke("edit", tmp_path / "a.mp4", tmp_path / "b.mp4", "-o", tmp_path / "x.mkv", "--preset", "happy")
    assert result.exit_code == 2 and "-o must be a folder when there are several inputs" in result.stderr


def test_summary_table_in_a_pipe_never_cuts_a_path():
    from rich.console import Console

    from cmet_cli.pipeline import EditResult

    long = "/data/" + "/".join(["a-rather-long-folder-name"] * 6) + "/talk.mp4"
    screen = io.StringIO()
    report.summary([EditResult(long, long.replace("talk", "talk-sad"), frames=3, seconds=1.0)],
                  Console(file=screen, width=80))  # not a terminal: a log file, a pipe
    assert long in screen.getvalue() and long.replace("talk", "talk-sad") in screen.getvalue()


# ---------------------------------------------------------------- help

def test_top_level_help_shows_whole_descriptions():
    text = invoke("--help").output
    assert "..." not in text.split("Commands:")[1]
    flat = " ".join(text.split())
    for line in ("Change the facial emotion of videos or folders of videos.",
                 "Download or install (--from DIR) the verified model weights.",
                 "List the preset emotions, their clip counts and strength.",
                 "What is installed and usable: weights, ffmpeg, CUDA (alias: weights)."):
        assert line in flat, line
    assert not re.search(r"^\s+weights\s", text, re.M)  # one command: the alias is not listed twice


def test_edit_help_groups_its_options():
    text = invoke("edit", "--help", columns=100).output
    headings = [line.rstrip(":") for line in text.splitlines() if re.fullmatch(r"[A-Z][a-z ]+:", line)]
    assert headings == ["Emotion", "Faces", "Output", "Models and performance", "Ray cluster", "Other options"]
    section = lambda name: text.split(f"\n{name}:\n")[1].split("\n\n")[0]  # noqa: E731
    assert "--preset" in section("Emotion") and "--intensity" in section("Emotion")
    assert "--box" in section("Faces") and "--overwrite" in section("Output")
    assert "--device" in section("Models and performance") and "--workers" in section("Ray cluster")


def test_download_weights_help_lists_entries_and_quiet():
    text = " ".join(invoke("download-weights", "--help", columns=100).output.split())
    assert "edtalk, connector, emotion2vec" in text and "sample-video" in text
    assert re.search(r"-q, --quiet \S+", text)  # -q says what it does


def test_weights_is_an_alias_of_doctor():
    assert cli.main.commands["weights"].callback is cli.main.commands["doctor"].callback
    assert cli.main.commands["weights"].hidden


def test_help_does_not_import_torch():
    code = ("import sys\nfrom cmet_cli.cli import main\n"
            "for args in (['--help'], ['edit', '--help'], ['download-weights', '--help']):\n"
            "    try:\n        main(args, prog_name='cmet')\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, 'cv2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src")},
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_result_lines_print_through_the_bars_console():
    """error:/warning: lines of a result go through the live console (above the bars), still one plain line."""
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, width=40)
    report.say("warning", "/a/very/long/path/to/a/clip.mp4: no face in 3 of 10 frames: those pass through unchanged", console)
    assert screen.getvalue() == "warning: /a/very/long/path/to/a/clip.mp4: no face in 3 of 10 frames: those pass through unchanged\n"
