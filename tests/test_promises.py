"""Every promise in the README holds (issue 24): each test here is one place where the tool said one thing
and did another."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cmet_cli import media

from .cli_support import BANK, assert_one_line_failure, cmet, model_args
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


# ---------------------------------------------------------------- 5, 6. folders

def test_folder_outputs_keep_each_inputs_container_and_collisions_name_every_input(tmp_path, clip):
    from cmet_cli import batch

    src = tmp_path / "fold"
    src.mkdir()
    for suffix in (".mp4", ".mkv", ".mov"):
        (src / f"clip{suffix}").symlink_to(clip)
    out = tmp_path / "out"
    assert sorted(j.output.name for j in batch.plan([src], out)) == ["clip.mkv", "clip.mov", "clip.mp4"]
    run = cmet("edit", src, "-o", out, "--preset", "sad", "--format", "mp4")
    line = assert_one_line_failure(run, "would all be written to", code=2)
    assert all(str(src / f"clip{suffix}") in line for suffix in (".mp4", ".mkv", ".mov")), line


def test_mkv_subtitles_survive_folder_mode(tmp_path, small_weights):
    src = tmp_path / "fold"
    src.mkdir()
    plain = synthetic(tmp_path / "plain.mp4", size="64x48", seconds=0.4)
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,300\nhello\n")
    ffmpeg("-i", str(plain), "-i", str(srt), "-map", "0", "-map", "1", "-c", "copy", "-c:s", "srt", str(src / "a.mkv"))
    out = tmp_path / "out"
    run = cmet("edit", src, "-o", out, *model_args(small_weights, *SMALL_BOX, "--preset", "sad", "--intensity", "0"))
    assert run.code == 0 and not run.warnings(), run.stderr
    assert [s["codec_type"] for s in ffprobe_streams(out / "a.mkv")] == ["video", "audio", "subtitle"]


def test_output_folder_equal_to_the_input_folder_says_so(tmp_path, clip):
    src = tmp_path / "fold"
    src.mkdir()
    (src / "a.mp4").symlink_to(clip)
    for output in (src, Path(f"{src}/"), src / ".." / "fold"):
        run = cmet("edit", src, "-o", output, "--preset", "sad")
        assert_one_line_failure(run, "the output folder is the input folder", code=2)


# ---------------------------------------------------------------- 9. one-line messages, one class of error

def test_duplicate_keyframes_are_refused_naming_the_time(tmp_path, clip):
    run = cmet("edit", clip, "-o", tmp_path / "o.mp4", "--at", "0", "sad", "--at", "0:00", "happy")
    assert_one_line_failure(run, "--at 0:", "sad, happy", code=2)


def test_a_silent_speech_clip_is_a_usage_error_like_a_missing_one(tmp_path, clip, small_weights):
    silent = tmp_path / "silent.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "2", str(silent))
    short = tmp_path / "short.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=16000:duration=0.05", str(short))
    for speech, needle in ((silent, "is silent"), (short, "too short"), (tmp_path / "none.wav", "not found")):
        run = cmet("edit", clip, "-o", tmp_path / "o.mp4", "--emotion-speech", speech, "--weights-dir", small_weights,
                   "--device", "cpu", "--box", "0,0,96,96")
        assert_one_line_failure(run, needle, code=2)


def test_a_refused_checkpoint_never_suggests_weights_only_false(tmp_path, clip, small_weights):
    import torch

    weights = tmp_path / "w"
    weights.mkdir()
    torch.save({"gen": {"x": Path("not a tensor")}}, weights / "EDTalk.pt")
    for other in small_weights.iterdir():
        if other.name != "EDTalk.pt":
            (weights / other.name).symlink_to(other)
    run = cmet("edit", clip, "-o", tmp_path / "o.mp4", *model_args(weights, "--preset", "sad", "--box", "0,0,96,96"))
    line = assert_one_line_failure(run, "refusing to load", code=1)
    # torch says "This file can still be loaded" and how (weights_only=False): none of it is repeated
    assert "weights_only" not in run.stderr and "still be loaded" not in line, line
    assert line.endswith("(only tensors are trusted)"), line


# ---------------------------------------------------------------- 3, 4. doctor, emotions, preview

def test_doctor_describes_the_weights_the_edit_uses_on_stdout(tmp_path, small_weights):
    env = {"CMET_HOME": str(tmp_path / "home"), "CMET_WEIGHTS_DIR": str(small_weights)}
    run = cmet("doctor", env=env)
    assert run.code == 0, run.stderr
    rows = {line.split("│")[1].strip(): line for line in run.stdout.splitlines() if line.count("│") > 3}
    # the folder came from CMET_WEIGHTS_DIR, and the rows say so
    assert "given (CMET_WEIGHTS_DIR" in rows["edtalk"] and str(small_weights / "EDTalk.pt") in rows["edtalk"]
    assert "missing (not in CMET_WEIGHTS_DIR)" in rows["emotion2vec"]
    assert "missing" in rows["bank"] and "ffmpeg:" in run.stdout and run.stderr == ""
    with_bank = cmet("doctor", "--bank", BANK, env=env)
    assert "given (--bank)" in {line.split("│")[1].strip(): line for line in with_bank.stdout.splitlines()
                                if line.count("│") > 3}["bank"]


def test_emotions_without_a_bank_warns_in_one_line(tmp_path):
    run = cmet("emotions", env={"CMET_HOME": str(tmp_path / "home")})
    assert run.code == 0 and "sarcastic" in run.stdout
    assert run.stderr.splitlines() == run.warnings() and len(run.warnings()) == 1, run.stderr


@pytest.mark.cascade
def test_preview_warnings_are_one_line(tmp_path, clip, small_weights):
    from cmet_cli.faces import CASCADE_FALLBACK

    run = cmet("preview", clip, "-o", tmp_path / "sheet.png", "--frames", "1", "--preset", "sad",
               *model_args(small_weights), env={"CMET_HOME": str(tmp_path / "home")})
    assert run.code == 0, run.stderr
    assert any(CASCADE_FALLBACK in w for w in run.warnings()), run.stderr
    assert all(line.startswith("warning: ") for line in run.stderr.splitlines()), run.stderr


# ---------------------------------------------------------------- 2. --report checked before the edits

@pytest.mark.parametrize("case", ["folder", "unwritable"])
def test_a_bad_report_path_is_a_usage_error_before_any_model_loads(tmp_path, clip, small_weights, model_loads, case):
    # /proc: no file can be created there, even by root (who writes into read-only folders)
    report = tmp_path if case == "folder" else Path("/proc/cmet-report.json")
    run = cmet("edit", clip, "-o", tmp_path / "o.mp4", "--preset", "sad", "--report", report,
               *model_args(small_weights, "--box", "0,0,96,96"))
    assert_one_line_failure(run, "--report", str(report), code=2)
    assert model_loads == [] and not (tmp_path / "o.mp4").exists()



def test_doctor_shows_detector_files_of_the_weights_folder_as_the_edit_takes_them(tmp_path, small_weights):
    """An edit takes face-detector files from ``--weights-dir`` (``models.detector_files``); doctor's table
    listed them from the cache alone ("missing (optional)") while the edit used the folder's."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for item in small_weights.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "face_detection_yunet_2023mar.onnx").write_bytes(b"a stand-in")
    run = cmet("doctor", "--weights-dir", folder, env={"CMET_HOME": str(tmp_path / "home")})
    rows = {line.split("│")[1].strip(): line for line in run.stdout.splitlines() if line.count("│") > 3}
    assert "given (--weights-dir" in rows["yunet"] and str(folder / "face_detection_yunet_2023mar.onnx") in rows["yunet"]
    assert "given" not in rows["fan-detector"]  # not in the folder: from the cache, as the edit looks
