"""Face tracks and their ids (``faces.face_tracks``): crossing faces, faces that leave and come back, the id rule.
Pure functions on made-up keyframe detections: no video, no detector."""
from __future__ import annotations

import numpy as np
import pytest

from cmet_cli import faces
from cmet_cli.errors import UsageError

FPS = 25.0


def _det(cx: float, cy: float, side: float) -> faces.Detection:
    return faces.Detection(cx - side / 2, cy - side / 2, side, side, side * side)


def _keys(n: int, where, every: int = 5) -> list[tuple[int, list[faces.Detection]]]:
    """Keyframe detections of ``n`` frames: ``where(frame)`` gives the faces seen on that frame."""
    frames = list(range(0, n, every)) + ([n - 1] if (n - 1) % every else [])
    return [(f, where(f)) for f in frames]


def _centre_x(track: faces.FaceTrack, frame: int) -> float:
    return float(track.boxes[frame, 0])


@pytest.mark.parametrize("occluded", [False, True], ids=["both-seen", "back-face-hidden"])
def test_crossing_faces_keep_their_ids(occluded):
    """Two faces of one size walk past each other (10 px/frame each, 50 px between keyframes). Where they
    overlap the back one may be hidden from the detector. Each track must follow its own face to the end;
    linking the last boxes without motion (the former tracker) swaps them at the crossing in both cases
    (frame 20: A at 300, B at 380; frame 25: A at 350, B at 330, nearer A's last box than A is)."""
    n = 60

    def where(f: int) -> list[faces.Detection]:
        a, b = 100 + 10 * f, 580 - 10 * f
        seen = [_det(a, 200, 90)]
        if not (occluded and abs(a - b) < 60):
            seen.append(_det(b, 206, 90))
        return seen

    tracks = faces.face_tracks(_keys(n, where), n, FPS, "cascade")
    assert len(tracks) == 2, [t.spans() for t in tracks]
    starts = sorted(tracks, key=lambda t: _centre_x(t, 0))
    left, right = starts  # at frame 0: face A on the left, face B on the right
    assert _centre_x(left, n - 1) > 600 and _centre_x(right, n - 1) < 100  # each ended where its face went
    assert left.present.all() and right.present.all()  # the hidden keyframes are interpolated over


def test_a_face_that_leaves_for_two_seconds_keeps_its_id():
    """Present 1 s, away 2 s, back 1 s at about the same place (12 px off, 5 % bigger): one track, id 1,
    absent (NaN boxes) while away."""
    n = 100

    def where(f: int) -> list[faces.Detection]:
        if f < 25:
            return [_det(200, 150, 80)]
        if f >= 75:
            return [_det(212, 150, 84)]
        return []

    [track] = faces.face_tracks(_keys(n, where), n, FPS, "cascade")
    assert track.id == 1
    assert track.spans() == [(0, 24), (71, 99)]  # detections to 20 and from 75, each held 4 frames
    assert not track.present[30:70].any()


@pytest.mark.parametrize("back", [
    dict(at=75, cx=400, side=80),  # 2 s later, but elsewhere
    dict(at=75, cx=200, side=160),  # same place, twice the size
    dict(at=200, cx=200, side=80),  # same place, but 7 s later (past reentry_seconds, 5)
], ids=["elsewhere", "other-size", "too-late"])
def test_a_face_that_comes_back_otherwise_gets_a_new_id(back):
    n = back["at"] + 50

    def where(f: int) -> list[faces.Detection]:
        if f < 25:
            return [_det(200, 150, 80)]
        return [_det(back["cx"], 150, back["side"])] if f >= back["at"] else []

    tracks = faces.face_tracks(_keys(n, where), n, FPS, "cascade")
    assert len(tracks) == 2
    first, second = sorted(tracks, key=lambda t: t.spans()[0][0])
    assert first.spans()[-1][1] < 30 and second.spans()[0][0] > 30


def test_ids_by_share_of_frames_then_size():
    """A big face on screen half the time is id 2 after a small one on screen throughout; among faces present
    equally long, the larger is first. A detection on one keyframe only is dropped (a false one)."""
    n = 100

    def where(f: int) -> list[faces.Detection]:
        found = [_det(100, 100, 40), _det(300, 100, 60)]  # both throughout: 60 before 40
        if f < 50:
            found.append(_det(600, 300, 200))  # big, half the clip
        if f == 40:
            found.append(_det(900, 500, 50))  # one keyframe: not a face track
        return found

    tracks = faces.face_tracks(_keys(n, where), n, FPS, "cascade")
    assert [t.id for t in tracks] == [1, 2, 3]
    assert [round(t.mean_box[0]) for t in tracks] == [300, 100, 600]
    assert tracks[0].mean_box[2] == pytest.approx(60) and tracks[2].share == pytest.approx(50 / 100)  # detections 0..45, held to frame 49


def test_pick_names_the_faces_there_are():
    n = 20
    tracks = faces.face_tracks(_keys(n, lambda f: [_det(100, 100, 60), _det(300, 100, 50)]), n, FPS, "cascade")
    assert [t.id for t in faces.pick(tracks, [2, 1])] == [2, 1]
    with pytest.raises(UsageError, match=r"^--face 3: no such face; only 2 face tracks found: 1 and 2 "):
        faces.pick(tracks, [1, 3])
    with pytest.raises(UsageError, match="1 face track found: 1 "):
        faces.pick(tracks[:1], [2])


def test_predicted_box_follows_motion():
    points = [(0, _det(100, 100, 50)), (5, _det(120, 100, 50))]
    moved = faces.tracking.predict(points, 10)
    assert (moved.x + moved.w / 2, moved.y + moved.h / 2) == pytest.approx((140, 100))
    assert np.isclose(faces.tracking.predict(points[:1], 10).x, 75)
