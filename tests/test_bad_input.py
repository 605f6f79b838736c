"""Bad (and odd but valid) input: one clear line per problem, no traceback, a non-zero status for that
input and nothing written; valid oddities are edited. Every fixture is generated (ffmpeg, numpy, soundfile)."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cmet_cli import media
from cmet_cli.errors import MediaError
from cmet_cli.speech import SAMPLE_RATE, load_speech

from .cli_support import BANK, BOX, assert_one_line_failure, cmet, leftovers, model_args
from .clips import face_clip, ffmpeg, synthetic, two_faces_clip
from .media_checks import frames



def region_change(a: np.ndarray, b: np.ndarray, x: slice, y: slice) -> float:
    return float(np.abs(a[:, y, x] - b[:, y, x]).mean())


# ---------------------------------------------------------------- the input file itself

def _text_mp4(tmp: Path, clip: Path) -> Path:
    path = tmp / "text.mp4"
    path.write_text("this is not a video\n")
    return path


def _truncated(tmp: Path, clip: Path, faststart: bool = False) -> Path:
    """The first 30 % of the bytes: the index at the end is gone (or, with faststart, the media data)."""
    whole = clip
    if faststart:
        whole = tmp / "faststart.mp4"
        ffmpeg("-i", str(clip), "-c", "copy", "-movflags", "+faststart", str(whole))
    data = whole.read_bytes()
    path = tmp / ("cut-faststart.mp4" if faststart else "cut.mp4")
    path.write_bytes(data[: int(0.3 * len(data))])
    return path


def _audio_only(tmp: Path, clip: Path) -> Path:
    path = tmp / "voice.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=0.5", "-c:a", "aac", str(path))
    return path


@pytest.mark.parametrize("kind, needle", [
    ("missing", "no such file"),
    ("text", "not a readable video"),
    ("truncated", "not a readable video"),
    ("truncated-faststart", "damaged"),
    ("audio-only", "holds no video stream (found audio)"),
])
def test_unreadable_input_fails_cleanly(tmp_path, clip, small_weights, model_loads, kind, needle):
    make = {"missing": lambda t, c: t / "missing.mp4", "text": _text_mp4, "truncated": _truncated,
            "truncated-faststart": lambda t, c: _truncated(t, c, faststart=True), "audio-only": _audio_only}[kind]
    src = make(tmp_path, clip)
    before = src.read_bytes() if src.exists() else None
    out = tmp_path / "out"
    run = cmet("edit", src, "-o", out / "edited.mp4", "--preset", "happy", *BOX, *model_args(small_weights))
    assert_one_line_failure(run, str(src), needle)
    assert not out.exists() or list(out.iterdir()) == []
    assert (src.read_bytes() if src.exists() else None) == before


def test_folder_without_videos_is_a_usage_error(tmp_path, small_weights):
    empty = tmp_path / "clips"
    empty.mkdir()
    (empty / "notes.txt").write_text("no video here")
    (empty / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    run = cmet("edit", empty, "-o", tmp_path / "out", "--preset", "happy", *model_args(small_weights))
    assert_one_line_failure(run, str(empty), "no videos found", code=2)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- valid oddities, and awkward file names

def _vfr(path: Path) -> Path:
    """Frames at 0, 0.1, 0.25, 0.3 and 0.4 s: a variable frame rate."""
    return synthetic(path, size="160x120", rate="100", seconds=0.5, audio=False,
                     extra=("-vf", "select='eq(n,0)+eq(n,10)+eq(n,25)+eq(n,30)+eq(n,40)'", "-fps_mode", "vfr"))


def _frame_times(path: Path) -> list[str]:
    import subprocess

    out = subprocess.run([media.ffprobe_binary(), "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=pts_time", "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()


def _rotated(path: Path) -> Path:
    plain = synthetic(path.with_name("plain.mp4"), size="160x120", rate="10", seconds=0.3)
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(path))
    plain.unlink()
    return path


def test_odd_formats_and_names_are_edited(tmp_path, small_weights, model_loads, monkeypatch, data_dir):
    """An odd-sized 10-bit clip, a rotated phone video, and one with a variable frame rate and no audio
    track, under names with a leading dash, spaces, quotes, a colon, brackets and non-ASCII letters,
    given as relative paths (as a shell glob would)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    odd, rotated, vfr = "-odd \"10-bit\" it's.mp4", "rotated é 10:30.mp4", "vfr [phone] ünï.mp4"
    made = {
        odd: synthetic(folder / odd, size="160x120", rate="10", seconds=0.3, pix_fmt="yuv444p10le", extra=("-vf", "scale=161:121")),
        rotated: _rotated(folder / rotated),
        vfr: _vfr(folder / vfr),
    }
    infos = {name: media.probe(path) for name, path in made.items()}
    assert (infos[odd].width, infos[odd].height, infos[odd].pix_fmt) == (161, 121, "yuv444p10le")
    assert infos[rotated].rotation in (90, 270) and (infos[rotated].width, infos[rotated].height) == (120, 160)
    assert infos[vfr].variable_frame_rate and not infos[vfr].has_audio
    monkeypatch.chdir(folder)
    run = cmet("edit", "-o", "../out", "--preset", "happy", "--report", "../report.json", *BOX, *model_args(small_weights),
               "--", *made)
    assert run.code == 0, run.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["status"] for r in report["results"]] == ["done"] * len(made)
    for name, src in infos.items():
        out = media.probe(tmp_path / "out" / name)
        assert out.frame_count == src.frame_count, name
        assert (out.width, out.height, out.rotation) == (src.width, src.height, 0), name
        assert out.has_audio == src.has_audio, name
    # a variable frame rate is kept frame for frame: nothing to warn about
    assert [w for w in run.warnings() if "variable frame rate" in w] == []
    assert _frame_times(tmp_path / "out" / vfr) == _frame_times(folder / vfr)
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- faces

