"""Faces in real footage: detect, track, smooth, crop to 256², and paste the rendered face back.

Data flow: keyframe detections -> IoU tracks -> per-frame boxes (interpolated over short gaps, smoothed
in time) -> square crops in the training-data convention -> (networks) -> inverse crop + feathered mask.

Crop convention. C-MET/EDTalk were trained on MEAD clips cropped FOMM-style: a square box around the
detected face with about 10 % margin on each side, scaled to 256². We reproduce that framing from the
detector's box: the crop side is ``CROP_SCALE[detector] × face-box side`` around the box centre. For
OpenCV's frontal cascade (a tight brow-to-chin box) the factor 1.30 was measured on the training crop
itself: on ``W009_038.mp4`` (a MEAD crop, 256 px) the cascade's box is 192 px (256/192 = 1.33), and 203 px
when the clip is placed in a 1280×720 frame (1.26). S3FD's boxes (face-alignment) include the forehead,
so 1.20 (10 % each side) reproduces the FOMM margin.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from .errors import NoFaceError, UsageError

if TYPE_CHECKING:
    from .colour import Conversion

log = logging.getLogger("cmet")

CROP = 256
CROP_SCALE = {"cascade": 1.30, "fan": 1.20, "box": 1.0}
DETECT_MAX_SIDE = 640  # detection runs on frames scaled to at most this many pixels (as the MEAD preprocessing)


@dataclass(frozen=True)
class Detection:
    """A face box in full-frame pixels (x, y, w, h) with a quality score (bigger, more frontal = higher)."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    @property
    def area(self) -> float:
        return self.w * self.h


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


# ---------------------------------------------------------------- detectors

def iou(a: Detection, b: Detection) -> float:
    x1, y1 = max(a.x, b.x), max(a.y, b.y)
    x2, y2 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _downscale(frame: np.ndarray) -> tuple[np.ndarray, float]:
    import cv2

    h, w = frame.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    if scale < 1.0:
        frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return frame, scale


class CascadeDetector:
    """OpenCV's frontal-face Haar cascade: ships inside the OpenCV 4.x wheel, needs no download."""

    name = "cascade"

    def __init__(self) -> None:
        import cv2

        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise UsageError(f"OpenCV's face cascade is missing ({path}); install opencv-python<5")

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        import cv2

        small, scale = _downscale(frame)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_side = max(24, int(0.06 * min(gray.shape)))
        boxes, _, weights = self._cascade.detectMultiScale3(gray, 1.1, 5, minSize=(min_side, min_side), outputRejectLevels=True)
        out = []
        for (x, y, w, h), weight in zip(boxes, np.ravel(weights) if len(boxes) else []):
            out.append(Detection(x / scale, y / scale, w / scale, h / scale, float(weight) * (w / scale) * (h / scale)))
        return out


def frontality(landmarks: np.ndarray) -> float:
    """1 for a frontal face, towards 0 as it turns: symmetry of the nose tip between the outer eye corners (68-point layout)."""
    nose, left, right = landmarks[30, :2], landmarks[36, :2], landmarks[45, :2]
    dl, dr = np.linalg.norm(nose - left), np.linalg.norm(nose - right)
    return float(1.0 - abs(dl - dr) / max(dl + dr, 1e-6))


class FanDetector:
    """face-alignment's S3FD detector, plus its 2DFAN-4 landmarks to rate frontality (weights from `cmet download-weights`)."""

    name = "fan"

    def __init__(self, detector_path: str, landmarks_path: str | None = None, device: str = "cpu") -> None:
        from face_alignment.detection.sfd.sfd_detector import SFDDetector

        self._sfd = SFDDetector(device=device, path_to_detector=detector_path)
        self._fan = _landmark_model(landmarks_path, detector_path, device) if landmarks_path else None

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        small, scale = _downscale(frame)
        found = [d for d in (self._sfd.detect_from_image(small[..., ::-1].copy()) or []) if d[4] >= 0.5]
        out = []
        for k, (x1, y1, x2, y2, conf) in enumerate(sorted(found, key=lambda d: -(d[2] - d[0]) * (d[3] - d[1]))):
            w, h = (x2 - x1) / scale, (y2 - y1) / scale
            score = float(conf) * w * h
            if k == 0 and self._fan is not None:  # rate the largest face only: landmarks cost ~0.6 s on a CPU
                marks = self._fan.get_landmarks_from_image(small, detected_faces=[[x1, y1, x2, y2, conf]])
                if marks:
                    score *= frontality(marks[0])
            out.append(Detection(x1 / scale, y1 / scale, w, h, score))
        return out


