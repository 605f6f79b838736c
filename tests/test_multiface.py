"""Several faces in one video: ``cmet faces`` lists the tracks and their ids, ``cmet edit --face``/``--face-emotion``
edits the chosen ones in one pass, each with its own emotion, and leaves the others as decoded.

Clips are made here (``clips.two_faces_clip``: a big face at the left, a small copy at the right; a face that
leaves for 2 s); the networks are the 64² stand-in (``small_weights``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmet_cli import media

from .cli_support import assert_one_line_failure, cmet, leftovers, model_args
from .clips import BACKGROUND, SAMPLE, ffmpeg, two_faces_clip

pytestmark = pytest.mark.cascade  # the faces are found with OpenCV's Haar cascade


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Path:
    return two_faces_clip(tmp_path_factory.mktemp("two") / "two.mp4")


@pytest.fixture(scope="module")
def listed(two) -> dict:
    run = cmet("faces", two, "--detector", "cascade", "--json")
    assert run.code == 0, run.stderr
    return json.loads(run.stdout)


def planes(path: Path) -> list[tuple[np.ndarray, ...]]:
    """Every frame's Y, U, V planes as int32 (differences do not wrap)."""
    return [tuple(p.astype(np.int32) for p in f.planes) for f in media.read_planes(media.probe(path))]


def box_of(face: dict) -> tuple[slice, slice]:
    """Rows and columns of a listed face's box (its mean centre and size), in luma pixels."""
    (cx, cy), half = face["centre"], face["size"] / 2
    return slice(int(cy - half), int(cy + half)), slice(int(cx - half), int(cx + half))


def change(a: list, b: list, rows: slice, cols: slice) -> tuple[int, float]:
    """Max and mean |difference| of the luma of two clips in a region, over all frames."""
    diff = np.stack([np.abs(x[0][rows, cols] - y[0][rows, cols]) for x, y in zip(a, b)])
    return int(diff.max()), float(diff.mean())


def edit(two: Path, out: Path, weights: Path, *args: str) -> dict:
    run = cmet("edit", two, "-o", out, "--detector", "cascade", "--crf", "0", "--json", *args, *model_args(weights))
    assert run.code == 0, run.stderr
    return json.loads(run.stdout)


def test_faces_lists_both_tracks_by_id(listed):
    """Both faces are present throughout (3 frames): the larger is face 1. Boxes: the big face's cascade box is
    about 190 px around (128, 144), the small one's about 120 px around (380, 140) (``two_faces_clip``)."""
    assert listed["detector"] == "cascade" and listed["frames"] == 3
    one, two_ = listed["faces"]
    assert (one["id"], two_["id"]) == (1, 2)
    assert one["frames"] == two_["frames"] == 3 and one["spans"] == [{"first": 0, "last": 2, "start": 0.0, "end": 0.2}]
    assert one["size"] > 150 > two_["size"] > 90
    assert abs(one["centre"][0] - 128) < 20 and abs(two_["centre"][0] - 380) < 20


def test_face_2_alone_leaves_face_1_as_decoded(tmp_path, two, listed, small_weights, model_loads):
    """``--face 2 --preset sad`` (lossless output): face 2, located by ``cmet faces``, changes; face 1's box
    differs from the input by at most one code value (it does not go through the networks at all)."""
    row = edit(two, tmp_path / "out.mp4", small_weights, "--face", "2", "--preset", "sad")
    assert [f["id"] for f in row["faces"]] == [2] and row["faces"][0]["emotion"] == "sad"
    a, b = planes(two), planes(tmp_path / "out.mp4")
    one, two_ = (box_of(f) for f in listed["faces"])
    assert change(a, b, *one)[0] <= 1  # measured 0: face 1 is never pasted; 1 allows for the decoder's rounding
    assert change(a, b, *two_)[1] > 5  # measured mean 29.9: the stand-in's render differs by tens of code values


