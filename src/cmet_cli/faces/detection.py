"""Face detection on single frames, each detector giving ``Detection`` boxes in full-frame pixels:
face-alignment's S3FD with 2DFAN-4 landmarks, OpenCV's YuNet (``cv2.FaceDetectorYN``, a 230 kB model from
the OpenCV model zoo) or OpenCV's frontal Haar cascade (no download; gone from OpenCV 5).

``detector_problems`` says which of them can run here and why not; ``detector_kind`` resolves
``--detector`` (``auto``: the first usable of fan, yunet, cascade); ``make_detector`` builds one."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

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

        problem = cascade_problem(cv2)
        if problem:
            raise UsageError(f"--detector cascade: {problem}")
        self._cascade = cv2.CascadeClassifier(_cascade_path(cv2))
        if self._cascade.empty():
            raise UsageError(f"--detector cascade: OpenCV could not read {_cascade_path(cv2)}")

    def fresh(self) -> "CascadeDetector":
        """Another one, for another thread (a classifier must not run in two threads at once)."""
        return CascadeDetector()

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
    return eye_symmetry(landmarks[30, :2], landmarks[36, :2], landmarks[45, :2])


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


class YuNetDetector:
    """OpenCV's YuNet (``cv2.FaceDetectorYN``, OpenCV >= 4.5.4 and 5.x) with its five landmarks.

    ``model``: the zoo's ONNX file (``yunet`` in ``models.lock``; OpenCV 5's engine takes the dynamic-shape
    export ``yunet-dynamic`` as well). Not thread-safe: the editor builds one per thread.
    """

    name = "yunet"
    SCORE, NMS, TOP_K = 0.6, 0.3, 50  # the zoo demo's defaults for score and NMS thresholds

    def __init__(self, model: str) -> None:
        import cv2

        try:
            with _opencv_errors_only(cv2):
                self._net = cv2.FaceDetectorYN.create(str(model), "", (320, 320), self.SCORE, self.NMS, self.TOP_K)
        except cv2.error as exc:
            raise UsageError(f"--detector yunet: OpenCV {cv2.__version__} cannot load {model} "
                             f"({_first_line(exc)})") from None
        self._model = str(model)
        self._size: tuple[int, int] | None = None

    def fresh(self) -> "YuNetDetector":
        """Another one on the same model, for another thread."""
        return YuNetDetector(self._model)

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        small, scale = _downscale(frame)
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, found = self._net.detect(np.ascontiguousarray(small[..., ::-1]))  # YuNet takes BGR
        return [_yunet_detection(row, scale) for row in (found if found is not None else [])]


@contextmanager
def _opencv_errors_only(cv2) -> Iterator[None]:
    """OpenCV's own log cut to errors while a model loads: OpenCV 5.1 warns on stderr at every YuNet it creates
    ("setPreferableTarget Targets are not supported by the new graph engine for now"), which says nothing to a user."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None or not hasattr(logging, "getLogLevel"):
        yield
        return
    before = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(before)


def _yunet_detection(row: np.ndarray, scale: float) -> Detection:
    """One row of YuNet's output (x, y, w, h, five landmarks as x, y pairs, score) in full-frame pixels."""
    x, y, w, h = (float(v) / scale for v in row[:4])
    marks = np.asarray(row[4:14], np.float64).reshape(5, 2)  # right eye, left eye, nose tip, mouth corners
    return Detection(x, y, w, h, float(row[14]) * w * h * eye_symmetry(marks[2], marks[0], marks[1]))


def eye_symmetry(nose: np.ndarray, eye_a: np.ndarray, eye_b: np.ndarray) -> float:
    """1 for a frontal face, towards 0 as it turns: how equally far the nose tip lies from the two eyes."""
    da, db = np.linalg.norm(nose - eye_a), np.linalg.norm(nose - eye_b)
    return float(1.0 - abs(da - db) / max(da + db, 1e-6))


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(exc).__name__


CASCADE_FALLBACK = ("neither face-alignment's nor YuNet's model is installed: faces found with OpenCV's cascade "
                    "detector (lower quality); `cmet download-weights` installs them")


