"""Face tracks over a clip: keyframe detections linked by IoU into tracks, interpolated over short gaps and
smoothed in time into one square crop box per frame (``track_faces``; ``fixed_track`` for ``--box``).

Crop convention. C-MET/EDTalk were trained on MEAD clips cropped FOMM-style: a square box around the
detected face with about 10 % margin on each side, scaled to 256². We reproduce that framing from the
detector's box: the crop side is ``CROP_SCALE[detector] × face-box side`` around the box centre. For
OpenCV's frontal cascade (a tight brow-to-chin box) the factor 1.30 was measured on the training crop
itself: on ``W009_038.mp4`` (a MEAD crop, 256 px) the cascade's box is 192 px (256/192 = 1.33), and 203 px
when the clip is placed in a 1280×720 frame (1.26). S3FD's boxes (face-alignment) include the forehead,
so 1.20 (10 % each side) reproduces the FOMM margin. YuNet is trained on WIDER FACE's boxes like S3FD, so it
takes S3FD's 1.20; this is by that convention, not measured: ``python -m benchmarks.framing`` measures each
installed detector's box on the training crop (the YuNet model could not be fetched where this was written).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import NoFaceError, UsageError
from .detection import Detection, iou

CROP_SCALE = {"cascade": 1.30, "fan": 1.20, "yunet": 1.20, "box": 1.0}


@dataclass(frozen=True)
class TrackConfig:
    keyframe_every: int = 5  # run the detector on every k-th frame, track in between
    min_iou: float = 0.25  # association threshold (the MEAD preprocessing uses 0.25)
    max_gap: int = 25  # interpolate over detection gaps up to this many frames; longer = face lost
    smooth_seconds: float = 0.3  # width of the temporal smoothing window of box centre and size


@dataclass(frozen=True)
class FaceTrack:
    """Per-frame square crop boxes (cx, cy, side) for one face; NaN rows where the face is lost."""

    boxes: np.ndarray  # (N, 3) float64
    reference: int  # frame index of the appearance source (largest, most frontal detection)
    detector: str

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.boxes[:, 0])


def _link(tracks: list[list[tuple[int, Detection]]], frame: int, dets: Sequence[Detection], min_iou: float, max_gap: int) -> None:
    """Greedy IoU association of one keyframe's detections to the open tracks."""
    free = list(dets)
    for track in sorted(tracks, key=lambda t: -t[-1][1].area):
        last_frame, last = track[-1]
        if frame - last_frame > max_gap or not free:
            continue
        best = max(free, key=lambda d: iou(last, d))
        if iou(last, best) >= min_iou:
            track.append((frame, best))
            free.remove(best)
    tracks.extend([[(frame, d)] for d in free])


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over the valid (non-NaN) runs of a 1-d signal."""
    if width <= 1:
        return values
    out = values.copy()
    valid = ~np.isnan(values)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], valid.astype(int), [0]))))
    kernel = np.ones(width) / width
    for start, stop in zip(edges[::2], edges[1::2]):
        run = values[start:stop]
        pad = width // 2
        padded = np.pad(run, (pad, width - 1 - pad), mode="edge")
        out[start:stop] = np.convolve(padded, kernel, mode="valid")
    return out


def track_faces(keyframes: Iterable[tuple[int, list[Detection]]], n_frames: int, fps: float, detector: str,
                face: int | None = None, config: TrackConfig = TrackConfig()) -> FaceTrack:
    """Turn keyframe detections into per-frame crop boxes for one face (the largest unless ``face``)."""
    tracks: list[list[tuple[int, Detection]]] = []
    for frame, dets in keyframes:
        _link(tracks, frame, dets, config.min_iou, config.max_gap)
    if not tracks:
        raise NoFaceError("no face was found in any frame; if there is one, give its position with --box X,Y,W,H")
    tracks.sort(key=lambda t: -sum(d.area for _, d in t))
    index = 0 if face is None else face - 1
    if not 0 <= index < len(tracks):
        raise UsageError(f"--face {face}: only {len(tracks)} face track(s) found (numbered from 1, largest first)")
    chosen = tracks[index]
    frames = np.array([f for f, _ in chosen])
    scale = CROP_SCALE[detector]
    raw = np.array([[d.x + d.w / 2, d.y + d.h / 2, scale * max(d.w, d.h)] for _, d in chosen])
    boxes = np.full((n_frames, 3), np.nan)
    # linear interpolation between detections closer than max_gap; one keyframe interval of hold at the ends
    for (f0, b0), (f1, b1) in zip(zip(frames, raw), zip(frames[1:], raw[1:])):
        if f1 - f0 <= config.max_gap:
            t = (np.arange(f0, f1 + 1) - f0)[:, None] / max(1, f1 - f0)
            boxes[f0:f1 + 1] = b0 + t * (b1 - b0)
    hold = config.keyframe_every - 1
    for f, b in zip(frames, raw):
        lo, hi = max(0, f - hold), min(n_frames, f + hold + 1)
        fill = np.isnan(boxes[lo:hi, 0])
        boxes[lo:hi][fill] = b
    width = max(1, int(round(config.smooth_seconds * fps)))
    boxes = np.stack([_smooth(boxes[:, k], width) for k in range(3)], axis=1)
    reference = int(chosen[int(np.argmax([d.score for _, d in chosen]))][0])
    return FaceTrack(boxes=boxes, reference=reference, detector=detector)


def fixed_track(box: tuple[int, int, int, int], n_frames: int) -> FaceTrack:
    """``--box X,Y,W,H``: the user's crop (made square around its centre) on every frame."""
    x, y, w, h = box
    side = float(max(w, h))
    boxes = np.tile([x + w / 2, y + h / 2, side], (n_frames, 1)).astype(np.float64)
    return FaceTrack(boxes=boxes, reference=0, detector="box")
