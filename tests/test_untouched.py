"""Untouched means untouched: outside the face the frames, their timing, colour description and bit depth
go through the edit as they were (issue 12), and the container keeps what it can of the rest (subtitles)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cmet_cli import colour, faces, media
from cmet_cli.options import EditOptions
from cmet_cli.pipeline import Editor

from .cli_support import BANK
from .clips import face_clip, ffmpeg, synthetic
from .media_checks import audio_packets, frame_to_rgb
from .standin import IdentityEditor

FACE_BOX = (64, 16, 256, 256)  # face_clip's face: crop side 256, so the crop is not resampled


def ffprobe(path: Path, *args: str) -> dict:
    out = subprocess.run([media.ffprobe_binary(), "-v", "error", "-of", "json", *args, str(path)],
                         capture_output=True, check=True, text=True).stdout
    return json.loads(out)


def video_tags(path: Path) -> dict:
    keys = "pix_fmt,color_range,color_space,color_transfer,color_primaries,codec_name,profile"
    stream = ffprobe(path, "-select_streams", "v:0", "-show_entries", f"stream={keys}")["streams"][0]
    return {k: stream.get(k) for k in keys.split(",")}


def frame_times(path: Path) -> list[str]:
    frames = ffprobe(path, "-select_streams", "v:0", "-show_entries", "frame=pts_time")["frames"]
    return [f["pts_time"] for f in frames]


def planes(path: Path) -> list[tuple[np.ndarray, ...]]:
    return [tuple(p.astype(np.int32) for p in f.planes) for f in media.read_planes(media.probe(path))]


def identity_edit(src: Path, out: Path, box=FACE_BOX, **options) -> list[str]:
    result = Editor(EditOptions(preset="neutral", box=box, **options), face_editor=IdentityEditor()).edit(src, out)
    return result.warnings


def mask_in_frame(shape: tuple[int, int], box=FACE_BOX) -> np.ndarray:
    """Where the pasted face's feathered mask is above 0 (the only pixels an edit may change)."""
    out = np.zeros(shape, bool)
    x, y, side, _ = box
    region = faces.face_mask(faces.CROP) > 0
    out[y:y + side, x:x + side] = region[: shape[0] - y, : shape[1] - x]
    return out


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


@pytest.fixture(scope="module")
def talk(tmp_path_factory, data_dir) -> Path:
    return face_clip(tmp_path_factory.mktemp("talk") / "talk.mp4", seconds=0.5)


# ---------------------------------------------------------------- pixels

def test_identity_edit_is_lossless_outside_the_mask_and_round_trips_the_face(talk, tmp_path):
    out = tmp_path / "out.mp4"
    identity_edit(talk, out, crf=0)
    before, after = planes(talk), planes(out)
    assert len(before) == len(after) == 5
    outside = ~mask_in_frame(before[0][0].shape)
    chroma_outside = outside[::2, ::2] & outside[1::2, ::2] & outside[::2, 1::2] & outside[1::2, 1::2]
    for a, b in zip(before, after):
        assert np.array_equal(a[0][outside], b[0][outside])  # luma: bit-identical outside the mask
        assert all(np.array_equal(a[k][chroma_outside], b[k][chroma_outside]) for k in (1, 2))
        # inside: the crop's conversion to RGB and back is consistent (within one code value)
        assert all(np.abs(a[k] - b[k]).max() <= 1 for k in range(3))