@pytest.mark.cascade
def test_no_face_anywhere_suggests_box(tmp_path, small_weights, model_loads):
    src = synthetic(tmp_path / "pattern.mp4", size="320x240", rate="10", seconds=0.5)
    out = tmp_path / "out.mp4"
    run = cmet("edit", src, "-o", out, "--preset", "happy", "--detector", "cascade", *model_args(small_weights))
    assert_one_line_failure(run, str(src), "--box")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.cascade
def test_face_lost_for_part_of_the_clip(tmp_path, small_weights, model_loads, data_dir):
    src = face_clip(tmp_path / "leaves.mp4", seconds=1.0, audio=False, until=0.25)  # face in frames 0-2 of 10
    out = tmp_path / "out.mp4"
    run = cmet("edit", src, "-o", out, "--preset", "happy", "--detector", "cascade", *model_args(small_weights))
    assert run.code == 0, run.stderr
    [warning] = [w for w in run.warnings() if "no face" in w]
    lost = int(re.search(r"no face in (\d+) of 10 frames: those pass through unchanged", warning).group(1))
    assert 5 <= lost <= 7
    a, b = frames(src), frames(out)
    face = (slice(120, 260), slice(60, 220))
    assert region_change(a[:1], b[:1], *face) > 10  # edited where the face is
    assert region_change(a[-lost:], b[-lost:], slice(None), slice(None)) < 2  # passed through: re-encoding only


@pytest.mark.cascade
def test_cascade_fallback_is_a_warning_of_the_result(tmp_path, clip, small_weights, model_loads):
    """--detector auto without face-alignment's weights: the cascade is used, and every result says so."""
    from cmet_cli.faces import CASCADE_FALLBACK

    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    run = cmet("edit", clip, "-o", out, "--preset", "happy", "--report", report, *model_args(small_weights),
               env={"CMET_HOME": str(tmp_path / "empty-cache")})
    assert run.code == 0, run.stderr
    [row] = json.loads(report.read_text())["results"]
    assert CASCADE_FALLBACK in row["warnings"]
    assert run.warnings() == [f"warning: {clip}: {CASCADE_FALLBACK}"]  # one line, from the result


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory, data_dir) -> Path:
    return two_faces_clip(tmp_path_factory.mktemp("two") / "two.mp4")


@pytest.mark.cascade
@pytest.mark.parametrize("pick", [None, 2])
def test_two_faces_largest_or_chosen(tmp_path, two_faces, small_weights, model_loads, pick):
    out = tmp_path / "out.mp4"
    extra = ("--face", str(pick)) if pick else ()
    run = cmet("edit", two_faces, "-o", out, "--preset", "happy", "--detector", "cascade", *extra, *model_args(small_weights))
    assert run.code == 0, run.stderr
    a, b = frames(two_faces), frames(out)
    big = region_change(a, b, slice(70, 190), slice(80, 220))
    small = region_change(a, b, slice(345, 415), slice(110, 180))
    edited, kept = (small, big) if pick == 2 else (big, small)
    assert edited > 20 and kept < 5, (big, small)  # kept: re-encoding only


