"""Where and how the networks run: one ``Runtime(device, dtype, batch_size)``, built once per run."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import OptionError

if TYPE_CHECKING:
    import torch

log = logging.getLogger("cmet")

WINDOW = 5  # frames per connector window: batches are a multiple of it
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N


def is_device_name(name: str) -> bool:
    return name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit())


@dataclass(frozen=True)
class Runtime:
    """The device, the autocast dtype (None: plain fp32) and the frames per network batch of a run."""

    device: torch.device
    dtype: torch.dtype | None
    batch_size: int

    @classmethod
    def build(cls, device: str = "auto", precision: str = "auto", batch_size: int | None = None,
              picked: torch.device | None = None) -> "Runtime":
        """From the options' ``device``/``precision``/``batch_size`` (the batch size from free memory when
        None, so build it after the models are on the device). ``picked``: a device already chosen."""
        where = picked if picked is not None else pick_device(device)
        return cls(where, pick_dtype(precision, where), batch_size or default_batch_size(where))


def pick_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("{device} {value}: no CUDA device is available (see `cmet doctor`)", value=name)
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise OptionError("{device} mps: Apple's Metal backend is not available")
    return torch.device(name)


def pick_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    import torch

    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision != "fp32" and device.type == "cpu":
        log.info("%s on the CPU is slower than fp32; using fp32", precision)
        return None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def default_batch_size(device: torch.device) -> int:
    """Frames per batch: 5 on the CPU; on a GPU from free memory (~90 MB per frame in bf16 at 256²)."""
    import torch

    if device.type != "cuda":
        return WINDOW
    free, _ = torch.cuda.mem_get_info(device)
    frames = int(0.5 * free / (90 * 2**20))
    return max(WINDOW, min(80, frames // WINDOW * WINDOW))
