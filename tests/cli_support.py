"""Helpers for the CLI tests (tests/test_batch.py, tests/test_bad_input.py): tiny generated clips,
the small stand-in model built once per session, and `cmet` run in-process or as a subprocess.

In-process runs share the loaded networks between invocations (``cached_models``): loading costs
seconds, and every run still goes through the real CLI, batch runner, pipeline and networks.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from cmet_cli import media
from cmet_cli.models import Models, load_models
from cmet_cli.options import EditOptions

from .clips import SAMPLE, ffmpeg

ROOT = Path(__file__).resolve().parents[1]
BANK = SAMPLE.parents[1] / "features"
BG = "color=c=0x5a6470:s={canvas}:r={rate}[bg]"


# ---------------------------------------------------------------- clips

def face_clip(path: Path, *, seconds: float = 0.3, rate: int = 10, canvas: str = "384x288", offset: tuple[int, int] = (64, 16),
              audio: bool = True, until: float | None = None) -> Path:
    """The MEAD sample's face in a small frame, at a low rate (0.3 s = 3 frames); ``until``: the face leaves then."""
    enable = f":enable='lt(t,{until})'" if until is not None else ""
    graph = (BG.format(canvas=canvas, rate=rate) + f";[0:v]fps={rate}[fg];"
             f"[bg][fg]overlay={offset[0]}:{offset[1]}:shortest=1{enable},format=yuv420p[v]")
    args = ["-i", str(SAMPLE), "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-crf", "12"]
    args += ["-map", "0:a", "-c:a", "aac"] if audio else ["-an"]
    ffmpeg(*args, "-t", str(seconds), str(path))
    return path


def two_faces_clip(path: Path, *, seconds: float = 0.3) -> Path:
    """A big face (box about x 0–256) and a small one (x 300–460) side by side."""
    graph = (BG.format(canvas="480x288", rate=10) + ";[0:v]fps=10,split[a][b];[b]scale=160:160[s];"
             "[bg][a]overlay=0:16:shortest=1[t];[t][s]overlay=300:60,format=yuv420p[v]")
    ffmpeg("-i", str(SAMPLE), "-filter_complex", graph, "-map", "[v]", "-an", "-c:v", "libx264", "-crf", "12",
           "-t", str(seconds), str(path))
    return path


def pattern_clip(path: Path, *, size: str = "160x120", rate: str = "10", seconds: float = 0.3, audio: bool = True,
                 pix_fmt: str = "yuv420p", extra: Sequence[str] = ()) -> Path:
    """testsrc2 (no face in it), with a tone unless ``audio`` is False."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}", "-c:a", "aac", "-shortest"]
    ffmpeg(*args, "-c:v", "libx264", "-pix_fmt", pix_fmt, *extra, str(path))
    return path


def frames(path: Path) -> np.ndarray:
    info = media.probe(path)
    return np.stack([f.astype(np.int16) for f in media.read_frames(info)])


def leftovers(folder: Path) -> list[str]:
    """Temporary files a run left behind (there must be none)."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part"))


# ---------------------------------------------------------------- weights and models

def standin_weights(tmp_path_factory) -> Path:
    """The 64² generator and the full connector in the official formats, written once per session."""
    from .standin import write_weights

    root = tmp_path_factory.getbasetemp() / "standin-64"
    if not (root / ".complete").exists():
        write_weights(root, size=64)
        (root / ".complete").touch()
    return root


_MODELS: dict[tuple, Models] = {}
LOADS: list[EditOptions] = []  # every load an in-process run asked for (``fast_models`` shows a test its own)


def cached_models(options: EditOptions) -> Models:
    """``models.load_models``, memoised on what decides the networks (failures are not cached)."""
    key = (str(options.weights_dir), str(options.bank_dir), options.device, options.precision)
    if key not in _MODELS:
        _MODELS[key] = load_models(options)
    return _MODELS[key]


def shared_models(options: EditOptions) -> Models:
    """The loader ``cmet`` hands to the runner: records the request, then ``cached_models``."""
    LOADS.append(options)
    return cached_models(options)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("warning:")]


def model_args(weights: Path, *extra: str) -> list[str]:
    return ["--weights-dir", str(weights), "--bank", str(BANK), "--device", "cpu", *extra]


def cmet(*args: str, env: dict | None = None) -> Run:
    """``cmet ARGS`` in this process (click's runner), sharing loaded networks (``shared_models``); logging and
    signal handlers are restored after."""
    from click.testing import CliRunner

    from cmet_cli.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sigterm, sighup = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    env = {"CMET_WEIGHTS_DIR": None, "COLUMNS": "200", **(env or {})}
    try:
        result = CliRunner().invoke(main, [str(a) for a in args], env=env, obj={"load_models": shared_models},
                                    catch_exceptions=False)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        signal.signal(signal.SIGTERM, sigterm)
        signal.signal(signal.SIGHUP, sighup)
    return Run(result.exit_code, result.stdout, result.stderr)


def assert_one_line_failure(run, *needles: str, code: int = 1) -> str:
    """Exit status ``code``, exactly one ``error:`` line holding every needle, and no traceback."""
    assert run.code == code, run.stderr
    assert "Traceback" not in run.stderr
    errors = run.errors()
    assert len(errors) == 1, run.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll until ``predicate()`` holds while ``proc`` runs (fails the test if it ends first or time runs out)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"cmet ended early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("cmet did not reach the expected point in time")
        time.sleep(0.05)


def cmet_process(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """``cmet ARGS`` as a child process (for signals), stdout/stderr piped."""
    full_env = {k: v for k, v in os.environ.items() if k != "CMET_WEIGHTS_DIR"}
    full_env.update({"PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200", **(env or {})})
    return subprocess.Popen([sys.executable, "-m", "cmet_cli", *map(str, args)], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def fast_models() -> list[EditOptions]:
    """Every model load the test's in-process runs asked for (``cmet`` hands them ``shared_models``)."""
    LOADS.clear()
    return LOADS


BOX = ("--box", "0,0,96,96")  # the face of `face_clip`, so that runs need no detector


@pytest.fixture(scope="session")
def weights(small_weights: Path, data_dir) -> Path:
    return small_weights


@pytest.fixture(scope="module")
def clip(tmp_path_factory, data_dir) -> Path:
    """Three frames of the sample's face, with audio."""
    return face_clip(tmp_path_factory.mktemp("clip") / "talk.mp4")
