"""Regenerate or check the golden files in ``tests/data/golden`` with the reference implementations.

Each case builds the *reference* module (not cmet's), loads the seeded stand-in weights (``tests/seeded.py``: the
manifest's keys drawn by the documented rule, fixed buffers taken from the committed ``.npz``), feeds it the inputs
stored in the committed ``.npz`` and either writes a new ``.npz`` or compares with the committed one:

    python tools/golden/golden.py --case emotion2vec --check
    python tools/golden/golden.py --case connector --cmet-repo ../C-MET --check
    python tools/golden/golden.py --case edtalk --edtalk-repo ../EDTalk --out /tmp/golden

Cases and what they need (``tests/data/golden/README.md`` has the exact commands and what was run):

    edtalk       EDTalk's ``networks.generator.Generator``   --edtalk-repo DIR (holding networks/generator.py)
    connector    C-MET's ``src/connector.py`` Connector_exp  --cmet-repo DIR (C-MET at bd384ac, configs/inference.yaml)
    emotion2vec  FunASR's Emotion2vec (pip funasr==1.4.16)   nothing else

``--check`` prints one line per array, ``max|Δ|`` between the reference's output and the committed value, and
exits 1 if an array is missing or has another shape, or (with ``--tol``) if a ``max|Δ|`` is above ``--tol``.
``--out DIR`` writes ``DIR/<case>.npz``: the committed inputs and buffers, the reference's outputs. It never
writes over the committed file it reads (write elsewhere, compare, then copy).

Not part of the installed package or of ``make test``; run it in an environment that has the reference's
dependencies (torch, numpy; funasr for emotion2vec; PyYAML for the connector's config).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator, Mapping

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden"


@dataclass(frozen=True)
class Case:
    """One golden file: which stored arrays the reference is fed and which it computes."""

    name: str  # file stem in tests/data/golden
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


CASES: dict[str, Case] = {
    # The render is fed the stored codes/lip and codes/pose (as cmet's tests feed them), so its check does not
    # depend on the encoder's rounding.
    "edtalk": Case("edtalk_generator", ("frames", "render/source", "codes/lip", "codes/pose", "render/exp"),
                   ("codes/exp", "codes/pose", "codes/lip", "render/image")),
    "connector": Case("cmet_connector", ("forward/ref", "forward/e2v", "forward/neutral", "rollout/neutral",
                                         "rollout/e2v"),
                      ("forward/out", "rollout/edited")),
    "emotion2vec": Case("emotion2vec_plus_large", ("wave/0", "wave/1"),
                        ("frames/0", "embedding/0", "frames/1", "embedding/1")),
}

BUFFER = "buffer/"


# ------------------------------------------------------------------ the golden file


def read_golden(path: Path) -> dict[str, np.ndarray]:
    """Every array of a golden ``.npz``, in its stored order."""
    with np.load(path) as stored:
        return {name: stored[name].copy() for name in stored.files}


def buffers(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The fixed buffers, keyed by their state-dict key (without the ``buffer/`` prefix)."""
    return {name[len(BUFFER):]: a for name, a in arrays.items() if name.startswith(BUFFER)}


