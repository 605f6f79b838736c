"""``cmet faces``: the face tracks of a video, with the ids ``cmet edit --face`` and ``cmet preview --face`` take,
and a contact sheet with one labelled thumbnail per track.

The tracks come from the edit's own tracking pass (``stream.track_all``) with the same detector settings, so
the ids are the edit's: by the share of frames in which the face is present, then by its mean size
(``faces.face_tracks``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import atomic, colour, faces, media, stream
from .errors import MediaError, UsageError
from .options import EditOptions
from .stages import CancelToken, ProgressFn

THUMB = 160  # side of a track's thumbnail in the sheet
LABEL = 28  # height of the strip under it that holds the id


@dataclass(frozen=True)
class Span:
    """A run of frames where a face is present: frame indices (inclusive) and their times in seconds."""

    first: int
    last: int
    start: float
    end: float


@dataclass(frozen=True)
class FaceInfo:
    """One face track as ``cmet faces`` lists it."""

    id: int
    frames: int  # frames where the face is present
    share: float  # of the clip's frames
    spans: tuple[Span, ...]
    centre: tuple[float, float]  # mean face centre (x, y), pixels
    size: float  # mean face-box side, pixels
    reference: int  # the frame its appearance is taken from in an edit

    def as_dict(self) -> dict:
        return {"id": self.id, "frames": self.frames, "share": round(self.share, 4),
                "spans": [s.__dict__ for s in self.spans], "centre": [round(v, 1) for v in self.centre],
                "size": round(self.size, 1), "reference": self.reference}


@dataclass(frozen=True)
class FaceList:
    """The face tracks of one video."""

    input: str
    detector: str
    frames: int
    fps: float
    faces: tuple[FaceInfo, ...]

    def as_dict(self) -> dict:
        return {"input": self.input, "detector": self.detector, "frames": self.frames, "fps": self.fps,
                "faces": [f.as_dict() for f in self.faces]}


def describe(face_track: faces.FaceTrack, times: np.ndarray) -> FaceInfo:
    """A track's row: where and when it is present (``times``: each frame's seconds since the first)."""
    cx, cy, side = face_track.mean_box
    spans = tuple(Span(a, b, round(float(times[a]), 3), round(float(times[b]), 3)) for a, b in face_track.spans())
    return FaceInfo(face_track.id, int(face_track.present.sum()), face_track.share, spans, (cx, cy), side,
                    face_track.reference)


def list_faces(input: str | Path, options: EditOptions, detector=None, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> tuple[FaceList, list[faces.FaceTrack], media.VideoInfo]:
    """Track every face of ``input`` as ``cmet edit`` does with the same ``options`` (detector, ``--box``)."""
    info = media.probe(Path(input))
    tracks = stream.track_all(info, options, detector, progress, cancel=cancel)
    n = len(tracks[0].boxes) if tracks else media.count_frames(info)
    times = media.frame_times(info)
    if times is None or len(times) < n:
        times = np.arange(n) / float(info.fps)
    kind = "box" if options.box else getattr(detector, "name", options.detector)
    listed = FaceList(str(input), kind, n, float(info.fps), tuple(describe(t, times) for t in tracks))
    return listed, tracks, info


def check_sheet_path(path: Path, overwrite: bool, what: str = "the sheet") -> None:
    """That a contact sheet may be written to ``path``, before any work: a ``UsageError`` if it names a folder,
    is not a .png/.jpg name, or exists and ``overwrite`` is off."""
    if path.is_dir():
        raise UsageError(f"{path} is a folder: name the image file (e.g. {path / 'sheet.png'})")
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UsageError(f"{path}: {what} is an image: use .png or .jpg")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists: pass --overwrite to replace it")


def contact_sheet(info: media.VideoInfo, tracks: Sequence[faces.FaceTrack], output: str | Path,
                  overwrite: bool = False) -> Path:
    """One thumbnail per track (its reference frame's face crop), labelled with its id, in a row."""
    import cv2

    output = Path(output)
    check_sheet_path(output, overwrite=True)  # an existing sheet is refused by the rename unless ``overwrite``
    if not tracks:
        raise UsageError(f"{output}: no face track to show")
    picks = media.planes_at(info, [t.reference for t in tracks])
    tiles = []
    for t in tracks:
        frame = picks[t.reference]
        h, w = frame.shape
        box = faces.CropBox.from_row(t.boxes[t.reference])
        crop = colour.to_uint8(faces.crop_planes(frame.planes, box, THUMB, frame.layout.conversion(w, h),
                                                 frame.layout.sub))
        tile = np.full((THUMB + LABEL, THUMB, 3), 255, np.uint8)
        tile[:THUMB] = crop
        cv2.putText(tile, f"face {t.id}", (8, THUMB + LABEL - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2,
                    cv2.LINE_AA)
        tiles.append(tile)
    sheet = np.concatenate(tiles, axis=1)
    ok, encoded = cv2.imencode(output.suffix.lower(), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise MediaError(f"{output}: the image could not be encoded")
    output.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_file(output, encoded.tobytes(), overwrite=overwrite)


def table(listed: FaceList) -> list[str]:
    """The list as text lines, one per track."""
    count = len(listed.faces)
    lines = [f"{listed.input}: {count} face track{'s' if count != 1 else ''} in {listed.frames} frames "
             f"(detector {listed.detector}; ids by share of frames, then size)"]
    if count:
        lines.append(f"{'id':>4}  {'frames':>9}  {'share':>6}  {'size':>6}  {'centre':>12}  present (s)")
    for f in listed.faces:
        present = ", ".join(f"{s.start:.2f}-{s.end:.2f}" for s in f.spans)
        centre = f"{f.centre[0]:.0f},{f.centre[1]:.0f}"
        lines.append(f"{f.id:>4}  {f.frames:>4}/{listed.frames:<4}  {100 * f.share:>5.0f}%  {f.size:>4.0f}px  "
                     f"{centre:>12}  {present}")
    return lines
