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
