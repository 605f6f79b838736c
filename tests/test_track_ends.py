"""Where a face leaves the frame or enters it between two keyframes, its run of boxes ends exactly at the last
(starts at the first) frame the detector sees it on: the tracking pass runs the detector on the frames between
those keyframes. Before, the box was held one keyframe interval past the run, and the edit pasted a face onto
the empty background there (up to 4 frames at each end) while the warning undercounted the frames without it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmet_cli import faces, media, stream
from cmet_cli.face_list import list_faces
from cmet_cli.options import EditOptions
from cmet_cli.pipeline import Editor

from .clips import face_clip, two_faces_clip
from .standin import IdentityEditor

N = 20  # 2 s at 10 fps: keyframes 0, 5, 10, 15 and the last, 19


class TintingEditor(IdentityEditor):
    """Every face 40 levels brighter: a pasted face shows in the output."""

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray:
        return np.clip(super().__call__(crops, frames).astype(np.int16) + 40, 0, 255).astype(np.uint8)


def planes(path: Path) -> list[tuple[np.ndarray, ...]]:
    return [tuple(p.astype(np.int32) for p in f.planes) for f in media.read_planes(media.probe(path))]


def frames_with_box(track: faces.FaceTrack) -> list[int]:
    return [int(i) for i in np.flatnonzero(track.present)]


def scanned(path: Path, ends: faces.TrackConfig | None) -> list[int]:
    """The frames the tracking pass runs the cascade on."""
    keys, count = stream.scan_keyframes(media.probe(path), faces.CascadeDetector(), 5, "frame", media.DecodeHealth(),
                                        None, stream.CancelToken(), ends=ends)
    assert count == N
    return [i for i, _ in keys]


# ---------------------------------------------------------------- the edit, end to end

@pytest.mark.cascade
@pytest.mark.parametrize("shown, face", [(dict(until=0.6), range(0, 6)), (dict(since=0.8), range(8, N)),
                                         (dict(since=0.3, until=1.2), range(3, 12))],
                         ids=["leaves", "enters-late", "enters-and-leaves"])
def test_frames_without_the_face_get_no_box_and_pass_through_unchanged(tmp_path, shown, face):
    """The reviewer's case (the face gone from frame 6: boxes were on frames 0-9 and the edit pasted a face into
    6-9, mean |out - in| 28.5 there) and the same where the face enters (frame 8: boxes were from frame 6) or
    both. Lossless output: every frame without the face is the input's, bit for bit; every frame with it has a
    box and is edited; ``cmet faces`` lists the same frames; the warning counts the frames without it."""
    src = face_clip(tmp_path / "clip.mp4", seconds=2, audio=False, **shown)
    options = EditOptions(preset="neutral", detector="cascade", crf=0)
    [track] = stream.track_all(media.probe(src), options, faces.CascadeDetector())
    assert frames_with_box(track) == list(face)
    listed, _, _ = list_faces(src, options, faces.CascadeDetector())
    [row] = listed.faces
    assert [(s.first, s.last) for s in row.spans] == [(face[0], face[-1])]

    result = Editor(options, face_editor=TintingEditor()).edit(src, tmp_path / "out.mp4")
    before, after = planes(src), planes(tmp_path / "out.mp4")
    assert len(before) == len(after) == N
    for i, (a, b) in enumerate(zip(before, after)):
        if i in face:
            assert np.abs(a[0] - b[0]).max() > 20, i  # the face was pasted back, brighter
        else:
            assert all(np.array_equal(p, q) for p, q in zip(a, b)), (i, float(np.abs(a[0] - b[0]).mean()))
    lost = N - len(face)
    assert f"no face in {lost} of {N} frames: those pass through unchanged" in result.warnings
    assert result.face_frames == len(face)


@pytest.mark.cascade
def test_the_second_of_two_faces_leaves(tmp_path):
    """Two faces, the small one (face 2) gone from 0.6 s: its boxes end at frame 5, face 1's go on to the end,
    and ``--face 2`` leaves frames 6.. unchanged."""
    src = two_faces_clip(tmp_path / "two.mp4", seconds=2, until=0.6)
    options = EditOptions(preset="neutral", detector="cascade", crf=0, face=2)
    one, two = stream.track_all(media.probe(src), options, faces.CascadeDetector())
    assert (one.id, two.id) == (1, 2)
    assert frames_with_box(one) == list(range(N)) and frames_with_box(two) == list(range(6))
    result = Editor(options, face_editor=TintingEditor()).edit(src, tmp_path / "out.mp4")
    before, after = planes(src), planes(tmp_path / "out.mp4")
    assert all(np.abs(a[0] - b[0]).max() > 20 for a, b in zip(before[:6], after[:6]))
    assert all(all(np.array_equal(p, q) for p, q in zip(a, b)) for a, b in zip(before[6:], after[6:]))
    assert f"no face in {N - 6} of {N} frames: those pass through unchanged" in result.warnings


# ---------------------------------------------------------------- the search, and what it costs

@pytest.mark.cascade
def test_the_frames_between_are_searched_only_where_a_face_enters_or_leaves(tmp_path):
    """The face leaves between keyframes 5 and 10: the detector also runs on frames 6-9, and nowhere else; with a
    face throughout, on the keyframes only (the pass costs what it did). Without the search (``ends`` None:
    keyframes only) the track is held one keyframe interval past the face, to frame 9: this test and the end to
    end ones above fail if the search is removed."""
    leaves = face_clip(tmp_path / "leaves.mp4", seconds=2, audio=False, until=0.6)
    stays = face_clip(tmp_path / "stays.mp4", seconds=2, audio=False)
    keyframes = [0, 5, 10, 15, 19]
    assert scanned(leaves, faces.TrackConfig()) == [0, 5, 6, 7, 8, 9, 10, 15, 19]
    assert scanned(stays, faces.TrackConfig()) == keyframes
    assert scanned(leaves, None) == keyframes

    info = media.probe(leaves)
    detector = faces.CascadeDetector()
    keys, count = stream.scan_keyframes(info, detector, 5, "frame", media.DecodeHealth(), None, stream.CancelToken())
    [held] = faces.face_tracks(keys, count, float(info.fps), "cascade")
    assert frames_with_box(held) == list(range(10))  # the bug this file is about
    [exact] = stream.track_all(info, EditOptions(preset="neutral", detector="cascade"), detector)
    assert frames_with_box(exact) == list(range(6))


@pytest.mark.cascade
@pytest.mark.parametrize("workers, budget", [(1, stream.HELD_BYTES), (3, stream.HELD_BYTES), (3, 0)],
                         ids=["one-thread", "three-threads", "nothing-kept-ahead"])
def test_the_search_with_detector_threads_and_bounded_memory(tmp_path, monkeypatch, workers, budget):
    """The same frames and detections with one detector thread or three, and when no frame may be kept past its
    interval (``HELD_BYTES`` 0: the pass waits for each interval's detections before it decodes on)."""
    src = face_clip(tmp_path / "clip.mp4", seconds=2, audio=False, since=0.3, until=1.2)
    monkeypatch.setattr(stream, "detect_workers", lambda d, cores=None: workers)
    monkeypatch.setattr(stream, "HELD_BYTES", budget)
    keys, count = stream.scan_keyframes(media.probe(src), faces.CascadeDetector(), 5, "frame", media.DecodeHealth(),
                                        None, stream.CancelToken(), ends=faces.TrackConfig())
    assert count == N and [i for i, _ in keys] == [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 19]
    assert [i for i, found in keys if found] == [3, 4, 5, 10, 11]


# ---------------------------------------------------------------- the tracks, from detections

def _det(cx: float, side: float = 80) -> faces.Detection:
    return faces.Detection(cx - side / 2, 100, side, side, side * side)


def test_a_run_ends_at_its_last_detection_where_the_frames_between_were_searched():
    """Made-up detections, 30 frames: a face on frames 0-12, and another from frame 17. Keyframes only, each run
    is held up to one keyframe interval (to frame 14, from frame 11: where nothing was searched that is all the
    tracks know); with the frames between searched, each ends and starts at its own frames."""
    n = 30

    def seen(f: int) -> list[faces.Detection]:
        return ([_det(100)] if f <= 12 else []) + ([_det(400)] if f >= 17 else [])

    keyframes = [(f, seen(f)) for f in (0, 5, 10, 15, 20, 25, 29)]
    held = sorted(faces.face_tracks(keyframes, n, 25.0, "cascade"), key=lambda t: t.spans()[0])
    assert [t.spans() for t in held] == [[(0, 14)], [(16, 29)]]
    searched = keyframes + [(f, seen(f)) for f in (11, 12, 13, 14, 16, 17, 18, 19)]
    exact = sorted(faces.face_tracks(searched, n, 25.0, "cascade"), key=lambda t: t.spans()[0])
    assert [t.spans() for t in exact] == [[(0, 12)], [(17, 29)]]


def test_a_detection_on_searched_frames_does_not_make_a_false_one_a_track():
    """A detection on one keyframe only, beside a face seen throughout, is dropped as a false one even where the
    frames around it were searched and the detector fired there too: only keyframes count as sightings."""
    n = 30

    def seen(f: int) -> list[faces.Detection]:
        return [_det(100)] + ([_det(400, 60)] if 9 <= f <= 11 else [])

    keys = [(f, seen(f)) for f in (0, 5, 10, 15, 20, 25, 29)] + [(f, seen(f)) for f in (6, 7, 8, 9, 11, 12, 13, 14)]
    [track] = faces.face_tracks(keys, n, 25.0, "cascade")
    assert track.spans() == [(0, 29)]


def test_same_faces():
    a, b = _det(100), _det(400)
    assert faces.tracking.same_faces([a, b], [_det(405), _det(110)])  # moved a little, any order
    assert not faces.tracking.same_faces([a, b], [a])  # one left
    assert not faces.tracking.same_faces([a], [b])  # one left, another came
    assert not faces.tracking.same_faces([a], [a, b])
    assert faces.tracking.same_faces([], [])
