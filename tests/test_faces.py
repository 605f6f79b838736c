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


def _paste_reference(planes, face, box, mask, conv, sub):
    """paste_planes done the slow, plain way: the whole box scaled up, every plane blended with numpy."""
    import cv2

    from cmet_cli.colour import from_rgb

    def up(values):
        return faces.cropping._resize(np.ascontiguousarray(values, np.float32), box.side)

    h, w = planes[0].shape
    sx, sy = sub
    grid = np.zeros((h + box.side * 2, w + box.side * 2), np.float32)  # the box on a canvas with room around
    def on_frame(values):
        canvas = grid.copy()
        canvas[box.y0 + box.side:box.y0 + 2 * box.side, box.x0 + box.side:box.x0 + 2 * box.side] = values
        return canvas[box.side:box.side + h, box.side:box.side + w]
    alpha = on_frame(np.clip(up(mask), 0, 1))
    y, u, v = from_rgb(face, conv)
    out = []
    for k, (plane, values) in enumerate(zip(planes, (y, u, v))):
        weighted, a = on_frame(up(values)) * alpha, alpha
        if k and (sx or sy):
            size = (w >> sx, h >> sy)
            weighted, a = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (weighted, a))
        new = np.clip(np.rint(plane - plane * a + weighted), 0, conv.peak)
        out.append(new.astype(plane.dtype))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_paste_planes_matches_the_plain_computation(seed):
    """The paste-back computes only the mask's bounding box, with OpenCV's element-wise calls: it must give what
    blending the whole box with numpy gives. Measured over 300 random cases (8/10-bit, 4:2:0/4:2:2/4:4:4, boxes
    past the frame's edges, odd offsets): 270 of 16.2 M samples differ, all by 1 code value (OpenCV scales one
    channel and two channels with different float rounding, ≤ 4e-3 code values). Bound: ≤ 1 code value on
    ≤ 0.1 % of the samples. A window 3 mask pixels too small leaves the feathered edge unblended: 53 code values."""
    from cmet_cli.colour import Conversion

    rng = np.random.default_rng(seed)
    bits = (8, 10)[seed % 2]
    conv = Conversion(("bt709", "bt601")[seed // 2 % 2], bool(seed % 3), bits)
    sub = [(1, 1), (1, 0), (0, 0), (1, 1)][seed]
    h, w = 96, 128
    dtype = np.uint8 if bits == 8 else np.uint16
    peak = (1 << bits) - 1
    planes = [rng.integers(0, peak + 1, (h, w)).astype(dtype)] + [
        rng.integers(0, peak + 1, (h >> sub[1], w >> sub[0])).astype(dtype) for _ in range(2)]
    mask = faces.face_mask(64)
    face = rng.uniform(-10, 265, (64, 64, 3)).astype(np.float32)
    for box in (faces.CropBox(21, 7, 75), faces.CropBox(-30, 40, 90), faces.CropBox(w - 50, -20, 81)):
        got = [p.copy() for p in planes]
        faces.paste_planes(got, face, box, mask, conv, sub)
        want = _paste_reference([p.astype(np.float32) for p in planes], face, box, mask, conv, sub)
        for g, r in zip(got, want):
            diff = np.abs(g.astype(int) - r.astype(int))
            assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3, (box, diff.max(), (diff > 0).mean())
