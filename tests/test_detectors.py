"""Which face detector runs, on OpenCV 4 and on OpenCV 5 (no Haar cascade), and YuNet's wiring.

OpenCV 5 is simulated on the installed OpenCV 4 by removing ``cv2.CascadeClassifier`` (what the 5.x wheels
lack; checked on opencv-python-headless 5.1.0.95: ``FaceDetectorYN`` is there, ``CascadeClassifier`` is not)
and by setting its version. YuNet's network cannot be fetched here, so ``FakeYuNet`` stands in for
``cv2.FaceDetectorYN``: it answers the API the detector calls with the face the test put in the frame. The last
tests run the real ``cv2.FaceDetectorYN`` instead, on a stand-in network with YuNet's inputs and outputs whose
faces are known by construction (``tests/data/detectors``, written by ``tools/yunet_standin.py``); with the 5.1.0
wheel first on PYTHONPATH this file passes on a real OpenCV 5 too (the cascade tests skip).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cmet_cli.errors import UsageError
from cmet_cli.faces import detection
from cmet_cli.faces.detection import YuNetDetector, detector_kind, detector_problems, make_detector, yunet_model

from .cli_support import BANK, assert_one_line_failure, cmet, leftovers
from .clips import ffmpeg
from .media_checks import frames

YUNET = {"yunet": Path("face_detection_yunet_2023mar.onnx")}
BOTH_YUNETS = YUNET | {"yunet-dynamic": Path("face_detection_yunet_2026may.onnx")}


class FakeYuNet:
    """``cv2.FaceDetectorYN`` as the detector uses it: ``create``, ``setInputSize``, ``detect`` (BGR in; rows of
    x, y, w, h, five landmarks, score out). It reports one frontal face at ``FACE`` (fractions of the image)."""

    FACE = (96 / 384, 56 / 288, 192 / 384, 192 / 288)  # the face of ``clips.face_clip`` on its 384x288 canvas
    created: list[str] = []

    @classmethod
    def create(cls, model, config, size, score, nms, top_k):
        cls.created.append(str(model))
        return cls()

    def setInputSize(self, size) -> None:  # noqa: N802 (OpenCV's name)
        self.size = tuple(size)

    def detect(self, image: np.ndarray):
        h, w = image.shape[:2]
        assert (w, h) == self.size, "setInputSize must match the image"
        fx, fy, fw, fh = self.FACE
        x, y, bw, bh = fx * w, fy * h, fw * w, fh * h
        eyes_nose_mouth = [x + 0.3 * bw, y + 0.4 * bh, x + 0.7 * bw, y + 0.4 * bh, x + 0.5 * bw, y + 0.6 * bh,
                           x + 0.35 * bw, y + 0.8 * bh, x + 0.65 * bw, y + 0.8 * bh]
        return 1, np.array([[x, y, bw, bh, *eyes_nose_mouth, 0.95]], np.float32)


@pytest.fixture
def opencv5(monkeypatch):
    """The installed cv2 made to look like OpenCV 5: no Haar cascade (on a real OpenCV 5, there is none to remove)."""
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    monkeypatch.setattr(cv2, "__version__", "5.1.0")


@pytest.fixture
def fake_yunet(monkeypatch):
    FakeYuNet.created = []
    monkeypatch.setattr(cv2, "FaceDetectorYN", FakeYuNet)
    return FakeYuNet


# ---------------------------------------------------------------- selection

@pytest.mark.cascade
def test_opencv4_auto_falls_back_to_the_cascade_without_models():
    assert detector_kind("auto", {}) == "cascade"
    assert detector_problems({})["cascade"] is None


@pytest.mark.cascade
def test_auto_prefers_yunet_over_the_cascade(fake_yunet):
    assert detector_kind("auto", YUNET) == "yunet"
    assert detector_kind("cascade", YUNET) == "cascade"  # a choice is honoured


def test_opencv5_without_models_says_what_to_install(opencv5):
    problems = detector_problems({})
    assert "OpenCV 5" in problems["cascade"] and "download-weights --only yunet" in problems["yunet"]
    with pytest.raises(UsageError, match=r"no face detector can run here .*--box X,Y,W,H"):
        detector_kind("auto", {})
    with pytest.raises(UsageError, match="--detector cascade: OpenCV 5.1.0 has no Haar cascade"):
        detector_kind("cascade", {})
    with pytest.raises(UsageError, match="--detector cascade"):
        make_detector("cascade", {})  # building it directly fails the same way, not with AttributeError


def test_opencv5_uses_yunet(opencv5, fake_yunet):
    assert detector_kind("auto", YUNET) == "yunet"
    assert isinstance(make_detector("auto", YUNET), YuNetDetector)


@pytest.mark.cascade
def test_opencv_without_yunet(monkeypatch):
    """An OpenCV older than 4.5.4 (no FaceDetectorYN): YuNet is refused, the cascade still runs."""
    monkeypatch.delattr(cv2, "FaceDetectorYN")
    assert "needs OpenCV >= 4.5.4" in detector_problems(YUNET)["yunet"]
    assert detector_kind("auto", YUNET) == "cascade"
    with pytest.raises(UsageError, match="--detector yunet: OpenCV .* has no FaceDetectorYN"):
        detector_kind("yunet", YUNET)


def test_neither_yunet_nor_cascade(monkeypatch, opencv5):
    monkeypatch.delattr(cv2, "FaceDetectorYN")
    with pytest.raises(UsageError, match="yunet: OpenCV 5.1.0 has no FaceDetectorYN.*cascade: OpenCV 5.1.0 has no"):
        detector_kind("auto", YUNET)


def test_fan_first_when_its_weights_are_there(fake_yunet):
    assert detector_kind("auto", YUNET | {"fan-detector": Path("s3fd.pth")}) == "fan"


@pytest.mark.parametrize("version, files, expected", [
    ("4.14.0", BOTH_YUNETS, "face_detection_yunet_2023mar.onnx"),  # 4.x's engine cannot run the dynamic export
    ("5.1.0", BOTH_YUNETS, "face_detection_yunet_2026may.onnx"),  # 5.x: the export made for its engine
    ("5.1.0", YUNET, "face_detection_yunet_2023mar.onnx"),  # else the fixed one (tried; a load error says so)
    ("4.14.0", {"yunet-dynamic": Path("face_detection_yunet_2026may.onnx")}, None),
])
def test_yunet_model_per_opencv_version(monkeypatch, version, files, expected):
    monkeypatch.setattr(cv2, "__version__", version)
    assert yunet_model(files, cv2) == expected


def test_yunet_load_error_is_one_line(tmp_path):
    bad = tmp_path / "face_detection_yunet_2023mar.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(UsageError, match=r"--detector yunet: OpenCV \S+ cannot load .*yunet_2023mar.onnx") as caught:
        YuNetDetector(str(bad))
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- YuNet's boxes

def test_yunet_boxes_scale_back_to_the_frame(fake_yunet):
    """A 1280x720 frame is detected at 640x360 (``DETECT_MAX_SIDE``); the box comes back in frame pixels."""
    detector = YuNetDetector("model.onnx")
    [face] = detector(np.zeros((720, 1280, 3), np.uint8))
    assert detector._net.size == (640, 360)
    fx, fy, fw, fh = FakeYuNet.FACE
    assert (face.x, face.y, face.w, face.h) == pytest.approx((fx * 1280, fy * 720, fw * 1280, fh * 720), abs=0.05)
    assert face.score == pytest.approx(0.95 * face.w * face.h, rel=1e-3)  # frontal: the full area counts


def test_yunet_scores_a_turned_face_lower():
    frontal = np.array([0, 0, 100, 100, 30, 40, 70, 40, 50, 60, 35, 80, 65, 80, 0.9], np.float32)
    turned = frontal.copy()
    turned[8] = 35.0  # nose tip near the right eye: the head is turned
    a, b = detection._yunet_detection(frontal, 1.0), detection._yunet_detection(turned, 1.0)
    assert a.score == pytest.approx(0.9 * 100 * 100) and b.score < 0.7 * a.score


# ---------------------------------------------------------------- through the CLI

@pytest.fixture
def yunet_weights(tmp_path, small_weights) -> Path:
    """The stand-in checkpoints plus (empty) YuNet model files: ``--weights-dir`` finds a detector there too."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for item in small_weights.iterdir():
        (folder / item.name).symlink_to(item)
    for name in BOTH_YUNETS.values():
        (folder / name).write_bytes(b"")
    return folder