def test_each_face_its_own_emotion_in_one_pass(tmp_path, two, listed, small_weights, model_loads, monkeypatch):
    """``--face all --face-emotion 1=happy --face-emotion 2=sad``: one decode of the edit pass, one encoder; each
    face comes out as a run editing that face alone with that emotion, and not as with the other's emotion."""
    import cmet_cli.stream as stream

    writers, decodes = [], []
    real_writer, real_read = media.FrameWriter, media.read_planes
    monkeypatch.setattr(media, "FrameWriter", lambda *a, **k: writers.append(1) or real_writer(*a, **k))
    monkeypatch.setattr(media, "read_planes", lambda *a, **k: decodes.append(1) or real_read(*a, **k))
    both = edit(two, tmp_path / "both.mp4", small_weights, "--face", "all", "--face-emotion", "1=happy",
                "--face-emotion", "2=sad")
    # a single-face edit decodes three times too: tracking, the appearance frames, the edit pass
    assert writers == [1] and len(decodes) == 3, (writers, decodes)
    assert stream.media is media
    assert [(f["id"], f["emotion"], f["source"]) for f in both["faces"]] == [(1, "happy", "face-emotion"),
                                                                            (2, "sad", "face-emotion")]
    monkeypatch.undo()
    happy1 = edit(two, tmp_path / "h1.mp4", small_weights, "--face", "1", "--preset", "happy")
    sad1 = edit(two, tmp_path / "s1.mp4", small_weights, "--face", "1", "--preset", "sad")
    assert happy1["faces"][0]["code_change"] != sad1["faces"][0]["code_change"]
    b, h, s = planes(tmp_path / "both.mp4"), planes(tmp_path / "h1.mp4"), planes(tmp_path / "s1.mp4")
    one = box_of(listed["faces"][0])
    # shared batches vs the face alone: the same networks on the same crops, only the batch differs (fp32
    # reductions split otherwise): measured max 1, mean 1e-4; 2 still fails face 1 rendered sad (max 56)
    assert change(b, h, *one)[0] <= 2
    assert change(b, s, *one)[1] > 1  # measured mean 4.6 against sad, 1e-4 against happy: the emotion is face 1's


def test_a_face_that_is_not_there_names_those_that_are(tmp_path, two, small_weights, model_loads):
    run = cmet("edit", two, "-o", tmp_path / "out.mp4", "--preset", "sad", "--detector", "cascade", "--face", "3",
               *model_args(small_weights))
    assert_one_line_failure(run, "--face 3", "2 face tracks found: 1 and 2", "cmet faces")
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.mp4").exists()


def test_face_emotion_for_a_face_not_chosen_is_a_usage_error(tmp_path, two, small_weights):
    run = cmet("edit", two, "-o", tmp_path / "out.mp4", "--face", "1", "--face-emotion", "2=sad",
               *model_args(small_weights))
    assert_one_line_failure(run, "--face-emotion 2=sad: face 2 is not chosen by --face 1", code=2)


def test_a_face_that_leaves_for_two_seconds_keeps_its_id(tmp_path):
    """The sample's face on a grey canvas for 4 s at 25 fps, gone from 1 s to 3 s (50 frames, past the 25-frame
    gap that is interpolated over): one track, id 1, present in two runs."""
    path = tmp_path / "away.mp4"
    graph = (f"color=c={BACKGROUND}:s=320x288:r=25[bg];[0:v]fps=25[fg];"
             "[bg][fg]overlay=32:16:shortest=1:enable='not(between(t,1,2.999))',format=yuv420p[v]")
    ffmpeg("-stream_loop", "1", "-i", str(SAMPLE), "-filter_complex", graph, "-map", "[v]", "-an", "-c:v", "libx264",
           "-preset", "veryfast", "-t", "4", str(path))
    run = cmet("faces", path, "--detector", "cascade", "--json")
    assert run.code == 0, run.stderr
    [face] = json.loads(run.stdout)["faces"]
    assert face["id"] == 1 and len(face["spans"]) == 2, face
    first, second = face["spans"]
    assert first["end"] < 1.2 and 2.8 < second["start"] < 3.2 and second["end"] > 3.9


def test_preview_shows_the_chosen_face_only(tmp_path, two, listed, small_weights, model_loads):
    """``cmet preview --face 2``: in the sheet (original above, edit below, 256 px high: ×256/288), face 2's box
    changes and face 1's is the same pixels (measured mean change 0 for face 1)."""
    import cv2

    sheet = tmp_path / "sheet.png"
    run = cmet("preview", two, "-o", sheet, "--preset", "sad", "--face", "2", "--frames", "1", "--detector", "cascade",
               *model_args(small_weights))
    assert run.code == 0, run.stderr
    image = cv2.imread(str(sheet)).astype(np.int32)
    top, bottom = image[:256], image[256:]
    scale = 256 / 288

    def region(face: dict) -> tuple[slice, slice]:
        rows, cols = box_of(face)
        return (slice(int(rows.start * scale), int(rows.stop * scale)),
                slice(int(cols.start * scale), int(cols.stop * scale)))

    one, two_ = (region(f) for f in listed["faces"])
    assert np.abs(top[one] - bottom[one]).max() <= 1  # face 1 not edited (1: PNG is lossless, room for rounding)
    assert np.abs(top[two_] - bottom[two_]).mean() > 5
