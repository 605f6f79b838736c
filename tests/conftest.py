"""Shared fixtures: the test media and golden files live in ../shared, never in the repository."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__import__("os").environ.get("CMET_SHARED", ROOT.parent / "shared"))
GOLDEN = SHARED / "golden"
DATA = SHARED / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared test media/golden files sit beside the checkout in CI")
    return path


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return _need(GOLDEN)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(DATA)


@pytest.fixture(scope="session")
def seeded(golden_dir: Path):
    """The `seeded_weights` module of ../shared/golden (stand-in weights rebuilt from manifests)."""
    spec = importlib.util.spec_from_file_location("seeded_weights", golden_dir / "seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["seeded_weights"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def small_weights(tmp_path_factory, golden_dir: Path) -> Path:
    """Stand-in checkpoints of the small configuration (64² generator, full connector), written once per session."""
    from cli_support import standin_weights

    return standin_weights(tmp_path_factory)