def test_far_from_face_quality_matches_a_plain_reencode(tmp_path, small_weights, data_dir):
    """A moving pattern with a face on it: away from the face the edit costs no more than one x264 encode."""
    src = tmp_path / "busy.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=10:duration=0.5", "-i", str(face_clip(tmp_path / "f.mp4")),
           "-filter_complex", "[0:v][1:v]overlay=0:0:shortest=1,format=yuv420p[v]",
           "-map", "[v]", "-c:v", "libx264", "-crf", "8", str(src))
    out, plain = tmp_path / "out.mp4", tmp_path / "plain.mp4"
    Editor(EditOptions(preset="happy", box=(64, 16, 256, 256), weights_dir=small_weights, bank_dir=BANK,
                       device="cpu", crf=18)).edit(src, out)
    ffmpeg("-i", str(src), "-c:v", "libx264", "-crf", "18", str(plain))
    far = np.ones((360, 640), bool)
    far[:, 0:64 + 256 + 128] = False  # the face box grown by half its size
    ref, edited, reencoded = (np.stack([p[0] for p in planes(path)]) for path in (src, out, plain))
    assert psnr(ref[:, far], edited[:, far]) >= psnr(ref[:, far], reencoded[:, far]) - 0.5
    assert not np.array_equal(ref[:, ~far], edited[:, ~far])  # the face itself was edited


# ---------------------------------------------------------------- time

def test_variable_frame_rate_and_start_offset_keep_every_timestamp(tmp_path):
    vfr = tmp_path / "vfr.mp4"
    graph = ("testsrc2=size=320x240:rate=30:duration=1[a];testsrc2=size=320x240:rate=10:duration=1[b];"
             "[a][b]concat=n=2:v=1:a=0,format=yuv420p[v]")
    ffmpeg("-filter_complex", graph, "-map", "[v]", "-fps_mode", "passthrough", "-c:v", "libx264", str(vfr))
    video, late = tmp_path / "video.mp4", tmp_path / "late.mp4"
    synthetic(video, size="320x240", rate="25", seconds=1, audio=False)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1.5", "-itsoffset", "0.5", "-i", str(video),
           "-map", "0:a", "-map", "1:v", "-c:a", "aac", "-c:v", "copy", str(late))
    times = frame_times(late)
    assert float(times[0]) == pytest.approx(0.5, abs=0.03)  # the clip really starts its video late
    steps = np.diff([float(t) for t in frame_times(vfr)])
    assert steps.min() < 0.04 and steps.max() > 0.09  # and the other really changes its rate
    for src in (vfr, late):
        out = tmp_path / f"out-{src.name}"
        identity_edit(src, out, box=(0, 0, 200, 200))
        assert frame_times(out) == frame_times(src)
    assert audio_packets(tmp_path / "out-late.mp4") == audio_packets(late)


