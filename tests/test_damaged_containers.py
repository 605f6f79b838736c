"""Damage where the container declares no frame count (issue 22): a cut-off MKV, WebM or MPEG-TS copy fails as
``damaged: …`` as a cut-off MP4 does, and ``--allow-damaged`` edits what decodes; whole files, stream-copied cuts
included, are edited without a word. Tiny generated clips (10 frames at 384x288)."""
from __future__ import annotations

from pathlib import Path

import pytest

from cmet_cli import media
from cmet_cli.media.probing import ebml_shortfall, probe_json, ts_packet_size

from .cli_support import BOX, assert_one_line_failure, cmet, model_args
from .clips import SAMPLE, face_clip, ffmpeg

REMUX = {".mkv": ("-c", "copy"), ".ts": ("-c", "copy"),
         ".webm": ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus")}


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> dict[str, Path]:
    """One second of the sample's face at 10 fps with audio, in each container."""
    folder = tmp_path_factory.mktemp("whole")
    src = face_clip(folder / "ten.mp4", seconds=1.0)
    out = {}
    for suffix, args in REMUX.items():
        out[suffix] = folder / f"ten{suffix}"
        ffmpeg("-i", str(src), *args, str(out[suffix]))
    return out


def cut(src: Path, path: Path, keep: float) -> Path:
    data = src.read_bytes()
    path.write_bytes(data[: int(keep * len(data))])
    return path


@pytest.mark.parametrize("suffix", sorted(REMUX))
def test_whole_files_and_stream_copied_cuts_are_not_damaged(whole, tmp_path, suffix):
    assert media.damage(media.probe(whole[suffix])) is None
    # stream-copied cuts: the end cut off at 0.55 s (shorter, whole), and for Matroska the start at 0.35 s too
    # (packets before its first shown frame; a transport stream cut so keeps no video at all)
    cuts = [("-t", "0.55")] + ([("-ss", "0.35")] if suffix != ".ts" else [])
    for k, where in enumerate(cuts):
        copied = tmp_path / f"cut{k}{suffix}"
        ffmpeg(*(where if where[0] == "-ss" else ()), "-i", str(whole[suffix]), *(where if where[0] == "-t" else ()),
               "-c", "copy", str(copied))
        info = media.probe(copied)
        assert info.frame_count < 10 or where[0] == "-ss"
        assert media.damage(info) is None, where


@pytest.mark.parametrize("suffix", sorted(REMUX))
@pytest.mark.parametrize("keep", [0.6, 0.93])  # most of it gone, and only the last frame or two
def test_cut_off_copies_are_damaged(whole, tmp_path, suffix, keep):
    info = media.probe(cut(whole[suffix], tmp_path / f"cut{suffix}", keep))
    reason = media.damage(info)
    expected = "mid-packet (its size is not a multiple of 188" if suffix == ".ts" else "bytes short of the size its header"
    assert reason is not None and expected in reason, reason


def test_transport_stream_cut_on_a_packet_boundary_is_damaged(whole, tmp_path):
    """No size to compare with: the demuxer's flag on the video packet that lost its end tells."""
    data = whole[".ts"].read_bytes()
    assert ts_packet_size(whole[".ts"]) == 188 and len(data) % 188 == 0
    path = tmp_path / "cut.ts"
    path.write_bytes(data[: int(0.6 * len(data) / 188) * 188])
    reason = media.damage(media.probe(path))
    assert reason is not None and "incomplete" in reason, reason


def test_matroska_duration_tells_when_the_size_cannot(whole, tmp_path):
    """A segment of unknown size (a live recording): the streams ending before the declared duration tell."""
    data = bytearray(whole[".mkv"].read_bytes())
    at = 4 + 1 + (data[4] & 0x7F) + 4  # EBML header (1-byte size), then the Segment ID: its size follows
    assert data[at] == 0x01  # an 8-byte size, as FFmpeg writes it
    data[at:at + 8] = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # "unknown"
    live = tmp_path / "live.mkv"
    live.write_bytes(bytes(data))
    assert ebml_shortfall(live) == 0 and media.damage(media.probe(live)) is None
    cut_live = cut(live, tmp_path / "cut-live.mkv", 0.6)
    assert ebml_shortfall(cut_live) == 0
    reason = media.damage(media.probe(cut_live))
    assert reason is not None and "of the 1.06 s its header declares" in reason, reason


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".ts"])
def test_damaged_input_fails_unless_allowed(whole, tmp_path, small_weights, model_loads, suffix):
    src = cut(whole[suffix], tmp_path / f"cut{suffix}", 0.6)
    out = tmp_path / "out" / "cut.mkv"
    run = cmet("edit", src, "-o", out, "--preset", "happy", *BOX, *model_args(small_weights))
    assert_one_line_failure(run, f"{src}: damaged: ", "--allow-damaged")
    assert model_loads == [] and not out.exists()  # found before any model loaded
    if suffix != ".ts":  # editing what decodes is the same for each container: once, the one cut mid-packet
        return
    run = cmet("edit", src, "-o", out, "--preset", "happy", "--allow-damaged", *BOX, *model_args(small_weights))
    assert run.code == 0, run.stderr
    decodable = media.count_frames(media.probe(src))
    assert 0 < decodable < 10
    assert any(f"{src}: damaged: " in w and f"writing the {decodable} frames that decode" in w for w in run.warnings())
    assert media.count_frames(media.probe(out)) == decodable


def test_whole_stream_copied_cut_is_edited_without_a_word(whole, tmp_path, small_weights):
    copied = tmp_path / "cut.ts"
    ffmpeg("-i", str(whole[".ts"]), "-t", "0.55", "-c", "copy", str(copied))
    out = tmp_path / "out.mkv"
    run = cmet("edit", copied, "-o", out, "--preset", "happy", *BOX, *model_args(small_weights))
    assert run.code == 0, run.stderr
    assert not [w for w in run.warnings() if "damaged" in w]
    assert media.count_frames(media.probe(out)) == media.count_frames(media.probe(copied))


@pytest.mark.parametrize("b_frames", [0, 2])
def test_avi_dropped_frame_entries_are_not_damage(tmp_path, b_frames):
    """FFmpeg's AVI muxer writes empty "dropped frame" entries to keep MPEG-4 video level with MP3 audio, and
    counts them in the header: a whole file declares more frames than it has packets (it was refused as
    ``damaged: 175 of 177 frames decode``). The timestamps span the declared count; a cut-off copy's do not."""
    avi = tmp_path / "whole.avi"
    ffmpeg("-i", str(SAMPLE), "-t", "1.5", "-c:v", "mpeg4", "-bf", str(b_frames), "-c:a", "libmp3lame", str(avi))
    info = media.probe(avi)
    assert probe_json(avi, select_streams="V:0")["streams"][0]["nb_frames"] != str(info.frame_count)  # the case
    assert not info.damaged and media.damage(info) is None
    cutoff = media.probe(cut(avi, tmp_path / "cut.avi", 0.6))
    assert cutoff.damaged
