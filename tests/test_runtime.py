"""cmet_cli.runtime: which device, precision, memory layout and batch size a run gets (CUDA and mps patched in)."""
from __future__ import annotations

import logging

import pytest
import torch

from cmet_cli import runtime
from cmet_cli.errors import OptionError
from cmet_cli.runtime import Runtime, default_batch_size, pick_device, pick_dtype, to_channels_last

GiB = 2**30


@pytest.fixture
def machine(monkeypatch):
    """Say which accelerators this machine has: ``machine(cuda=True, mps=False, free=8 * GiB)``."""

    def set_up(cuda: bool = False, mps: bool = False, free: int = 8 * GiB) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 141 * GiB))

    return set_up


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_device_prefers_cuda_then_mps(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert pick_device("auto").type == expected


def test_asked_for_device_that_is_absent(machine):
    machine(cuda=False, mps=False)
    with pytest.raises(OptionError, match="device cuda:1: no CUDA device"):
        pick_device("cuda:1")
    with pytest.raises(OptionError, match="device mps: Apple's Metal backend is not available"):
        pick_device("mps")
    assert pick_device("cpu").type == "cpu"


@pytest.mark.parametrize("precision, device, expected", [
    ("auto", "cuda", torch.bfloat16), ("auto", "cpu", None), ("auto", "mps", None),
    ("fp32", "cuda", None), ("fp16", "cuda", torch.float16),
    ("bf16", "cpu", torch.bfloat16), ("fp16", "cpu", torch.float16),  # honoured on the CPU: what the user asked
])
def test_precision_is_what_was_asked(monkeypatch, precision, device, expected):
    monkeypatch.setattr(runtime, "cpu_has_units", lambda precision: True)
    assert pick_dtype(precision, torch.device(device)) is expected


@pytest.mark.parametrize("units", [True, False])
def test_reduced_precision_without_cpu_units_warns(monkeypatch, caplog, units):
    monkeypatch.setattr(runtime, "cpu_has_units", lambda precision: units)
    with caplog.at_level(logging.WARNING, logger="cmet"):
        assert pick_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ([] if units else ["--precision bf16: this CPU has no bf16 (AVX512-BF16, AMX) units, "
                                        "so the networks run slower than in fp32"])


@pytest.mark.parametrize("free, expected", [(8 * GiB, 45), (100 * GiB, 80), (100 * 2**20, 5), (4 * GiB, 20)])
def test_gpu_batch_from_free_memory(machine, free, expected):
    """Half the free memory at ~90 MB per frame, in whole 5-frame windows, between 5 and 80 frames."""
    machine(cuda=True, free=free)
    assert default_batch_size(torch.device("cuda")) == expected
    assert default_batch_size(torch.device("cpu")) == 5


def test_runtime_says_what_it_chose(machine, monkeypatch):
    machine(cuda=True, free=8 * GiB)
    monkeypatch.setattr(runtime, "cpu_has_units", lambda precision: True)
    gpu = Runtime.build("auto", "auto")
    assert (gpu.device.type, gpu.dtype, gpu.batch_size, gpu.channels_last) == ("cuda", torch.bfloat16, 45, True)
    assert gpu.why.startswith("cuda, bf16 autocast (auto: bf16 autocast on CUDA), channels-last memory")
    cpu = Runtime.build("cpu", "bf16", batch_size=7)  # rounded up to whole 5-frame connector windows
    assert (cpu.dtype, cpu.batch_size, cpu.channels_last) == (torch.bfloat16, 10, True)
    assert "bf16 autocast (--precision bf16)" in cpu.why
    assert cpu.why.endswith("batch 10 (--batch-size 7 rounded up to whole 5-frame connector windows)")
    assert Runtime.build("cpu", "auto", batch_size=15).why.endswith("batch 15")
    machine(cuda=False, mps=True)
    mps = Runtime.build("auto", "auto")
    assert (mps.device.type, mps.dtype, mps.channels_last) == ("mps", None, False)
    machine(cuda=False)
    plain = Runtime.build("auto", "auto")  # fp32 on the CPU stays contiguous: within the golden bounds
    assert (plain.dtype, plain.channels_last) == (None, False) and "contiguous memory" in plain.why


def test_channels_last_moves_every_4d_tensor():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(4, 4))
    conv.register_buffer("grid", torch.zeros(1, 2, 3, 3, 1))  # a 5-D tensor: Module.to(memory_format=) refuses it
    to_channels_last(conv)
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv[0].weight.is_contiguous()  # really re-laid, not a no-op
    assert conv.grid.dim() == 5 and conv[1].weight.is_contiguous()
