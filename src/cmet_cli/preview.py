"""``cmet preview``: a contact sheet of a few evenly spaced frames, original above and edited below.

Only those frames are kept and processed (decoding stops after the last one), as the video's planes: the
detector sees a small RGB image of each, the face crop alone is converted for the networks and pasted back
into the planes, and the thumbnails are scaled in the planes before conversion. So it answers in seconds
where a full edit takes minutes.

The sampled frames are edited as a clip of their own through the edit's own crop, render and paste-back
(``stream.crop_batches``, ``render_faces``, ``paste_back``): the connector rolls over them as if they were
consecutive, but each face gets, at each frame, the emotion strength the edit gives it at that frame's time
(``intensity``, a ``neutral`` emotion, and a timeline's ``at`` and ``blend`` where the options hold one; the CLI
and the app preview one emotion). So a face at strength 0 is not rendered and shows as decoded, and one on a
``blend`` ramp cross-fades from the original crop to the render as in the edit.

With ``--face`` or ``--face-emotion`` the faces are those tracks of the edit (the tracking pass runs over the
whole video first, so that the ids are ``cmet faces``'s), each with its own emotion; without them, the largest
face of each sampled frame, with the global emotion.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from . import atomic, colour, faces, media, presets, stream, timeline
from .errors import MediaError, NoFaceError, UsageError
from .options import EditOptions, OptionError
from .face_editor import CmetEditor, frame_weights
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


def largest_boxes(picks: dict[int, media.Frame], options: EditOptions, detector, fps: float) -> dict[int, np.ndarray]:
    """The crop box row (cx, cy, side) of the largest face of each picked frame (``--box``: the given box)."""
    boxes: dict[int, np.ndarray] = {}
    for i in sorted(picks):
        if options.box:
            row = faces.fixed_track(options.box, 1).boxes[0]
        else:
            dets = stream.detect(detector, picks[i])
            if not dets:
                continue
            best = max(dets, key=lambda d: d.area)
            row = faces.track_faces([(0, [best])], 1, fps, detector.name).boxes[0]
        boxes[i] = row
    return boxes


def tracked_boxes(info: media.VideoInfo, options: EditOptions, editor: Editor,
                  indices: list[int]) -> dict[int, dict[int, np.ndarray]]:
    """The crop box rows of each chosen face track (by id, as ``cmet edit`` chooses them) in the picked frames."""
    tracks = stream.track_all(info, options, editor.detector())
    chosen = faces.pick(tracks, options.chosen_faces([t.id for t in tracks]))
    return {t.id: {i: t.boxes[i] for i in indices if i < len(t.boxes) and t.present[i]} for t in chosen}


def sampled_track(rows: dict[int, np.ndarray], order: list[int]) -> faces.FaceTrack:
    """A face's boxes in the sampled frames as a track of a clip made of those frames alone (frame ``k``: the
    ``k``-th sampled frame; NaN where the face is not there), for the edit's own crop and paste-back."""
    boxes = np.full((len(order), 3), np.nan)
    for k, i in enumerate(order):
        if i in rows:
            boxes[k] = rows[i]
    present = np.flatnonzero(~np.isnan(boxes[:, 0]))
    return faces.FaceTrack(boxes=boxes, reference=int(present[0]) if len(present) else 0, detector="preview")


def sampled_times(info: media.VideoInfo, order: list[int], keyframes: list[timeline.Keyframe]) -> np.ndarray:
    """The sampled frames' times as the edit's emotion timeline sees them (``stream.begin_clip``): their
    presentation times when every frame has one, else index / rate. Keyframes all at 0 s (one emotion from the
    first frame) weigh every frame alike: then the packets are not read for their times."""
    if all(key.time <= timeline.TIME_TOLERANCE for key in keyframes):
        return np.asarray(order, np.float64) / float(info.fps)
    times = media.frame_times(info)
    if times is not None and len(times) == info.frame_count:
        return np.asarray(times, np.float64)[order]
    return np.asarray(order, np.float64) / float(info.fps)


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
    frames = [picks[i] for i in order]
    size = editor.models.crop_size
    times = sampled_times(info, order, editor.all_keyframes())
    # the sampled frames as a clip of their own, edited as `cmet edit` edits a chunk (``stream.edit_chunks``):
    # each face's editor weighs every frame by the strength the edit gives it at that frame's time
    edits = []
    for face, rows in by_face.items():
        track = sampled_track(rows, order)
        if not track.present.any():
            continue
        cmet = CmetEditor(editor.models, editor.face_plan(face)[0], options.blend)
        reference = frames[track.reference]
        cmet.begin(_crop(reference, faces.CropBox.from_row(track.boxes[track.reference]), size), len(frames),
                   float(info.fps), times)
        edits.append(stream.FaceEdit(track, cmet))
    mask = faces.face_mask(size)
    plans = [stream.face_batches(edit.track.present, len(frames)) for edit in edits]
    weighs = [functools.partial(frame_weights, edit.editor) for edit in edits]
    part = next(stream.crop_batches([(0, frames)], plans, [edit.track for edit in edits], size, weighs))
    rendered = stream.render_faces([edit.editor for edit in edits], part, mask, options.colour_match)
    top = [_thumb(frame) for frame in frames]
    bottom = [_thumb(edited) for _, edited in (pasted() for pasted in stream.paste_back(part, rendered, mask))]
    sheet = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    ok, encoded = cv2.imencode(output.suffix.lower(), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise MediaError(f"{output}: the image could not be encoded")
    output.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_file(output, encoded.tobytes(), overwrite=options.overwrite)
