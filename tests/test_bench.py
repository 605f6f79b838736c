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


@pytest.mark.cascade
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
    """FlopCounterMode over the batches of a real 3-frame edit with the full-size generator."""
    weights = bench_edit.standin_weights(tmp_path, 256)
    clip = bench_edit.make_clip(tmp_path, 3, (256, 256))
    spec = bench_edit.RunSpec(str(clip), str(weights), "cpu", "fp32", None, network_only=False, warm_up=False)
    raw = bench_edit.run_child(spec)
    assert raw["face_frames"] == 3 and raw["flop_frames"] == 3
    gflop = raw["flops"] / raw["flop_frames"] / 1e9
    assert 40.0 < gflop <= GFLOP_PER_FRAME_TARGET, f"{gflop:.1f} GFLOP per edited frame"
    assert raw["source_flops"] > 0  # the appearance source, encoded once per clip


def test_flops_counted_apart_equal_those_counted_inside_the_edit(data_dir: Path, tmp_path: Path) -> None:
    """The benchmark counts FLOPs after its timed runs (``count_flops``: one batch of each length), not inside the
    timed edit, where the counter slowed the edit's network calls. That count must be the edit's own: here an
    edit of 7 frames in batches of 5 and 2 counted call by call inside it (``MeasuredEditor(count_flops=True)``)."""
    from cmet_cli import pipeline
    from cmet_cli.face_editor import CmetEditor

    weights = bench_edit.standin_weights(tmp_path, 16)
    clip = bench_edit.make_clip(tmp_path, 7, (128, 128))
    spec = bench_edit.RunSpec(str(clip), str(weights), "cpu", "fp32", 5, network_only=False, warm_up=False)
    options, models, keyframes, _ = bench_edit._load(spec)
    inside = bench_edit.MeasuredEditor(CmetEditor(models, keyframes, options.blend), count_flops=True)
    pipeline.Editor(options, models=models, plan=keyframes, face_editor=inside).edit(clip, tmp_path / "out.mp4")
    lengths = [len(b) for b in inside.batches]
    assert lengths == [5, 2] and inside.flops > 0
    apart = bench_edit.count_flops(models, keyframes, options.blend, 7, lengths)
    assert (apart.flops, apart.frames, apart.source_flops) == (inside.flops, 7, inside.source_flops)
    # and it is a count of these batches: one batch fewer is not the edit's count
    assert bench_edit.count_flops(models, keyframes, options.blend, 7, [5]).flops < inside.flops


def test_busy_share_and_utilisation_in_the_report() -> None:
    """gpu_busy_share = time inside the edit's network calls / the edit's wall time; gpu_util_percent only when
    NVML gave samples (the figure is left out, not null, where it cannot be read)."""
    assert bench_edit.busy_share(2.0, 8.0) == pytest.approx(0.25)
    assert bench_edit.busy_share(0.0, 8.0) is None and bench_edit.busy_share(2.0, 0.0) is None
    assert bench_edit.utilisation_report([]) == {}
    assert bench_edit.utilisation_report([50, 70, 90]) == {"gpu_util_percent": 70.0, "gpu_util_samples": 3}
    raw = {"face_frames": 40, "frames": 40, "network_s": [1.0, 1.0], "network_cpu_s": [1.0, 1.0], "flops": 0, "flop_frames": 0,
           "source_flops": 0, "precision": "bf16", "end_to_end_s": 4.0, "end_to_end_cpu_s": 5.0, "network_in_run_s": 3.0,
           "track_s": 0.5,
           "edit_pass_s": 3.5, "peak_rss_mb": 900.0, "before_edit_peak_rss_mb": 800.0, "run_peak_rss_mb": 900.0,
           "peak_device_mb": 2000.0, "device_name": "GPU", "batch_size": 20, "load_s": 1.0, "torch_threads": 16,
           "loadavg": {}, "compile": "reduce-overhead", "gpu_util_samples": [80, 100]}
    report = bench_edit.summary(raw, "cuda")
    assert report["gpu_busy_share"] == 0.75 and report["gpu_util_percent"] == 90.0
    assert report["compile"] == "reduce-overhead" and report["network_fps"] == 40.0 and report["end_to_end_fps"] == 10.0
    assert "gpu_util_percent" not in bench_edit.summary({**raw, "gpu_util_samples": []}, "cuda")


def test_utilisation_is_sampled_in_the_background_while_the_block_runs() -> None:
    import threading
    import time

    reads = []

    def read() -> int:
        reads.append(threading.current_thread().name)
        return 42

    with bench_edit.utilisation_samples(read, period_s=0.01) as samples:
        time.sleep(0.2)
    taken = len(samples)
    time.sleep(0.05)
    # 0.2 s at 0.01 s gives ~20 samples; >= 3 still holds on a loaded 2-core machine, and fails if none is taken
    assert taken >= 3 and set(samples) == {42} and len(samples) == taken  # none after the block
    assert set(reads) == {"cmet-bench-util"}
    with bench_edit.utilisation_samples(None) as samples:
        time.sleep(0.02)
    assert samples == []

    def broken() -> int:
        raise RuntimeError("NVML gone")

    with bench_edit.utilisation_samples(broken, period_s=0.01) as samples:  # a failed read stops sampling quietly
        time.sleep(0.05)
    assert samples == []
    assert bench_edit._utilisation_reader(type("Device", (), {"type": "cpu"})()) is None