def sound_onset(path: Path) -> float:
    """When the first stream's sound starts, in seconds of the file's timeline (``aresample`` pads the time before
    the audio stream starts with silence, so a stream moved to 0 shows as an earlier onset)."""
    raw = subprocess.run([media.ffmpeg_binary(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-af",
                          "aresample=async=1:first_pts=0", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    return float(np.flatnonzero(np.abs(np.frombuffer(raw, np.int16)) > 3000)[0]) / 16000


def test_re_encoded_audio_stays_in_sync(tmp_path):
    """Audio the output container cannot hold is re-encoded to AAC; it keeps its place on the timeline. Here
    Vorbis in Matroska, starting 0.5 s after the video, silent for 0.5 s, then a tone: the tone starts at 1.0 s
    in the output too (the re-encode once restarted the audio at 0, half a second ahead of the lips)."""
    plain, late = tmp_path / "plain.mkv", tmp_path / "late.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=2", "-f", "lavfi", "-i",
           "aevalsrc='if(gt(t,0.5),sin(2*PI*440*t),0)':s=16000:d=1.5", "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "libvorbis", str(plain))
    ffmpeg("-i", str(plain), "-itsoffset", "0.5", "-i", str(plain), "-map", "0:v", "-map", "1:a", "-c", "copy", str(late))
    assert sound_onset(late) == pytest.approx(1.0, abs=0.005)
    for suffix in (".mp4", ".mov"):
        out = tmp_path / f"out{suffix}"
        warnings = identity_edit(late, out, box=(0, 0, 100, 100))
        assert any("re-encoded to AAC" in w for w in warnings)
        assert sound_onset(out) == pytest.approx(1.0, abs=0.005), suffix


@pytest.mark.parametrize("codec, suffix, copied", [("mp2", ".mp4", True), ("mp2", ".mov", True),
                                                    ("libopus", ".mp4", True), ("libopus", ".mov", False),
                                                    ("flac", ".mov", False)])
def test_audio_is_copied_where_the_container_takes_it(tmp_path, codec, suffix, copied):
    """MP2 (MPEG transport and program streams) is copied into MP4 and MOV; Opus and FLAC, which FFmpeg's MOV
    muxer refuses, are re-encoded to AAC there with a warning (they once failed the edit: 'encoding failed')."""
    src = tmp_path / "src.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=0.6", "-f", "lavfi", "-i", "sine=d=0.6:sample_rate=48000",
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", codec, str(src))
    out = tmp_path / f"out{suffix}"
    warnings = identity_edit(src, out, box=(0, 0, 100, 100))
    assert any("re-encoded to AAC" in w for w in warnings) is not copied
    if copied:
        assert [p[1:] for p in audio_packets(out)] == [p[1:] for p in audio_packets(src)]
    else:
        assert media.probe(out).audio[0].codec == "aac"


def pixel_aspect(path: Path) -> str | None:
    return ffprobe(path, "-select_streams", "v:0", "-show_entries", "stream=sample_aspect_ratio")["streams"][0].get(
        "sample_aspect_ratio")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_anamorphic_video_keeps_its_pixel_aspect(tmp_path, suffix):
    """Non-square pixels (DV, DVD, broadcast) stay so: the output once lost the sample aspect ratio and showed a
    4:3 picture square. Rotated by 90°, the upright output's pixels are the inverse shape."""
    src, turned = tmp_path / "wide.mp4", tmp_path / "turned.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=0.3", "-vf", "setsar=4/3", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(src))
    ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(turned))
    assert pixel_aspect(src) == "4:3" and media.probe(turned).rotation in (90, 270)
    for source, expected in ((src, "4:3"), (turned, "3:4")):
        out = tmp_path / f"out-{source.stem}{suffix}"
        identity_edit(source, out, box=(0, 0, 60, 60))
        assert pixel_aspect(out) == expected, source.name


def field_order(path: Path) -> str | None:
    return ffprobe(path, "-select_streams", "v:0", "-show_entries", "stream=field_order")["streams"][0].get("field_order")


@pytest.mark.parametrize("order", ["tff", "bff"])
def test_interlaced_video_stays_interlaced(tmp_path, order):
    """Interlaced video is coded as fields in its own order and flagged so (it came out flagged progressive, so
    players would not deinterlace it); progressive video stays progressive."""
    src, plain = tmp_path / f"{order}.mp4", tmp_path / "plain.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=0.4", "-vf", f"setfield={order}", "-c:v", "libx264",
           "-flags", "+ildct+ilme", "-x264-params", f"{order}=1", "-pix_fmt", "yuv420p", str(src))
    synthetic(plain, size="160x120", rate="25", seconds=0.4, audio=False)
    assert field_order(src) not in (None, "progressive") and field_order(plain) == "progressive"
    for source in (src, plain):
        for suffix in (".mp4", ".mkv"):
            out = tmp_path / f"out-{source.stem}{suffix}"
            identity_edit(source, out, box=(0, 0, 60, 60))
            assert field_order(out) == field_order(source), out.name


# ---------------------------------------------------------------- colour and bit depth

COLOUR_CASES = {
    "bt709-limited": ("libx264", "yuv420p", ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                                            "-color_range", "tv"]),
    "bt709-full": ("libx264", "yuvj420p", ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                                          "-color_range", "pc"]),
    "bt601": ("libx264", "yuv420p", ["-colorspace", "smpte170m", "-color_primaries", "smpte170m",
                                     "-color_trc", "smpte170m", "-color_range", "tv"]),
    "hlg-10bit": ("libx265", "yuv420p10le", ["-colorspace", "bt2020nc", "-color_primaries", "bt2020",
                                             "-color_trc", "arib-std-b67", "-color_range", "tv", "-tag:v", "hvc1",
                                             "-x265-params", "log-level=error"]),
    "untagged": ("libx264", "yuv420p", []),
}


