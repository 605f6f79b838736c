"""Nothing reported "done" that is not, nothing silently skipped, nothing left behind (issue 14):
a full disk, damaged inputs, batch folders with broken files, killed and hung-up runs, two runs writing
one output, non-regular inputs, and one clear line for each problem. Tiny generated clips throughout."""
from __future__ import annotations

import json
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cmet_cli import atomic, media

from .cli_support import BOX, assert_one_line_failure, cmet, cmet_process, leftovers, model_args, wait_for
from .clips import face_clip, ffmpeg, synthetic



def truncated(src: Path, path: Path, keep: float = 0.6) -> Path:
    """The first ``keep`` of a faststart MP4: the index at the front declares frames whose data is gone."""
    whole = path.with_name(f"whole-{path.name}")
    ffmpeg("-i", str(src), "-c", "copy", "-movflags", "+faststart", str(whole))
    data = whole.read_bytes()
    path.write_bytes(data[: int(keep * len(data))])
    whole.unlink()
    return path


@pytest.fixture(scope="module")
def ten_frames(tmp_path_factory, data_dir) -> Path:
    """One second of the sample's face at 10 fps, with audio."""
    return face_clip(tmp_path_factory.mktemp("ten") / "ten.mp4", seconds=1.0)


# ---------------------------------------------------------------- a full disk (a real, small filesystem)