DETECTORS = ("auto", "fan", "yunet", "cascade")
AUTO_ORDER = ("fan", "yunet", "cascade")  # best first: what ``--detector auto`` tries


def _cascade_path(cv2) -> str:
    return str(getattr(getattr(cv2, "data", None), "haarcascades", "")) + "haarcascade_frontalface_default.xml"


def cascade_problem(cv2) -> str | None:
    """Why OpenCV's Haar cascade cannot run with this ``cv2`` (None: it can)."""
    from pathlib import Path

    if not hasattr(cv2, "CascadeClassifier"):
        return (f"OpenCV {cv2.__version__} has no Haar cascade (OpenCV 5 removed it): "
                "use --detector yunet (`cmet download-weights --only yunet`) or install opencv-python<5")
    if not Path(_cascade_path(cv2)).is_file():
        return f"OpenCV {cv2.__version__} ships no cascade file ({_cascade_path(cv2)})"
    return None


def yunet_model(files: dict, cv2) -> str | None:
    """The YuNet model this OpenCV runs: the fixed-shape zoo export (``yunet``) on 4.x; on 5.x the
    dynamic-shape export (``yunet-dynamic``) when installed, else the fixed one."""
    major = int(str(cv2.__version__).split(".")[0])
    order = ("yunet-dynamic", "yunet") if major >= 5 else ("yunet",)
    found = [files[name] for name in order if files.get(name)]
    return str(found[0]) if found else None


def yunet_problem(files: dict, cv2) -> str | None:
    if not hasattr(cv2, "FaceDetectorYN"):
        return f"OpenCV {cv2.__version__} has no FaceDetectorYN (it needs OpenCV >= 4.5.4)"
    if yunet_model(files, cv2) is None:
        return "its model is not installed: `cmet download-weights --only yunet`"
    return None


def fan_problem(files: dict) -> str | None:
    if not files.get("fan-detector"):
        return "face-alignment's weights are not installed: `cmet download-weights`"
    import importlib.util

    if importlib.util.find_spec("face_alignment") is None:
        return "the face-alignment package is not installed: pip install face-alignment"
    return None


def detector_problems(files: dict | None = None) -> dict[str, str | None]:
    """For each detector, why it cannot run here (None: it can). ``files``: the detector model files found
    (``models.detector_files``)."""
    import cv2

    files = files or {}
    return {"fan": fan_problem(files), "yunet": yunet_problem(files, cv2), "cascade": cascade_problem(cv2)}


def detector_kind(kind: str, files: dict | None = None) -> str:
    """The detector ``--detector KIND`` resolves to here: ``fan``, ``yunet`` or ``cascade``.

    ``auto``: the first usable of fan, yunet and cascade. A chosen detector that cannot run, or ``auto``
    with none usable, is a ``UsageError`` that says what to install (or to pass ``--box``)."""
    from ..errors import OptionError

    if kind not in DETECTORS:
        raise OptionError("{detector} must be auto, fan, yunet or cascade, not {value}", value=repr(kind))
    problems = detector_problems(files)
    if kind != "auto":
        if problems[kind]:
            raise UsageError(f"--detector {kind}: {problems[kind]}")
        return kind
    usable = [name for name in AUTO_ORDER if not problems[name]]
    if not usable:
        raise UsageError("no face detector can run here (" + "; ".join(f"{n}: {problems[n]}" for n in AUTO_ORDER)
                         + "): run `cmet download-weights`, or pass --box X,Y,W,H")
    return usable[0]


def make_detector(kind: str, files: dict | None = None, device: str = "cpu") -> Callable[[np.ndarray], list[Detection]]:
    """The detector ``--detector KIND`` resolves to (``detector_kind``), ready to call on RGB frames.

    The cascade fallback of ``auto`` is not logged here: the edit reports ``CASCADE_FALLBACK`` as a warning
    of its result."""
    import cv2

    files = files or {}
    chosen = detector_kind(kind, files)
    if chosen == "fan":
        landmarks = files.get("fan-landmarks")
        return FanDetector(str(files["fan-detector"]), str(landmarks) if landmarks else None, device)
    if chosen == "yunet":
        return YuNetDetector(yunet_model(files, cv2))
    return CascadeDetector()
