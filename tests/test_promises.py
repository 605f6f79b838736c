"""Every promise in the README holds (issue 24): each test here is one place where the tool said one thing
and did another."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cmet_cli import media

from .cli_support import BANK, cmet, model_args
from .clips import ffmpeg, synthetic

SMALL_BOX = ("--box", "0,0,32,32")  # inside the 64x48 test pattern: no detector needed


def ffprobe_streams(path: Path) -> list[dict]:
    out = subprocess.run([media.ffprobe_binary(), "-v", "error", "-of", "json", "-show_entries",
                          "stream=index,codec_type,color_range,pix_fmt", str(path)],
                         capture_output=True, check=True, text=True).stdout
    return json.loads(out)["streams"]


def framemd5(path: Path) -> list[str]:
    """The md5 of every decoded video frame (in its own pixel format: no conversion)."""
    out = subprocess.run([media.ffmpeg_binary(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
                         capture_output=True, check=True, text=True).stdout
    return [line.rsplit(",", 1)[-1].strip() for line in out.splitlines() if not line.startswith("#")]


def unchanged_edit(src: Path, out: Path, weights: Path, *extra: str):
    """An edit whose emotion strength is 0 everywhere: every frame reaches the encoder as decoded."""
    return cmet("edit", src, "-o", out, *model_args(weights, *SMALL_BOX, "--preset", "sad", "--intensity", "0", *extra))


# ---------------------------------------------------------------- 1. --crf 0 is lossless

@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv420p10le", "yuv422p10le"])
@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_crf_0_is_bit_identical_for_every_bit_depth_and_codec(tmp_path, small_weights, pix_fmt, codec):
    src = synthetic(tmp_path / "in.mp4", size="64x48", seconds=0.4, pix_fmt=pix_fmt)
    out = tmp_path / "out.mp4"
    run = unchanged_edit(src, out, small_weights, "--crf", "0", "--codec", codec)
    assert run.code == 0, run.stderr
    assert ffprobe_streams(out)[0]["pix_fmt"] == pix_fmt
    # exact: x264's crf 0 changed 10-bit luma by up to 13 code values
    assert framemd5(out) == framemd5(src)


# ---------------------------------------------------------------- 8. colour tags and stream order

def test_range_tag_alone_and_stream_order_are_kept_with_and_without_compare(tmp_path, small_weights):
    # audio first, then video tagged limited range and nothing else (h264_metadata sets only the range flag)
    src = tmp_path / "in.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.4", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.4",
           "-map", "0:a", "-map", "1:v", "-c:a", "aac", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-bsf:v", "h264_metadata=video_full_range_flag=0", str(src))
    assert [(s["codec_type"], s.get("color_range")) for s in ffprobe_streams(src)] == [("audio", None), ("video", "tv")]
    for extra in ((), ("--compare",)):
        out = tmp_path / f"out{len(extra)}.mp4"
        run = unchanged_edit(src, out, small_weights, *extra)
        assert run.code == 0, run.stderr
        streams = ffprobe_streams(out)
        assert [(s["codec_type"], s.get("color_range")) for s in streams] == [("audio", None), ("video", "tv")], extra


def test_video_stays_first_and_untagged_stays_untagged_with_h264(tmp_path, small_weights):
    src = synthetic(tmp_path / "in.mp4", size="64x48", seconds=0.4)  # video, then audio; no colour tags
    assert [(s["codec_type"], s.get("color_range")) for s in ffprobe_streams(src)] == [("video", None), ("audio", None)]
    out = tmp_path / "out.mp4"
    assert unchanged_edit(src, out, small_weights, "--codec", "h264").code == 0
    assert [(s["codec_type"], s.get("color_range")) for s in ffprobe_streams(out)] == [("video", None), ("audio", None)]
    # HEVC: FFmpeg's libx265 always writes the range, so untagged video comes out `tv` (README says so),
    # which is how players read untagged Y'CbCr
    hevc = tmp_path / "hevc.mp4"
    assert unchanged_edit(src, hevc, small_weights, "--codec", "hevc").code == 0
    assert [(s["codec_type"], s.get("color_range")) for s in ffprobe_streams(hevc)] == [("video", "tv"), ("audio", None)]