@pytest.mark.cascade
def test_face_number_out_of_range(tmp_path, clip, small_weights, model_loads):
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--preset", "happy", "--detector", "cascade", "--face", "3",
               *model_args(small_weights))
    assert_one_line_failure(run, "--face 3", "1 face track")
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.mp4").exists()


# ---------------------------------------------------------------- speech clips

def _tone(seconds: float, rate: int, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1)


def _speech_file(tmp: Path, kind: str) -> Path:
    if kind == "silent":
        sf.write(tmp / "silent.wav", np.zeros((SAMPLE_RATE, 1), np.float32), SAMPLE_RATE)
        return tmp / "silent.wav"
    if kind == "short":
        sf.write(tmp / "short.wav", _tone(0.3, SAMPLE_RATE), SAMPLE_RATE)
        return tmp / "short.wav"
    if kind == "undecodable":
        (tmp / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4000))
        return tmp / "noise.wav"
    if kind == "stereo48k":
        sf.write(tmp / "stereo48k.wav", _tone(1.5, 48000, channels=2), 48000)
        return tmp / "stereo48k.wav"
    if kind == "mp3":
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1.5", "-ac", "2", str(tmp / "voice.mp3"))
        return tmp / "voice.mp3"
    raise ValueError(kind)


@pytest.mark.parametrize("kind, needle", [("silent", "is silent"), ("short", "too short"),
                                          ("undecodable", "cannot decode speech file")])
def test_bad_speech_clip(tmp_path, clip, small_weights, model_loads, kind, needle):
    speech = _speech_file(tmp_path, kind)
    with pytest.raises(MediaError, match=needle):
        load_speech(speech)
    out = tmp_path / "out.mp4"
    # the stand-in weights hold no emotion2vec: the clip is refused before any model is needed
    run = cmet("edit", clip, "-o", out, "--emotion-speech", speech, *BOX, *model_args(small_weights))
    assert_one_line_failure(run, str(speech), needle, code=2)  # a usage error, as a missing clip is (issue 24)
    assert not out.exists() and model_loads == []


@pytest.mark.parametrize("kind", ["stereo48k", "mp3"])
def test_speech_resampled(tmp_path, clip, small_weights, model_loads, kind):
    """48 kHz stereo and MP3 are valid: read as 16 kHz mono (a 440 Hz tone stays 440 Hz)."""
    speech = _speech_file(tmp_path, kind)
    wave = load_speech(speech)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) / SAMPLE_RATE - 1.5) < 0.06
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(wave) - 440) < 2
    # through the CLI the clip passes its checks; what stops this run is the missing emotion2vec checkpoint
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--emotion-speech", speech, *BOX, *model_args(small_weights))
    assert_one_line_failure(run, "emotion2vec", "cmet download-weights")


def test_mp3_48k_stereo_speech_drives_an_edit(tmp_path, clip, speech_weights, model_loads):
    """An MP3 at 48 kHz stereo is a valid --emotion-speech clip: its embedding (of the 16 kHz mono decode) drives
    the edit (``speech_weights``: the small stand-in emotion2vec, which tells clips apart)."""
    from cmet_cli.models import emotion_sources
    from cmet_cli.options import EditOptions

    speech = _speech_file(tmp_path, "mp3")
    out = tmp_path / "out.mp4"
    run = cmet("edit", clip, "-o", out, "--emotion-speech", speech, "--json", *BOX, *model_args(speech_weights))
    assert run.code == 0, run.stderr
    [row] = [json.loads(line) for line in run.stdout.splitlines()]
    assert (row["status"], row["frames"]) == ("done", 3)
    sources = emotion_sources(EditOptions(emotion_speech=(speech,), weights_dir=speech_weights, bank_dir=BANK))
    tone = sources.speech().embed(load_speech(speech)).numpy().astype(np.float64)
    expected = tone - sources.bank()["neutral"].astype(np.float64).mean(axis=0)
    assert row["vector_norm"] == pytest.approx(float(np.linalg.norm(expected)), rel=1e-5)
    assert row["code_change"] > 0 and media.probe(out).frame_count == 3


# ---------------------------------------------------------------- options

