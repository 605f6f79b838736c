"""The edit pass's batch plan (``stream.face_batches``): what the face editor is handed, batch by batch.

The benchmark times the network on the batches this plan names, so the plan must be what the edit really does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmet_cli import faces, media, stream
from cmet_cli.options import EditOptions
from cmet_cli.pipeline import Editor, EditResult

from .clips import face_clip
from .standin import IdentityEditor


class RecordingEditor(IdentityEditor):
    """The identity editor, remembering the frame indices of every batch it was handed."""

    def __init__(self, strength=None) -> None:
        self.batches: list[list[int]] = []
        if strength is not None:
            self.frame_strength = strength

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray:
        assert len(crops) == len(frames)
        self.batches.append([int(i) for i in frames])
        return super().__call__(crops, frames)


def _plain(plan: list[np.ndarray]) -> list[list[int]]:
    return [[int(i) for i in b] for b in plan]


def test_plan_groups_face_frames_by_chunk() -> None:
    present = np.array([1, 1, 0, 1, 0, 0, 0, 1], bool)
    assert _plain(stream.face_batches(present, 3)) == [[0, 1], [3], [7]]
    assert _plain(stream.face_batches(present, 4)) == [[0, 1, 3], [7]]
    # one entry per chunk, also for a chunk without a face: it passes through, but it is a chunk of the edit
    assert _plain(stream.face_batches(present, 2)) == [[0, 1], [3], [], [7]]
    # frames the track has no entry for have no face
    assert _plain(stream.face_batches(present, 3, n_frames=11)) == [[0, 1], [3], [7], []]
    assert _plain(stream.face_batches(present, 3, n_frames=4)) == [[0, 1], [3]]


@pytest.mark.cascade
def test_the_edit_hands_the_editor_the_planned_batches(tmp_path: Path) -> None:
    """The face leaves after 0.25 s: the editor gets the face frames of each chunk, as ``face_batches`` says."""
    src = face_clip(tmp_path / "leaves.mp4", seconds=1.0, audio=False, until=0.25)
    options = EditOptions(preset="neutral", detector="cascade", batch_size=2)
    editor = RecordingEditor()
    Editor(options, face_editor=editor).edit(src, tmp_path / "out.mp4")
    track = stream.track(media.probe(src), options, faces.make_detector("cascade"))
    plan = stream.face_batches(track.present, 2)
    assert any(len(b) == 0 for b in plan) and any(len(b) == 2 for b in plan)  # chunks with and without the face
    assert editor.batches == [b for b in _plain(plan) if b]


def test_frames_the_editor_weighs_zero_are_not_handed_to_it(tmp_path: Path) -> None:
    src = face_clip(tmp_path / "talk.mp4", seconds=1.0, audio=False)  # 10 frames, the face at the box throughout
    editor = RecordingEditor(strength=lambda frames: (np.asarray(frames) % 2).astype(np.float32))
    Editor(EditOptions(preset="neutral", box=(64, 16, 256, 256), batch_size=4),
           face_editor=editor).edit(src, tmp_path / "out.mp4")
    assert editor.batches == [[1, 3], [5, 7], [9]]


def test_a_face_editor_with_a_report_adds_to_the_result(tmp_path: Path) -> None:
    """``report`` is optional in the FaceEditor protocol: any editor that has one (a wrapper too) is asked."""
    class Reporting(RecordingEditor):
        def report(self, result: EditResult) -> None:
            result.code_change = float(sum(map(len, self.batches)))

    src = face_clip(tmp_path / "talk.mp4", seconds=0.5, audio=False)
    result = Editor(EditOptions(preset="neutral", box=(64, 16, 256, 256)), face_editor=Reporting()).edit(
        src, tmp_path / "out.mp4")
    assert result.code_change == 5.0 and result.face_frames == 5


class BrighteningEditor(IdentityEditor):
    """Every face 40 levels brighter: paste-back changes the face region of every frame."""

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray:
        return np.clip(super().__call__(crops, frames).astype(np.int16) + 40, 0, 255).astype(np.uint8)


def test_the_crop_and_paste_pool_keeps_every_frame_and_its_order(tmp_path: Path, monkeypatch) -> None:
    """Cropping and paste-back run frame by frame in a pool: with 6 workers the output is bit for bit the one with
    1 (lossless), every frame in its place with its timestamp, and the pool was used."""
    src = face_clip(tmp_path / "talk.mp4", seconds=1.2, audio=False)  # 12 frames: chunks of 5, 5, 2
    options = EditOptions(preset="neutral", box=(64, 16, 256, 256), crf=0, batch_size=5)
    threads: set[str] = set()
    composite = stream.composite_faces

    def recording(frame, layers):
        import threading

        threads.add(threading.current_thread().name)
        return composite(frame, layers)

    monkeypatch.setattr(stream, "composite_faces", recording)
    outs = {}
    for workers in (1, 6):
        monkeypatch.setattr(stream, "media_workers", lambda workers=workers: workers)
        outs[workers] = tmp_path / f"out{workers}.mp4"
        Editor(options, face_editor=BrighteningEditor()).edit(src, outs[workers])
    assert threads and all(name.startswith("cmet-media") for name in threads)
    decoded = {k: list(media.read_planes(media.probe(path))) for k, path in outs.items()}
    original = list(media.read_planes(media.probe(src)))
    assert len(decoded[1]) == len(decoded[6]) == len(original) == 12
    for a, b, c in zip(decoded[1], decoded[6], original):
        assert a.pts == b.pts == c.pts
        assert all(np.array_equal(p, q) for p, q in zip(a.planes, b.planes))
        assert np.abs(a.planes[0].astype(int) - c.planes[0]).max() > 20  # the face was pasted back, brighter
    # each output frame's face is its own input frame's, brightened: of all input frames, the face of frame k
    # (the inner half of the box, less its mean) is closest to input frame k's (a frame out of place is not)
    def face(frame) -> np.ndarray:
        y = frame.planes[0][16 + 64:16 + 192, 64 + 64:64 + 192].astype(np.float64)
        return y - y.mean()

    inputs = [face(c) for c in original]
    assert [int(np.argmin([np.abs(face(a) - f).mean() for f in inputs])) for a in decoded[6]] == list(range(12))


def test_media_workers_follow_the_cores() -> None:
    assert [stream.media_workers(n) for n in (1, 2, 4, 16, 64)] == [1, 1, 2, 8, 8]