def test_rss_report_with_device_peaks() -> None:
    short = {"peak_rss_mb": 500.0, "run_peak_rss_mb": 400.0, "peak_device_mb": 1000.0, "frames": 250}
    long = {"peak_rss_mb": 520.0, "run_peak_rss_mb": 410.0, "peak_device_mb": 1050.0, "frames": 1500}
    report = bench_edit.rss_report(short, long)
    assert report["peak_device_10s_mb"] == 1000.0 and report["peak_device_60s_mb"] == 1050.0
    assert report["device_ratio"] == pytest.approx(1.05) and report["rss_seconds"] == [10.0, 60.0]
    cpu = bench_edit.rss_report({**short, "peak_device_mb": None}, {**long, "peak_device_mb": None}, (0.4, 2.4))
    assert "device_ratio" not in cpu and cpu["peak_rss_0.4s_mb"] == 500.0 and cpu["rss_ratio"] == pytest.approx(1.04)


def test_benchmark_options_for_the_gpu_rows() -> None:
    assert bench_edit.parse_args([]).compile is None
    assert bench_edit.parse_args(["--compile"]).compile == "default"  # cmet's own --compile
    assert bench_edit.parse_args(["--compile", "reduce-overhead"]).compile == "reduce-overhead"
    with pytest.raises(SystemExit):
        bench_edit.parse_args(["--compile", "max-speed"])
    assert bench_edit.parse_args(["--rss-seconds", "0.4,2.4"]).rss_seconds == (0.4, 2.4)
    for bad in ("60,10", "10", "0,5"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench_edit.parse_seconds(bad)
    # one batch length when the clip is whole batches (a compiled row compiles once), else the remainder too
    assert bench_edit.warm_up_shapes(80, 240) == [80]
    assert bench_edit.warm_up_shapes(80, 250) == [80, 10]
    assert bench_edit.warm_up_shapes(80, 20) == [20]


def test_gpu_check_summary_lines() -> None:
    from benchmarks import gpu_rows

    edit = {"precision": "bf16", "compile": None, "frames": 240, "batch_size": 80, "network_fps": 1200.5,
            "end_to_end_fps": 60.0, "overhead_ratio": 20.0, "gpu_busy_share": 0.05, "track_s": 0.0,
            "peak_device_mb": 3000.0}
    line = gpu_rows.row_line(edit)
    assert line.startswith("precision bf16, compile n/a, frames 240,") and "gpu_busy_share 0.05" in line
    assert "gpu_util_percent" not in line  # absent where NVML cannot be read
    compiled = {**edit, "compile": "default", "network_fps": 1800.75, "end_to_end_fps": 63.0}
    assert gpu_rows.compare_line(compiled, edit) == ("network_fps 1801 vs 1200 (x1.5); "
                                                     "end_to_end_fps 63 vs 60 (x1.05)")
    rss = {"mode": "rss-scaling", "precision": "bf16", "rss_seconds": [10.0, 60.0], "rss_ratio": 1.01,
           "peak_rss_10s_mb": 900.0, "peak_rss_60s_mb": 909.0, "peak_device_10s_mb": 1000.0,
           "peak_device_60s_mb": 1010.0, "device_ratio": 1.01, "peak_rss_mb": 909.0, "run_peak_rss_mb": 800.0}
    assert gpu_rows.row_line(rss) == ("precision bf16, rss_seconds 10/60, rss_ratio 1.01, device_ratio 1.01, "
                                      "peak_rss_10s_mb 900, peak_rss_60s_mb 909, peak_device_10s_mb 1000, "
                                      "peak_device_60s_mb 1010")
    log = "Traceback (most recent call last):\n  ...\nRuntimeError: CUDA error: out of memory\nbenchmark run failed (exit 1)\n"
    assert gpu_rows.failure_line(log) == "RuntimeError: CUDA error: out of memory"
    assert gpu_rows.failure_line("error: no face detector can run here (...)\n") == "error: no face detector can run here (...)"
    compiled = "torch._dynamo.exc.BackendCompilerFailed: backend='inductor' raised: no C compiler\nbenchmark run failed (exit 1)\n"
    assert gpu_rows.failure_line(compiled).startswith("torch._dynamo.exc.BackendCompilerFailed: ")
    assert gpu_rows.failure_line("Killed\n") == "Killed" and gpu_rows.failure_line("") == "no output"
    with pytest.raises(ValueError):
        gpu_rows.report_of(log)
    assert gpu_rows.report_of("table\n" + json.dumps(edit) + "\n") == edit


def test_track_only_without_a_usable_detector_times_the_yunet_standin(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """OpenCV 5 with no detector model (the CUDA images): the tracking row still times the pass, with OpenCV's own
    FaceDetectorYN on the tests' stand-in network, and says so in ``detector``."""
    from cmet_cli import faces
    from cmet_cli.errors import UsageError

    def nothing_runs(*args, **kwargs):
        raise UsageError("no face detector can run here")

    monkeypatch.setattr(faces, "make_detector", nothing_runs)
    clip = bench_edit.make_clip(tmp_path, 6, (320, 240))
    report = bench_edit.track_only(clip)
    assert report["detector"] == "yunet stand-in network (timing only)" and report["frames"] == 6
    assert report["track_s"] > 0
