"""The edit of a video, end to end: the orchestration, and the module to read first.

    input --probe--> check_input --> stream.track (pass 1) --> stream.run_edit (pass 2) --> output

``Editor`` is built from validated ``options.EditOptions``. ``Editor.load``, once per run, loads the
networks (``models.load_models``: generator, connector, preset bank, and the ``runtime.Runtime`` that says
where and how they run), the emotion plan (``emotion.emotion_plan``: the keyframes with their semantic
vectors, from speech embeddings and the bank) and the face detector. ``Editor.edit`` then edits one file:

1. ``check_paths``, ``media.probe`` and ``check_input``: what is refused before any frame decodes;
2. ``Editor.stamp``: the settings record the output carries (``fingerprint``), so that a re-run can
   skip a finished edit;
3. pass 1, ``stream.track_all``: decode, detect faces on keyframes, track and smooth (``faces``): every
   face track with its id, a crop box per frame and its appearance frame; ``--face`` and ``--face-emotion``
   choose the tracks to edit (``EditOptions.chosen_faces``), each with its own emotion plan and editor;
4. pass 2, ``stream.run_edit``: decode in chunks -> crop the chosen faces -> ``face_editor.CmetEditor``: encode
   the codes (``render``, EDTalk) -> roll the connector over them with the plan's vectors (``transfer``,
   C-MET) -> render -> paste back -> encode (``media``) into a temporary file renamed into place
   (``atomic``) once the output is verified.

Both passes stream: memory does not grow with the video's length. ``edit_video`` is the one-call API;
``runner`` runs an ``Editor`` over many files (``batch`` plans them, ``distributed`` spreads them over Ray).
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from . import faces, media, presets, timeline
from .emotion import Plans, emotion_plans
from .errors import CmetError, MediaError, UsageError
from .face_editor import CmetEditor, FaceEditor, Tally, batch_of_windows
from .fingerprint import TAG as RECORD_TAG, Stamp, input_identity, settings_hash, settings_record
from .models import Models, detector_files, load_models, weight_paths
from .options import EditOptions
from .results import EditResult, FaceRow  # the result types live apart (face_editor needs one without this module)
from .stages import CancelToken, ProgressFn, Stage
from .stream import FaceEdit, run_edit, track_all

log = logging.getLogger("cmet")


def plan_label(plan: Sequence[timeline.Keyframe]) -> str:
    """An emotion plan in words: ``sad``, or ``happy from 0s, sad from 4s`` for a timeline."""
    if len(plan) == 1 and plan[0].time == 0:
        return plan[0].label
    return ", ".join(f"{k.label} from {k.time:g}s" for k in plan)


class Editor:
    """Loads the models once, then edits files one after another.

    ``models``: networks already loaded, or ``load_models``: how to load them (default ``models.load_models``);
    ``plan``: the emotion plans already computed (``emotion.emotion_plans``, or one global plan as a list of
    keyframes; else made from the models' emotion sources by ``load``); ``settings``: the settings hash already computed (``Editor.settings``), so that no
    weight file needs to be found here to stamp outputs; ``face_editor``: renders the crops instead of C-MET.
    """

    def __init__(self, options: EditOptions, *, models: Models | None = None,
                 load_models: Callable[[EditOptions], Models] | None = None,
                 plan: Plans | Sequence[timeline.Keyframe] | None = None, settings: str | None = None,
                 face_editor: FaceEditor | None = None, progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> None:
        self.options = options.validate()
        self.progress = progress
        self.cancel = cancel or CancelToken()  # shared by the per-thread copies of a batch run
        self._face_editor = face_editor
        self._load_models = load_models
        self.models = models
        self._models_given = models is not None  # networks handed in: their files may be unknown
        self.plans: Plans | None = None if plan is None else dict(plan) if isinstance(plan, dict) else {None: list(plan)}
        self._detector = None
        self._settings = settings

    @property
    def plan(self) -> list[timeline.Keyframe] | None:
        """The global emotion plan (empty when only ``--face-emotion`` gives emotions; None before ``load``)."""
        return None if self.plans is None else self.plans.get(None, [])

    def all_keyframes(self) -> list[timeline.Keyframe]:
        """Every keyframe of every plan (for the weak-preset warnings)."""
        return [k for plan in (self.plans or {}).values() for k in plan]

    @property
    def on_gpu(self) -> bool:
        return self.models is not None and self.models.device.type != "cpu"

    def for_thread(self) -> Editor:
        """A copy for another thread: the models, plan and cancel token are shared, the face detector is not
        (OpenCV's cascade classifier and YuNet must not be used from two threads at once)."""
        clone = copy.copy(self)
        clone._detector = None
        return clone

    def detector_kind(self) -> str:
        """``fan``, ``yunet`` or ``cascade``: what ``--detector`` resolves to here (``box`` with a fixed box)."""
        if self.options.box:
            return "box"
        return faces.detector_kind(self.options.detector, detector_files(self.options.weights_dir))

    def detector_warnings(self) -> list[str]:
        """The cascade fallback of ``--detector auto``, for the result (and so the report) of every file."""
        if self.options.detector == "auto" and self.detector_kind() == "cascade":
            return [faces.CASCADE_FALLBACK]
        return []

    def stamp(self, input: Path) -> Stamp:
        """The settings and input record written into (and compared with) the output of ``input``."""
        return Stamp(self.settings(), input_identity(input))

    def settings(self) -> str:
        """The hash of everything that shapes the edit's pixels (``fingerprint.settings_record``).

        Needs the weights to be found (their content is hashed once per process), not loaded.
        """
        if self._settings is None:
            if self._face_editor is not None:
                files: dict[str, Path | None] = {}
                record = {"face_editor": type(self._face_editor).__qualname__}
            else:
                try:
                    paths = weight_paths(self.options)
                    files = {"edtalk": paths.edtalk, "connector": paths.connector, "emotion2vec": paths.emotion2vec,
                             "bank": paths.bank}
                    record = {}
                except CmetError:
                    if not self._models_given:  # cannot tell what the edit would be made with
                        raise
                    files, record = {}, {"models": "given"}  # networks handed in by the caller
            record |= settings_record(self.options, files, self.detector_kind())
            self._settings = settings_hash(record)
        return self._settings

    def load(self) -> None:
        """The models, the emotion plan (each unless given) and the face detector: once, before the first edit."""
        if self.models is None and self._face_editor is None:
            started = time.perf_counter()
            if self.progress:
                self.progress(Stage.LOAD_MODELS, 0, 1)
            load = self._load_models or partial(load_models, emotion=self.plans is None)
            self.models = load(self.options)
            self._make_plan()
            if self.progress:
                self.progress(Stage.LOAD_MODELS, 1, 1)
            log.info("models loaded in %.1f s; networks: %s", time.perf_counter() - started, self.models.runtime.why)
        else:
            self._make_plan()
        self.detector()  # a detector that cannot be built is a usage error of the run, not of each file

    def _make_plan(self) -> None:
        """The emotion plan from the loaded models' embeddings and bank, unless it was given."""
        if self.models is not None and self.plans is None:
            sources = self.models.emotion
            if sources is None:
                raise CmetError("no emotion plan: the models were loaded without the bank and emotion2vec")
            self.plans = emotion_plans(self.options, sources.embed, sources.bank)

    def detector(self):
        if self._detector is None and not self.options.box:
            self._detector = faces.make_detector(self.options.detector, detector_files(self.options.weights_dir))
        return self._detector

    def edit(self, input: str | Path, output: str | Path) -> EditResult:
        input, output = Path(input), Path(output)
        result = EditResult(str(input), str(output))
        started = time.perf_counter()
        check_paths(input, output, self.options.overwrite)
        info = media.probe(input)
        result.warnings += check_input(info, self.options)
        result.fps = float(info.fps)
        self.load()
        stamp = self.stamp(input)
        result.warnings += presets.weak_warnings(self.all_keyframes())
        result.warnings += self.detector_warnings()
        tracks = track_all(info, self.options, self.detector(), self.progress, cancel=self.cancel)
        n_decoded = len(tracks[0].boxes) if tracks else media.count_frames(info)
        if n_decoded != info.frame_count:  # e.g. a stream-copied cut: packets before its start do not show
            result.warnings.append(f"{info.frame_count} video packets but {n_decoded} frames decode: "
                                   f"writing {n_decoded} frames")
            info = replace(info, frame_count=n_decoded)
        if info.has_audio:
            note = media.audio_plan(info, media.output_format(output))[1]
            if note:
                result.warnings.append(note)
        chosen = faces.pick(tracks, self.options.chosen_faces([t.id for t in tracks]))
        for face_track in chosen:
            lost = int((~face_track.present).sum())
            if lost and len(chosen) == 1:
                result.warnings.append(f"no face in {lost} of {info.frame_count} frames: those pass through unchanged")
            elif lost:
                result.warnings.append(f"face {face_track.id} is absent from {lost} of {info.frame_count} frames: "
                                       "it passes through unchanged there")
        edits = self.face_edits(chosen)
        batch = batch_of_windows([e.editor for e in edits], self.options.batch_size
                                 or (self.models.runtime.batch_size if self.models else 8))
        record = stamp.metadata(media.container_tags(info.path).get(RECORD_TAG))  # after the input's own comment
        result.frames, result.face_frames = run_edit(info, output, edits, self.options, batch, self.progress,
                                                     metadata=record, cancel=self.cancel, warnings=result.warnings)
        self.report_faces(edits, result)
        result.seconds = time.perf_counter() - started
        return result

    def face_plan(self, face: int) -> tuple[list[timeline.Keyframe], str]:
        """The emotion plan of face track ``face`` and where it comes from (``face-emotion`` or ``global``)."""
        plans = self.plans or {}
        if face in plans:
            return plans[face], "face-emotion"
        if not self.options.global_emotion and self._face_editor is None:
            raise UsageError(f"face {face} has no emotion: give --face-emotion {face}=EMOTION, or --preset, "
                             "--emotion-speech or --at for every chosen face")
        return plans.get(None, []), "global"

    def face_edits(self, chosen: Sequence[faces.FaceTrack]) -> list[FaceEdit]:
        """Each chosen face track with its editor: its own emotion plan, appearance source and connector rollout
        on the run's networks (progress counted over all of them); a face editor handed in edits every face."""
        tally = Tally(self.progress)
        edits = []
        for face_track in chosen:
            plan, _ = self.face_plan(face_track.id)
            editor = self._face_editor or CmetEditor(self.models, plan, self.options.blend, tally=tally)
            edits.append(FaceEdit(face_track, editor))
        return edits

    def report_faces(self, edits: Sequence[FaceEdit], result: EditResult) -> None:
        """The result's row per edited face, and its overall expression change and vector norm (the mean over
        every rendered face frame). An editor without ``report`` (a test stand-in) measures nothing."""
        weighted: list[tuple[int, float, float]] = []
        for edit in edits:
            part = EditResult(result.input, result.output)
            report = getattr(edit.editor, "report", None)  # optional (FaceEditor): a wrapped CmetEditor reports too
            if report is not None:
                report(part)
            plan, source = self.face_plan(edit.track.id)
            rendered = int(getattr(edit.editor, "change_n", 0)) or int(edit.track.present.sum())
            result.faces.append(FaceRow(edit.track.id, int(edit.track.present[:result.frames].sum()), part.code_change,
                                        part.vector_norm, plan_label(plan), source).as_dict())
            if part.code_change is not None:
                weighted.append((rendered, part.code_change, part.vector_norm or 0.0))
        total = sum(n for n, _, _ in weighted)
        if total:
            result.code_change = sum(n * c for n, c, _ in weighted) / total
            result.vector_norm = sum(n * v for n, _, v in weighted) / total


def check_input(info: media.VideoInfo, options: EditOptions) -> list[str]:
    """What can be told about an input from its probe, before any frame is edited: raises for a damaged
    file (unless ``allow_damaged``) and a ``--box`` outside the frame; returns warnings."""
    warnings: list[str] = []
    if info.damaged:  # MP4/MOV: the index declares more frames than the data holds
        decoded = media.count_frames(info)
        text = f"damaged: {decoded} of {info.declared_frames} frames decode"
        if not options.allow_damaged:
            raise MediaError(f"{info.path}: {text} (--allow-damaged edits the frames that do)")
        warnings.append(f"{text}: writing those {decoded}")
    elif not info.declared_frames:  # MKV, WebM, MPEG-TS, ...: no frame count to compare with
        reason = media.damage(info)
        if reason is not None:
            if not options.allow_damaged:
                raise MediaError(f"{info.path}: damaged: {reason} (--allow-damaged edits the frames that decode)")
            warnings.append(f"damaged: {reason}: writing the {media.count_frames(info)} frames that decode")
    if options.box and box_outside(options.box, info.width, info.height):
        raise UsageError(f"--box {','.join(map(str, options.box))} lies outside the {info.width}x{info.height} "
                         f"frame of {info.path}")
    last = (info.frame_count - 1) / float(info.fps)
    for cue in options.at:
        if cue.time > last + timeline.TIME_TOLERANCE:
            warnings.append(f"--at {cue.time:g} {cue.label} is past the end of the clip (last frame at {last:.2f} s): "
                            "never applies")
    return warnings


def box_outside(box: tuple[int, int, int, int], width: int, height: int) -> bool:
    """Whether a face box X,Y,W,H misses the frame entirely (one that overlaps it is clipped at the edges)."""
    x, y, w, h = box
    return x >= width or y >= height or x + w <= 0 or y + h <= 0


def check_paths(input: Path, output: Path, overwrite: bool) -> None:
    """Refuse to overwrite an input, and existing outputs unless asked."""
    if not input.exists():
        raise MediaError(f"{input}: no such file")
    media.output_format(output)
    if output.exists() and output.resolve() == input.resolve():
        raise UsageError(f"{output}: the output would overwrite the input")
    if output.exists() and not overwrite:
        raise UsageError(f"{output} exists: pass --overwrite to replace it")
    if not output.parent.exists():
        output.parent.mkdir(parents=True, exist_ok=True)


def edit_video(input: str | Path, output: str | Path, *, progress: ProgressFn | None = None, **options) -> EditResult:
    """Edit one video: ``edit_video("in.mp4", "out.mp4", preset="sarcastic")``. Options: see ``EditOptions``."""
    for key in ("emotion_speech", "neutral_speech"):
        if key in options and isinstance(options[key], (str, Path)):
            options[key] = (options[key],)
    for key in ("emotion_speech", "neutral_speech"):
        if key in options:
            options[key] = tuple(Path(p) for p in options[key])
    if "at" in options:
        options["at"] = tuple(options["at"])
    return Editor(EditOptions(**options), progress=progress).edit(input, output)
