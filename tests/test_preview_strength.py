"""``cmet preview`` shows each face at the emotion strength the edit gives it at that frame: at strength 0
(``--intensity 0``, the ``neutral`` preset, a ``neutral`` per-face emotion, before the first ``--at``) the face is
not rendered and the edited tile is the original one, and across a ``--blend`` ramp the face cross-fades from the
original crop to the render as in ``cmet edit`` (the preview goes through the edit's own crop, render and
paste-back: ``stream.crop_batches``, ``render_faces``, ``paste_back``).

The networks are the 64² stand-in (``small_weights``); the one-face clips put the face at ``cli_support.BOX``, so
no detector runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmet_cli import media, stream
from cmet_cli.preview import THUMB, _thumb

from .cli_support import BOX, cmet, model_args
from .clips import face_clip, two_faces_clip


FACE_BOX = (64, 16, 256, 256)  # face_clip's face (tests/test_untouched.py)


@pytest.fixture
def renders(monkeypatch) -> list[int]:
    """The number of face crops of each network render the edit pass (and the preview) asks for."""
    seen: list[int] = []
    real = stream.edit_faces

    def counting(editors, work):
        seen.append(sum(len(frames) for _, frames in work))
        return real(editors, work)

    monkeypatch.setattr(stream, "edit_faces", counting)
    return seen


def rows(sheet: Path) -> tuple[np.ndarray, np.ndarray]:
    """The sheet's top (original) and bottom (edited) rows, RGB int32."""
    import cv2

    image = cv2.imread(str(sheet), cv2.IMREAD_COLOR)[..., ::-1].astype(np.int32)
    assert image.shape[0] == 2 * THUMB
    return image[:THUMB], image[THUMB:]


def preview(clip: Path, sheet: Path, weights: Path, *args: str) -> tuple[np.ndarray, np.ndarray]:
    run = cmet("preview", clip, "-o", sheet, *args, *model_args(weights))
    assert run.code == 0, run.stderr
    return rows(sheet)


@pytest.mark.parametrize("emotion", [("--preset", "happy", "--intensity", "0"), ("--preset", "neutral")],
                         ids=["intensity-0", "neutral"])
def test_strength_0_shows_the_face_untouched(tmp_path, clip, small_weights, renders, emotion):
    """As ``cmet edit`` leaves every pixel as it was, the edited row is the original row, exactly (both are the
    same frames through the same thumbnail scaling), and no face goes through the networks. Before the fix
    the face was rendered at full strength: measured max 200, mean 3.6 over the whole sheet, for both."""
    top, bottom = preview(clip, tmp_path / "sheet.png", small_weights, *emotion, "--frames", "3", *BOX)
    assert np.array_equal(top, bottom), (np.abs(top - bottom).max(), np.abs(top - bottom).mean())
    assert renders == []


@pytest.mark.cascade
def test_a_neutral_face_is_untouched_and_the_other_edited(tmp_path, small_weights, renders):
    """Two faces (``two_faces_clip``: face 1 big at x 0–256, face 2 small at x 300–460), ``--face all`` with
    face 2 ``neutral``: face 2's part of every tile is the original's, face 1's changes. Before the fix face 2 was
    rendered (measured max 239, mean 90 in its box of the first tile)."""
    two = two_faces_clip(tmp_path / "two.mp4")
    listed = json.loads(cmet("faces", two, "--detector", "cascade", "--json").stdout)
    assert [f["id"] for f in listed["faces"]] == [1, 2]
    top, bottom = preview(two, tmp_path / "sheet.png", small_weights, "--preset", "happy", "--face", "all",
                          "--face-emotion", "2=neutral", "--frames", "3", "--detector", "cascade")
    info = media.probe(two)
    scale = THUMB / info.height
    width = round(info.width * scale)
    assert top.shape[1] == 3 * width

    def region(face: dict, k: int) -> tuple[slice, slice]:  # a listed face's box in the k-th tile
        (cx, cy), half = face["centre"], face["size"] / 2
        return (slice(int((cy - half) * scale), int((cy + half) * scale)),
                slice(k * width + int((cx - half) * scale), k * width + int((cx + half) * scale)))

    one, two_ = listed["faces"]
    for k in range(3):
        diff = np.abs(top[region(two_, k)] - bottom[region(two_, k)])
        assert diff.max() == 0, (k, diff.max(), diff.mean())  # not rendered: the same pixels
        assert np.abs(top[region(one, k)] - bottom[region(one, k)]).mean() > 5, k
    # only face 1 went through the networks: one render of its three crops
    assert renders == [3]


def test_a_blend_ramp_tile_is_the_edited_frame(tmp_path, small_weights, renders):
    """A timeline ``--at 0.1 happy --blend 0.3s`` on five frames at 10 fps: strengths 0, 0, 0.26, 0.74, 1. A
    preview of all five frames shows, tile by tile, what the lossless edit wrote at those frames (the edit's own
    frames through the sheet's thumbnail scaling): the first two untouched, the ramp's frames cross-faded as in
    the edit. ``cmet preview`` takes no ``--at`` (the app previews a timeline's first emotion), so the library's
    ``contact_sheet`` is called with the edit's options.

    Measured: every tile equal to the edit's frame (max difference 0). Before the fix the preview rolled the
    timeline over the sampled frames at 1 fps, so frames 1 to 3 showed the emotion at full strength (max 244,
    mean 20 against the edit's frames)."""
    from cmet_cli.options import EditOptions
    from cmet_cli.pipeline import Editor
    from cmet_cli.preview import contact_sheet

    from .cli_support import BANK, shared_models

    clip = face_clip(tmp_path / "five.mp4", seconds=0.5)
    info = media.probe(clip)
    assert info.frame_count == 5
    options = EditOptions(at=(("0.1", "happy"),), blend=0.3, box=FACE_BOX, weights_dir=small_weights,
                          bank_dir=BANK, device="cpu").validate()
    sheet = contact_sheet(clip, tmp_path / "sheet.png", options, 5, editor=Editor(options, load_models=shared_models))
    top, bottom = rows(sheet)
    out = tmp_path / "edit.mp4"
    run = cmet("edit", clip, "-o", out, "--at", "0.1", "happy", "--blend", "0.3s", "--box", ",".join(map(str, FACE_BOX)),
               "--crf", "0", *model_args(small_weights))
    assert run.code == 0, run.stderr
    edited = np.concatenate([_thumb(f) for f in media.read_planes(media.probe(out))], axis=1).astype(np.int32)
    original = np.concatenate([_thumb(f) for f in media.read_planes(info)], axis=1).astype(np.int32)
    assert np.array_equal(top, original)
    diff = np.abs(bottom - edited)
    assert diff.max() <= 1, (diff.max(), diff.mean())
    width = top.shape[1] // 5
    change = [float(np.abs(bottom - top)[:, k * width:(k + 1) * width].mean()) for k in range(5)]
    assert change[0] == change[1] == 0 and 0 < change[2] < change[3] < change[4], change  # measured 0, 0, 8.5, 24, 32
    assert renders == [3, 3]  # the preview's and the edit's renders: frames 2, 3, 4 only
