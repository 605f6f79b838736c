"""Face tracks over a clip: keyframe detections linked into tracks (IoU against each track's predicted box,
re-entry by place and size), interpolated over short gaps and smoothed in time into one square crop box per
frame, each track with its id (``face_tracks``; ``track_faces`` picks one; ``fixed_track`` for ``--box``).

Linking. On each keyframe every open track predicts its box (its last box moved by its last velocity:
constant motion), and detections go to the tracks whose predicted box they overlap most (IoU at least
``min_iou``, best pairs first), so two faces that cross keep their own tracks. A track not seen for more
than ``max_gap`` frames is lost (its frames pass through unedited); a detection no open track takes goes to
the lost track last seen at about the same place and size (centre within ``reentry_distance`` of its side,
side within ``reentry_size``×) for up to ``reentry_seconds``, so a face that leaves and comes back keeps its
id; otherwise it starts a new track. A track seen on a single keyframe is dropped as a false detection when
another track was seen on several.

Ids. ``face_tracks`` numbers the tracks from 1: by the share of frames in which the face is present (most
first), then by its mean size (largest first). The same video with the same detector settings gives the
same ids in ``cmet faces``, ``cmet edit`` and ``cmet preview``.

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

NO_FACE = "no face was found in any frame; if there is one, give its position with --box X,Y,W,H"
CROP_SCALE = {"cascade": 1.30, "fan": 1.20, "yunet": 1.20, "box": 1.0}


@dataclass(frozen=True)
class TrackConfig:
    keyframe_every: int = 5  # run the detector on every k-th frame, track in between
    min_iou: float = 0.25  # association threshold (the MEAD preprocessing uses 0.25)
    max_gap: int = 25  # interpolate over detection gaps up to this many frames; longer = face lost
    smooth_seconds: float = 0.3  # width of the temporal smoothing window of box centre and size
    reentry_seconds: float = 5.0  # a lost face that comes back within this time ...
    reentry_distance: float = 0.5  # ... with its centre within this fraction of its side of where it was lost ...
    reentry_size: float = 1.4  # ... and its side within this factor of its size then, keeps its id


@dataclass(frozen=True)
class FaceTrack:
    """Per-frame square crop boxes (cx, cy, side) for one face; NaN rows where the face is lost."""

    boxes: np.ndarray  # (N, 3) float64
    reference: int  # frame index of the appearance source (largest, most frontal detection)
    detector: str
    id: int = 1  # 1-based, see ``face_tracks``
    decoding: str = "slice"  # how the frames the boxes index were decoded (``media.read_planes``'s ``threads``)

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.boxes[:, 0])

    @property
    def share(self) -> float:
        """The fraction of the clip's frames in which the face is present."""
        return float(self.present.mean()) if len(self.boxes) else 0.0

    @property
    def mean_box(self) -> tuple[float, float, float]:
        """Mean face centre (x, y) and face-box side over the frames where it is present (the crop's side
        divided by the detector's crop scale)."""
        rows = self.boxes[self.present]
        if not len(rows):
            return (float("nan"),) * 3
        cx, cy, side = rows.mean(axis=0)
        return float(cx), float(cy), float(side / CROP_SCALE.get(self.detector, 1.0))

    def spans(self) -> list[tuple[int, int]]:
        """The runs of frames where the face is present, as (first, last) frame indices."""
        edges = np.flatnonzero(np.diff(np.concatenate(([0], self.present.astype(int), [0]))))
        return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


Points = list[tuple[int, Detection]]


def _centre(d: Detection) -> np.ndarray:
    return np.array([d.x + d.w / 2, d.y + d.h / 2])


def predict(points: Points, frame: int) -> Detection:
    """A track's box at ``frame``: its last box moved on at the velocity of its last two detections."""
    f1, last = points[-1]
    if len(points) < 2:
        return last
    f0, before = points[-2]
    velocity = (_centre(last) - _centre(before)) / max(1, f1 - f0)
    dx, dy = velocity * (frame - f1)
    return Detection(last.x + dx, last.y + dy, last.w, last.h, last.score)


def _returns(points: Points, det: Detection, config: TrackConfig) -> float | None:
    """How far (in sides) ``det`` is from where a lost track was last seen, if it is about the same face."""
    last = points[-1][1]
    side, new = max(last.w, last.h), max(det.w, det.h)
    if not 1 / config.reentry_size <= new / side <= config.reentry_size:
        return None
    distance = float(np.linalg.norm(_centre(det) - _centre(last))) / side
    return distance if distance <= config.reentry_distance else None