def test_edit_on_opencv5_without_a_detector_is_a_usage_error(tmp_path, clip, small_weights, opencv5):
    out = tmp_path / "out.mp4"
    run = cmet("edit", clip, "-o", out, "--preset", "happy", "--weights-dir", small_weights, "--bank", BANK,
               "--device", "cpu", env={"CMET_HOME": str(tmp_path / "empty-cache")})
    assert_one_line_failure(run, "no face detector can run here", "--box", code=2)
    assert not out.exists() and leftovers(tmp_path) == []


def test_edit_on_opencv5_finds_the_face_with_yunet(tmp_path, clip, yunet_weights, opencv5, fake_yunet, model_loads):
    """OpenCV 5 without a cascade: ``auto`` picks YuNet (its dynamic export), and the face it finds is edited."""
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    run = cmet("edit", clip, "-o", out, "--preset", "happy", "--report", report, "--weights-dir", yunet_weights,
               "--bank", BANK, "--device", "cpu", env={"CMET_HOME": str(tmp_path / "empty-cache")})
    assert run.code == 0, run.stderr
    assert fake_yunet.created and all(p.endswith("face_detection_yunet_2026may.onnx") for p in fake_yunet.created)
    [row] = json.loads(report.read_text())["results"]
    assert row["warnings"] == [] and row["face_frames"] == 3  # no cascade-fallback warning; every frame edited
    a, b = frames(clip), frames(out)
    face, background = (slice(60, 230), slice(100, 250)), (slice(0, 288), slice(330, 384))
    assert np.abs(a[(slice(None), *face)].astype(int) - b[(slice(None), *face)]).mean() > 5
    assert np.abs(a[(slice(None), *background)].astype(int) - b[(slice(None), *background)]).mean() < 1.5


