"""Shared fixtures. Everything the tests read lives in ``tests/data`` (see its README): a fresh clone
runs every golden test on its own."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

pytest_plugins = ["tests.summary_plugin"]  # the run's last line: what ran, what was skipped and why

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def seeded() -> ModuleType:
    """The stand-in weight rule (``tests/seeded.py``): weights and golden arrays by case name."""
    from . import seeded as module

    return module


@pytest.fixture(scope="session")
def small_weights(tmp_path_factory) -> Path:
    """Stand-in checkpoints of the small configuration (64² generator, full connector), written once per session."""
    from .cli_support import standin_weights

    return standin_weights(tmp_path_factory)


@pytest.fixture(params=[1, None], ids=["1-thread", "default-threads"])
def threads(request):
    """Run a test with one thread and with the machine's default (fp32 reductions split differently)."""
    import torch

    before = torch.get_num_threads()
    if request.param:
        torch.set_num_threads(request.param)
    yield torch.get_num_threads()
    torch.set_num_threads(before)