def _mount(folder: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (a full disk cannot be made otherwise)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@contextmanager
def _tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at the new folder ``folder`` for the block (the test skips where it cannot be mounted)."""
    folder.mkdir()
    _mount(folder, options)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    with _tmpfs(tmp_path / "disk", "size=2m") as disk:
        yield disk


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until ``leave`` bytes stay free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


@pytest.fixture(scope="module")
def edit_size(tmp_path_factory, ten_frames, small_weights) -> int:
    """The size of the edit of ``ten_frames`` (where a full disk stops it depends on it)."""
    out = tmp_path_factory.mktemp("reference") / "reference.mp4"
    run = cmet("edit", ten_frames, "-o", out, "--preset", "happy", *BOX, *model_args(small_weights))
    assert run.code == 0, run.stderr
    return out.stat().st_size


@pytest.mark.parametrize("where", ["mid-stream", "near the end"])
def test_full_disk_fails_and_leaves_nothing(tmp_path, small_disk, ten_frames, edit_size, small_weights, model_loads, where):
    """ffmpeg 5.1 exits 0 after "Error writing trailer: No space left on device": the run must still fail."""
    page = os.statvfs(small_disk).f_frsize
    pages = -(-edit_size // page)
    assert pages >= 3
    _fill(small_disk, 1 * page if where == "mid-stream" else (pages - 1) * page)
    out, report = small_disk / "out.mp4", tmp_path / "report.json"
    run = cmet("edit", ten_frames, "-o", out, "--preset", "happy", "--report", report, *BOX, *model_args(small_weights))
    assert_one_line_failure(run, f"{ten_frames}: {out}: the disk is full")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no file under the final name, no leftovers
    [row] = json.loads(report.read_text())["results"]
    assert row["status"] == "failed" and "the disk is full" in row["error"]


def test_verify_output_catches_a_broken_file(tmp_path, ten_frames):
    """The check before the rename: a file cut short, or one missing frames or audio, is refused."""
    good = tmp_path / "good.mp4"
    ffmpeg("-i", str(ten_frames), "-c", "copy", str(good))
    media.verify_output(good, 10, 1)
    with pytest.raises(media.MediaError, match="holds 10 of 11 frames"):
        media.verify_output(good, 11, 1)
    with pytest.raises(media.MediaError, match="holds 1 of 2 audio streams"):
        media.verify_output(good, 10, 2)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # the index at the end is gone
    with pytest.raises(media.MediaError, match="does not open"):
        media.verify_output(cut, 10, 1)


def test_verify_output_catches_a_cut_whose_index_survives(tmp_path, ten_frames):
    """With the index first (`+faststart`), a file cut inside its last bytes still opens and still lists every
    frame; decoding it counted all 10 frames too (the decoder conceals the cut frame). Its packets do not add up."""
    whole = tmp_path / "whole.mp4"
    ffmpeg("-i", str(ten_frames), "-c", "copy", "-movflags", "+faststart", str(whole))
    media.verify_output(whole, 10, 1)
    data = whole.read_bytes()
    for kept in (len(data) - 100, len(data) * 7 // 10):
        cut = tmp_path / f"cut-{kept}.mp4"
        cut.write_bytes(data[:kept])
        assert media.probe(cut).declared_frames == 10  # the index still says 10
        with pytest.raises(media.MediaError, match="cut short|holds [0-9] of 10 frames"):
            media.verify_output(cut, 10, 1)


# ---------------------------------------------------------------- damaged and non-regular inputs

def test_truncated_input_fails_unless_allowed(tmp_path, ten_frames, small_weights, model_loads):
    src = truncated(ten_frames, tmp_path / "cut.mp4")
    info = media.probe(src)
    decodable = media.count_frames(info)
    assert info.declared_frames == 10 and 0 < decodable < 10
    out = tmp_path / "out" / "cut.mp4"
    run = cmet("edit", src, "-o", out, "--preset", "happy", *BOX, *model_args(small_weights))
    assert_one_line_failure(run, f"{src}: damaged: {decodable} of 10 frames decode", "--allow-damaged")
    assert model_loads == [] and not out.exists()  # found before any model loaded
    run = cmet("edit", src, "-o", out, "--preset", "happy", "--allow-damaged", *BOX, *model_args(small_weights))
    assert run.code == 0, run.stderr
    assert f"warning: {src}: damaged: {decodable} of 10 frames decode: writing those {decodable}" in run.warnings()
    assert media.count_frames(media.probe(out)) == decodable


def test_salvage_of_a_cut_whose_audio_lies_past_the_cut(tmp_path, ten_frames, small_weights, model_loads):
    """--allow-damaged keeps what exists: the frames that decode, and no audio when all of it lay past the cut
    (it failed with `holds 0 of 1 audio streams`); the result says so."""
    late = tmp_path / "late-audio.mp4"  # the audio starts after the last frame, so its packets follow every video one
    ffmpeg("-i", str(ten_frames), "-itsoffset", "1.5", "-i", str(ten_frames), "-map", "0:v", "-map", "1:a",
           "-c", "copy", str(late))
    src = truncated(late, tmp_path / "cut.mp4", keep=0.7)
    info = media.probe(src)
    assert info.damaged and info.has_audio and not media.has_packets(src, info.audio[0].index)
    out = tmp_path / "out" / "cut.mp4"
    run = cmet("edit", src, "-o", out, "--preset", "happy", "--allow-damaged", *BOX, *model_args(small_weights))
    assert run.code == 0, run.stderr
    assert any("has no packets in what remains of the file" in w for w in run.warnings()), run.stderr
    assert media.count_frames(media.probe(out)) == media.count_frames(info) and not media.probe(out).has_audio
    assert media.has_packets(ten_frames, 1)  # a whole file's audio has packets: it is kept as before


def test_stream_copied_cut_is_not_damaged(tmp_path, ten_frames, small_weights, model_loads):
    """Packets before the cut's first shown frame are present: a valid file, edited without any option."""
    cut = tmp_path / "cut.mp4"
    ffmpeg("-ss", "0.35", "-i", str(ten_frames), "-c", "copy", str(cut))
    info = media.probe(cut)
    assert not info.damaged and media.count_frames(info) < info.frame_count
    out = tmp_path / "out.mp4"
    run = cmet("edit", cut, "-o", out, "--preset", "happy", *BOX, *model_args(small_weights))
    assert run.code == 0, run.stderr
    assert media.probe(out).frame_count == media.count_frames(info)


def test_fifo_input_fails_at_once(tmp_path, small_weights):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    started = time.monotonic()
    proc = cmet_process("edit", fifo, "-o", tmp_path / "out.mp4", "--preset", "happy", *BOX, *model_args(small_weights))
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("cmet hung on a FIFO")
    assert proc.returncode == 1, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == [
        f"error: {fifo}: is a named pipe (FIFO), not a regular file"]
    assert time.monotonic() - started < 30


# ---------------------------------------------------------------- batch folders: nothing silently dropped

def test_folder_fails_broken_videos_and_lists_ignored_files(tmp_path, clip, ten_frames, small_weights, model_loads):
    src, out, report = tmp_path / "clips", tmp_path / "out", tmp_path / "report.json"
    src.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (src / name).write_bytes(clip.read_bytes())
    (src / "fake.mp4").write_text("a text file named like a video")
    truncated(ten_frames, src / "truncated.mp4")
    (src / "camera.dat").write_bytes(b"\0\0\0\x18ftypisom" + b"\0" * 100)  # an MP4 signature, not an MP4
    (src / "notes.txt").write_text("notes")
    (src / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    run = cmet("edit", src, "-o", out, "--preset", "happy", "--report", report, *BOX, *model_args(small_weights))
    assert run.code == 1, run.stderr
    data = json.loads(report.read_text())
    assert data["summary"] == {"done": 2, "skipped": 0, "failed": 3, "ignored": 2}
    status = {Path(r["input"]).name: r["status"] for r in data["results"]}
    assert status == {"a.mp4": "done", "b.mp4": "done", "camera.dat": "failed", "fake.mp4": "failed",
                      "truncated.mp4": "failed"}
    assert [(Path(i["input"]).name, i["reason"]) for i in data["ignored"]] == [
        (".DS_Store", "not a video"), ("notes.txt", "not a video (.txt)")]
    assert len(run.errors()) == 3 and "Traceback" not in run.stderr
    assert "2 done, 0 skipped, 3 failed, 2 ignored" in run.stderr and "notes.txt" in run.stderr
    assert len(model_loads) == 1 and sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"]


# ---------------------------------------------------------------- options checked against the input

def test_box_outside_the_frame_is_a_usage_error(tmp_path, clip, small_weights, model_loads):
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--preset", "happy", "--box", "500,300,50,50",
               *model_args(small_weights))
    assert_one_line_failure(run, "--box 500,300,50,50 lies outside the 384x288 frame", code=2)
    assert model_loads == [] and list(tmp_path.iterdir()) == []


def test_box_partly_outside_is_edited(tmp_path, clip, small_weights, model_loads):
    """The part of the box inside the frame is edited (the crop is edge-padded), the rest of the frame is not."""
    import numpy as np

    out = tmp_path / "out.mp4"
    run = cmet("edit", clip, "-o", out, "--preset", "happy", "--box", "-40,-40,96,96", "--crf", "0",
               *model_args(small_weights))
    assert run.code == 0, run.stderr
    before, after = ([f.planes[0].astype(int) for f in media.read_planes(media.probe(p))] for p in (clip, out))
    assert len(before) == len(after) == 3
    for a, b in zip(before, after):
        assert np.abs(a[8:40, 8:40] - b[8:40, 8:40]).mean() > 5  # the visible corner of the box, inside its mask
        a[:56, :56] = b[:56, :56] = 0
        assert np.array_equal(a, b)  # lossless: nothing outside the box changed


def test_keyframe_past_the_end_warns(tmp_path, clip, small_weights, model_loads):
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--at", "0", "happy", "--at", "99", "sad", *BOX,
               *model_args(small_weights))
    assert run.code == 0, run.stderr
    assert f"warning: {clip}: --at 99 sad is past the end of the clip (last frame at 0.20 s): never applies" \
        in run.warnings()


