"""Face tracking, cropping and paste-back geometry, proved with an identity renderer."""
from __future__ import annotations

import numpy as np
import pytest

from cmet_cli import faces, media
from cmet_cli.errors import NoFaceError, UsageError
from cmet_cli.options import EditOptions
from cmet_cli.stream import track

from .clips import face_clip

OFFSET = (600, 200)  # where the 256² MEAD face clip sits in the 1280×720 composite


@pytest.fixture(scope="module")
def clip(tmp_path_factory, data_dir):
    return face_clip(tmp_path_factory.mktemp("faces") / "composite.mp4", canvas="1280x720", offset=OFFSET, rate=25, seconds=1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.cascade
def test_identity_paste_back_is_transparent(clip):
    info = media.probe(clip)
    face_track = track(info, EditOptions(preset="happy", detector="cascade"), faces.CascadeDetector())
    assert face_track.present.all()
    mask = faces.face_mask()
    x0, y0 = OFFSET
    for i, frame in enumerate(media.read_frames(info)):
        cx, cy, side = face_track.boxes[i]
        # the crop is centred on the known face region and about its size (the MEAD crop is 256 px)
        assert x0 + 64 < cx < x0 + 192 and y0 + 64 < cy < y0 + 192
        assert 200 < side < 330
        box = faces.CropBox.from_row(face_track.boxes[i])
        out = faces.paste(frame, faces.crop(frame, box), box, mask)
        assert psnr(out, frame) >= 40.0, f"frame {i}"
        # outside the crop box nothing changed, bit for bit
        outside = np.ones(frame.shape[:2], bool)
        outside[max(0, box.y0):box.y0 + box.side, max(0, box.x0):box.x0 + box.side] = False
        assert np.array_equal(out[outside], frame[outside])


def test_paste_leaves_pixels_outside_mask_untouched():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    box = faces.CropBox(-30, 50, 200)  # partly outside the frame
    rendered = np.zeros((256, 256, 3), np.uint8)
    mask = faces.face_mask()
    out = faces.paste(frame, rendered, box, mask)
    alpha = faces.cropping._resize(mask, box.side)
    untouched = np.ones(frame.shape[:2], bool)
    region = untouched[50:250, 0:170]
    region[alpha[:, 30:] > 0] = False
    assert np.array_equal(out[untouched], frame[untouched])
    assert (out[~untouched] != frame[~untouched]).any()


def test_crop_pads_outside_frame_and_has_training_size():
    frame = np.full((100, 120, 3), 7, np.uint8)
    c = faces.crop(frame, faces.CropBox(-50, -50, 180))
    assert c.shape == (256, 256, 3) and (c == 7).all()


def _det(x, y, s):
    return faces.Detection(x, y, s, s, s * s)


def test_tracking_largest_face_gaps_and_smoothing():
    keys = [(f, [_det(100 + f, 100, 80), _det(400, 100, 40)]) for f in range(0, 50, 5) if f not in (20, 25)]
    tr = faces.track_faces(keys, 50, 25.0, "cascade")
    assert tr.present.all()  # the 10-frame gap is interpolated
    assert np.allclose(tr.boxes[:, 2], 80 * faces.CROP_SCALE["cascade"])
    assert 155 < tr.boxes[20, 0] < 165  # moving face (centre 100 + f + 40): the box follows it
    other = faces.track_faces(keys, 50, 25.0, "cascade", face=2)
    assert np.allclose(other.boxes[:, 0], 420)
    with pytest.raises(UsageError):
        faces.track_faces(keys, 50, 25.0, "cascade", face=3)


def test_face_lost_and_never_found():
    keys = [(f, [_det(100, 100, 80)] if f < 20 else []) for f in range(0, 100, 5)]
    tr = faces.track_faces(keys, 100, 25.0, "cascade")
    assert tr.present[:20].all() and not tr.present[30:].any()
    with pytest.raises(NoFaceError, match="--box"):
        faces.track_faces([(f, []) for f in range(0, 50, 5)], 50, 25.0, "cascade")


def test_jitter_is_smoothed():
    rng = np.random.default_rng(1)
    keys = [(f, [_det(200 + rng.normal(0, 4), 200, 100)]) for f in range(0, 100, 5)]
    tr = faces.track_faces(keys, 100, 25.0, "cascade")
    raw = np.array([d[0].x for _, d in keys]) + 50
    assert np.std(np.diff(tr.boxes[::5, 0])) < 0.5 * np.std(np.diff(raw))


def test_frontality_prefers_symmetric_faces():
    marks = np.zeros((68, 2))
    marks[36], marks[45] = (30, 40), (70, 40)
    marks[30] = (50, 60)
    assert faces.frontality(marks) == pytest.approx(1.0)
    marks[30] = (35, 60)  # nose towards one eye: the head is turned
    assert faces.frontality(marks) < 0.8