@pytest.mark.parametrize("args, needle", [
    (("--preset", "elated"), "unknown emotion preset 'elated'; valid names: angry,"),
    (("--preset", "happy", "--intensity", "2.5"), "invalid value for '--intensity': 2.5 is not in the range 0<=x<=2"),
    (("--preset", "happy", "--intensity", "-0.1"), "invalid value for '--intensity': -0.1 is not in the range 0<=x<=2"),
    (("--at", "0", "elated"), "unknown emotion preset 'elated'"),
])
def test_bad_options_are_usage_errors(tmp_path, clip, small_weights, model_loads, args, needle):
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", *args, *model_args(small_weights))
    assert_one_line_failure(run, needle, code=2)
    assert model_loads == [] and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- weights

def test_missing_weights_say_how_to_get_them(tmp_path, clip):
    empty = tmp_path / "weights"
    empty.mkdir()
    run = cmet("edit", clip, "-o", tmp_path / "a.mp4", "--preset", "happy", *BOX, *model_args(empty))
    assert_one_line_failure(run, str(empty / "EDTalk.pt"), "cmet download-weights", "--weights-dir")
    # no --weights-dir and an empty cache
    run = cmet("edit", clip, "-o", tmp_path / "b.mp4", "--preset", "happy", "--bank", BANK, *BOX,
               env={"CMET_HOME": str(tmp_path / "cache")})
    assert_one_line_failure(run, "not installed", "cmet download-weights", "--weights-dir")
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists()


def test_weights_failing_their_hash(tmp_path, clip):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "EDTalk.pt").write_bytes(b"a file that changed after it was installed")
    (cache / "hashes.json").write_text(json.dumps({"edtalk": {"sha256": "0" * 64, "source": "test"}}))
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--preset", "happy", "--bank", BANK, *BOX,
               env={"CMET_HOME": str(cache)})
    assert_one_line_failure(run, str(cache / "EDTalk.pt"), "failed its hash check",
                            "cmet download-weights --only edtalk")
    assert not (tmp_path / "out.mp4").exists()


class _Payload:
    """Pickles as a call to ``os.mkdir(marker)``: what a malicious checkpoint could run when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.mkdir, (str(self.marker),)


def test_checkpoint_with_pickled_objects_is_refused(tmp_path, clip, small_weights):
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "code-ran"
    torch.save({"gen": {"w": torch.zeros(1)}, "extra": _Payload(marker)}, evil / "EDTalk.pt")
    with pytest.raises(pickle.UnpicklingError):  # the payload really is a pickled call
        torch.load(evil / "EDTalk.pt", weights_only=True)
    for other in small_weights.iterdir():
        if other.name != "EDTalk.pt":
            (evil / other.name).symlink_to(other)
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--preset", "happy", *BOX, *model_args(evil))
    assert_one_line_failure(run, "refusing to load", str(evil / "EDTalk.pt"))
    assert not marker.exists() and not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("content, needle", [
    (b"hello world", "not a PyTorch checkpoint"),
    (b"", "the file is empty"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
    (b"\x80\x02}q\x00X\x01", "cannot read checkpoint"),  # a pickle cut short: the unpickler's own error
    (b"junk", "not a PyTorch checkpoint"),
    ("zip-without-gen", "has no entry 'gen'"),
    ("gen-of-another-model", "is not EDTalk's generator"),
])
def test_a_damaged_or_wrong_checkpoint_is_one_line(tmp_path, clip, small_weights, content, needle):
    """Whatever is in place of EDTalk.pt (a text file, an empty file, a Git LFS pointer, a truncated pickle, a
    checkpoint of another model) fails as one line naming the file: some once ended in a KeyError or
    IndexError traceback, and text files were called 'pickled objects other than tensors'."""
    bad = tmp_path / "bad"
    bad.mkdir()
    target = bad / "EDTalk.pt"
    if content == "zip-without-gen":
        torch.save({"generator": {"w": torch.zeros(1)}}, target)
    elif content == "gen-of-another-model":
        torch.save({"gen": {"conv.weight": torch.zeros(1)}}, target)
    else:
        target.write_bytes(content)
    for other in small_weights.iterdir():
        if other.name != "EDTalk.pt":
            (bad / other.name).symlink_to(other)
    run = cmet("edit", clip, "-o", tmp_path / "out.mp4", "--preset", "happy", *BOX, *model_args(bad))
    assert_one_line_failure(run, needle, str(target))
    assert not (tmp_path / "out.mp4").exists()
