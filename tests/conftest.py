"""Shared fixtures. Everything the tests read lives in ``tests/data`` (see its README): a fresh clone
runs every golden test on its own."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from cmet_cli.options import EditOptions

pytest_plugins = ["tests.summary_plugin"]  # the run's last line: what ran, what was skipped and why

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``cascade`` find real faces with OpenCV's Haar cascade: skipped where this OpenCV has none
    (OpenCV 5, common on CUDA images; YuNet's model, which would replace it, cannot be fetched by a test)."""
    import cv2

    if hasattr(cv2, "CascadeClassifier"):
        return
    skip = pytest.mark.skip(reason=f"OpenCV {cv2.__version__} has no Haar cascade: the test finds faces with it")
    for item in items:
        if "cascade" in item.keywords:
            item.add_marker(skip)


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
    from .standin import cached_weights

    return cached_weights(tmp_path_factory.getbasetemp(), size=64)


@pytest.fixture(scope="session")
def speech_weights(tmp_path_factory, small_weights) -> Path:
    """``small_weights`` plus a small stand-in emotion2vec whose embeddings tell clips apart
    (``standin.SMALL_SPEECH``), written once per session."""
    from .standin import cached_speech_weights

    return cached_speech_weights(tmp_path_factory.getbasetemp(), size=64)


@pytest.fixture
def model_loads() -> list[EditOptions]:
    """Every model load the test's in-process ``cmet`` runs asked for (``cli_support.cmet`` hands the runner a
    loader that records each request and shares the networks already loaded)."""
    from .cli_support import LOADS

    LOADS.clear()
    return LOADS


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Three frames of the sample's face (``clips.face_clip``, the face at ``cli_support.BOX``), with audio;
    made once per test module."""
    from .clips import face_clip

    return face_clip(tmp_path_factory.mktemp("clip") / "talk.mp4")


@pytest.fixture(params=[1, None], ids=["1-thread", "default-threads"])
def threads(request):
    """Run a test with one thread and with the machine's default (fp32 reductions split differently)."""
    import torch

    before = torch.get_num_threads()
    if request.param:
        torch.set_num_threads(request.param)
    yield torch.get_num_threads()
    torch.set_num_threads(before)