@pytest.mark.parametrize("when", ["1:75", "1:60", "1:60:00"])
def test_seconds_of_60_or_more_after_a_colon_are_refused(tmp_path, clip, small_weights, when):
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--at", when, "happy", *BOX, *model_args(small_weights))
    assert_one_line_failure(run, f"time '{when}'", "below 60", code=2)


# ---------------------------------------------------------------- output folder, signals, leftovers, two writers

@pytest.fixture
def read_only_folder(tmp_path):
    with _tmpfs(tmp_path / "ro", "size=1m,ro") as folder:
        yield folder


def test_read_only_output_folder_is_reported_before_models_load(read_only_folder, clip, small_weights, model_loads):
    run = cmet("edit", clip, "-o", read_only_folder / "out.mp4", "--preset", "happy", *BOX, *model_args(small_weights))
    assert_one_line_failure(run, f"{clip}: {read_only_folder}: the output folder is not writable (Read-only file system)")
    assert model_loads == []


def test_a_file_that_appears_during_the_edit_is_not_replaced(tmp_path, clip, small_weights, model_loads, monkeypatch):
    """Two runs, one output: the output appears (another run finished) after this run checked the path."""
    out = tmp_path / "out.mp4"
    real_close = media.FrameWriter.close

    def close_then_other_run_finishes(self):
        real_close(self)
        out.write_bytes(b"the other run's output")

    monkeypatch.setattr(media.FrameWriter, "close", close_then_other_run_finishes)
    run = cmet("edit", clip, "-o", out, "--preset", "happy", *BOX, *model_args(small_weights))
    assert_one_line_failure(run, f"{clip}: {out} exists: pass --overwrite")
    assert out.read_bytes() == b"the other run's output" and leftovers(tmp_path) == []


