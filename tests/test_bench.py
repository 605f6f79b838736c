"""The benchmark (``python -m benchmarks.bench_edit``) in CI size, and the cost per edited frame of a real run at 256²."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_edit

ROOT = Path(__file__).resolve().parents[1]
GFLOP_PER_FRAME_TARGET = 85.0  # at 256², against ~197 for the official C-MET loop


def _run_script(*args: str) -> dict:
    """The benchmark as its users run it: a module, from the repository root."""
    proc = subprocess.run([sys.executable, "-m", bench_edit.MODULE, *args], capture_output=True, text=True, timeout=900,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_benchmark_ci_size(data_dir: Path, tmp_path: Path) -> None:
    """A 5-frame 256² clip with the smallest generator: the last line is the JSON report, with sane values."""
    report = _run_script("--frames", "5", "--device", "cpu", "--size", "256x256", "--small-model",
                         "--cache-dir", str(tmp_path))
    assert set(bench_edit.REQUIRED_KEYS) <= set(report)
    assert report["device"] == "cpu" and report["precision"] == "fp32"
    assert report["frames"] == 5 and report["edited_frames"] == 5
    assert 0.1 < report["gflop_per_frame"] < 5.0  # an 8² generator: ~0.9 GFLOP, plus the connector
    assert report["network_fps"] > 0 and report["end_to_end_fps"] > 0
    assert report["overhead_ratio"] == pytest.approx(report["end_to_end_s"] / report["network_s"], rel=0.01)
    assert report["overhead_ratio"] > 0.3
    # two network passes: the batches the benchmark planned (stream.face_batches) are the ones the edit made
    assert len(report["network_passes_s"]) == 2 and report["network_in_run_s"] > 0
    assert 50 < report["peak_rss_mb"] < 16_000 and report["peak_device_mb"] is None
    assert report["end_to_end_fps"] == pytest.approx(5 / report["end_to_end_s"], rel=0.01)
    clip = tmp_path / "clips" / "W009_038_256x256_5.mp4"
    assert clip.is_file() and (tmp_path / "standin-8" / "EDTalk.pt").is_file()


def test_track_only_times_the_tracking_pass(data_dir: Path, tmp_path: Path) -> None:
    report = _run_script("--track-only", "--frames", "6", "--size", "320x240", "--cache-dir", str(tmp_path))
    assert report["mode"] == "track-only" and report["frames"] == 6 and report["size"] == "320x240"
    assert report["face_frames"] == 6  # the sample's face, found by the cascade
    assert report["track_s"] > 0 and report["track_fps"] == pytest.approx(6 / report["track_s"], rel=0.01)


def test_media_only_times_the_edit_without_networks(data_dir: Path, tmp_path: Path) -> None:
    report = _run_script("--media-only", "--frames", "3", "--size", "256x144", "--cache-dir", str(tmp_path))
    assert report["mode"] == "media-only" and report["frames"] == 3 and report["size"] == "256x144"
    assert report["media_only_s"] > 0 and report["media_only_fps"] == pytest.approx(3 / report["media_only_s"], rel=0.01)
    # every stage was timed where it runs: a stage function the edit no longer calls would be missing here
    stages = report["stages"]
    assert list(stages) == ["decode", "crop", "render", "paste-back", "encode", "mux", "verify"]
    assert stages["paste-back"]["calls"] == 3  # one per frame (the box is in each)
    assert stages["decode"]["calls"] == 4  # the reference frame, then the 3 frames of the edit pass
    assert all(row["wall_ms_per_frame"] > 0 and 0 <= row["share"] < 1 for row in stages.values())  # share: 3 decimals
    assert report["limit"]["thread"] in report["threads_busy"]


def test_clip_is_upscaled_and_looped(data_dir: Path, tmp_path: Path) -> None:
    from cmet_cli import media

    info = media.probe(bench_edit.make_clip(tmp_path, 200, (320, 180)))  # longer than the 175-frame sample
    assert (info.width, info.height, info.frame_count, float(info.fps)) == (320, 180, 200, 25.0)
    assert info.has_audio


def test_sizes_and_rss_report() -> None:
    assert bench_edit.parse_size("720p") == (1280, 720) and bench_edit.parse_size("256x256") == (256, 256)
    assert bench_edit.parse_size("2160p") == (3840, 2160)
    with pytest.raises(argparse.ArgumentTypeError):
        bench_edit.parse_size("255x256")
    short = {"peak_rss_mb": 500.0, "run_peak_rss_mb": 400.0, "frames": 250}
    long = {"peak_rss_mb": 520.0, "run_peak_rss_mb": 410.0, "frames": 1500}
    report = bench_edit.rss_report(short, long)
    assert report["frames"] == 1500 and report["rss_ratio"] == pytest.approx(1.04)
    assert report["run_rss_ratio"] == pytest.approx(1.025)


def test_flops_per_edited_frame_at_256(data_dir: Path, tmp_path: Path) -> None:
    """FlopCounterMode over every CmetEditor call of a real 3-frame edit with the full-size generator."""
    weights = bench_edit.standin_weights(tmp_path, 256)
    clip = bench_edit.make_clip(tmp_path, 3, (256, 256))
    spec = bench_edit.RunSpec(str(clip), str(weights), "cpu", "fp32", None, network_only=False, warm_up=False)
    raw = bench_edit.run_child(spec)
    assert raw["face_frames"] == 3
    gflop = raw["flops"] / raw["face_frames"] / 1e9
    assert 40.0 < gflop <= GFLOP_PER_FRAME_TARGET, f"{gflop:.1f} GFLOP per edited frame"
    assert raw["source_flops"] > 0  # the appearance source, encoded once per clip
