"""`cmet edit --executor ray`: a local Ray instance (2 CPUs), the 64² generator with stand-in weights.

The Ray run must give the same outputs as the local batch, survive a worker killed mid-file, resume,
and say in one line how to install Ray when it is missing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cmet_cli import atomic, batch, distributed, media, ray_workers, report
from cmet_cli.cli import main
from cmet_cli.errors import UsageError
from cmet_cli.options import EditOptions

from .clips import face_clip
from .media_checks import audio_packets

CLIPS = {"a": (0.0, 0.4), "b": (1.0, 0.6), "c": (2.0, 0.5)}  # name: (start, seconds), at 12 fps: 5-8 frames
BOX = (0, 0, 256, 256)  # the sample clip is a 256² face crop: no detection


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_dir, small_weights):
    root = tmp_path_factory.mktemp("ray")
    inputs = root / "in"
    inputs.mkdir()
    for name, (start, seconds) in CLIPS.items():
        face_clip(inputs / f"{name}.mp4", canvas="256x256", offset=(0, 0), rate=12, start=start, seconds=seconds)
    weights = small_weights
    args = ["--preset", "happy", "--weights-dir", str(weights), "--bank", str(data_dir / "features"),
            "--box", ",".join(map(str, BOX)), "--device", "cpu", "-q"]
    options = EditOptions(preset="happy", weights_dir=weights, bank_dir=data_dir / "features", box=BOX, device="cpu")
    return {"root": root, "inputs": inputs, "args": args, "options": options}


@pytest.fixture(scope="module")
def ray_instance(setup):
    """A local Ray instance with 2 CPUs, no dashboard, no usage statistics, on the loopback address."""
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR")
    yield ray
    ray.shutdown()


def _cmet_edit(setup, out: str, *extra: str):
    """`cmet edit in missing.mp4 -o OUT ...` run in-process from the test folder (relative paths, as users type
    them; workers get absolute ones): three clips and one input that does not exist."""
    cwd = os.getcwd()
    os.chdir(setup["root"])
    try:
        return CliRunner().invoke(main, ["edit", "in", "missing.mp4", "-o", out, *setup["args"], *extra,
                                         "--report", f"{out}.json"])
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def local_outputs(setup):
    """The reference: `--executor local`, with one torch thread like each 1-CPU Ray worker (CPU kernels may
    round differently with another thread count)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = _cmet_edit(setup, "local")
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 1, result.output  # the missing input failed, on its own
    return setup["root"] / "local"


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def _assert_same_video(a: Path, b: Path) -> None:
    fa = np.stack(list(media.read_frames(media.probe(a))))
    fb = np.stack(list(media.read_frames(media.probe(b))))
    assert fa.shape == fb.shape and np.array_equal(fa, fb), f"{a} and {b} differ"
    assert audio_packets(a) == audio_packets(b) != []


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.rglob("*.part")]


@pytest.mark.cascade
def test_ray_matches_local_and_resumes(setup, ray_instance, local_outputs):
    out, report = setup["root"] / "ray", setup["root"] / "ray.json"
    result = _cmet_edit(setup, "ray", "--executor", "ray", "--workers", "2")
    assert result.exit_code == 1, result.output  # the same exit code: one input failed, the others did not stop

    rows, local_rows = _report(report)["results"], _report(setup["root"] / "local.json")["results"]
    assert [r["status"] for r in rows] == ["done"] * 3 + ["failed"]
    assert [(r["input"], r["output"]) for r in rows][:2] == [("in/a.mp4", "ray/a.mp4"), ("in/b.mp4", "ray/b.mp4")]
    assert rows[3]["error"] == local_rows[3]["error"] == "no such file"
    keys = ("input", "status", "frames", "face_frames", "error", "warnings")
    assert [{k: r[k] for k in keys} for r in rows] == [{k: r[k] for k in keys} for r in local_rows]
    for row, local in zip(rows[:3], local_rows):  # float sums: the reduction order may differ with thread counts
        assert row["code_change"] == pytest.approx(local["code_change"], rel=1e-5)
        assert row["vector_norm"] == pytest.approx(local["vector_norm"], rel=1e-5)
    for name in CLIPS:
        _assert_same_video(out / f"{name}.mp4", local_outputs / f"{name}.mp4")
    _no_temp_files(out)

    again = _cmet_edit(setup, "ray", "--executor", "ray", "--workers", "2")  # a re-run skips the finished outputs
    assert again.exit_code == 1, again.output
    assert _report(report)["summary"] == {"done": 0, "skipped": 3, "failed": 1, "ignored": 0}


