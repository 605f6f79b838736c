"""`cmet edit` end to end: the real CLI, full-size networks with stand-in weights, on a 720p composite.

With stand-in weights the rendered face is noise: this checks the mechanics, not beauty.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cmet_cli import media

from .clips import face_clip
from .media_checks import audio_packets
from .standin import write_weights

OFFSET = (600, 200)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("e2e")
    return {
        "clip": face_clip(root / "talk 720p.mp4", canvas="1280x720", offset=OFFSET, rate=25, seconds=1.0),
        "weights": write_weights(root / "weights", size=256),
        "bank": data_dir / "features",
        "root": root,
    }


@pytest.mark.parametrize("device", [pytest.param("cpu", marks=pytest.mark.cascade), pytest.param("cuda", marks=pytest.mark.cuda)])
def test_edit_full_size_end_to_end(setup, device):
    """The whole edit through the CLI. On CUDA with ``--box`` (CUDA images often carry OpenCV 5, which has no
    cascade, and the YuNet model cannot be fetched there): the detector is not what the CUDA run checks."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
    out = setup["root"] / f"out-{device}" / "edited.mp4"
    faces = ["--detector", "cascade"] if device == "cpu" else ["--box", f"{OFFSET[0]},{OFFSET[1]},256,256"]
    cmd = [sys.executable, "-m", "cmet_cli", "edit", str(setup["clip"]), "-o", str(out), "--preset", "sarcastic",
           "--weights-dir", str(setup["weights"]), "--bank", str(setup["bank"]), *faces, "--device", device, "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CMET_HOME": str(setup["root"] / "home")})
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout.strip().splitlines()[-1])
    assert row["status"] == "done" and row["frames"] == 25 and row["face_frames"] == 25
    assert row["code_change"] > 0 and row["vector_norm"] > 1

    src, dst = media.probe(setup["clip"]), media.probe(out)
    assert (dst.frame_count, dst.width, dst.height, dst.fps) == (src.frame_count, src.width, src.height, src.fps)
    assert audio_packets(out) == audio_packets(setup["clip"])
    assert not list(out.parent.glob(".*.part"))

    a = np.stack(list(media.read_frames(src))).astype(np.float32)
    b = np.stack(list(media.read_frames(dst))).astype(np.float32)
    x0, y0 = OFFSET
    far = np.ones(a.shape[1:3], bool)
    far[y0 - 80:y0 + 256 + 80, x0 - 80:x0 + 256 + 80] = False  # well outside the face crop and its feathering
    assert np.abs(a[:, far] - b[:, far]).mean() < 1.0  # unchanged up to the H.264 re-encode
    face = (slice(None), slice(y0 + 80, y0 + 180), slice(x0 + 80, x0 + 180))
    assert np.abs(a[face] - b[face]).mean() > 10.0  # the face itself was re-rendered


def test_bf16_autocast_on_the_cpu(tmp_path, small_weights):
    """``--precision bf16`` on the CPU runs the networks under bf16 autocast (what CUDA runs by default): codes,
    connector directions, rendered faces and paste-back must all accept bf16 tensors, so that a dtype mismatch
    fails here rather than on a user's GPU."""
    import torch

    from cmet_cli import pipeline
    from cmet_cli.models import load_models
    from cmet_cli.options import EditOptions

    from .cli_support import BANK, BOX

    options = EditOptions(preset="happy", weights_dir=small_weights, bank_dir=BANK, device="cpu", precision="bf16",
                          box=tuple(int(v) for v in BOX[1].split(",")))
    models = load_models(options)
    assert models.dtype is torch.bfloat16  # asked for, so used (it was silently replaced by fp32 once)
    dtypes: list[torch.dtype | None] = []  # the autocast dtype in force at each render call
    render = models.generator.render

    def recording_render(*args, **kwargs):
        dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return render(*args, **kwargs)

    models.generator.render = recording_render
    clip = face_clip(tmp_path / "in.mp4", seconds=0.5)  # 5 frames: one connector window
    out = tmp_path / "out.mp4"
    result = pipeline.Editor(options, models=models).edit(clip, out)

    assert dtypes and set(dtypes) == {torch.bfloat16}  # the networks really ran under bf16 autocast
    assert (result.status, result.frames, result.face_frames) == ("done", 5, 5)
    assert result.code_change is not None and np.isfinite(result.code_change) and result.code_change > 0
    assert media.probe(out).frame_count == 5
