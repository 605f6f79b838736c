"""The generator's speed on this CPU in fp32 and bf16 autocast, with contiguous and channels-last memory.

    python -m benchmarks.cpu_layouts [--repeats 3] [--batch 5]

One batch of 256² crops through the full-size EDTalk generator with stand-in weights (cost does not depend on
their values): the appearance source, the codes and the render, as one edit batch does. The four variants run
interleaved ``--repeats`` times, so that load from other processes falls on all of them alike; the best time of
each is reported, with its speed relative to fp32 contiguous. Prints one JSON line per variant, then a summary.
This is what ``runtime.prefers_channels_last`` and ``--precision auto`` are chosen from (README, CPU or GPU).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time

import torch

from cmet_cli.render import EDTalkGenerator
from cmet_cli.runtime import cpu_has_units, to_channels_last

from .bench_edit import cpu_model, loadavg


def one_batch(model: EDTalkGenerator, crops: torch.Tensor, dtype: torch.dtype | None) -> None:
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        source = model.encode_source(crops[:1])
        codes = model.encode(crops)
        model.render(source, codes.lip, codes.pose, codes.exp)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cpu_layouts", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=5)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    plain = EDTalkGenerator().eval()
    last = to_channels_last(copy.deepcopy(plain))
    crops = torch.rand(args.batch, 3, 256, 256) * 2 - 1
    crops_last = crops.contiguous(memory_format=torch.channels_last)
    variants = {"fp32 contiguous": (plain, crops, None), "fp32 channels-last": (last, crops_last, None),
                "bf16 contiguous": (plain, crops, torch.bfloat16), "bf16 channels-last": (last, crops_last, torch.bfloat16)}
    for model, x, dtype in variants.values():
        one_batch(model, x, dtype)  # warm-up: first-call allocations and kernel choices
    times: dict[str, list[float]] = {name: [] for name in variants}
    load_before = loadavg()
    for _ in range(args.repeats):
        for name, (model, x, dtype) in variants.items():
            start = time.perf_counter()
            one_batch(model, x, dtype)
            times[name].append(time.perf_counter() - start)
    base = min(times["fp32 contiguous"])
    for name, runs in times.items():
        print(json.dumps({"variant": name, "fps": round(args.batch / min(runs), 3), "speedup": round(base / min(runs), 3),
                          "runs_s": [round(t, 2) for t in runs]}))
    print(json.dumps({"cpu": cpu_model(), "nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                      "bf16_units": cpu_has_units("bf16"), "torch": torch.__version__, "batch": args.batch,
                      "loadavg_1m": [load_before, loadavg()]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
