"""Crop framing per face detector: the factor that reproduces C-MET's training crops from each detector's box.

    python -m benchmarks.framing [--weights-dir DIR]

The MEAD sample (``tests/data/video/W009_038.mp4``) *is* a training crop: 256 px, the face framed as C-MET was
trained. Each usable detector runs on every 5th frame of it; the factor that turns its mean box side into the
256-px crop is what ``faces.CROP_SCALE`` should hold for it (the cascade's 192-px box gives 256/192 = 1.33, of
which 1.30 is used: README, Faces). Prints one JSON line per detector. Detectors that cannot run here (their model
not installed, or OpenCV without them) are listed with the reason.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cmet_cli import faces, media
from cmet_cli.models import detector_files

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "video" / "W009_038.mp4"


def box_sides(detector, clip: Path, every: int = 5) -> list[float]:
    """The side (mean of width and height) of the largest box on every ``every``-th frame that has one."""
    sides = []
    for i, frame in enumerate(media.read_frames(media.probe(clip))):
        if i % every == 0:
            found = detector(frame)
            if found:
                best = max(found, key=lambda d: d.area)
                sides.append((best.w + best.h) / 2)
    return sides


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.framing", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights-dir", type=Path, default=None, help="where the detectors' models are (else the cache)")
    args = ap.parse_args(argv)
    files = detector_files(args.weights_dir)
    crop = media.probe(SAMPLE).width
    for name, problem in faces.detector_problems(files).items():
        if problem:
            print(json.dumps({"detector": name, "usable": False, "why": problem}))
            continue
        sides = box_sides(faces.make_detector(name, files), SAMPLE)
        side = float(np.mean(sides)) if sides else None
        print(json.dumps({"detector": name, "frames_with_a_face": len(sides), "mean_box_px": side and round(side, 1),
                          "crop_px": crop, "factor_measured": side and round(crop / side, 3),
                          "factor_used": faces.CROP_SCALE[name]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