@pytest.mark.parametrize("case", sorted(COLOUR_CASES))
def test_colour_description_and_bit_depth_are_kept(tmp_path, case):
    codec, pix_fmt, tags = COLOUR_CASES[case]
    src = tmp_path / f"{case}.mp4"
    # flat colour on the left, a moving pattern on the right
    graph = "color=c=0x4080c0:s=320x240:r=10:d=0.5[bg];testsrc2=s=160x240:r=10:d=0.5[p];[bg][p]overlay=160:0[v]"
    ffmpeg("-filter_complex", graph, "-map", "[v]", "-c:v", codec, "-pix_fmt", pix_fmt, *tags, str(src))
    out = tmp_path / "out.mp4"
    identity_edit(src, out, box=(100, 60, 100, 100))
    before, after = video_tags(src), video_tags(out)
    keep = ("pix_fmt", "color_range", "color_space", "color_transfer", "color_primaries")
    assert {k: after[k] for k in keep} == {k: before[k] for k in keep}
    if case == "untagged":
        assert after["color_space"] is None and after["color_transfer"] is None
    if case == "hlg-10bit":
        assert after["codec_name"] == "hevc" and after["profile"] == "Main 10"
    flat = (slice(10, 50), slice(10, 90))  # far from the face box
    a = [frame_to_rgb(f)[flat].reshape(-1, 3).mean(0) for f in media.read_planes(media.probe(src))]
    b = [frame_to_rgb(f)[flat].reshape(-1, 3).mean(0) for f in media.read_planes(media.probe(out))]
    assert np.abs(np.array(a) - np.array(b)).max() < 0.5


@pytest.mark.parametrize("matrix,full,bits,transfer", [
    ("bt601", False, 8, "sdr"), ("bt709", True, 8, "sdr"), ("bt2020", False, 10, "hlg"), ("bt2020", False, 10, "pq")])
def test_crop_conversion_inverts_exactly(matrix, full, bits, transfer):
    conv = colour.Conversion(matrix, full, bits, transfer)
    rng = np.random.default_rng(1)
    lo, hi = (0, conv.peak) if full else (16 << (bits - 8), 235 << (bits - 8))
    y = rng.integers(lo, hi + 1, (32, 32))
    u, v = (rng.integers(lo + 100, hi - 100, (32, 32)) for _ in range(2))
    back = colour.from_rgb(colour.to_rgb(y, u, v, conv), conv)
    for original, restored in zip((y, u, v), back):
        assert np.abs(np.rint(restored) - original).max() == 0


def test_ten_bit_face_round_trips_within_one_code_value(tmp_path):
    """The networks see 8 bits; what they cannot hold is carried around them, so an unchanged face comes back."""
    src = tmp_path / "hlg.mp4"
    synthetic(src, size="320x240", rate="10", seconds=0.3, audio=False, codec="libx265", pix_fmt="yuv420p10le",
              extra=("-colorspace", "bt2020nc", "-color_primaries", "bt2020", "-color_trc", "arib-std-b67",
                     "-x265-params", "log-level=error"))
    out = tmp_path / "out.mp4"
    identity_edit(src, out, box=(32, 0, 256, 256), crf=0)
    for a, b in zip(planes(src), planes(out)):
        assert all(np.abs(a[k] - b[k]).max() <= 1 for k in range(3))


# ---------------------------------------------------------------- untouched in time

