"""The CLI bugs a hostile review found: each test fails on the code before its fix.

Runs go through the real CLI in-process (``cli_support.cmet``) with the stand-in weights; the checks that need
no networks call the pure functions (``batch.scan``) directly.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from cmet_cli import batch
from cmet_cli.errors import UsageError

from .cli_support import BANK, BOX, assert_one_line_failure, cmet, model_args
from .clips import synthetic


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit_args(weights: Path, *extra: str) -> list[str]:
    return ["--preset", "happy", *BOX, *model_args(weights), *extra]


# ---------------------------------------------------------------- 1. --report naming an input or an output

def test_report_naming_an_input_or_an_output_is_a_usage_error(tmp_path, clip, small_weights, model_loads):
    src = tmp_path / "in.mp4"
    src.write_bytes(clip.read_bytes())
    before = digest(src)
    (tmp_path / "link.json").symlink_to(src)
    (tmp_path / "hard.json").hardlink_to(src)
    for report in (src, tmp_path / "link.json", tmp_path / "hard.json"):
        run = cmet("edit", src, "-o", tmp_path / "out.mp4", *edit_args(small_weights), "--report", report)
        assert_one_line_failure(run, f"--report {report} is the input {src}", code=2)
    out = tmp_path / "out.mp4"
    run = cmet("edit", src, "-o", out, *edit_args(small_weights), "--report", out)
    assert_one_line_failure(run, f"--report {out} is the output {out}", code=2)
    # in a folder run, an output that does not exist yet
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(clip.read_bytes())
    run = cmet("edit", folder, "-o", tmp_path / "edited", *edit_args(small_weights),
               "--report", tmp_path / "edited" / "a.mp4")
    assert_one_line_failure(run, "is the output", code=2)
    assert digest(src) == before and not out.exists() and not (tmp_path / "edited").exists()
    assert model_loads == []


# ---------------------------------------------------------------- 2. --report naming a FIFO, a device, a socket

def test_report_into_a_fifo_is_written_through_and_the_fifo_stays(tmp_path, clip, small_weights):
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", *edit_args(small_weights), "--report", fifo)
    assert run.code == 0, run.stderr
    reader.join(timeout=60)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert not reader.is_alive() and json.loads(got[0])["summary"]["done"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "report.fifo"]


def test_report_naming_a_socket_is_a_usage_error(tmp_path, clip, small_weights, model_loads):
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        run = cmet("edit", clip, "-o", tmp_path / "out.mp4", *edit_args(small_weights), "--report", path)
    assert_one_line_failure(run, f"--report {path} is a socket", code=2)
    assert stat.S_ISSOCK(os.lstat(path).st_mode) and model_loads == []


# ---------------------------------------------------------------- 3. preview checks the speech clips first

def test_preview_refuses_a_bad_speech_clip_as_edit_does(tmp_path, clip, small_weights, model_loads):
    import numpy as np
    import soundfile as sf

    silent, short, text = tmp_path / "silent.wav", tmp_path / "short.wav", tmp_path / "notes.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    sf.write(short, 0.3 * np.sin(np.arange(4800) / 16000 * 2 * np.pi * 440).astype(np.float32), 16000)
    text.write_text("not audio\n" * 50)
    speech = tmp_path / "speech.wav"
    sf.write(speech, 0.3 * np.sin(np.arange(24000) / 16000 * 2 * np.pi * 220).astype(np.float32), 16000)
    for args in (("--emotion-speech", silent), ("--emotion-speech", text),
                 ("--emotion-speech", speech, "--neutral-speech", short)):
        edit = cmet("edit", clip, "-o", tmp_path / "out.mp4", *args, *BOX, *model_args(small_weights))
        line = assert_one_line_failure(edit, code=2)
        sheet = tmp_path / "sheet.png"
        run = cmet("preview", clip, "-o", sheet, *args, *BOX, *model_args(small_weights))
        assert assert_one_line_failure(run, code=2) == line  # the same message, before the weights are looked for
        assert not sheet.exists()
    assert model_loads == []


# ---------------------------------------------------------------- 4. cmet faces on a folder, a FIFO, a missing file

def test_faces_names_a_bad_input_as_edit_and_preview_do(tmp_path, clip, small_weights):
    folder, fifo, missing = tmp_path / "clips", tmp_path / "pipe.mp4", tmp_path / "missing.mp4"
    folder.mkdir()
    os.mkfifo(fifo)
    for bad, needle in ((folder, "is a folder, not a video"), (fifo, "is a named pipe (FIFO), not a regular file"),
                        (missing, "no such file")):
        run = cmet("faces", bad, *BOX)
        line = assert_one_line_failure(run, f"{bad}: {needle}", code=1)
        preview = cmet("preview", bad, "-o", tmp_path / "sheet.png", "--preset", "happy", *BOX,
                       *model_args(small_weights))
        assert assert_one_line_failure(preview, code=1) == line


# ---------------------------------------------------------------- 5. cmet faces --sheet on a video without a face

@pytest.mark.cascade
def test_faces_sheet_of_a_video_without_a_face_says_none_was_written(tmp_path):
    """`cmet faces` reports a video without a face as "0 face tracks" with exit 0, so the sheet it cannot make is
    a warning (exit 0), not an error; --json stays one object on stdout."""
    video = synthetic(tmp_path / "noface.mp4", size="160x120", rate="10", seconds=0.3)
    sheet = tmp_path / "nf.png"
    for extra in ((), ("--json",)):
        run = cmet("faces", video, "--detector", "cascade", "--sheet", sheet, *extra)
        assert run.code == 0 and not sheet.exists(), run.stderr
        assert run.warnings() == [f"warning: {video}: no face found, so no sheet was written ({sheet})"], run.stderr
    assert json.loads(run.stdout)["faces"] == []


# ---------------------------------------------------------------- 6. a folder where a sheet is to be written

def test_a_folder_named_as_the_sheet_is_a_usage_error_at_once(tmp_path, clip, small_weights, model_loads):
    folder = tmp_path / "dir.png"
    folder.mkdir()
    for extra in ((), ("--overwrite",)):
        run = cmet("preview", clip, "-o", folder, "--preset", "happy", *BOX, *model_args(small_weights), *extra)
        assert_one_line_failure(run, f"{folder} is a folder", code=2)
        run = cmet("faces", clip, *BOX, "--sheet", folder, *extra)
        assert_one_line_failure(run, f"{folder} is a folder", code=2)
        assert run.stdout == ""  # refused before the tracking pass
    assert model_loads == [] and list(folder.iterdir()) == []


# ---------------------------------------------------------------- 7. every group of inputs sharing an output

def test_folder_collisions_name_every_group(tmp_path, clip):
    src = tmp_path / "d2"
    src.mkdir()
    for name in ("x.mp4", "x.mov", "y.avi", "y.mkv", "y.mp4"):
        (src / name).write_bytes(clip.read_bytes())
    with pytest.raises(UsageError) as info:
        batch.scan([src], tmp_path / "o2", fmt="mp4")
    out = tmp_path / "o2"
    assert str(info.value) == (f"{src / 'x.mov'} and {src / 'x.mp4'} would both be written to {out / 'x.mp4'}; "
                               f"{src / 'y.avi'}, {src / 'y.mkv'} and {src / 'y.mp4'} would all be written to "
                               f"{out / 'y.mp4'}")
    run = cmet("edit", src, "-o", out, "--format", "mp4", "--preset", "happy", *BOX)
    assert assert_one_line_failure(run, code=2) == f"error: {info.value}"


# ---------------------------------------------------------------- 8. -o ending with a path separator

def test_output_ending_with_a_separator_is_a_folder(tmp_path, clip, small_weights):
    folder = tmp_path / "results.2024"
    assert batch.scan([clip], f"{folder}{os.sep}").jobs == [batch.Job(clip, folder / clip.name)]
    run = cmet("edit", clip, "-o", f"{folder}{os.sep}", *edit_args(small_weights))
    assert run.code == 0, run.stderr
    assert [p.name for p in folder.iterdir()] == [clip.name]  # the folder is made, as for -o name_without_suffix
    (tmp_path / "taken.mp4").write_bytes(b"")
    run = cmet("edit", clip, "-o", f"{tmp_path / 'taken.mp4'}{os.sep}", *edit_args(small_weights))
    assert_one_line_failure(run, "taken.mp4 is a file, not a folder", code=2)


# ---------------------------------------------------------------- 9. videos in an output folder inside the input

def test_files_in_an_output_folder_inside_the_input_are_listed_as_ignored(tmp_path, clip, small_weights):
    src = tmp_path / "clips"
    (src / "out").mkdir(parents=True)
    (src / "a.mp4").write_bytes(clip.read_bytes())
    (src / "out" / "old.mp4").write_bytes(clip.read_bytes())  # an earlier run's output: not an input
    report = tmp_path / "report.json"
    run = cmet("edit", src, "-o", src / "out", "-r", *edit_args(small_weights), "--report", report)
    assert run.code == 0, run.stderr
    data = json.loads(report.read_text())
    assert [Path(r["input"]).name for r in data["results"]] == ["a.mp4"]
    assert data["ignored"] == [{"input": str(src / "out" / "old.mp4"), "reason": "inside the output folder"}]
    assert data["summary"]["ignored"] == 1
    assert "old.mp4" in run.stderr and "inside the output folder" in run.stderr and "1 ignored" in run.stderr


# ---------------------------------------------------------------- 10. the weights folder named by CMET_WEIGHTS_DIR

def test_weights_messages_name_the_source_of_the_folder(tmp_path, clip, model_loads):
    missing, empty = tmp_path / "nonexist", tmp_path / "empty"
    empty.mkdir()
    home = {"CMET_HOME": str(tmp_path / "home")}
    args = ("--preset", "happy", *BOX, "--bank", BANK, "--device", "cpu")
    run = cmet("edit", clip, "-o", tmp_path / "a.mp4", *args, env={**home, "CMET_WEIGHTS_DIR": str(missing)})
    assert_one_line_failure(run, f"CMET_WEIGHTS_DIR={missing}: no such folder", "cmet download-weights")
    run = cmet("edit", clip, "-o", tmp_path / "a.mp4", *args, "--weights-dir", missing, env=home)
    assert_one_line_failure(run, f"--weights-dir {missing}: no such folder")
    run = cmet("edit", clip, "-o", tmp_path / "a.mp4", *args, env={**home, "CMET_WEIGHTS_DIR": str(empty)})
    line = assert_one_line_failure(run, f"{empty / 'EDTalk.pt'} not found (CMET_WEIGHTS_DIR expects")
    assert "--weights-dir" not in line
    run = cmet("doctor", env={**home, "CMET_WEIGHTS_DIR": str(missing)})
    assert run.code == 0, run.stderr
    assert f"weights in {missing} (CMET_WEIGHTS_DIR: no such folder)" in run.stdout
    assert "missing (not in CMET_WEIGHTS_DIR)" in run.stdout and "--weights-dir" not in run.stdout
    run = cmet("doctor", "--weights-dir", missing, env=home)
    assert f"weights in {missing} (--weights-dir: no such folder)" in run.stdout


# ---------------------------------------------------------------- --format against a file name

def test_format_contradicting_the_output_file_is_a_usage_error(tmp_path, clip, small_weights, model_loads):
    """``-o out.mp4 --format mkv`` wrote an MP4 and said nothing; it is a usage error now, before any model
    loads. A --format that agrees with the suffix, or a folder output, is fine."""
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--format", "mkv", *edit_args(small_weights))
    assert_one_line_failure(run, "--format mkv contradicts -o", code=2)
    assert model_loads == [] and not (tmp_path / "out.mp4").exists()
    assert [j.output for j in batch.scan([clip], tmp_path / "a.mkv", fmt="mkv").jobs] == [tmp_path / "a.mkv"]
    assert [j.output.suffix for j in batch.scan([clip], tmp_path / "folder", fmt="mkv").jobs] == [".mkv"]


def test_an_output_that_is_a_link_to_the_input_is_refused_up_front(tmp_path, clip, small_weights, model_loads):
    """``-o link.mp4`` where link.mp4 points at the input was refused only by the edit itself (exit 1, after the
    models loaded); it is the same usage error (exit 2) as ``-o`` naming the input, before anything loads."""
    src = tmp_path / "in.mp4"
    src.write_bytes(clip.read_bytes())
    (tmp_path / "link.mp4").symlink_to(src)
    run = cmet("edit", src, "-o", tmp_path / "link.mp4", *edit_args(small_weights))
    assert_one_line_failure(run, "the output would overwrite the input", code=2)
    assert model_loads == [] and (tmp_path / "link.mp4").is_symlink() and src.read_bytes() == clip.read_bytes()
