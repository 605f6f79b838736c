"""Batch runs: folders and several inputs, resume, per-input status, report, parallel files,
and nothing lost on a failure, a full disk, Ctrl-C or SIGTERM."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from types import SimpleNamespace
from pathlib import Path

import pytest

from cmet_cli import atomic, batch, media, pipeline, runner
from cmet_cli.errors import UsageError
from cmet_cli.options import EditOptions

from .cli_support import BOX, cmet, cmet_process, leftovers, model_args, wait_for
from .clips import face_clip, synthetic
from .standin import IdentityEditor


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frame_count(path: Path) -> int:
    return media.probe(path).frame_count


# ---------------------------------------------------------------- planning (no networks)

def test_plan_keeps_layout_and_probes_content(tmp_path, clip):
    src = tmp_path / "clips"
    (src / "day 1").mkdir(parents=True)
    for rel in ("a.mp4", "day 1/b.mov", "camera.bin"):  # camera.bin: a video under an odd extension, found by probing
        (src / rel).write_bytes(clip.read_bytes())
    (src / "notes.mp4").write_text("not a video")  # a video extension, not a video: an input that will fail
    (src / "notes.txt").write_text("notes")  # not a video: ignored, and said so
    (src / f"{atomic.temp_prefix(src / 'c.mp4')}0a1b.part").write_bytes(b"")  # our own temporary file: not listed
    out = tmp_path / "edited"
    flat = batch.plan([src], out)
    assert [(j.input.name, j.output.relative_to(out).as_posix()) for j in flat] == [
        ("a.mp4", "a.mp4"), ("camera.bin", "camera.mp4"), ("notes.mp4", "notes.mp4")]
    assert [(i.input.name, i.reason) for i in batch.scan([src], out).ignored] == [("notes.txt", "not a video (.txt)")]
    deep = batch.plan([src], out, recursive=True)
    assert [j.output.relative_to(out).as_posix() for j in deep] == ["a.mp4", "camera.mp4", "day 1/b.mov", "notes.mp4"]
    # outputs inside the input folder are not picked up as inputs on the next run
    (src / "out").mkdir()
    (src / "out" / "a.mp4").write_bytes(clip.read_bytes())
    assert [j.input.name for j in batch.plan([src], src / "out", recursive=True)] == [
        "a.mp4", "camera.bin", "b.mov", "notes.mp4"]
    # a shell glob: several files into a folder
    assert [j.output for j in batch.plan([src / "a.mp4", src / "day 1" / "b.mov"], out)] == [out / "a.mp4", out / "b.mov"]


@pytest.mark.parametrize("case", ["same-file", "same-folder", "collision", "output-is-file", "bad-suffix"])
def test_plan_refuses(tmp_path, clip, case):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "x.mp4").symlink_to(clip)
    args = {
        "same-file": ([tmp_path / "a" / "x.mp4"], tmp_path / "a" / "x.mp4", "overwrite the input"),
        "same-folder": ([tmp_path / "a"], tmp_path / "a", "the output folder is the input folder"),
        "collision": ([tmp_path / "a" / "x.mp4", tmp_path / "b" / "x.mp4"], tmp_path / "o", "both be written"),
        "output-is-file": ([tmp_path / "a", tmp_path / "b"], clip, "must be a folder"),
        "bad-suffix": ([tmp_path / "a" / "x.mp4"], tmp_path / "x.avi", "unsupported output type"),
    }[case]
    with pytest.raises(UsageError, match=args[2]):
        batch.plan(args[0], args[1])


def test_output_equal_to_input_is_a_usage_error(tmp_path, clip, small_weights):
    src = tmp_path / "x.mp4"
    src.write_bytes(clip.read_bytes())
    before = digest(src)
    for extra in ((), ("--overwrite",)):
        run = cmet("edit", src, "-o", src, "--preset", "happy", *BOX, *model_args(small_weights), *extra)
        assert run.code == 2 and "would overwrite the input" in run.stderr
        assert "Traceback" not in run.stderr
    assert digest(src) == before


# ---------------------------------------------------------------- whole runs

def test_folder_run_resume_and_report(tmp_path, clip, small_weights, model_loads):
    src, out = tmp_path / "clips", tmp_path / "edited"
    (src / "sub").mkdir(parents=True)
    (src / "a.mp4").write_bytes(clip.read_bytes())
    (src / "sub" / "b.mp4").write_bytes(clip.read_bytes())
    (src / "readme.txt").write_text("notes")
    inputs_before = {p: digest(p) for p in src.rglob("*.mp4")}
    report = tmp_path / "reports" / "run.json"
    args = ("edit", src, "-o", out, "--preset", "sarcastic", "--recursive", "--report", report, *BOX, *model_args(small_weights))

    run = cmet(*args)
    assert run.code == 0, run.stderr
    assert len(model_loads) == 1  # models load once per run, not once per file
    data = json.loads(report.read_text())
    assert data["summary"] == {"done": 2, "skipped": 0, "failed": 0, "ignored": 1} and data["interrupted"] is False
    assert data["ignored"] == [{"input": str(src / "readme.txt"), "reason": "not a video (.txt)"}]
    rows = {Path(r["input"]).name: r for r in data["results"]}
    assert set(rows) == {"a.mp4", "b.mp4"}
    for name, rel in (("a.mp4", "a.mp4"), ("b.mp4", "sub/b.mp4")):
        row = rows[name]
        assert row["status"] == "done" and row["error"] is None
        assert row["output"] == str(out / rel) and row["frames"] == 3 and row["seconds"] > 0
        assert frame_count(out / rel) == 3
    assert leftovers(tmp_path) == []
    assert {p: digest(p) for p in src.rglob("*.mp4")} == inputs_before  # inputs never modified
    assert "cmet edit" in run.stderr and "2 done" in run.stderr  # the summary table

    # resume: complete outputs are skipped, no model is even loaded, nothing is rewritten
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    run = cmet(*args)
    assert run.code == 0, run.stderr
    assert len(model_loads) == 1
    data = json.loads(report.read_text())
    assert [(r["status"], r["frames"], r["error"]) for r in data["results"]] == [("skipped", 3, None)] * 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")} == stamps


def test_resume_skips_only_an_edit_made_with_the_same_settings(tmp_path, clip, small_weights, model_loads):
    """An existing output is skipped only when it was made from this input with these settings."""
    from .clips import ffmpeg

    from cmet_cli import fingerprint

    src, out = tmp_path / "talk.mp4", tmp_path / "out" / "talk.mp4"
    src.write_bytes(clip.read_bytes())
    edit = lambda *extra: cmet("edit", src, "-o", out, *BOX, *model_args(small_weights), *extra)  # noqa: E731
    assert edit("--preset", "sad").code == 0
    stamp = fingerprint.parse(media.container_tags(out)["comment"])  # the record travels in the container
    assert stamp is not None and stamp.input == fingerprint.input_identity(src)
    made, loads = digest(out), len(model_loads)

    run = edit("--preset", "sad")  # the same command: a finished edit, skipped
    assert run.code == 0 and run.errors() == [] and "1 skipped" in run.stderr
    for other in (("--preset", "happy"), ("--preset", "sad", "--intensity", "0.5"), ("--preset", "sad", "--crf", "30"),
                  ("--preset", "sad", "--encoder-preset", "veryfast"),
                  ("--preset", "sad", "--compare"), ("--at", "0", "sad", "--at", "0.1", "happy")):
        run = edit(*other)
        assert run.code == 1, other
        assert run.errors() == [f"error: {src}: {out} exists, made with other settings: pass --overwrite"], other
    assert digest(out) == made and len(model_loads) == loads  # never rewritten, no model even loaded

    os.utime(src, ns=(time.time_ns(), time.time_ns()))  # the input changed since
    run = edit("--preset", "sad")
    assert run.code == 1 and run.errors() == [f"error: {src}: {out} exists, made from another version of {src}: pass --overwrite"]

    bare = tmp_path / "bare.mp4"  # a complete edit without our record (e.g. remuxed by another tool)
    ffmpeg("-i", str(out), "-map_metadata", "-1", "-c", "copy", str(bare))
    os.replace(bare, out)
    run = edit("--preset", "sad")
    assert run.code == 1 and "holds no record of the settings" in run.errors()[0] and "--overwrite" in run.errors()[0]

    run = edit("--preset", "happy", "--overwrite")
    assert run.code == 0, run.stderr
    assert edit("--preset", "happy").code == 0  # and now that edit is the finished one


def test_incomplete_output_is_neither_skipped_nor_overwritten(tmp_path, clip, small_weights, model_loads):
    out = tmp_path / "out"
    out.mkdir()
    short = out / "talk.mp4"  # a video under the output's name, but not a full edit of this input
    synthetic(short, size="64x48", rate="10", seconds=0.1, audio=False)
    before = digest(short)
    run = cmet("edit", clip, "-o", out, "--preset", "happy", *BOX, *model_args(small_weights))
    assert run.code == 1
    assert run.errors() == [f"error: {clip}: {short} exists but is not a complete edit of {clip}: remove it or pass --overwrite"]
    assert digest(short) == before and model_loads == []
    run = cmet("edit", clip, "-o", out, "--preset", "happy", "--overwrite", "--json", *BOX, *model_args(small_weights))
    assert run.code == 0, run.stderr
    assert frame_count(short) == 3 and leftovers(out) == []
    [row] = [json.loads(line) for line in run.stdout.splitlines()]  # --json: one object per input on stdout
    assert (row["status"], row["output"], row["frames"]) == ("done", str(short), 3)


def test_one_failure_never_stops_the_others(tmp_path, clip, small_weights, model_loads):
    broken = tmp_path / "broken.mp4"
    broken.write_text("this is not a video")
    missing = tmp_path / "missing.mp4"
    out, report = tmp_path / "out", tmp_path / "report.json"
    run = cmet("edit", broken, clip, missing, "-o", out, "--preset", "happy", "--jobs", "2", "--report", report,
               *BOX, *model_args(small_weights))
    assert run.code == 1
    data = json.loads(report.read_text())
    assert [(Path(r["input"]).name, r["status"]) for r in data["results"]] == [
        ("broken.mp4", "failed"), ("talk.mp4", "done"), ("missing.mp4", "failed")]
    errors = {Path(r["input"]).name: r["error"] for r in data["results"]}
    assert "not a readable video" in errors["broken.mp4"] and "no such file" in errors["missing.mp4"]
    assert sorted(run.errors()) == sorted(f"error: {r['input']}: {r['error']}" for r in data["results"] if r["error"])
    assert sorted(p.name for p in out.iterdir()) == ["talk.mp4"] and frame_count(out / "talk.mp4") == 3
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------- nothing lost

def test_report_write_error_is_one_line(tmp_path, small_weights):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the report's folder should be")
    report = blocker / "r.json"
    run = cmet("edit", tmp_path / "missing.mp4", "-o", tmp_path / "o.mp4", "--preset", "happy", "--report", report,
               *BOX, *model_args(small_weights))
    # found before any edit (issue 24): a usage error
    assert run.code == 2 and "Traceback" not in run.stderr
    assert run.errors() == [f"error: --report {report}: cannot be written: {blocker}: is not a folder, so the output "
                            "cannot be written there"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]



@pytest.mark.parametrize("sig, code, jobs", [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 2), (signal.SIGHUP, 129, 1)])
def test_signal_removes_unfinished_output(tmp_path, small_weights, data_dir, sig, code, jobs):
    """The signal comes while long clips are mid-write: they leave nothing, the exit status tells the signal.
    With one file at a time, a short clip finished first: it stays, and the report lists it."""
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    src.mkdir()
    finished = ["a_short.mp4"] if jobs == 1 else []
    for name in finished:
        face_clip(src / name, seconds=0.1)
    for name in ("b_long.mp4", "c_long.mp4")[:jobs]:
        face_clip(src / name, seconds=12.0)  # long enough to still be mid-write when the signal is handled, under load
    pending = ["d_pending.mp4"] if jobs == 1 else []  # never started: listed as pending in the report
    for name in pending:
        face_clip(src / name, seconds=0.1)
    proc = cmet_process("edit", src, "-o", out, "--preset", "happy", "--jobs", jobs, "--batch-size", "1",
                        "--report", report, *BOX, *model_args(small_weights))
    long_parts = lambda: [p for p in leftovers(out) if "_long" in p] if out.is_dir() else []  # noqa: E731
    wait_for(lambda: all((out / n).exists() for n in finished) and len(long_parts()) == jobs, proc)
    proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=60)
    except Exception:
        proc.kill()
        raise
    assert proc.returncode == code, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == finished and leftovers(out) == []
    for name in finished:
        assert frame_count(out / name) == 1
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    # every input, so that a script can resume from the report (issue 24)
    assert [(Path(r["input"]).name, r["status"]) for r in data["results"]] == [
        *[(n, "done") for n in finished], *[(n, "interrupted") for n in ("b_long.mp4", "c_long.mp4")[:jobs]],
        *[(n, "pending") for n in pending]]
    assert data["summary"]["interrupted"] == jobs and data["summary"]["pending"] == len(pending)


def test_an_edit_started_under_nohup_outlives_a_hangup(tmp_path, small_weights):
    """Started ignoring SIGHUP (``nohup cmet edit …``), a hang-up mid-write changes nothing: the edit finishes, its
    output is complete, exit 0. (Without nohup the same SIGHUP stops it: 129, the test above.)"""
    src, out = tmp_path / "talk.mp4", tmp_path / "out"
    face_clip(src, seconds=2.0)
    proc = cmet_process("edit", src, "-o", out / "talk.mp4", "--preset", "happy", "--batch-size", "1", *BOX,
                        *model_args(small_weights), ignored=("SIGHUP",))
    wait_for(lambda: out.is_dir() and len(leftovers(out)) == 1, proc)
    proc.send_signal(signal.SIGHUP)
    try:
        _, stderr = proc.communicate(timeout=120)
    except Exception:
        proc.kill()
        raise
    assert proc.returncode == 0, stderr
    assert "interrupted" not in stderr and leftovers(out) == []
    assert frame_count(out / "talk.mp4") == frame_count(src)


def test_a_signal_taken_by_a_worker_thread_still_stops_a_parallel_run():
    """The kernel hands a process-wide SIGTERM to any thread that does not block it, and under load often to a
    busy worker; CPython runs the handler only in the main thread. The main thread, waiting for the files, must
    still notice within a moment (it waited for the whole file before: the --jobs 2 signal test hung for 60 s)."""
    from cmet_cli.stages import CancelToken

    class Stop(Exception):
        pass

    def raise_stop(signum, frame):
        raise Stop

    editor = SimpleNamespace(cancel=CancelToken())
    editor.for_thread = lambda: editor
    started = threading.Barrier(2)

    def one(job, worker):  # a long edit that stops at its next chunk once cancelled
        if started.wait(10) == 0:
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # the signal lands in this worker
        deadline = time.monotonic() + 20
        while not worker.cancel.cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        return job

    previous = signal.signal(signal.SIGUSR1, raise_stop)
    try:
        begin = time.monotonic()
        with pytest.raises(Stop):
            runner._in_parallel(one, ["a", "b"], editor, 2)
        elapsed = time.monotonic() - begin
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert editor.cancel.cancelled
    assert elapsed < 5, f"the main thread handled the signal only after {elapsed:.1f} s"


def test_cancel_token_stops_a_running_edit_and_the_next_run_starts_afresh(tmp_path, clip):
    """The token is passed in (no module-level flag): cancelled from the face editor, as another thread
    would, the edit stops before its next chunk and removes its temporary file; a later batch run with
    the same editor gets its own token and finishes."""
    from cmet_cli.stages import CancelToken

    token = CancelToken()

    class CancelsOnFirstChunk(IdentityEditor):
        def __call__(self, crops, frames):
            token.cancel()
            return crops

    options = EditOptions(preset="neutral", box=(0, 0, 96, 96), batch_size=1)
    editor = pipeline.Editor(options, face_editor=CancelsOnFirstChunk(), cancel=token)
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        editor.edit(clip, out)
    assert token.cancelled and not out.exists() and leftovers(tmp_path) == []
    editor._face_editor = IdentityEditor()
    results = runner.run([batch.Job(clip, out)], options, editor=editor)
    assert [r.status for r in results] == ["done"] and frame_count(out) == frame_count(clip)
    assert editor.cancel is not token and not editor.cancel.cancelled