def test_frames_before_the_first_keyframe_are_not_rendered(tmp_path, small_weights, data_dir):
    src = face_clip(tmp_path / "talk.mp4", seconds=3.0)
    out = tmp_path / "out.mp4"
    Editor(EditOptions(at=(("1", "happy"),), blend=0.5, box=(64, 16, 256, 256), weights_dir=small_weights,
                       bank_dir=BANK, device="cpu", crf=0)).edit(src, out)
    before, after = planes(src), planes(out)
    assert len(before) == len(after) == 30
    for i in range(10):  # 0 .. 0.9 s: strength 0, the frames pass through as decoded (lossless here)
        assert all(np.array_equal(before[i][k], after[i][k]) for k in range(3)), f"frame {i} changed"
    change = [np.abs(after[i][0] - before[i][0]).mean() for i in range(10, 17)]  # 1.0 .. 1.6 s: the fade in
    assert change[0] == 0 and all(b > a for a, b in zip(change[:6], change[1:6])), change
    assert change[5] > 1.0


def test_keyframes_fall_on_the_frames_shown_at_their_time_in_variable_frame_rate_video(tmp_path, small_weights, data_dir):
    """30 fps for 1 s, then 10 fps: `--at 1.5` starts at frame 35 (shown at 1.5 s), not at frame 30 (i / mean rate)."""
    vfr = tmp_path / "vfr.mp4"
    graph = ("testsrc2=size=160x120:rate=30:duration=1[a];testsrc2=size=160x120:rate=10:duration=1[b];"
             "[a][b]concat=n=2:v=1:a=0,format=yuv420p[v]")
    ffmpeg("-filter_complex", graph, "-map", "[v]", "-fps_mode", "passthrough", "-c:v", "libx264", str(vfr))
    times = media.frame_times(media.probe(vfr))
    assert len(times) == media.count_frames(media.probe(vfr)) > 36 and times[35] == pytest.approx(1.5, abs=1e-3)
    out = tmp_path / "out.mp4"
    Editor(EditOptions(at=(("1.5", "happy"),), blend=0.0, box=(0, 0, 120, 120), weights_dir=small_weights,
                       bank_dir=BANK, device="cpu", crf=0)).edit(vfr, out)
    same = [all(np.array_equal(a[k], b[k]) for k in range(3)) for a, b in zip(planes(vfr), planes(out))]
    assert same == [True] * 35 + [False] * (len(times) - 35)


# ---------------------------------------------------------------- codec choice and container

def test_codec_choice_keeps_bit_depth(tmp_path):
    src = tmp_path / "ten.mp4"
    synthetic(src, size="160x120", rate="10", seconds=0.3, audio=False, pix_fmt="yuv422p10le")
    auto, hevc = tmp_path / "auto.mp4", tmp_path / "hevc.mkv"
    identity_edit(src, auto, box=(0, 0, 100, 100))
    identity_edit(src, hevc, box=(0, 0, 100, 100), codec="hevc")
    assert (video_tags(auto)["codec_name"], video_tags(auto)["pix_fmt"]) == ("h264", "yuv422p10le")
    assert (video_tags(hevc)["codec_name"], video_tags(hevc)["pix_fmt"]) == ("hevc", "yuv422p10le")
    assert frame_times(hevc) == frame_times(src)


def test_rgb_source_stays_rgb(tmp_path):
    src = tmp_path / "rgb.mov"
    synthetic(src, size="384x288", rate="10", seconds=0.3, audio=False, codec="png", pix_fmt="rgb24")
    out = tmp_path / "out.mkv"
    identity_edit(src, out, crf=0)
    assert video_tags(out)["pix_fmt"] in ("gbrp", "rgb24", "bgr0")  # H.264 in RGB, not Y'CbCr
    before, after = planes(src), planes(out)
    assert all(all(np.array_equal(a[k], b[k]) for k in range(3)) for a, b in zip(before, after))


def test_formats_the_edit_cannot_hold_are_converted_with_a_warning(tmp_path):
    src = tmp_path / "nv12.mkv"
    synthetic(src, size="160x120", rate="10", seconds=0.2, audio=False, codec="rawvideo", pix_fmt="nv12")
    out = tmp_path / "out.mp4"
    assert any("nv12" in w and "yuv420p" in w for w in identity_edit(src, out, box=(0, 0, 100, 100)))
    assert video_tags(out)["pix_fmt"] == "yuv420p"