def test_doctor_says_which_detectors_run_and_why(tmp_path, yunet_weights, opencv5, fake_yunet):
    run = cmet("doctor", "--weights-dir", yunet_weights, env={"CMET_HOME": str(tmp_path / "empty-cache")})
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "face detectors (OpenCV 5.1.0; auto takes yunet):" in lines
    assert "  yunet    usable" in lines
    assert any(line.startswith("  cascade  cannot run: OpenCV 5.1.0 has no Haar cascade") for line in lines)
    assert any(line.startswith("  fan      cannot run: face-alignment's weights are not installed") for line in lines)
    [networks] = [line for line in lines if line.startswith("networks (--device auto --precision auto): ")]
    assert "cpu, fp32 (auto:" in networks and "contiguous memory" in networks


def test_doctor_without_any_detector_says_box(tmp_path, opencv5):
    run = cmet("doctor", env={"CMET_HOME": str(tmp_path / "empty-cache")})
    assert "face detectors (OpenCV 5.1.0; none can run: an edit needs --box X,Y,W,H):" in run.stdout.splitlines()


# ---------------------------------------------------------------- the real cv2.FaceDetectorYN, with a stand-in network

STANDINS = Path(__file__).resolve().parent / "data" / "detectors"
STANDIN_FILES = {"fixed": STANDINS / "yunet-standin.onnx", "dynamic": STANDINS / "yunet-standin-dynamic.onnx"}


