"""Reading checkpoint files safely: tensors only (``weights_only=True``), clear errors.

The networks know nothing of files; this module turns a file into a state dict.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .errors import WeightsError


def unsafe_what(torch_message: str) -> str:
    """What torch found in a refused checkpoint (`` (GLOBAL name)``), without torch's advice, which
    suggests loading the file with ``weights_only=False`` (running whatever it holds): cmet never says that."""
    found = re.search(r"GLOBAL ([\w.]+)", torch_message)
    return f" ({found.group(1)})" if found else ""


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
LFS_POINTER = b"version https://git-lfs"


def not_a_checkpoint(path: Path) -> str | None:
    """Why a file cannot be a PyTorch checkpoint, from its first bytes (None when it may be one): empty, a Git LFS
    pointer in place of the file, or neither a zip archive nor a pickle (which starts with the PROTO opcode)."""
    with open(path, "rb") as fh:
        head = fh.read(32)
    if not head:
        return "the file is empty"
    if head.startswith(LFS_POINTER):
        return "it is a Git LFS pointer, not the file it points to (fetch it with `git lfs pull`)"
    if not (head.startswith(ZIP_MAGIC) or head[:1] == b"\x80"):
        return f"it is not a PyTorch checkpoint (it starts with {head[:12]!r})"
    return None


def read_checkpoint(path: str | Path, key: str | None = None, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with ``torch.load(weights_only=True)`` and return ``ckpt[key]`` (or the whole dict).

    A file holding pickled objects other than tensors and plain containers is refused.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path} (run `cmet download-weights` or pass --weights-dir)")
    if (problem := not_a_checkpoint(path)) is not None:
        raise WeightsError(f"cannot read checkpoint {path}: {problem} (re-run `cmet download-weights`)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"refusing to load {path}: it contains pickled objects other than tensors"
                           f"{unsafe_what(str(exc))}; it is not loaded (only tensors are trusted)") from exc
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes the unpickler raise (KeyError, IndexError...)
        reason = str(exc).strip() or type(exc).__name__
        raise WeightsError(f"cannot read checkpoint {path}: {reason} (the file may be truncated; re-run "
                           "`cmet download-weights`)") from exc
    if key is not None:
        if not isinstance(ckpt, dict) or key not in ckpt:
            have = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
            raise WeightsError(f"checkpoint {path} has no entry {key!r} (it has {have})")
        ckpt = ckpt[key]
    if not isinstance(ckpt, dict):
        raise WeightsError(f"checkpoint {path} does not hold a state dict")
    return ckpt