class TintingEditor(IdentityEditor):
    """Returns the crops with a red cast: a face that brings colour of its own."""

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray:
        out = crops.astype(np.float32)
        out[..., 0] += 60
        return np.clip(out, 0, 255).astype(crops.dtype)


def test_a_greyscale_video_stays_grey(tmp_path):
    """A grey source is edited as Y'CbCr (with a warning) and its chroma is kept neutral: a rendered face with
    colour of its own once came out coloured in a grey picture. Its luma still changes where the face is."""
    src = tmp_path / "grey.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=0.3", "-c:v", "ffv1", "-pix_fmt", "gray", str(src))
    out, tinted = tmp_path / "out.mkv", tmp_path / "tinted.mkv"
    options = EditOptions(preset="neutral", box=(0, 0, 100, 100), crf=0)
    result = Editor(options, face_editor=TintingEditor()).edit(src, out)
    assert any("stays grey" in w for w in result.warnings)
    before, after = planes(src), planes(out)
    assert all(np.all(p == 1 << 7) for frame in after for p in frame[1:])
    assert any(np.any(a[0] != b[0]) for a, b in zip(after, before))  # the face was pasted (as luma)
    # the same tint in a colour source does reach its chroma (what the check above would miss if it could not)
    colour = tmp_path / "colour.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=0.3", "-c:v", "ffv1", "-pix_fmt", "yuv444p", str(colour))
    Editor(options, face_editor=TintingEditor()).edit(colour, tinted)
    assert any(np.any(a[2] != b[2]) for a, b in zip(planes(tinted), planes(colour)))


def test_rotated_planes_match_the_upright_decode(tmp_path):
    plain = tmp_path / "plain.mp4"
    synthetic(plain, size="160x96", rate="10", seconds=0.2, audio=False)
    for turn in (90, 270):
        src = tmp_path / f"r{turn}.mp4"
        ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={turn}", str(src))
        info = media.probe(src)
        upright = next(media.read_frames(info)).astype(int)  # ffmpeg's own autorotation
        ours = frame_to_rgb(next(media.read_planes(info))).astype(int)
        assert ours.shape == upright.shape == (160, 96, 3)
        # the same picture (up to chroma interpolation on a busy pattern), not the opposite turn
        assert np.abs(ours - upright).mean() < 6 < 5 * 6 < np.abs(ours - np.rot90(upright, 2)).mean()


def test_subtitles_disposition_and_metadata_are_kept(tmp_path):
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,400\nhello\n")
    src = tmp_path / "subs.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=0.5", "-f", "lavfi", "-i", "sine=d=0.5", "-i", str(srt),
           "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-c:a", "aac", "-c:s", "subrip",
           "-metadata:s:s:0", "language=fra", "-disposition:v:0", "default", str(src))
    out_mkv, out_mp4 = tmp_path / "out.mkv", tmp_path / "out.mp4"
    assert identity_edit(src, out_mkv, box=(0, 0, 100, 100)) == []
    streams = ffprobe(out_mkv, "-show_streams")["streams"]
    subs = [s for s in streams if s["codec_type"] == "subtitle"]
    assert [(s["codec_name"], s["tags"].get("language")) for s in subs] == [("subrip", "fra")]
    assert [s["disposition"]["default"] for s in streams if s["codec_type"] == "video"] == [1]
    warnings = identity_edit(src, out_mp4, box=(0, 0, 100, 100))
    assert any("subtitle" in w and "subrip" in w for w in warnings)
    # the audio's packets are copied (the time base differs between the containers, the data does not)
    assert [p[1:] for p in audio_packets(out_mp4)] == [p[1:] for p in audio_packets(src)]