def link(keyframes: Iterable[tuple[int, Sequence[Detection]]], fps: float,
         config: TrackConfig = TrackConfig()) -> list[Points]:
    """Keyframe detections linked into tracks (lists of (frame, detection)), in order of creation."""
    tracks: list[Points] = []
    reentry = max(config.max_gap, int(round(config.reentry_seconds * fps)))
    for frame, dets in keyframes:
        free = list(dets)
        open_ = [t for t in tracks if frame - t[-1][0] <= config.max_gap]
        pairs = sorted(((iou(predict(t, frame), d), k, j) for k, t in enumerate(open_) for j, d in enumerate(free)),
                       key=lambda p: -p[0])
        taken_t: set[int] = set()
        taken_d: set[int] = set()
        for score, k, j in pairs:
            if score < config.min_iou:
                break
            if k in taken_t or j in taken_d:
                continue
            open_[k].append((frame, free[j]))
            taken_t.add(k)
            taken_d.add(j)
        free = [d for j, d in enumerate(free) if j not in taken_d]
        lost = [t for t in tracks if config.max_gap < frame - t[-1][0] <= reentry]
        for det in sorted(free, key=lambda d: -d.area):
            near = [(dist, k) for k, t in enumerate(lost) if (dist := _returns(t, det, config)) is not None]
            if near:
                k = min(near)[1]
                lost.pop(k).append((frame, det))
            else:
                tracks.append([(frame, det)])
    return tracks


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


def _boxes(points: Points, n_frames: int, fps: float, detector: str, config: TrackConfig) -> np.ndarray:
    """One track's per-frame crop boxes: interpolated between detections up to ``max_gap`` apart, held one
    keyframe interval at the ends of each run, smoothed in time."""
    frames = np.array([f for f, _ in points])
    scale = CROP_SCALE[detector]
    raw = np.array([[d.x + d.w / 2, d.y + d.h / 2, scale * max(d.w, d.h)] for _, d in points])
    boxes = np.full((n_frames, 3), np.nan)
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
    return np.stack([_smooth(boxes[:, k], width) for k in range(3)], axis=1)


def face_tracks(keyframes: Iterable[tuple[int, Sequence[Detection]]], n_frames: int, fps: float, detector: str,
                config: TrackConfig = TrackConfig()) -> list[FaceTrack]:
    """Every face track of a clip, ``id`` 1, 2, ... in the order of the id rule (most present, then largest)."""
    keyframes = list(keyframes)
    linked = link(keyframes, fps, config)
    if any(len(t) > 1 for t in linked):
        linked = [t for t in linked if len(t) > 1]  # seen on one keyframe only, beside real tracks: a false detection
    made = []
    for points in linked:
        boxes = _boxes(points, n_frames, fps, detector, config)
        reference = int(points[int(np.argmax([d.score for _, d in points]))][0])
        made.append(FaceTrack(boxes=boxes, reference=reference, detector=detector))
    made.sort(key=lambda t: (-int(t.present.sum()), -t.mean_box[2] if t.present.any() else 0.0))
    return [FaceTrack(t.boxes, t.reference, t.detector, id=k) for k, t in enumerate(made, start=1)]


def describe_ids(tracks: Sequence[FaceTrack]) -> str:
    """``1 face track found: 1`` / ``3 face tracks found: 1, 2 and 3``."""
    ids = [str(t.id) for t in tracks]
    listed = ids[0] if len(ids) == 1 else f"{', '.join(ids[:-1])} and {ids[-1]}"
    return f"{len(ids)} face track{'s' if len(ids) != 1 else ''} found: {listed}"


def pick(tracks: Sequence[FaceTrack], ids: Sequence[int]) -> list[FaceTrack]:
    """The tracks with these ids, in the order given; an id that is not there is a usage error naming those that are."""
    if not tracks:
        raise NoFaceError(NO_FACE)
    by_id = {t.id: t for t in tracks}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise UsageError(f"--face {','.join(map(str, missing))}: no such face; only {describe_ids(tracks)} "
                         "(`cmet faces VIDEO` lists them)")
    return [by_id[i] for i in ids]


def track_faces(keyframes: Iterable[tuple[int, Sequence[Detection]]], n_frames: int, fps: float, detector: str,
                face: int | None = None, config: TrackConfig = TrackConfig()) -> FaceTrack:
    """One face's per-frame crop boxes: track ``face`` (default 1, see ``face_tracks``)."""
    return pick(face_tracks(keyframes, n_frames, fps, detector, config), [face or 1])[0]


def fixed_track(box: tuple[int, int, int, int], n_frames: int) -> FaceTrack:
    """``--box X,Y,W,H``: the user's crop (made square around its centre) on every frame."""
    x, y, w, h = box
    side = float(max(w, h))
    boxes = np.tile([x + w / 2, y + h / 2, side], (n_frames, 1)).astype(np.float64)
    return FaceTrack(boxes=boxes, reference=0, detector="box")
