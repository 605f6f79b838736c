"""Where and how the networks run: one ``Runtime(device, dtype, batch_size)``, built once per run."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import OptionError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("cmet")

WINDOW = 5  # frames per connector window: batches are a multiple of it
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N


def is_device_name(name: str) -> bool:
    return name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit())


@dataclass(frozen=True)
class Runtime:
    """The device, the autocast dtype (None: plain fp32), the frames per network batch, and whether the
    networks' 4-D tensors are kept channels-last, of a run; ``why``: how they were chosen, in words."""

    device: torch.device
    dtype: torch.dtype | None
    batch_size: int
    channels_last: bool = False
    why: str = ""

    @classmethod
    def build(cls, device: str = "auto", precision: str = "auto", batch_size: int | None = None,
              picked: torch.device | None = None) -> "Runtime":
        """From the options' ``device``/``precision``/``batch_size`` (the batch size from free memory when
        None, so build it after the models are on the device). ``picked``: a device already chosen."""
        where = picked if picked is not None else pick_device(device)
        dtype = pick_dtype(precision, where)
        batch = whole_windows(batch_size) if batch_size else default_batch_size(where)  # the networks' batch
        layout = prefers_channels_last(where, dtype)
        asked = "" if batch == batch_size else " (default)" if not batch_size else \
            f" (--batch-size {batch_size} rounded up to whole {WINDOW}-frame connector windows)"
        why = (f"{where}, {dtype_name(dtype)} ({precision_reason(precision, where)}), "
               f"{'channels-last' if layout else 'contiguous'} memory ({layout_reason(where, dtype)}), "
               f"batch {batch}{asked}")
        return cls(where, dtype, batch, layout, why)


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
    """The autocast dtype, or None for plain fp32: what ``precision`` asks for (``auto``: bf16 on CUDA, else
    fp32). A reduced precision on a CPU without units for it is used all the same, with a warning."""
    import torch

    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision != "fp32" and device.type == "cpu" and not cpu_has_units(precision):
        log.warning("--precision %s: this CPU has no %s units, so the networks run slower than in fp32",
                    precision, "bf16 (AVX512-BF16, AMX)" if precision == "bf16" else "fp16 (AVX512-FP16, AMX-FP16)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def cpu_has_units(precision: str) -> bool:
    """Whether this CPU computes ``bf16``/``fp16`` natively (oneDNN's own test: AVX512-BF16/AMX, AVX512-FP16)."""
    import torch

    test = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}.get(precision)
    probe = getattr(torch.ops.mkldnn, test, None) if test else None
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def precision_reason(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return f"--precision {precision}"
    if device.type == "cuda":
        return "auto: bf16 autocast on CUDA"
    return ("auto: fp32 off CUDA; --precision bf16 is faster on CPUs with bf16 units, but its effect on the real "
            "weights' images is unchecked there")


def prefers_channels_last(device: torch.device, dtype: torch.dtype | None) -> bool:
    """Channels-last memory for the convolutions: on CUDA, and on the CPU under bf16/fp16 autocast (the generator at
    batch 5, 256², on a 2-core Intel Xeon: bf16 channels-last 1.49x and 1.63x the speed of fp32 contiguous, bf16
    contiguous 1.15x and 1.29x; ``python -m benchmarks.cpu_layouts``, benchmarks/RESULTS.md). Not for fp32 on the
    CPU: no consistent gain there (0.96x and 1.41x in two runs under load), and it moves the golden image past its
    cross-machine bound (max|Δ| 2.45e-3·s against 2e-3·s). Not on Apple's mps (not measured)."""
    return device.type == "cuda" or (device.type == "cpu" and dtype is not None)


def layout_reason(device: torch.device, dtype: torch.dtype | None) -> str:
    if device.type == "cuda":
        return "faster for the convolutions on CUDA"
    if device.type == "cpu":
        return ("faster for reduced-precision convolutions" if dtype is not None
                else "fp32 gains nothing consistent from channels-last, which moves its results past the golden bounds")
    return f"channels-last not measured on {device.type}"


def dtype_name(dtype: torch.dtype | None) -> str:
    import torch

    return {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[dtype]


def to_channels_last(module: nn.Module) -> nn.Module:
    """``module`` with its 4-D parameters and buffers in channels-last memory (``Module.to(memory_format=)``
    refuses modules that hold tensors of other ranks, as the generator's does)."""
    import torch

    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return module


def whole_windows(frames: int, window: int = WINDOW) -> int:
    """A batch size of whole windows: ``frames`` rounded up to a multiple of ``window`` (at least one; the
    connector's 5 by default). Batches start at multiples of it, so no window straddles two batches and the edit
    does not depend on the size."""
    return max(window, -(-frames // window) * window)


def default_batch_size(device: torch.device) -> int:
    """Frames per batch: 5 on the CPU; on a GPU from free memory (~90 MB per frame in bf16 at 256²)."""
    import torch

    if device.type != "cuda":
        return WINDOW
    free, _ = torch.cuda.mem_get_info(device)
    frames = int(0.5 * free / (90 * 2**20))
    return max(WINDOW, min(80, frames // WINDOW * WINDOW))
