"""What ``cmet app``'s page does, without the page: the same ``runner``/``Editor`` calls as ``cmet edit`` and
``cmet preview``, one at a time, with the networks loaded once per process.

Nothing here imports gradio (``page`` builds the page over a ``Workbench``), so this is tested like the rest of
the library. Every file is written through ``atomic`` (by ``runner.edit_one`` and ``preview.contact_sheet``):
edits into ``output_dir``, contact sheets into the app's private scratch folder.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import CmetError, MediaError, NoFaceError, UsageError, one_line
from ..options import EditOptions, FaceChoice, parse_cue
from ..stages import CancelToken, ProgressFn

if TYPE_CHECKING:
    from ..face_list import FaceList

Loader = Callable[[EditOptions], object]  # options -> models.Models (``runner.LoadModels``)
SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Request:
    """One edit as the page asks for it. ``video``: a path on this machine (typed, or gradio's upload)."""

    video: str
    preset: str | None = None
    speech: str | None = None  # a speech clip (uploaded or recorded): its emotion instead of a preset
    intensity: float = 1.0
    keyframes: str = ""  # "TIME EMOTION" per line (``--at``); when given, it sets the emotion over time
    blend: float = 0.5
    face: FaceChoice = None  # which face tracks: an id, "1,3" or "all" (the ids ``find_faces`` lists); None: face 1


@dataclass(frozen=True)
class FoundFaces:
    """What the page's face picker shows: the face tracks (``cmet faces``' list) and their contact sheet."""

    listed: "FaceList"
    sheet: Path

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(face.id for face in self.listed.faces)


@dataclass
class Outcome:
    """What the page shows after an edit: the result row (``EditResult.as_dict``) and the output, if any."""

    result: dict
    output: Path | None
    waited: float = 0.0  # seconds spent queued behind another edit in this process
    span: tuple[float, float] = (0.0, 0.0)  # monotonic start and end of the edit itself


def parse_keyframes(text: str) -> tuple:
    """``"0 happy\\n0:04 sad"`` -> the ``--at`` cues (a bad line is a ``UsageError`` naming it)."""
    cues = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise UsageError(f"keyframe line {number}: write TIME EMOTION, e.g. `0:04 sad`, not {line.strip()!r}")
        try:
            cues.append(parse_cue(parts[0], parts[1].strip()))
        except UsageError as exc:
            raise UsageError(f"keyframe line {number}: {exc}") from None
    return tuple(cues)


def readable_video(text: str) -> Path:
    """A path typed in the page: an existing, readable regular file that probes as a video (never run,
    never put into a command line: ffprobe gets it as one argument). Raises ``MediaError`` with one line."""
    from .. import media

    if not text or not text.strip():
        raise UsageError("give a video: upload one or type its path on this machine")
    path = Path(text.strip()).expanduser()
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise MediaError(f"{path}: not readable")
    media.probe(path)  # a file that is not a video fails here, with the CLI's message
    return path.absolute()


def output_name(input: Path, label: str, settings: str) -> str:
    """``talk-sad-1a2b3c4d.mp4``: the input's stem, the emotion, and a key over the settings hash and the input's
    identity, so that the same edit of the same file finds its earlier output (resume), and any other gets its own."""
    from ..fingerprint import input_identity

    key = hashlib.sha256(f"{settings}|{input_identity(input)}".encode()).hexdigest()[:8]
    stem = SAFE.sub("_", input.stem).strip("._")[:60] or "video"
    return f"{stem}-{SAFE.sub('_', label)[:30]}-{key}.mp4"


@dataclass
class Workbench:
    """One app process: the base options (``--weights-dir``, ``--bank``, ``--device``, ...), where edits go, the
    networks loaded once (``load_models`` memoised on what decides them), and one edit or preview at a time."""

    base: EditOptions
    output_dir: Path
    scratch: Path  # private, removed at exit: uploads, recordings, contact sheets
    load_models: Loader | None = None  # default ``models.load_models``
    _models: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _load_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def loader(self, options: EditOptions):
        """The networks for ``options``: loaded on first use, then shared by every edit and preview."""
        key = (str(options.weights_dir), str(options.bank_dir), options.device, options.precision)
        with self._load_lock:
            if key not in self._models:
                if self.load_models is not None:
                    self._models[key] = self.load_models(options)
                else:
                    from ..models import load_models

                    self._models[key] = load_models(options)
            return self._models[key]

    def options(self, request: Request) -> EditOptions:
        """The request on top of the base options, validated (a ``UsageError`` names what is wrong)."""
        cues = parse_keyframes(request.keyframes)
        emotion: dict = {"preset": None, "emotion_speech": (), "at": ()} | (
            {"at": cues, "blend": request.blend} if cues else
            {"emotion_speech": (Path(request.speech),)} if request.speech else {"preset": request.preset or None})
        if not cues and not request.speech and not request.preset:
            raise UsageError("choose an emotion: a preset, a speech clip, or keyframes")
        options = replace(self.base, intensity=float(request.intensity), face=request.face or self.base.face,
                          overwrite=False, **emotion).validate()
        from .. import presets

        presets.check_presets(options)
        return options

    def edit(self, request: Request, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Outcome:
        """Edit the request's video into ``output_dir`` (``runner.prepare`` + ``runner.edit_one``, as ``cmet edit``).

        A bad input, option or model becomes a failed result with the CLI's one-line message; nothing raises for
        the input's own failure, so the app keeps running."""
        from .. import runner
        from ..batch import Job

        queued = time.monotonic()
        with self._lock:
            started = time.monotonic()
            try:
                video = readable_video(request.video)
                options = self.options(request)
                from ..pipeline import Editor

                runner.check_speech(options)  # a bad clip is refused before the weights are looked for, as in the CLI
                editor = Editor(options, load_models=self.loader, progress=progress, cancel=cancel)
                label = options.preset or ("timeline" if options.at else "speech")
                job = Job(video, self.output_dir / output_name(video, label, editor.settings()))
                prepared = runner.prepare(options, [job], editor=editor, progress=progress, cancel=cancel)
                result = runner.edit_one(prepared, job)
            except CmetError as exc:
                return Outcome(_failed(request.video, exc), None, started - queued, (started, time.monotonic()))
            output = Path(result.output) if result.status != "failed" else None
            return Outcome(result.as_dict(), output, started - queued, (started, time.monotonic()))

    def preview(self, request: Request, frames: int = 6) -> Path:
        """``cmet preview``'s contact sheet of the request (raises ``CmetError`` with the CLI's message)."""
        from ..pipeline import Editor
        from ..preview import contact_sheet

        with self._lock:
            video = readable_video(request.video)
            options = self.options(request)
            if options.at:  # a preview shows one emotion: the timeline's first
                first = options.at[0].emotion
                options = replace(options, at=(), preset=getattr(first, "name", None),
                                  emotion_speech=tuple(getattr(first, "clips", ()))).validate()
            sheets = self.scratch / "previews"
            sheets.mkdir(parents=True, exist_ok=True)
            target = sheets / f"{SAFE.sub('_', video.stem)[:60]}-{time.monotonic_ns()}.png"
            return contact_sheet(video, target, options, frames, editor=Editor(options, load_models=self.loader))


    def find_faces(self, video: str) -> FoundFaces:
        """``cmet faces`` on the video with the app's detector settings (``face_list.list_faces``, the edit's own
        tracking pass, so the ids are those the edit takes) and its contact sheet, in the scratch folder.

        Raises ``CmetError`` with the CLI's one-line message; a video with no face is the edit's ``NoFaceError``."""
        from .. import face_list
        from .. import faces as face_detection
        from ..models import detector_files

        with self._lock:
            path = readable_video(video)
            found = None if self.base.box else face_detection.make_detector(
                self.base.detector, detector_files(self.base.weights_dir))
            listed, tracks, info = face_list.list_faces(path, self.base, found)
            if not tracks:
                raise NoFaceError(face_detection.NO_FACE)
            sheets = self.scratch / "faces"
            sheets.mkdir(parents=True, exist_ok=True)
            target = sheets / f"{SAFE.sub('_', path.stem)[:60]}-{time.monotonic_ns()}.png"
            return FoundFaces(listed, face_list.contact_sheet(info, tracks, target))


def _failed(video: str, exc: BaseException) -> dict:
    """A failed result row for an edit that stopped before ``runner`` took it (bad path, bad options)."""
    from ..results import EditResult

    return EditResult(str(video), "", status="failed", error=one_line(str(exc))).as_dict()


def message(outcome: Outcome) -> str:
    """The page's status line: ``error: …`` as the CLI prints it, or what was written."""
    row = outcome.result
    if row["status"] == "failed":
        return f"error: {row['error']}"
    if row["status"] == "skipped":
        return f"already made with these settings: {row['output']}"
    return f"done: {row['frames']} frames in {row['seconds']:.1f} s: {row['output']}"