_TORCH_HOME_LOCK = threading.Lock()


def _landmark_model(landmarks_path: str, detector_path: str, device: str):
    """face-alignment's FaceAlignment reading our verified 2DFAN-4 file.

    It only looks in ``$TORCH_HOME/hub/checkpoints``: a private temporary folder links to our file there, and
    the variable is changed under a lock so that parallel edits (``--jobs``) never see each other's value.
    """
    import os
    import tempfile
    from pathlib import Path

    import face_alignment

    hub = Path(tempfile.mkdtemp(prefix="cmet-torch-hub-"))
    link = hub / "hub" / "checkpoints" / Path(landmarks_path).name
    link.parent.mkdir(parents=True)
    link.symlink_to(Path(landmarks_path).resolve())
    with _TORCH_HOME_LOCK:
        previous = os.environ.get("TORCH_HOME")
        os.environ["TORCH_HOME"] = str(hub)
        try:
            return face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=device, flip_input=False,
                                                compile=False, face_detector="sfd",
                                                face_detector_kwargs={"path_to_detector": detector_path})
        finally:
            if previous is None:
                os.environ.pop("TORCH_HOME", None)
            else:
                os.environ["TORCH_HOME"] = previous


CASCADE_FALLBACK = ("face-alignment weights not installed: faces found with OpenCV's cascade detector "
                    "(lower quality); `cmet download-weights` installs them")


DETECTORS = ("auto", "fan", "cascade")


def detector_kind(kind: str, fan_paths: dict | None = None) -> str:
    """The detector ``--detector KIND`` resolves to: ``fan`` or ``cascade`` (``auto``: fan when its weights are there)."""
    if kind not in DETECTORS:
        from .options import OptionError

        raise OptionError("{detector} must be auto, fan or cascade, not {value}", value=repr(kind))
    if kind == "auto":
        return "fan" if (fan_paths or {}).get("fan-detector") else "cascade"
    return kind


def make_detector(kind: str, fan_paths: dict | None = None, device: str = "cpu") -> Callable[[np.ndarray], list[Detection]]:
    """``auto`` uses face-alignment's detector when its weights are installed, else the cascade.

    The fallback is not logged here: the edit reports ``CASCADE_FALLBACK`` as a warning of its result.
    """
    detector_path = (fan_paths or {}).get("fan-detector")
    if detector_kind(kind, fan_paths) == "fan":
        if not detector_path:
            raise UsageError("--detector fan needs face-alignment's weights: run `cmet download-weights`")
        landmarks = (fan_paths or {}).get("fan-landmarks")
        return FanDetector(str(detector_path), str(landmarks) if landmarks else None, device)
    return CascadeDetector()


# ---------------------------------------------------------------- tracking

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


# ---------------------------------------------------------------- crop and paste back

@dataclass(frozen=True)
class CropBox:
    """An integer square region of the frame (may extend past its edges) and its scale to 256²."""

    x0: int
    y0: int
    side: int

    @classmethod
    def from_row(cls, row: np.ndarray) -> "CropBox":
        cx, cy, side = row
        side_i = max(8, int(round(side)))
        return cls(int(round(cx - side_i / 2)), int(round(cy - side_i / 2)), side_i)


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    shrink = side < image.shape[0]
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def crop(frame: np.ndarray, box: CropBox, size: int = CROP) -> np.ndarray:
    """The square region scaled to ``size``² (area-averaged when shrinking: antialiased); outside the frame is edge-padded."""
    h, w = frame.shape[:2]
    x1, y1 = box.x0 + box.side, box.y0 + box.side
    pad = ((max(0, -box.y0), max(0, y1 - h)), (max(0, -box.x0), max(0, x1 - w)), (0, 0))
    region = frame[max(0, box.y0):min(h, y1), max(0, box.x0):min(w, x1)]
    if any(p for pair in pad[:2] for p in pair):
        region = np.pad(region, pad, mode="edge")
    return _resize(region, size)