def test_worker_killed_mid_file_is_retried(setup, ray_instance, local_outputs):
    out = setup["root"] / "killed"
    marker = setup["root"] / "killed-once"

    def kill_once(job, stage, done, total):  # runs inside a Ray worker, pickled by value
        import os
        import signal
        import time

        if stage != "write video" or job.output.name != "b.mp4" or done < 1:
            return
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # killed once already: the retry runs to the end
        for _ in range(200):  # let ffmpeg start the temporary file, then die mid-file
            parts = [n for n in os.listdir(job.output.parent) if n.startswith(".b.mp4.cmet-")]
            if parts:
                break
            time.sleep(0.05)
        os.write(fd, "\n".join(parts).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    jobs = batch.plan([setup["inputs"]], out)
    results = distributed.run(jobs, setup["options"], distributed.RayConfig(workers=2, max_retries=2), hook=kill_once)
    left_behind = marker.read_text().split()
    assert left_behind  # killed mid-file, with its temporary output started

    report.write_report(setup["root"] / "killed.json", results)
    rows = _report(setup["root"] / "killed.json")["results"]
    assert [r["status"] for r in rows] == ["done"] * 3
    assert any("died" in w for w in rows[1]["warnings"])
    for name in CLIPS:
        _assert_same_video(out / f"{name}.mp4", local_outputs / f"{name}.mp4")
    _no_temp_files(out)
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4", "c.mp4"]


def test_without_ray_one_line_error(setup, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from cmet_cli.cli import main; "
            f"sys.argv = ['cmet', 'edit', {str(setup['inputs'])!r}, '-o', {str(tmp_path)!r}, '--preset', 'happy', "
            "'--executor', 'ray']; main()")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"error: {distributed.INSTALL_HINT}"]
    assert "pip install 'cmet-cli[ray]'" in run.stderr and not list(tmp_path.iterdir())


def test_worker_shape():
    shape = ray_workers.worker_shape
    assert shape(None, None, {"CPU": 64, "GPU": 8}, [32, 32], 1000) == ray_workers.WorkerShape(8, 1.0, 1.0)
    assert shape(None, 0.5, {"CPU": 64, "GPU": 8}, [64], 1000).count == 16
    assert shape(None, None, {"CPU": 16}, [16], 1000) == ray_workers.WorkerShape(4, 4.0, 0.0)
    assert shape(2, None, {"CPU": 2}, [2], 3) == ray_workers.WorkerShape(2, 1.0, 0.0)
    assert shape(None, None, {"CPU": 64, "GPU": 8}, [64], 3).count == 3  # never more workers than files
    assert shape(4, None, {"CPU": 48}, [16, 16, 16], 100).cpus == 12.0
    assert shape(2, None, {"CPU": 48}, [16, 16, 16], 100).cpus == 16.0  # fits a node
    with pytest.raises(UsageError, match="no GPUs"):
        shape(None, 1, {"CPU": 8}, [8], 10)


def test_ray_options_need_the_ray_executor():
    with pytest.raises(UsageError, match="--workers: only with --executor ray"):
        distributed.config_from_cli("local", None, 4, None, None, 1)
    with pytest.raises(UsageError, match="--workers"):
        distributed.config_from_cli("ray", None, None, None, None, 4)
    with pytest.raises(UsageError, match="--max-retries"):
        distributed.config_from_cli("ray", None, None, None, -1, 1)
    assert distributed.config_from_cli("local", None, None, None, None, 4) is None


def test_remove_temp_files_of_one_process(tmp_path):
    output = tmp_path / "talk [1].mp4"
    mine = tmp_path / f"{atomic.temp_prefix(output, 41, atomic.host_tag('node-a'))}0a1b.part"
    others = [tmp_path / f"{atomic.temp_prefix(output, 42, atomic.host_tag('node-a'))}0a1b.part",  # another process
              tmp_path / f"{atomic.temp_prefix(output, 41, atomic.host_tag('node-b'))}0a1b.part"]  # another machine
    for path in (mine, *others):
        path.touch()
    assert atomic.remove_temp_files(output, 41, "node-a") == [mine]
    assert not mine.exists() and all(p.exists() for p in others)


def test_a_worker_edits_with_the_drivers_plan_and_settings(setup, data_dir, tmp_path, monkeypatch):
    """A Ray worker gets the emotion plan (the vectors) and the settings hash from the driver: it looks for
    neither the bank nor emotion2vec (this weights folder has neither), decodes no speech clip, and stamps its
    output with the driver's settings. The worker runs in this process: the same class Ray runs as an actor."""
    import logging

    from cmet_cli import fingerprint, speech
    from cmet_cli.timeline import Keyframe

    def no_decode(path):
        raise AssertionError(f"a worker decoded {path}")

    monkeypatch.setattr(speech, "_decode_speech", no_decode)
    monkeypatch.setenv("CMET_HOME", str(tmp_path / "empty-cache"))  # no installed bank to fall back on
    clip = sorted((data_dir / "speech" / "sad").glob("*.wav"))[0]
    options = replace(setup["options"], preset=None, emotion_speech=(clip,), bank_dir=None)
    vector = np.random.default_rng(0).standard_normal(1024).astype(np.float32)
    plan, settings = [Keyframe(0.0, vector, clip.name, float(np.linalg.norm(vector)))], "5e771e65" * 8
    # the driver's hash, with the detector it assumed (here the fixed --box, as on every node)
    job = batch.Job(setup["inputs"] / "a.mp4", tmp_path / "a.mp4")
    level = logging.getLogger("cmet").level
    try:
        worker = ray_workers.Worker(options, plan, (settings, "box"))
        info = worker.ready([job])
        result = worker.edit(job)
    finally:
        logging.getLogger("cmet").setLevel(level)
    assert info.error is None and result.status == "done", (info, result)
    assert worker.prepared.editor.models.emotion is None  # loaded without the bank and emotion2vec
    assert result.vector_norm == pytest.approx(float(np.linalg.norm(vector)), rel=1e-6)
    stamp = fingerprint.parse(media.container_tags(job.output).get(fingerprint.TAG))
    assert stamp is not None and stamp.settings == settings