@pytest.mark.parametrize("variant", sorted(STANDIN_FILES))
def test_real_yunet_finds_the_face_its_standin_network_defines(variant):
    """The installed OpenCV's own ``FaceDetectorYN`` runs a network with YuNet's input and twelve outputs
    (``tools/yunet_standin.py``; the zoo's model cannot be fetched here). By construction, a white 32x32 cell on
    the 32-px grid is one frontal face: a box 3 cells wide centred on the cell, score 1. The 1280x720 frame is
    detected at 640x360, so the white 64x64 square at (640, 320) is that cell, and the box comes back doubled.
    Run on OpenCV 4.14 and on 5.1.0 (opencv-python-headless 5.1.0.95 first on PYTHONPATH): both variants pass."""
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[320:384, 640:704] = 255
    [face] = YuNetDetector(str(STANDIN_FILES[variant]))(frame)
    assert (face.x, face.y, face.w, face.h) == pytest.approx((576, 256, 192, 192), abs=0.5)
    assert face.score == pytest.approx(192 * 192, rel=1e-3)  # score 1, frontal landmarks: the whole area counts


@pytest.fixture
def square_clip(tmp_path) -> Path:
    """10 frames of a white 32x32 square on black at (320, 160), 640x360: the stand-in YuNet's one face."""
    clip = tmp_path / "square.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=black:s=640x360:r=25:d=0.4,drawbox=x=320:y=160:w=32:h=32:color=white:t=fill",
           "-f", "lavfi", "-i", "sine=duration=0.4", "-pix_fmt", "yuv420p", "-shortest", str(clip))
    return clip


def with_standin_yunets(folder: Path) -> Path:
    """The stand-in networks under the zoo's file names (fixed shape as 2023mar, dynamic as 2026may)."""
    folder.mkdir(exist_ok=True)
    for name, standin in (("yunet", STANDIN_FILES["fixed"]), ("yunet-dynamic", STANDIN_FILES["dynamic"])):
        (folder / BOTH_YUNETS[name]).write_bytes(standin.read_bytes())
    return folder


def test_cmet_faces_with_the_real_yunet(tmp_path, square_clip):
    """`cmet faces --detector yunet` end to end on the installed OpenCV, the stand-in network installed under the
    zoo's file names in `--weights-dir`: the white square of every frame is the one face, where the network
    puts it (centre of the cell, 3 cells wide)."""
    clip, folder = square_clip, with_standin_yunets(tmp_path / "weights")
    run = cmet("faces", clip, "--detector", "yunet", "--weights-dir", folder, "--json",
               env={"CMET_HOME": str(tmp_path / "empty-cache")})
    assert run.code == 0 and run.stderr == "", run.stderr  # OpenCV 5's load-time warning is not shown
    [face] = json.loads(run.stdout)["faces"]
    assert face["frames"] == 10 and face["centre"] == pytest.approx([336, 176], abs=1) and face["size"] == pytest.approx(96, abs=1)


def test_edit_with_the_real_yunet(tmp_path, square_clip, yunet_weights, model_loads):
    """`cmet edit` with `--detector auto` where only YuNet's files are installed besides the networks: on OpenCV 4
    auto takes YuNet over the cascade, on OpenCV 5 it is the only one; the real FaceDetectorYN runs the stand-in
    network, and every frame's face is edited, the frame outside the face's box left as it was."""
    with_standin_yunets(yunet_weights)
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    run = cmet("edit", square_clip, "-o", out, "--preset", "happy", "--report", report, "--weights-dir", yunet_weights,
               "--bank", BANK, "--device", "cpu", env={"CMET_HOME": str(tmp_path / "empty-cache")})
    assert run.code == 0, run.stderr
    [row] = json.loads(report.read_text())["results"]
    assert row["warnings"] == [] and row["face_frames"] == 10 == row["frames"]
    a, b = frames(square_clip), frames(out)
    assert a.shape == b.shape
    outside = np.ones(a.shape[1:3], bool)
    outside[100:260, 250:420] = False  # the face box (96 px about (336, 176)) grown by its crop margin
    # measured: 0 outside (flat black comes back exact through x264), the changed pixels within rows 120-233 and
    # columns 287-383, and a mean change of 82 code values on the square
    assert np.abs(a[:, outside].astype(int) - b[:, outside]).max() <= 1
    assert np.abs(a[:, 160:192, 320:352].astype(int) - b[:, 160:192, 320:352]).mean() > 20  # the face changed