def test_a_link_planted_at_the_temporary_name_is_not_written_through(tmp_path, clip, small_weights, model_loads,
                                                                     monkeypatch):
    """The names the edit would use first are symbolic links to a file outside the output folder: the edit takes
    other names, and the file outside is untouched."""
    out, outside = tmp_path / "out" / "edit.mp4", tmp_path / "precious.mp4"
    out.parent.mkdir()
    outside.write_bytes(b"keep me")
    tokens = iter(["0" * 16, "1" * 16, "2" * 16, "3" * 16])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(tokens))
    for token in ("0" * 16, "1" * 16):
        (out.parent / f"{atomic.temp_prefix(out)}{token}.part").symlink_to(outside)
    run = cmet("edit", clip, "-o", out, "--preset", "happy", *BOX, *model_args(small_weights))
    assert run.code == 0, run.stderr
    assert outside.read_bytes() == b"keep me" and media.probe(out).frame_count == 3
    assert sorted(p.is_symlink() for p in out.parent.iterdir()) == [False, True, True]



def test_killed_run_leftovers_are_removed_by_the_next_run(tmp_path, clip, small_weights, model_loads):
    src, out = tmp_path / "long.mp4", tmp_path / "out"
    face_clip(src, seconds=3.0)
    args = ("edit", src, "-o", out, "--preset", "happy", "--batch-size", "1", *BOX, *model_args(small_weights))
    proc = cmet_process(*args)
    wait_for(lambda: out.is_dir() and leftovers(out), proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate()
    [left] = leftovers(out)
    assert left.startswith(atomic.temp_prefix(out / "long.mp4", proc.pid))
    src.write_bytes(clip.read_bytes())  # the next run: same output, a short input (keeps the test fast)
    run = cmet(*args)
    assert run.code == 0, run.stderr
    assert leftovers(out) == [] and sorted(p.name for p in out.iterdir()) == ["long.mp4"]


# ---------------------------------------------------------------- messages

def test_an_unreadable_input_names_its_path_once(tmp_path, small_weights, model_loads):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    run = cmet("edit", bad, "-o", tmp_path / "out", "--preset", "happy", *BOX, *model_args(small_weights))
    line = assert_one_line_failure(run, "not a readable video (Invalid data found when processing input)")
    assert line == f"error: {bad}: not a readable video (Invalid data found when processing input)"
    assert model_loads == []  # probed before any model loads


def test_newline_in_a_file_name_stays_on_one_line(tmp_path, small_weights, model_loads):
    bad = tmp_path / "two\nlines.mp4"
    bad.write_text("not a video")
    run = cmet("edit", bad, "-o", tmp_path / "out", "--preset", "happy", *BOX, *model_args(small_weights))
    line = assert_one_line_failure(run, "not a readable video")
    assert line == f"error: {tmp_path}/two\\nlines.mp4: not a readable video (Invalid data found when processing input)"


def test_audio_file_with_cover_art(tmp_path, small_weights, model_loads):
    song = tmp_path / "song.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-f", "lavfi", "-i", "color=c=red:s=64x64:d=1", "-map", "0:a",
           "-map", "1:v", "-frames:v", "1", "-c:v", "mjpeg", "-disposition:v", "attached_pic", str(song))
    run = cmet("edit", song, "-o", tmp_path / "out.mp4", "--preset", "happy", *BOX, *model_args(small_weights))
    assert_one_line_failure(run, f"{song}: holds no video, only a still cover image")


def test_speech_clip_without_audio(tmp_path, clip, small_weights, model_loads):
    silent_video = synthetic(tmp_path / "speech.mp4", size="160x120", rate="10", seconds=0.3, audio=False)
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--emotion-speech", silent_video, *BOX, *model_args(small_weights))
    assert_one_line_failure(run, f"speech file {silent_video} has no audio stream", code=2)  # a usage error (issue 24)


def test_cmet_home_that_is_a_file(tmp_path):
    home = tmp_path / "home"
    home.write_text("a file")
    run = cmet("download-weights", "--only", "bank", env={"CMET_HOME": str(home)})
    assert_one_line_failure(run, f"CMET_HOME={home} is a file, not a folder")


def test_missing_input_answers_without_loading_anything(tmp_path, small_weights):
    """A subprocess, as a user runs it: no model loads, so the answer comes fast (measured for the README)."""
    started = time.monotonic()
    proc = cmet_process("edit", tmp_path / "missing.mp4", "-o", tmp_path / "out.mp4", "--preset", "happy",
                        *model_args(small_weights))
    _, stderr = proc.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1 and f"error: {tmp_path / 'missing.mp4'}: no such file" in stderr
    assert elapsed < 10, elapsed  # loading the models alone takes longer on the machines the suite runs on

