"""``cmet preview``: a contact sheet of a few evenly spaced frames, original above and edited below.

Only those frames are kept and processed (decoding stops after the last one), as the video's planes: the
detector sees a small RGB image of each, the face crop alone is converted for the networks and pasted back
into the planes, and the thumbnails are scaled in the planes before conversion. So it answers in seconds
where a full edit takes minutes. The connector rolls over the sampled frames as if they were consecutive: a preview of the
emotion, not of its timing.

With ``--face`` or ``--face-emotion`` the faces are those tracks of the edit (the tracking pass runs over the
whole video first, so that the ids are ``cmet faces``'s), each with its own emotion; without them, the largest
face of each sampled frame, with the global emotion.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from . import atomic, colour, faces, media, presets, stream
from .errors import MediaError, NoFaceError, UsageError
from .options import EditOptions, OptionError
from .face_editor import CmetEditor, edit_faces
from .face_list import check_sheet_path
from .pipeline import Editor, box_outside
from .runner import check_speech

log = logging.getLogger("cmet")

THUMB = 256


def sample_indices(frame_count: int, n: int) -> list[int]:
    """``n`` evenly spaced frame indices, centred in equal segments of the clip."""
    n = max(1, min(n, frame_count))
    return sorted({int((k + 0.5) * frame_count / n) for k in range(n)})


def _thumb(frame: media.Frame) -> np.ndarray:
    h, w = frame.shape
    return media.scaled_rgb(frame, (THUMB, max(1, round(w * THUMB / h))))


def _crop(frame: media.Frame, box: faces.CropBox, size: int) -> np.ndarray:
    """The face crop of a frame as the networks see it (uint8 RGB), converted from its planes alone."""
    h, w = frame.shape
    return colour.to_uint8(faces.crop_planes(frame.planes, box, size, frame.layout.conversion(w, h), frame.layout.sub))


def largest_boxes(picks: dict[int, media.Frame], options: EditOptions, detector, fps: float) -> dict[int, faces.CropBox]:
    """The crop box of the largest face of each picked frame (``--box``: the given box)."""
    boxes: dict[int, faces.CropBox] = {}
    for i in sorted(picks):
        if options.box:
            row = faces.fixed_track(options.box, 1).boxes[0]
        else:
            dets = stream.detect(detector, picks[i])
            if not dets:
                continue
            best = max(dets, key=lambda d: d.area)
            row = faces.track_faces([(0, [best])], 1, fps, detector.name).boxes[0]
        boxes[i] = faces.CropBox.from_row(row)
    return boxes


def tracked_boxes(info: media.VideoInfo, options: EditOptions, editor: Editor,
                  indices: list[int]) -> dict[int, dict[int, faces.CropBox]]:
    """The crop boxes of each chosen face track (by id, as ``cmet edit`` chooses them) in the picked frames."""
    tracks = stream.track_all(info, options, editor.detector())
    chosen = faces.pick(tracks, options.chosen_faces([t.id for t in tracks]))
    return {t.id: {i: faces.CropBox.from_row(t.boxes[i]) for i in indices if i < len(t.boxes) and t.present[i]}
            for t in chosen}


def contact_sheet(input: str | Path, output: str | Path, options: EditOptions, n_frames: int = 6,
                  editor: Editor | None = None) -> Path:
    import cv2

    input, output = Path(input), Path(output)
    check_sheet_path(output, options.overwrite, "the contact sheet")
    if n_frames < 1:
        raise OptionError("{n_frames} must be at least 1")
    info = media.probe(input)
    if options.box and box_outside(options.box, info.width, info.height):
        raise UsageError(f"--box {','.join(map(str, options.box))} lies outside the {info.width}x{info.height} frame of {input}")
    atomic.check_writable(output.parent)  # before the models load
    if editor is None or editor.plans is None:
        check_speech(options)  # a bad speech clip is a usage error before the weights are looked for, as in `cmet edit`
    editor = editor or Editor(options)
    editor.load()
    for warning in presets.weak_warnings(editor.all_keyframes()) + editor.detector_warnings():
        log.warning(warning)
    indices = sample_indices(info.frame_count, n_frames)
    if options.face is not None or options.face_emotions:
        by_face = tracked_boxes(info, options, editor, indices)
    else:
        by_face = {1: largest_boxes(media.planes_at(info, indices), options, editor.detector(), float(info.fps))}
    if not any(by_face.values()):
        raise NoFaceError(f"{input}: no face in the sampled frames; give its position with --box X,Y,W,H")
    picks = media.planes_at(info, indices)
    order = sorted(picks)
    size = editor.models.crop_size
    editors, work, haves = [], [], []
    for face, boxes in by_face.items():
        have = [i for i in order if i in boxes]
        if not have:
            continue
        crops = np.stack([_crop(picks[i], boxes[i], size) for i in have])
        cmet = CmetEditor(editor.models, editor.face_plan(face)[0], options.blend)
        cmet.begin(crops[0], len(have), 1.0)
        editors.append(cmet)
        work.append((crops, np.arange(len(have))))
        haves.append((boxes, have))
    edited = edit_faces(editors, work)
    mask = faces.face_mask(size)
    top = [_thumb(picks[i]) for i in order]
    bottom = []
    for i in order:
        layers = [(boxes[i], out[have.index(i)].astype(np.float32), mask)
                  for (boxes, have), out in zip(haves, edited) if i in boxes]
        bottom.append(_thumb(stream.composite_faces(picks[i], layers) if layers else picks[i]))
    sheet = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    ok, encoded = cv2.imencode(output.suffix.lower(), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise MediaError(f"{output}: the image could not be encoded")
    output.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_file(output, encoded.tobytes(), overwrite=options.overwrite)
