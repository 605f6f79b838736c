"""Face detection on single frames: OpenCV's frontal cascade (no download) or face-alignment's S3FD with
2DFAN-4 landmarks (``make_detector``), each giving ``Detection`` boxes in full-frame pixels."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UsageError

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
        from ..errors import OptionError

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