def face_mask(size: int = CROP, feather: float = 0.12) -> np.ndarray:
    """A soft ellipse over the face region of a crop (1 inside, 0 at the crop's border, smooth in between)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy, rx, ry = size * 0.5, size * 0.52, size * 0.36, size * 0.44
    r = np.sqrt(((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2)
    return np.clip((1.0 + feather - r) / (2 * feather), 0.0, 1.0)


def match_colour(rendered: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift/scale each channel of the rendered crop to the original crop's statistics inside the mask."""
    weights = mask[..., None] / max(mask.sum(), 1e-6)
    src, ref = rendered.astype(np.float32), original.astype(np.float32)
    mu_s, mu_r = (src * weights).sum((0, 1)), (ref * weights).sum((0, 1))
    sd_s = np.sqrt(((src - mu_s) ** 2 * weights).sum((0, 1))) + 1e-3
    sd_r = np.sqrt(((ref - mu_r) ** 2 * weights).sum((0, 1)))
    return np.clip((src - mu_s) * (sd_r / sd_s) + mu_r, 0, 255).astype(np.uint8)


def paste(frame: np.ndarray, rendered: np.ndarray, box: CropBox, mask: np.ndarray) -> np.ndarray:
    """Put a rendered crop back through the inverse crop transform, blended with the feathered mask.

    Pixels where the (resized) mask is 0 — everything outside the ellipse — are left bit-identical.
    """
    import cv2

    out = frame.copy()
    h, w = frame.shape[:2]
    fx0, fy0 = max(0, box.x0), max(0, box.y0)
    fx1, fy1 = min(w, box.x0 + box.side), min(h, box.y0 + box.side)
    if fx1 <= fx0 or fy1 <= fy0:
        return out
    sl = (slice(fy0 - box.y0, fy1 - box.y0), slice(fx0 - box.x0, fx1 - box.x0))
    face = np.ascontiguousarray(_resize(rendered, box.side)[sl])
    alpha = np.ascontiguousarray(np.clip(_resize(mask, box.side)[sl], 0.0, 1.0), dtype=np.float32)
    region = out[fy0:fy1, fx0:fx1]
    blended = cv2.blendLinear(np.ascontiguousarray(region), face, 1.0 - alpha, alpha)
    inside = alpha > 0
    region[inside] = blended[inside]
    return out


# ---------------------------------------------------------------- crop and paste back in the video's planes

