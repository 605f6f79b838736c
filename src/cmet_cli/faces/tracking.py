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

Run ends. Where a face enters or leaves between two keyframes (``same_faces`` says the two keyframes differ),
the tracking pass also runs the detector on the frames between them (``stream.scan_keyframes``), and those
detections are linked like the keyframes' (``face_tracks`` takes every frame the detector ran on). A run of
boxes then starts and ends exactly at the first and last frame its face was detected on: it is held on past
its last detection only up to the next frame the detector looked at (at most one keyframe interval, where it
did not look: two keyframes that show the same faces, or keyframe detections given without the frames
between them).

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


def predict(points: Points, frame: int, span: int = 1) -> Detection:
    """A track's box at ``frame``: its last box moved on at the velocity between its last detection and the
    latest one at least ``span`` frames before it (else its first): detections on neighbouring frames (a run
    end searched frame by frame) are too close for their jitter not to be multiplied."""
    f1, last = points[-1]
    if len(points) < 2:
        return last
    k = len(points) - 2
    while k > 0 and f1 - points[k][0] < span:
        k -= 1
    f0, before = points[k]
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


def _pair(a: Sequence[Detection], b: Sequence[Detection], min_iou: float) -> list[tuple[int, int]]:
    """Boxes of ``a`` paired one to one with boxes of ``b`` (indices), best overlaps first, each pair's IoU at
    least ``min_iou``."""
    pairs = sorted(((iou(x, y), k, j) for k, x in enumerate(a) for j, y in enumerate(b)), key=lambda p: -p[0])
    taken_a: set[int] = set()
    taken_b: set[int] = set()
    out = []
    for score, k, j in pairs:
        if score < min_iou:
            break
        if k in taken_a or j in taken_b:
            continue
        out.append((k, j))
        taken_a.add(k)
        taken_b.add(j)
    return out


def same_faces(a: Sequence[Detection], b: Sequence[Detection], min_iou: float = TrackConfig.min_iou) -> bool:
    """Whether two keyframes show the same faces: as many on each, paired one to one with IoU ≥ ``min_iou``.
    Where they do not, a face may have entered or left between them, and the tracking pass runs the detector
    on the frames between them too (so that the run ends where the face does). A face that moves more than
    this between keyframes also counts as different: that costs detections, never a wrong box."""
    return len(a) == len(b) and len(_pair(a, b, min_iou)) == len(a)


def link(keyframes: Iterable[tuple[int, Sequence[Detection]]], fps: float,
         config: TrackConfig = TrackConfig()) -> list[Points]:
    """Keyframe detections linked into tracks (lists of (frame, detection)), in order of creation."""
    tracks: list[Points] = []
    reentry = max(config.max_gap, int(round(config.reentry_seconds * fps)))
    for frame, dets in keyframes:
        free = list(dets)
        open_ = [t for t in tracks if frame - t[-1][0] <= config.max_gap]
        predicted = [predict(t, frame, config.keyframe_every) for t in open_]
        taken = _pair(predicted, free, config.min_iou)
        for k, j in taken:
            open_[k].append((frame, free[j]))
        taken_d = {j for _, j in taken}
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


def _boxes(points: Points, n_frames: int, fps: float, detector: str, config: TrackConfig,
           examined: np.ndarray) -> np.ndarray:
    """One track's per-frame crop boxes: interpolated between detections up to ``max_gap`` apart, smoothed in
    time. At the ends of each run the box is held up to (not on) the nearest frames the detector ran on
    (``examined``, sorted), at most one keyframe interval: a run end searched frame by frame is not held at
    all, one between two keyframes only (nothing searched between them) is held as far as it may reach."""
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
        k = int(np.searchsorted(examined, f))
        before = int(examined[k - 1]) + 1 if k > 0 else 0
        after = int(examined[k + 1]) if k + 1 < len(examined) else n_frames
        lo, hi = max(before, f - hold), min(after, f + hold + 1)
        fill = np.isnan(boxes[lo:hi, 0])
        boxes[lo:hi][fill] = b
    width = max(1, int(round(config.smooth_seconds * fps)))
    return np.stack([_smooth(boxes[:, k], width) for k in range(3)], axis=1)


def face_tracks(keyframes: Iterable[tuple[int, Sequence[Detection]]], n_frames: int, fps: float, detector: str,
                config: TrackConfig = TrackConfig()) -> list[FaceTrack]:
    """Every face track of a clip, ``id`` 1, 2, ... in the order of the id rule (most present, then largest).

    ``keyframes``: (frame, detections) of every frame the detector ran on: the keyframes (every
    ``keyframe_every``-th frame and the last) and any frames searched between two of them (a run end: see the
    module's notes), in any order."""
    keyframes = sorted(keyframes, key=lambda k: k[0])
    examined = np.array([f for f, _ in keyframes], dtype=np.int64)
    every = max(1, config.keyframe_every)

    def sightings(points: Points) -> int:  # keyframes the face was seen on (frames searched between them do not count)
        return sum(1 for f, _ in points if f % every == 0 or f == n_frames - 1)

    linked = link(keyframes, fps, config)
    if any(sightings(t) > 1 for t in linked):
        linked = [t for t in linked if sightings(t) > 1]  # seen on one keyframe only, beside real tracks: a false detection
    made = []
    for points in linked:
        boxes = _boxes(points, n_frames, fps, detector, config, examined)
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