def case_inputs(case: Case, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The stored arrays the reference is fed; a missing one is an error naming it."""
    missing = [name for name in case.inputs if name not in arrays]
    if missing:
        raise SystemExit(f"error: {case.name}.npz lacks the input array(s) {', '.join(missing)}")
    return {name: arrays[name] for name in case.inputs}


@dataclass(frozen=True)
class Delta:
    """How one regenerated array compares with the stored one."""

    name: str
    shape: tuple[int, ...]
    max_abs: float | None  # None: missing on one side or shapes differ
    note: str = ""


def compare(new: Mapping[str, np.ndarray], stored: Mapping[str, np.ndarray]) -> list[Delta]:
    """max|Δ| per array of ``new`` against ``stored`` (same name), as float64."""
    deltas = []
    for name, array in new.items():
        if name not in stored:
            deltas.append(Delta(name, tuple(array.shape), None, "not in the committed file"))
        elif stored[name].shape != array.shape:
            deltas.append(Delta(name, tuple(array.shape), None, f"shape differs: committed {stored[name].shape}"))
        else:
            diff = np.abs(array.astype(np.float64) - stored[name].astype(np.float64))
            deltas.append(Delta(name, tuple(array.shape), float(diff.max()) if diff.size else 0.0))
    return deltas


def format_delta(delta: Delta) -> str:
    value = "-" if delta.max_abs is None else f"{delta.max_abs:.3g}"
    return f"{delta.name:48s} {str(delta.shape):18s} max|Δ| {value}" + (f"  ({delta.note})" if delta.note else "")


def merged(stored: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The stored file with its outputs replaced, in the stored order (new names at the end)."""
    result = {name: outputs.get(name, array) for name, array in stored.items()}
    result.update({name: array for name, array in outputs.items() if name not in result})
    return result


def write_npz(arrays: Mapping[str, np.ndarray], target: Path, overwrite: bool) -> None:
    """Write ``arrays`` to ``target`` through a temporary file in the same folder, renamed into place."""
    if target.exists() and not overwrite:
        raise SystemExit(f"error: {target} exists: pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary name only
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ weights


def _load_by_path(name: str, path: Path) -> ModuleType:
    """Import one Python file under ``name`` without touching sys.path."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeded_state_dict(case: Case, golden_dir: Path, stored: Mapping[str, np.ndarray]) -> dict:
    """The stand-in weights of a case: ``tests/seeded.py``'s rule over the manifest, buffers from ``stored``."""
    import json

    import torch

    seeded = _load_by_path("cmet_seeded_rule", ROOT / "tests" / "seeded.py")
    manifest = json.loads((golden_dir / f"{case.name}.json").read_text())
    state = {key: seeded.seeded_tensor(key, entry["shape"], entry["std"]) for key, entry in manifest.items()}
    for key, array in buffers(stored).items():
        state[key] = torch.from_numpy(array.copy())
    return state


def load_weights(module, state: dict) -> dict[str, np.ndarray]:
    """Load ``state`` strictly into ``module``; return the module's own values of the buffers ``state`` replaces."""
    own = {key: value.detach().cpu().numpy().copy() for key, value in module.state_dict().items()}
    module.load_state_dict(state, strict=True)
    module.eval()
    return own


# ------------------------------------------------------------------ EDTalk


@contextlib.contextmanager
def cuda_calls_stay_on_cpu() -> Iterator[None]:
    """EDTalk's ToFlow builds its sampling grid with a hard-coded ``.cuda()``; without CUDA, keep it on the CPU."""
    import torch

    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


def edtalk_generator(repo: Path):
    """``networks.generator.Generator`` of an EDTalk checkout, built as C-MET's inference.py builds it."""
    if not (repo / "networks" / "generator.py").is_file():
        raise SystemExit(f"error: {repo} holds no networks/generator.py: pass an EDTalk checkout as --edtalk-repo")
    sys.path.insert(0, str(repo))
    from networks.generator import Generator  # the reference's own module

    # configs/inference.yaml of C-MET (pretrained_EDTalk): size 256, style 512, lip 20, pose 6, exp 10, multiplier 1
    return Generator(256, style_dim=512, lip_dim=20, pose_dim=6, exp_dim=10, channel_multiplier=1)


def edtalk_outputs(gen, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Codes of ``frames`` and the image rendered from ``render/source`` with the stored lip/pose and new exp codes.

    Codes: ``head(gen.fc(wa))`` with ``wa`` the appearance latent of ``gen.enc.net_app`` (as in the generator's
    test_EDTalk_* methods). Render: the steps of ``Generator.test_EDTalk_A_use_exp_weight`` with the pose given as
    a code: alpha = (lip, pose, exp), ``direction_exp`` for the latent shift and ``get_exp_latent`` for the
    expression feature, then ``gen.dec(wa_source + shift, feats_source, e)``.
    """
    import torch

    t = {name: torch.from_numpy(array) for name, array in inputs.items()}
    with torch.no_grad(), cuda_calls_stay_on_cpu():
        wa, _ = gen.enc.net_app(t["frames"])
        shared = gen.fc(wa)
        codes = {"codes/exp": gen.exp_fc(shared), "codes/pose": gen.pose_fc(shared), "codes/lip": gen.lip_fc(shared)}
        wa_source, feats = gen.enc.net_app(t["render/source"])
        alpha = torch.cat([t["codes/lip"], t["codes/pose"], t["render/exp"]], dim=-1)
        shared_out = gen.direction_exp.get_shared_out(alpha, gen.direction_lipnonlip.weight)
        e = gen.direction_exp.get_exp_latent(shared_out)
        shift = gen.direction_exp(alpha, gen.direction_lipnonlip.weight)
        image = gen.dec(wa_source + shift, feats, e)
    return {name: value.numpy() for name, value in {**codes, "render/image": image}.items()}


# ------------------------------------------------------------------ C-MET connector


def cmet_connector(repo: Path):
    """``Connector_exp`` of a C-MET checkout, configured by its ``configs/inference.yaml``."""
    source, config_path = repo / "src" / "connector.py", repo / "configs" / "inference.yaml"
    for path in (source, config_path):
        if not path.is_file():
            raise SystemExit(f"error: {repo} holds no {path.relative_to(repo)}: pass a C-MET checkout as --cmet-repo")
    import yaml

    config = yaml.safe_load(config_path.read_text())
    connector = _load_by_path("cmet_reference_connector", source)
    return connector.Connector_exp(config["projector_kwargs"], config["transformer_kwargs"], "cpu")


Step = Callable[..., object]


def rollout(step: Step, neutral, e2v, window: int = 5):
    """C-MET inference.py's loop: windows of ``window`` frames, the first reference zeros, each next reference the
    previous window's predicted direction; edited = neutral + direction. ``neutral`` (1, N, 10), ``e2v`` (1, 1, D);
    returns (N - N % window, 10). ``step(ref, e2v, neutral)`` returns the directions (or a tuple led by them)."""
    import torch

    length = neutral.shape[1] - neutral.shape[1] % window
    reference = torch.zeros((1, window, neutral.shape[2]), dtype=neutral.dtype)
    edited = []
    for start in range(0, length, window):
        codes = neutral[:, start:start + window, :]
        out = step(reference, e2v, codes)
        direction = out[0] if isinstance(out, tuple) else out
        edited.append(codes.squeeze(0) + direction)
        reference = direction.unsqueeze(0)
    return torch.cat(edited, dim=0)


def connector_outputs(connector, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    t = {name: torch.from_numpy(array) for name, array in inputs.items()}
    with torch.no_grad():
        forward, _ = connector(t["forward/ref"], t["forward/e2v"], t["forward/neutral"])
        edited = rollout(connector, t["rollout/neutral"], t["rollout/e2v"])
    return {"forward/out": forward.numpy(), "rollout/edited": edited.numpy()}


# ------------------------------------------------------------------ emotion2vec


def model_conf(config: Mapping[str, object]) -> dict:
    """FunASR's nested ``model_conf`` from the flat ``emotion2vec_plus_large.config.json``.

    Keys ``modalities.audio.*`` nest; provenance and derived entries (versions, class, ``derived.*``, ``std.*``,
    ``manifest_*``, notes) are not configuration and are left out.
    """
    skip_prefixes = ("derived.", "std.", "manifest_")
    skip = {"funasr_version", "torch_version", "module_class", "vocab_size", "inputs", "preprocessing", "note"}
    conf: dict = {}
    for key, value in config.items():
        if key in skip or key.startswith(skip_prefixes):
            continue
        node = conf
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return conf


def emotion2vec_model(golden_dir: Path):
    import json

    from funasr.models.emotion2vec.model import Emotion2vec

    config = json.loads((golden_dir / "emotion2vec_plus_large.config.json").read_text())
    return Emotion2vec(model_conf=model_conf(config), vocab_size=config.get("vocab_size", -1))


def emotion2vec_outputs(model, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """As ``Emotion2vec.inference`` does per clip: layer_norm over the whole wave, ``extract_features`` (no padding
    mask, no masking, extra tokens removed), frames = that output, embedding = their mean."""
    import torch
    import torch.nn.functional as F

    outputs = {}
    for name, wave in inputs.items():
        index = name.split("/", 1)[1]
        source = torch.from_numpy(wave)
        with torch.no_grad():
            if model.cfg.normalize:
                source = F.layer_norm(source, source.shape)
            frames = model.extract_features(source.view(1, -1), padding_mask=None)["x"].squeeze(0).numpy()
        outputs[f"frames/{index}"] = frames
        outputs[f"embedding/{index}"] = np.mean(frames, axis=0)
    return outputs


# ------------------------------------------------------------------ command line


def reference(case_key: str, args: argparse.Namespace):
    """(module, function computing the outputs) of a case."""
    if case_key == "edtalk":
        if args.edtalk_repo is None:
            raise SystemExit("error: --case edtalk needs --edtalk-repo DIR (an EDTalk checkout)")
        return edtalk_generator(args.edtalk_repo), edtalk_outputs
    if case_key == "connector":
        if args.cmet_repo is None:
            raise SystemExit("error: --case connector needs --cmet-repo DIR (a C-MET checkout)")
        return cmet_connector(args.cmet_repo), connector_outputs
    return emotion2vec_model(args.golden_dir), emotion2vec_outputs


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    case = CASES[args.case]
    stored_path = args.golden_dir / f"{case.name}.npz"
    needed = [stored_path, args.golden_dir / f"{case.name}.json"]
    if args.case == "emotion2vec":
        needed.append(args.golden_dir / "emotion2vec_plus_large.config.json")
    for path in needed:
        if not path.is_file():
            raise SystemExit(f"error: {path} does not exist (--golden-dir must hold the committed golden files)")
    stored = read_golden(stored_path)
    inputs = case_inputs(case, stored)
    module, compute = reference(args.case, args)
    own = load_weights(module, seeded_state_dict(case, args.golden_dir, stored))
    outputs = compute(module, inputs)
    print(f"{case.name}: reference {type(module).__module__}.{type(module).__qualname__}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    deltas = compare(outputs, stored)
    own_buffers = {BUFFER + key: own[key] for key in buffers(stored) if key in own}
    buffer_deltas = [Delta(d.name, d.shape, d.max_abs, "the module's own buffer vs the committed one")
                     for d in compare(own_buffers, stored)]
    for delta in deltas + buffer_deltas:
        print(format_delta(delta))
    if args.check:
        broken = [d for d in deltas if d.max_abs is None or (args.tol is not None and d.max_abs > args.tol)]
        return 1 if broken else 0
    target = args.out / f"{case.name}.npz"
    if target.resolve() == stored_path.resolve():
        raise SystemExit(f"error: {target} is the file the inputs are read from: write elsewhere, then copy")
    write_npz(merged(stored, outputs), target, args.overwrite)
    print(f"wrote {target}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", required=True, choices=sorted(CASES))
    parser.add_argument("--edtalk-repo", type=Path, help="an EDTalk checkout (holding networks/generator.py)")
    parser.add_argument("--cmet-repo", type=Path, help="a C-MET checkout (holding src/connector.py)")
    parser.add_argument("--golden-dir", type=Path, default=GOLDEN, help="where the committed files are (%(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="compare with the committed file, print max|Δ| per array")
    mode.add_argument("--out", type=Path, help="write DIR/<case>.npz")
    parser.add_argument("--tol", type=float, help="with --check: exit 1 if an output's max|Δ| is above this")
    parser.add_argument("--overwrite", action="store_true", help="with --out: replace an existing file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