@pytest.mark.parametrize("suffix", [".mov", ".mp4", ".mkv"])
def test_timecode_is_kept_and_unkeepable_streams_are_named(tmp_path, suffix):
    src = tmp_path / "tc.mov"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=0.4", "-f", "lavfi", "-i", "testsrc2=s=80x60:r=25:d=0.4",
           "-map", "0", "-map", "1", "-c:v", "libx264", "-timecode", "01:02:03:04", str(src))
    out = tmp_path / f"out{suffix}"
    warnings = identity_edit(src, out, box=(0, 0, 100, 100))
    assert warnings == ["video stream 1 (h264) is not kept"]  # the second video track; the timecode is kept
    streams = ffprobe(out, "-show_streams")["streams"]
    tags = {k.lower(): v for k, v in streams[0].get("tags", {}).items()}
    assert tags["timecode"] == "01:02:03:04"
    if suffix != ".mkv":  # MOV and MP4 hold it as a timecode track again
        assert [s.get("codec_tag_string") for s in streams if s["codec_type"] == "data"] == ["tmcd"]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_container_tags_chapters_and_the_users_comment_are_kept(tmp_path, suffix):
    """The input's title, date and comment and its chapters go through the edit (they were dropped, and the
    comment replaced by cmet's record): the record is the comment's first line, the user's follows; editing
    an edit again leaves one record, not two."""
    chapters = tmp_path / "chapters.txt"
    chapters.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=300\ntitle=One\n"
                        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=300\nEND=600\ntitle=Two\n")
    src = tmp_path / f"tagged{suffix}"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=0.6", "-f", "lavfi", "-i", "sine=d=0.6", "-i", str(chapters),
           "-map", "0", "-map", "1", "-map_chapters", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-metadata", "title=My talk", "-metadata", "comment=my notes",
           "-metadata", "creation_time=2020-01-02T03:04:05Z", str(src))
    out, again = tmp_path / f"out{suffix}", tmp_path / f"again{suffix}"
    identity_edit(src, out, box=(0, 0, 60, 60))
    identity_edit(out, again, box=(0, 0, 60, 60))
    for edited in (out, again):
        meta = ffprobe(edited, "-show_entries", "format_tags", "-show_chapters")
        tags = {k.lower(): v for k, v in meta["format"]["tags"].items()}
        assert tags["title"] == "My talk" and tags["creation_time"].startswith("2020-01-02T03:04:05")
        record, *rest = tags["comment"].split("\n")
        assert record.startswith("cmet-edit settings=") and rest == ["my notes"], tags["comment"]
        assert [c["tags"]["title"] for c in meta["chapters"]] == ["One", "Two"]


@pytest.mark.parametrize("where", ["stream", "container"])
def test_a_matroska_timecode_is_kept(tmp_path, where):
    """Matroska holds a timecode as an upper-case ``TIMECODE`` tag, on the video stream or (as ``ffmpeg
    -timecode`` writes it) on the container: both reach the output (the lower-case match lost them)."""
    src = tmp_path / "tc.mkv"
    where_args = ["-metadata:s:v:0", "timecode=01:02:03:04"] if where == "stream" else ["-timecode", "01:02:03:04"]
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=0.4", "-c:v", "libx264", *where_args, str(src))
    for suffix in (".mkv", ".mov"):
        out = tmp_path / f"out{suffix}"
        identity_edit(src, out, box=(0, 0, 100, 100))
        video = ffprobe(out, "-show_streams")["streams"][0]
        assert {k.lower(): v for k, v in video.get("tags", {}).items()}.get("timecode") == "01:02:03:04", suffix


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_writer_metadata_is_a_container_tag(tmp_path, suffix):
    src = tmp_path / "c.mp4"
    synthetic(src, size="64x48", rate="10", seconds=0.2, audio=False)
    info = media.probe(src)
    out = tmp_path / f"o{suffix}"
    with media.FrameWriter(out, info, metadata={"comment": "cmet settings abc"}) as writer:
        for frame in media.read_planes(info):
            writer.write(frame)
    tags = ffprobe(out, "-show_entries", "format_tags")["format"]["tags"]
    assert {k.lower(): v for k, v in tags.items()}["comment"] == "cmet settings abc"
