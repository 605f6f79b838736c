"""Frame-threaded decoding (issue 21): used where the stream decodes clean, and both passes decode alike.

FFmpeg's frame threads give the frames one thread gives for a clean stream, but conceal damage differently
(and not the same way twice). The tracking pass decodes with frame threads, starts again with slice threads
when it meets damage, and the edit pass decodes as the tracking pass did, so its frames are the ones the boxes
index. Tiny generated clips; the damage is bytes flipped inside one coded picture.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmet_cli import faces, media, stream
from cmet_cli.options import EditOptions
from cmet_cli.pipeline import Editor

from .clips import face_clip, ffmpeg
from .standin import IdentityEditor

BOX = (64, 16, 256, 256)  # where face_clip puts the face


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return face_clip(tmp_path_factory.mktemp("threads") / "clean.mp4", seconds=1.0, audio=False)  # 10 frames


@pytest.fixture(scope="module")
def flipped(clean, tmp_path_factory) -> Path:
    """The clean clip with 24 bytes flipped in the middle of its third coded picture (a P picture): damage the
    decoder flags in both modes, every time (30 of 30 runs each; bytes flipped in the fifth picture went unflagged
    by slice threads and flagged by frame threads in 18 of 20 runs)."""
    import av

    with av.open(str(clean)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    pos, size = packets[2]
    data = bytearray(clean.read_bytes())
    for at in range(pos + size // 3, pos + size // 3 + 24):
        data[at] ^= 0x5A
    path = tmp_path_factory.mktemp("threads") / "flipped.mp4"
    path.write_bytes(bytes(data))
    return path


def decode(path: Path, threads: str) -> tuple[list, media.DecodeHealth]:
    health = media.DecodeHealth()
    return list(media.read_planes(media.probe(path), threads, health)), health


def test_frame_threads_decode_a_clean_stream_as_slice_threads_do(clean):
    by_slices, slice_health = decode(clean, "slice")
    by_frames, frame_health = decode(clean, "frame")
    assert slice_health.clean and frame_health.clean
    assert len(by_frames) == len(by_slices) == 10
    for a, b in zip(by_slices, by_frames):
        assert a.pts == b.pts and all(np.array_equal(p, q) for p, q in zip(a.planes, b.planes))
    assert media.decoded_count(media.probe(clean), "frame") == 10


def test_frame_threads_report_the_damage(flipped):
    """What the fallback rests on: a frame-threaded decode of the damaged clip says so."""
    frames, health = decode(flipped, "frame")
    assert len(frames) == 10 and not health.clean
    count_health = media.DecodeHealth()
    assert media.decoded_count(media.probe(flipped), "frame", count_health) == 10 and not count_health.clean


class FixedDetector:
    """One face where face_clip puts it, on every frame; no ``fresh``: the pass runs it in one thread."""

    name = "cascade"  # framed as the cascade's boxes are

    def __call__(self, rgb: np.ndarray) -> list[faces.Detection]:
        scale = rgb.shape[1] / 384
        return [faces.Detection(96 * scale, 48 * scale, 192 * scale, 192 * scale)]


@pytest.mark.parametrize("box", [None, BOX], ids=["detector", "box"])
def test_tracking_decodes_with_frame_threads_unless_it_meets_damage(clean, flipped, box):
    options = EditOptions(preset="neutral", box=box)
    for path, expected in ((clean, "frame"), (flipped, "slice")):
        tracks = stream.track_all(media.probe(path), options, FixedDetector())
        assert [t.decoding for t in tracks] == [expected], path.name
        assert len(tracks[0].boxes) == 10 and tracks[0].present.all()


@pytest.mark.parametrize("path_name, expected", [("clean", "frame"), ("flipped", "slice")])
def test_the_edit_pass_decodes_as_the_tracking_pass_did(request, monkeypatch, tmp_path, path_name, expected):
    src = request.getfixturevalue(path_name)
    seen: list[str] = []
    original = media.read_planes

    def recording(info, threads="slice", health=None):
        seen.append(threads)
        return original(info, threads, health)

    monkeypatch.setattr(media, "read_planes", recording)
    result = Editor(EditOptions(preset="neutral", box=BOX), face_editor=IdentityEditor()).edit(src, tmp_path / "out.mp4")
    assert result.frames == 10
    assert seen and set(seen) == {expected}  # the reference frames and the edit pass: as the tracking pass


def test_detector_threads_find_what_one_thread_finds(monkeypatch, tmp_path):
    """The tracking pass's detector pool (a copy of the detector per thread): the same keyframes, in order, with
    the same detections as one thread. The real ``cv2.FaceDetectorYN`` on YuNet's stand-in network, whose face is
    a white 32x32 cell on the 32-px grid: here one that moves a cell to the right every frame."""
    from .test_detectors import STANDIN_FILES

    clip = tmp_path / "moving.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=black:s=640x360:r=25:d=0.6[bg];color=white:s=32x32:r=25[cell];"
           "[bg][cell]overlay=x='32*n':y=160:shortest=1", "-pix_fmt", "yuv420p", str(clip))
    info = media.probe(clip)
    detector = faces.detection.YuNetDetector(str(STANDIN_FILES["fixed"]))
    runs = {}
    for workers in (1, 3):
        monkeypatch.setattr(stream, "detect_workers", lambda d, cores=None, n=workers: n)
        runs[workers] = stream.scan_keyframes(info, detector, 2, "frame", media.DecodeHealth(), None,
                                              stream.CancelToken())
    assert runs[1] is not None and runs[1] == runs[3]
    keys, count = runs[1]
    assert count == 15 and [i for i, _ in keys] == [0, 2, 4, 6, 8, 10, 12, 14]
    cells = [int(np.nonzero(frame.planes[0][176] > 128)[0][0]) for frame in media.read_planes(info)]
    assert [round(d.x) for _, [d] in keys] == [cells[i] - 32 for i, _ in keys]  # each keyframe's own cell
    assert len(set(cells)) == count  # and it moves every frame
