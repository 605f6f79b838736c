"""Stand-in weights for end-to-end tests and benchmarks, in the official file formats.

Full size: ``../shared/golden/standin_checkpoints.py`` (the seeded golden weights). Small
configurations (e.g. a 64² generator, for fast end-to-end runs): the same seeded rule applied to the
small network's own keys and shapes. Compute cost does not depend on weight values.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"


def _golden_module(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GOLDEN / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_weights(out: Path, size: int = 256, with_speech: bool = False) -> Path:
    """Write ``EDTalk.pt`` and the connector checkpoint (and emotion2vec if asked) into ``out``."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    _golden_module("seeded_weights")
    writer = _golden_module("standin_checkpoints")
    names = ["connector"] + (["emotion2vec"] if with_speech else [])
    if size == 256:
        names.append("edtalk")
    writer.write(out, names)
    if size != 256 and not (out / "EDTalk.pt").exists():
        torch.save({"gen": small_generator_state(size)}, out / "EDTalk.pt")
    return out


def small_generator_state(size: int) -> dict:
    """Seeded weights for a generator of another size: the golden manifest's spreads where keys agree."""
    from cmet_cli.render import EDTalkGenerator, GeneratorConfig

    seeded = _golden_module("seeded_weights")
    manifest = seeded.load_manifest(GOLDEN / "edtalk_generator.json")
    state = EDTalkGenerator(GeneratorConfig(size=size)).state_dict()
    out = {}
    for key, value in state.items():
        if key.endswith(".kernel"):
            out[key] = value.clone()  # fixed blur kernels
        else:
            std = manifest.get(key, {}).get("std", 1.0)
            out[key] = seeded.seeded_tensor(key, list(value.shape), std)
    return out