def _window(plane: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """``plane[rows, cols]`` where the window may pass the plane's edges (edge-padded there)."""
    h, w = plane.shape[:2]
    r0, r1, c0, c1 = rows.start, rows.stop, cols.start, cols.stop
    inner = plane[max(0, r0):min(h, r1), max(0, c0):min(w, c1)]
    pad = ((max(0, -r0), max(0, r1 - h)), (max(0, -c0), max(0, c1 - w)))
    return np.pad(inner, pad, mode="edge") if any(p for pair in pad for p in pair) else inner


def _chroma_at_luma(plane: np.ndarray, box: CropBox, sub: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """The chroma sample of each luma pixel of the box (repeated, exact values), edge-padded outside the frame."""
    sx, sy = sub
    rows = np.clip(np.arange(box.y0, box.y0 + box.side), 0, shape[0] - 1) >> sy
    cols = np.clip(np.arange(box.x0, box.x0 + box.side), 0, shape[1] - 1) >> sx
    r0, c0 = int(rows[0]), int(cols[0])
    small = plane[r0:int(rows[-1]) + 1, c0:int(cols[-1]) + 1]
    return small[rows - r0][:, cols - c0]


def crop_planes(planes: Sequence[np.ndarray], box: CropBox, size: int, conv: "Conversion",
                sub: tuple[int, int]) -> np.ndarray:
    """The square region of a frame's Y, U, V planes as float32 RGB (0–255 scale, not clipped) at ``size``².

    Only this region is converted: each plane is scaled in its own code values (chroma taken at each
    luma pixel's chroma sample) and the ``size``² result is converted to RGB. Outside the frame is
    edge-padded, as ``crop`` does. At ``size`` == the box side nothing is resampled.
    """
    from .colour import to_rgb

    shape = planes[0].shape[:2]
    y = _window(planes[0], slice(box.y0, box.y0 + box.side), slice(box.x0, box.x0 + box.side))
    y, u, v = (_resize(np.ascontiguousarray(p), size).astype(np.float32)
               for p in (y, *(_chroma_at_luma(p, box, sub, shape) for p in planes[1:3])))
    return to_rgb(y, u, v, conv)


def paste_planes(planes: Sequence[np.ndarray], face: np.ndarray, box: CropBox, mask: np.ndarray,
                 conv: "Conversion", sub: tuple[int, int]) -> None:
    """Blend a float RGB face crop into writable Y, U, V planes, in place, with the feathered ``mask``.

    The face is converted back to the video's code values at crop size (converting and scaling are both
    linear, so the order does not matter) and goes back through the inverse crop transform; luma is
    blended at full resolution, chroma with the mask and the face averaged over each chroma sample's
    footprint. Where the (averaged) mask is 0 the blend returns the old value exactly, so those samples
    stay bit-identical; nothing outside the box is touched.
    """
    import cv2

    from .colour import from_rgb

    h, w = planes[0].shape[:2]
    fx0, fy0 = max(0, box.x0), max(0, box.y0)
    fx1, fy1 = min(w, box.x0 + box.side), min(h, box.y0 + box.side)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sx, sy = sub
    # the region, grown to whole chroma samples (alpha 0 in the added rows/columns)
    ax0, ay0 = fx0 >> sx << sx, fy0 >> sy << sy
    ax1, ay1 = min(w, -(-fx1 >> sx) << sx), min(h, -(-fy1 >> sy) << sy)
    inner = (slice(fy0 - ay0, fy1 - ay0), slice(fx0 - ax0, fx1 - ax0))
    source = (slice(fy0 - box.y0, fy1 - box.y0), slice(fx0 - box.x0, fx1 - box.x0))
    aligned = (ax0, ay0, ax1, ay1) == (fx0, fy0, fx1, fy1)

    def to_region(values: np.ndarray) -> np.ndarray:
        big = _resize(values, box.side)[source]
        if aligned:
            return big
        out = np.zeros((ay1 - ay0, ax1 - ax0, *values.shape[2:]), np.float32)
        out[inner] = big
        return out

    y, u, v = from_rgb(face, conv)
    alpha = np.clip(to_region(mask.astype(np.float32)), 0.0, 1.0)
    _blend(planes[0][ay0:ay1, ax0:ax1], to_region(y) * alpha, alpha, conv.peak)
    chroma = to_region(np.dstack([u, v]).astype(np.float32)) * alpha[..., None]
    if sx or sy:
        half = ((ax1 - ax0) >> sx, (ay1 - ay0) >> sy)
        alpha = cv2.resize(alpha, half, interpolation=cv2.INTER_AREA)  # the mean over each footprint
        chroma = cv2.resize(chroma, half, interpolation=cv2.INTER_AREA)
    rows, cols = slice(ay0 >> sy, ay1 >> sy), slice(ax0 >> sx, ax1 >> sx)
    for k, plane in enumerate(planes[1:3]):
        _blend(plane[rows, cols], chroma[..., k], alpha, conv.peak)


def _blend(region: np.ndarray, weighted: np.ndarray, alpha: np.ndarray, peak: int) -> None:
    """region = region·(1−alpha) + weighted (the new values pre-multiplied by alpha), in place.

    Where alpha is 0 this is the old integer value exactly, so those samples do not change.
    """
    old = region.astype(np.float32)
    new = old - old * alpha + weighted
    np.rint(new, out=new)
    np.clip(new, 0, peak, out=new)
    region[...] = new
