"""The cost of a second face: one edit of a two-face clip with ``--face 1`` and one with ``--face all``.

    python -m benchmarks.bench_faces [--frames 50] [--size 720p] [--device cpu] [--small-model]

The clip is the MEAD sample and its mirror image side by side (``tests.clips.looped_clip(faces=2)``), looped to
``--frames``; the weights are stand-ins (cost does not depend on their values). Each edit runs through the real
``Editor.edit`` (tracking pass, one decode, the networks, paste-back, one encode); the time spent inside the
generator's and the connector's calls is measured by wrapping them (``network_s``), the rest is the media path
and tracking (``other_s``). All faces share the network batches, so ``network_s`` should about double with two
faces while ``other_s`` stays about the same. Prints one JSON line per run and a summary line.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from .bench_edit import BANK, PRESET, SIZES, default_cache, loadavg, make_clip, parse_size, standin_weights


def timed_networks(models) -> dict[str, float]:
    """Wrap the networks' entry points so that the seconds spent in them add up in the returned dict."""
    import torch

    spent = {"network_s": 0.0}

    def wrap(owner, name: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = inner(*args, **kwargs)
            if models.device.type == "cuda":
                torch.cuda.synchronize(models.device)
            spent["network_s"] += time.perf_counter() - start
            return out

        setattr(owner, name, timed)

    for name in ("encode", "encode_source", "render"):
        wrap(models.generator, name)
    wrap(models.connector, "directions")
    return spent


def run(clip: Path, weights: Path, device: str, face: str) -> dict:
    from cmet_cli import pipeline
    from cmet_cli.models import load_models
    from cmet_cli.options import EditOptions

    options = EditOptions(preset=PRESET, device=device, weights_dir=weights, bank_dir=BANK, detector="cascade",
                          face=face, overwrite=True).validate()
    models = load_models(options)
    spent = timed_networks(models)
    load = loadavg()
    with tempfile.TemporaryDirectory(prefix="cmet-bench-") as tmp:
        start = time.perf_counter()
        result = pipeline.Editor(options, models=models).edit(clip, Path(tmp) / "out.mp4")
        wall = time.perf_counter() - start
    faces = result.faces or []
    return {"face": face, "faces_edited": len(faces), "frames": result.frames, "end_to_end_s": round(wall, 3),
            "network_s": round(spent["network_s"], 3), "other_s": round(wall - spent["network_s"], 3),
            "loadavg_1m": [load, loadavg()]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_faces", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--size", type=parse_size, default=SIZES["720p"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--small-model", action="store_true", help="a 64² generator (the network share shrinks)")
    args = ap.parse_args(argv)
    cache = default_cache()
    weights = standin_weights(cache, 64 if args.small_model else 256)
    clip = make_clip(cache, args.frames, args.size, faces=2)
    one, both = run(clip, weights, args.device, "1"), run(clip, weights, args.device, "all")
    for row in (one, both):
        print(json.dumps(row), flush=True)
    print(json.dumps({"network_ratio": round(both["network_s"] / one["network_s"], 3),
                      "other_ratio": round(both["other_s"] / one["other_s"], 3)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
