"""Deterministic stand-in weights, rebuilt from the golden manifests in ``tests/data/golden``.

The golden files (see ``tests/data/README.md``) were computed by the reference implementations with
weights that follow one documented rule, so no checkpoint has to be shipped:

- every state-dict entry is drawn from ``torch.Generator().manual_seed(crc32(key))``;
- ``num_batches_tracked`` is zero, ``running_var`` is ``0.5 + U[0, 1)``, ``running_mean`` is ``0.1 * N(0, 1)``;
- other tensors of rank <= 1 are ``base + 0.1 * N(0, 1)`` with base 1 for ``weight`` and 0 otherwise;
- tensors of higher rank are ``std * N(0, 1)``, ``std`` read from the manifest;
- fixed buffers (blur kernels, positional tables) are stored in the ``.npz`` under ``buffer/<key>``.

This module implements that rule for the tests and the benchmark, so neither needs anything outside
the repository. ``write_checkpoints`` writes the files in the official formats and names.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"

# name -> (golden case, official file name, key the state dict sits under in the file; None: the file is the state dict)
CHECKPOINTS: dict[str, tuple[str, str, str | None]] = {
    "edtalk": ("edtalk_generator", "EDTalk.pt", "gen"),
    "connector": ("cmet_connector", "_epoch_2105_checkpoint_step000200000.pth", "state_dict"),
    "emotion2vec": ("emotion2vec_plus_large", "emotion2vec_plus_large.pt", None),
}


def seeded_tensor(key: str, shape: list[int], std: float) -> torch.Tensor:
    """The stand-in value of one state-dict entry: a function of its key, shape and spread only."""
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.long)
    if leaf == "running_var":
        return torch.rand(shape, generator=generator) + 0.5
    if leaf == "running_mean":
        return torch.randn(shape, generator=generator) * 0.1
    if len(shape) <= 1:
        return torch.randn(shape, generator=generator) * 0.1 + (1.0 if leaf == "weight" else 0.0)
    return torch.randn(shape, generator=generator) * std


def manifest(case: str) -> dict[str, dict]:
    """Every state-dict key of the official checkpoint, in order, with its shape and spread."""
    return json.loads((GOLDEN / f"{case}.json").read_text())


def golden_path(case: str) -> Path:
    return GOLDEN / f"{case}.npz"


def golden_state_dict(case: str) -> dict[str, torch.Tensor]:
    """The stand-in weights of a golden case, fixed buffers taken from its ``.npz``."""
    state = {key: seeded_tensor(key, entry["shape"], entry["std"]) for key, entry in manifest(case).items()}
    with np.load(golden_path(case)) as stored:
        for name in stored.files:
            if name.startswith("buffer/"):
                state[name.removeprefix("buffer/")] = torch.from_numpy(stored[name].copy())
    return state


def golden_arrays(case: str) -> dict[str, torch.Tensor]:
    """The reference inputs and outputs of a golden case (everything in its ``.npz`` but buffers)."""
    with np.load(golden_path(case)) as stored:
        return {n: torch.from_numpy(stored[n].copy()) for n in stored.files if not n.startswith("buffer/")}


def write_checkpoints(out: Path, names: Iterable[str]) -> list[Path]:
    """Write stand-in checkpoints in the official formats under their official names (existing files are kept)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        case, filename, key = CHECKPOINTS[name]
        target = out / filename
        if target.exists():
            continue
        state = golden_state_dict(case)
        partial = target.with_name(target.name + ".part")
        torch.save(state if key is None else {key: state}, partial)
        partial.replace(target)
        written.append(target)
    return written
