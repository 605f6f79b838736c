"""Media I/O: probing, streaming decode/encode and a pass-through edit that must keep everything."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from cmet_cli import media
from cmet_cli.errors import MediaError
from cmet_cli.options import EditOptions
from cmet_cli.pipeline import Editor

from .clips import SAMPLE, ffmpeg, synthetic
from .media_checks import audio_packets
from .standin import IdentityEditor


def passthrough(src: Path, out: Path, box=None) -> None:
    info = media.probe(src)
    box = box or (0, 0, min(info.width, info.height), min(info.width, info.height))
    Editor(EditOptions(preset="neutral", box=box), face_editor=IdentityEditor()).edit(src, out)


def assert_same_stream(src: Path, out: Path) -> None:
    a, b = media.probe(src), media.probe(out)
    assert b.frame_count == a.frame_count
    assert (b.width, b.height) == (a.width, a.height)
    assert b.fps == a.fps
    assert abs(b.duration - a.duration) <= 1.0 / float(a.fps) + 1e-6
    assert b.rotation == 0  # frames are written upright
    if a.has_audio:
        assert audio_packets(out) == audio_packets(src)
    else:
        assert not b.has_audio


def test_probe_exact_rational_rate(tmp_path):
    clip = synthetic(tmp_path / "ntsc.mp4", rate="30000/1001", seconds=1.0)
    info = media.probe(clip)
    assert info.fps == Fraction(30000, 1001)
    assert info.frame_count == 30
    assert info.has_audio and info.audio[0].codec == "aac"


def test_decode_streams_frames(tmp_path):
    clip = synthetic(tmp_path / "c.mp4", size="64x48", seconds=0.4, audio=False)
    info = media.probe(clip)
    frames = list(media.read_frames(info))
    assert len(frames) == info.frame_count == 10
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    tail = list(media.read_frames(info, start=7))
    assert len(tail) == 3 and np.array_equal(tail[0], frames[7])


def test_passthrough_sample_keeps_frames_and_audio(tmp_path, data_dir):
    out = tmp_path / "out.mp4"
    passthrough(SAMPLE, out)
    assert_same_stream(SAMPLE, out)
    # pixels: an identity edit is a re-encode only
    a = next(media.read_frames(media.probe(SAMPLE), 10, 1)).astype(float)
    b = next(media.read_frames(media.probe(out), 10, 1)).astype(float)
    assert 10 * np.log10(255**2 / np.mean((a - b) ** 2)) > 35


@pytest.mark.parametrize("kind", ["ntsc", "odd", "rotated", "silent", "10bit"])
def test_passthrough_generated(tmp_path, kind):
    src = tmp_path / f"{kind}.mp4"
    if kind == "ntsc":
        synthetic(src, rate="30000/1001", seconds=1.0)
    elif kind == "odd":
        synthetic(src, size="320x240", seconds=0.6, pix_fmt="yuv444p", extra=("-vf", "scale=161:121"))
        assert (media.probe(src).width, media.probe(src).height) == (161, 121)
    elif kind == "rotated":
        plain = synthetic(tmp_path / "plain.mp4", size="320x240", seconds=0.6)
        ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(src)) if _has_display_rotation() else \
            ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(src))
        info = media.probe(src)
        assert info.rotation in (90, 270) and (info.width, info.height) == (240, 320)
    elif kind == "silent":
        synthetic(src, seconds=0.6, audio=False)
    elif kind == "10bit":
        synthetic(src, seconds=0.6, pix_fmt="yuv420p10le")
    out = tmp_path / "out.mp4"
    passthrough(src, out)
    assert_same_stream(src, out)


def _has_display_rotation() -> bool:
    import subprocess

    help_text = subprocess.run([media.ffmpeg_binary(), "-h", "long"], capture_output=True, text=True).stdout
    return "display_rotation" in help_text


def test_probe_errors(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        media.probe(tmp_path / "missing.mp4")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(MediaError, match="not a readable video"):
        media.probe(fake)
    wav = tmp_path / "a.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", str(wav))
    with pytest.raises(MediaError, match="no video stream"):
        media.probe(wav)


def test_writer_refuses_wrong_frames(tmp_path):
    info = media.probe(synthetic(tmp_path / "c.mp4", size="64x48", seconds=0.2, audio=False))
    writer = media.FrameWriter(tmp_path / "o.mp4", info)
    with pytest.raises(ValueError):
        writer.write(np.zeros((10, 10, 3), np.uint8))
    writer.abort()


def test_stream_copied_cut_writes_the_frames_that_decode(tmp_path, data_dir):
    """A cut made with `-c copy` holds packets before its start that never show: they are not frames."""
    cut = tmp_path / "cut.mp4"
    ffmpeg("-ss", "1.3", "-i", str(SAMPLE), "-t", "2", "-c", "copy", str(cut))
    info = media.probe(cut)
    shown = media.count_frames(info)
    assert shown == len(list(media.read_frames(info)))
    out = tmp_path / "out.mp4"
    passthrough(cut, out)
    assert media.probe(out).frame_count == shown
    assert audio_packets(out) == audio_packets(cut)
