"""Stand-ins for end-to-end tests and benchmarks: weights in the official file formats, and a face editor
without networks (``IdentityEditor``).

Full size: the seeded golden weights (``seeded.write_checkpoints``). Small configurations (e.g. a
64² generator, for fast end-to-end runs): the same seeded rule applied to the small network's own
keys and shapes. Compute cost does not depend on weight values.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from cmet_cli import faces

from . import seeded


def cached_weights(cache: Path, size: int) -> Path:
    """Stand-in checkpoints for a generator of ``size``² in ``cache/standin-SIZE``, written once.

    Written into a temporary folder renamed into place, so that a run that is interrupted, or two runs at
    once (benchmarks sharing one cache folder), never see half-written files.
    """
    return _cached_folder(cache / f"standin-{size}", "EDTalk.pt", lambda tmp: write_weights(tmp, size=size))


def _cached_folder(target: Path, marker: str, build) -> Path:
    """``target``, built once by ``build(folder)`` into a temporary folder beside it and renamed into place;
    ``marker``: the file whose presence says it is complete (another run may have renamed it in meanwhile)."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # written meanwhile by another run
            if not (target / marker).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_weights(out: Path, size: int = 256, with_speech: bool = False) -> Path:
    """Write ``EDTalk.pt`` and the connector checkpoint (and emotion2vec if asked) into ``out``."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    names = ["connector"] + (["emotion2vec"] if with_speech else []) + (["edtalk"] if size == 256 else [])
    seeded.write_checkpoints(out, names)
    if size != 256 and not (out / "EDTalk.pt").exists():
        torch.save({"gen": small_generator_state(size)}, out / "EDTalk.pt")
    return out


# emotion2vec at its full width (1024, what the bank and the connector use) but one block of each kind and a
# narrow feature extractor: 9.8 M parameters (39 MB) instead of 1.25 GB. Unlike the full-size stand-in (with
# which speech-derived emotion vectors came out zero, issue 25), it tells clips apart: the six clips of
# tests/data/speech embed 2.8 to 7.2 apart, norms about 26 (tests/test_speech_edits.py checks it).
SMALL_SPEECH = dict(dim=1024, heads=16, extra_tokens=10, prenet_depth=1, depth=1, mlp_hidden=256, conv_channels=64,
                    pos_depth=1, pos_kernel=3, pos_groups=16)


def small_speech_state() -> dict:
    """Seeded weights of the small emotion2vec (``SMALL_SPEECH``): the golden manifest's spreads where keys agree.

    Written as the official plain tensor dict, it loads through ``Emotion2Vec.from_file``, which reads the
    configuration from the shapes."""
    from cmet_cli.speech import Emotion2Vec, Emotion2VecConfig

    spreads = seeded.manifest("emotion2vec_plus_large")
    state = Emotion2Vec(Emotion2VecConfig(**SMALL_SPEECH)).state_dict()
    return {key: seeded.seeded_tensor(key, list(value.shape), spreads.get(key, {}).get("std", 0.02))
            for key, value in state.items()}


def cached_speech_weights(cache: Path, size: int) -> Path:
    """``cached_weights(cache, size)`` plus the small emotion2vec, in ``cache/standin-SIZE-speech`` (written once)."""
    import torch

    base = cached_weights(cache, size)

    def build(tmp: Path) -> None:
        for path in base.iterdir():
            (tmp / path.name).symlink_to(path)
        torch.save(small_speech_state(), tmp / "emotion2vec_plus_large.pt")

    return _cached_folder(cache / f"standin-{size}-speech", "emotion2vec_plus_large.pt", build)


def small_generator_state(size: int) -> dict:
    """Seeded weights for a generator of another size: the golden manifest's spreads where keys agree."""
    from cmet_cli.render import EDTalkGenerator, GeneratorConfig

    spreads = seeded.manifest("edtalk_generator")
    state = EDTalkGenerator(GeneratorConfig(size=size)).state_dict()
    out = {}
    for key, value in state.items():
        if key.endswith(".kernel"):
            out[key] = value.clone()  # fixed blur kernels
        else:
            out[key] = seeded.seeded_tensor(key, list(value.shape), spreads.get(key, {}).get("std", 1.0))
    return out


class IdentityEditor:
    """Returns the crops unchanged: proves the geometry and media path without networks."""

    crop_size = faces.CROP

    def begin(self, reference: np.ndarray, n_frames: int, fps: float, times: np.ndarray | None = None) -> None:
        pass

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray:
        return crops
