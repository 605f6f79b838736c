"""The edit, end to end, as a stream: decode -> track/crop -> encode codes -> rollout -> render -> paste -> encode.

Two passes over the video, both streaming (memory does not grow with length):
1. face tracking: decode, detect on keyframes, link into tracks, smooth; pick the appearance frame;
2. the edit: frames flow through in chunks (a multiple of the connector's 5-frame window); a decoder
   thread and a writer thread (paste-back + ffmpeg) keep the networks busy.

``Editor`` loads the models once and edits any number of files; ``edit_video`` is the one-call API.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from . import atomic, colour, faces, media, presets, timeline
from .errors import CmetError, MediaError, NoFaceError, UsageError
from .fingerprint import Stamp
from .emotion import emotion_plan
from .face_editor import CmetEditor, FaceEditor, frame_weights
from .models import Models, face_alignment_paths, load_models, weight_paths
from .options import EditOptions
from .stages import CancelToken, ProgressFn, Stage

log = logging.getLogger("cmet")


@dataclass
class EditResult:
    """What happened to one input (the JSON report's row)."""

    input: str
    output: str
    status: str = "done"  # done | skipped | failed
    frames: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    face_frames: int = 0
    code_change: float | None = None  # mean |edited - original| of the expression codes
    vector_norm: float | None = None  # norm of the semantic vector used (mean over frames)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


# ---------------------------------------------------------------- streaming helpers

_END = object()


def prefetch(items: Iterable, depth: int) -> Iterator:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead (bounded memory)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's decoder is released here, in its own thread, not at interpreter exit

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[tuple[int, list[np.ndarray]]]:
    batch: list[np.ndarray] = []
    start = 0
    for i, frame in enumerate(frames):
        if not batch:
            start = i
        batch.append(frame)
        if len(batch) == size:
            yield start, batch
            batch = []
    if batch:
        yield start, batch


@dataclass
class Batch:
    """A chunk of decoded frames and the faces to render in it."""

    start: int
    frames: list  # media.Frame
    have: np.ndarray  # indices of the frames whose face is rendered (a face, and a weight above 0)
    boxes: dict[int, faces.CropBox]
    weights: dict[int, float]  # how much of the render each of those frames shows
    crops: np.ndarray | None  # float32 RGB crops (0–255 scale) of those frames, None if none


def crop_batches(batches: Iterable[tuple[int, list]], face_track: faces.FaceTrack, size: int,
                 weigh: Callable[[np.ndarray], np.ndarray]) -> Iterator[Batch]:
    """Each chunk of frames with the face crops to render: only the crops are converted to RGB."""
    present = face_track.present
    for start, frames in batches:
        idx = np.arange(start, start + len(frames))
        valid = idx[idx < len(present)]
        have = valid[present[valid]]
        weights = weigh(have) if len(have) else np.zeros(0, np.float32)
        have, weights = have[weights > 0], weights[weights > 0]
        boxes = {int(i): faces.CropBox.from_row(face_track.boxes[i]) for i in have}
        crops = None
        if len(have):
            first = frames[int(have[0]) - start]
            conv = first.layout.conversion(first.shape[1], first.shape[0])
            crops = np.stack([faces.crop_planes(frames[int(i) - start].planes, boxes[int(i)], size, conv,
                                                first.layout.sub) for i in have])
        yield Batch(start, frames, have, boxes, {int(i): float(w) for i, w in zip(have, weights)}, crops)


def composite(frame: "media.Frame", face: np.ndarray, box: faces.CropBox, mask: np.ndarray) -> "media.Frame":
    """The frame with the (float RGB) face blended into copies of its planes; everything else unchanged."""
    planes = tuple(p.copy() for p in frame.planes)
    h, w = frame.shape
    faces.paste_planes(planes, face, box, mask, frame.layout.conversion(w, h), frame.layout.sub)
    return media.Frame(planes, frame.pts, frame.layout)


def side_by_side(left: "media.Frame", right: "media.Frame") -> "media.Frame":
    return media.Frame(tuple(np.concatenate([a, b], axis=1) for a, b in zip(left.planes, right.planes)),
                       left.pts, left.layout)


class _Writer:
    """Paste-back and encoding in a background thread, fed through a bounded queue."""

    def __init__(self, writer: media.FrameWriter, compare: bool, depth: int = 4) -> None:
        self.writer, self.compare = writer, compare
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            job = self.q.get()
            if job is _END:
                return
            if self.error is not None:
                continue
            try:
                for original, edited in job():
                    self.writer.write(side_by_side(original, edited) if self.compare else edited)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer
                self.error = exc

    def put(self, job: Callable[[], Iterable[tuple["media.Frame", "media.Frame"]]]) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(job)

    def stop(self) -> None:
        """Drop what is queued and end the thread (after the encoder was aborted)."""
        self.error = self.error or KeyboardInterrupt("stopped")
        self.q.put(_END)
        self.thread.join()

    def finish(self) -> None:
        self.q.put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error


# ---------------------------------------------------------------- the two passes

def track(info: media.VideoInfo, options: EditOptions, detector=None, progress: ProgressFn | None = None,
          config: faces.TrackConfig = faces.TrackConfig(), cancel: CancelToken | None = None) -> faces.FaceTrack:
    """Pass 1: detect faces on keyframes and build the smoothed per-frame crop boxes.

    The boxes cover the frames that really decode (a stream-copied cut holds more packets than frames).
    """
    if options.box:
        return faces.fixed_track(options.box, media.count_frames(info))
    detector = detector or faces.make_detector(options.detector)
    every = max(1, config.keyframe_every)
    keys: list[tuple[int, list[faces.Detection]]] = []
    count, last = 0, None
    cancel = cancel or CancelToken()
    for i, frame in enumerate(media.read_frames(info)):
        cancel.check()
        count, last = i + 1, frame
        if i % every == 0:
            keys.append((i, detector(frame)))
            if progress:
                progress(Stage.TRACK_FACES, i + 1, info.frame_count)
    if last is not None and (count - 1) % every:
        keys.append((count - 1, detector(last)))  # the last frame too, so the track reaches the end
    if progress:
        progress(Stage.TRACK_FACES, count, count)
    if count == 0:
        raise MediaError(f"{info.path}: no frame could be decoded; the file may be damaged")
    return faces.track_faces(keys, count, float(info.fps), getattr(detector, "name", "cascade"), options.face, config)


def check_input(info: media.VideoInfo, options: EditOptions) -> list[str]:
    """What can be told about an input from its probe, before any frame is edited: raises for a damaged
    file (unless ``allow_damaged``) and a ``--box`` outside the frame; returns warnings."""
    warnings: list[str] = []
    if info.damaged:
        decoded = media.count_frames(info)
        text = f"damaged: {decoded} of {info.declared_frames} frames decode"
        if not options.allow_damaged:
            raise MediaError(f"{info.path}: {text} (--allow-damaged edits the frames that do)")
        warnings.append(f"{text}: writing those {decoded}")
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


def run_edit(info: media.VideoInfo, output: Path, face_track: faces.FaceTrack, editor: FaceEditor,
             options: EditOptions, batch: int, progress: ProgressFn | None = None,
             metadata: dict[str, str] | None = None, cancel: CancelToken | None = None,
             warnings: list[str] | None = None) -> tuple[int, int]:
    """Pass 2: stream every frame through the face editor and write the output atomically.

    Frames travel as the video's own planes with their timestamps. Only the face crop of a frame with
    a face and a non-zero emotion strength is converted to RGB, rendered and blended back (cross-faded
    by the strength); every other pixel and frame goes to the encoder as decoded. ``metadata``: container
    tags of the output (the settings record, see ``fingerprint``). ``cancel``: checked before each chunk;
    once cancelled the edit stops and removes its temporary file. Returns (frames written, frames with
    a face); what of the input the output cannot keep is added to ``warnings``.
    """
    size = getattr(editor, "crop_size", faces.CROP)
    cancel = cancel or CancelToken()
    present = face_track.present
    mask = faces.face_mask(size)
    frames = media.read_planes(info)
    try:
        ref_frame = next(itertools.islice(frames, face_track.reference, None), None)
    finally:
        frames.close()  # the decoder is released now, not when the generator is collected
    if ref_frame is None:
        raise MediaError(f"{info.path}: cannot decode frame {face_track.reference}; the file may be damaged")
    if ref_frame.layout.converted_from and warnings is not None:
        warnings.append(f"pixel format {ref_frame.layout.converted_from} cannot be edited as it is: "
                        f"converted to {ref_frame.layout.pix_fmt} (the whole frame)")
    ref_conv = ref_frame.layout.conversion(ref_frame.shape[1], ref_frame.shape[0])
    ref_box = faces.CropBox.from_row(face_track.boxes[face_track.reference])
    times = media.frame_times(info)
    editor.begin(colour.to_uint8(faces.crop_planes(ref_frame.planes, ref_box, size, ref_conv, ref_frame.layout.sub)),
                 info.frame_count, float(info.fps), times if times is not None and len(times) == info.frame_count else None)
    del ref_frame
    fmt = media.output_format(output)
    width = info.width * (2 if options.compare else 1)
    written = 0
    with atomic.atomic_output(output, overwrite=options.overwrite) as staged:
        writer = media.FrameWriter(staged.path, info, crf=options.crf, audio_from=info.path,  # audio, subtitles, ...
                                   fmt=fmt, width=width, codec=options.codec, metadata=metadata, fd=staged.fd)
        if warnings is not None:
            warnings.extend(writer.notes)
        sink = _Writer(writer, options.compare)
        finished = False
        try:
            # decoding and cropping run in a background thread, one batch ahead (bounded memory)
            # as many frames as the tracking pass decoded: a damaged file's tail may decode differently
            planes = itertools.islice(media.read_planes(info), info.frame_count)
            cropped = crop_batches(chunks(planes, batch), face_track, size,
                                   lambda frames: frame_weights(editor, frames))
            for part in prefetch(cropped, depth=1):
                cancel.check()
                rendered: dict[int, np.ndarray] = {}
                if len(part.have):
                    seen = colour.to_uint8(part.crops)
                    edited = editor(seen, part.have)
                    for k, i in enumerate(part.have):
                        face = edited[k]
                        if options.colour_match:
                            face = faces.match_colour(face, seen[k], mask)
                        # what the 8-bit crop could not hold (10-bit precision, values past 0-255) comes back
                        rendered[int(i)] = face.astype(np.float32) + (part.crops[k] - seen[k])

                def job(part=part, rendered=rendered):
                    for j, frame in enumerate(part.frames):
                        i = part.start + j
                        out = composite(frame, rendered[i], part.boxes[i], mask * part.weights[i]) if i in rendered else frame
                        yield frame, out

                sink.put(job)
                written += len(part.frames)
                if progress:
                    progress(Stage.WRITE_VIDEO, written, info.frame_count)
            sink.finish()
            writer.close()
            finished = True
        finally:
            if not finished:
                writer.abort()  # first: the writer thread's pending writes then fail at once
                sink.stop()
        if writer.frames != info.frame_count:
            raise MediaError(f"{info.path}: decoded {writer.frames} of {info.frame_count} frames; the file may be damaged")
        # what the encoder and muxer say is not enough: ffmpeg can exit 0 and leave a broken file
        media.verify_output(staged.path, info.frame_count, len(info.audio) if info.has_audio else 0)
    return written, int(present.sum())


class Editor:
    """Loads the models once, then edits files one after another.

    ``models``: networks already loaded; ``plan``: the emotion plan already computed (``emotion.emotion_plan``;
    else made from ``models`` by ``load``); ``face_editor``: renders the crops instead of C-MET.
    """

    def __init__(self, options: EditOptions, *, models: Models | None = None,
                 plan: Sequence[timeline.Keyframe] | None = None, face_editor: FaceEditor | None = None,
                 progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> None:
        self.options = options.validate()
        self.progress = progress
        self.cancel = cancel or CancelToken()  # shared by the per-thread copies of a batch run
        self._face_editor = face_editor
        self.models = models
        self.plan: list[timeline.Keyframe] | None = None if plan is None else list(plan)
        self._detector = None
        self._settings: str | None = None

    def detector_kind(self) -> str:
        """``fan`` or ``cascade``: what ``--detector`` resolves to here (``box`` with a fixed box)."""
        if self.options.box:
            return "box"
        return faces.detector_kind(self.options.detector, face_alignment_paths(self.options.weights_dir))

    def detector_warnings(self) -> list[str]:
        """The cascade fallback of ``--detector auto``, for the result (and so the report) of every file."""
        if self.options.detector == "auto" and self.detector_kind() == "cascade":
            return [faces.CASCADE_FALLBACK]
        return []

    def stamp(self, input: Path) -> Stamp:
        """The settings and input record written into (and compared with) the output of ``input``.

        Needs the weights to be found (their content is hashed once per process), not loaded.
        """
        from .fingerprint import input_identity, settings_hash, settings_record

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
                    if self.models is None:  # cannot tell what the edit would be made with
                        raise
                    files, record = {}, {"models": "given"}  # networks handed in by the caller
            record |= settings_record(self.options, files, self.detector_kind())
            self._settings = settings_hash(record)
        return Stamp(self._settings, input_identity(input))

    def load(self) -> None:
        if self.models is None and self._face_editor is None:
            started = time.perf_counter()
            if self.progress:
                self.progress(Stage.LOAD_MODELS, 0, 1)
            self.models = load_models(self.options)
            self._make_plan()
            if self.progress:
                self.progress(Stage.LOAD_MODELS, 1, 1)
            log.info("models loaded in %.1f s on %s", time.perf_counter() - started, self.models.device)
        else:
            self._make_plan()
        self.detector()  # a detector that cannot be built is a usage error of the run, not of each file

    def _make_plan(self) -> None:
        """The emotion plan from the loaded models' embeddings and bank, unless it was given."""
        if self.models is not None and self.plan is None:
            self.plan = emotion_plan(self.options, self.models.embed, self.models.preset_bank)

    def detector(self):
        if self._detector is None and not self.options.box:
            self._detector = faces.make_detector(self.options.detector, face_alignment_paths(self.options.weights_dir))
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
        result.warnings += presets.weak_warnings(self.plan or ())
        result.warnings += self.detector_warnings()
        face_track = track(info, self.options, self.detector(), self.progress, cancel=self.cancel)
        if len(face_track.boxes) != info.frame_count:  # e.g. a stream-copied cut: packets before its start do not show
            result.warnings.append(f"{info.frame_count} video packets but {len(face_track.boxes)} frames decode: "
                                   f"writing {len(face_track.boxes)} frames")
            info = replace(info, frame_count=len(face_track.boxes))
        if info.has_audio:
            note = media.audio_plan(info, media.output_format(output))[1]
            if note:
                result.warnings.append(note)
        lost = int((~face_track.present).sum())
        if lost == info.frame_count:
            raise NoFaceError("the face was lost in every frame; give its position with --box X,Y,W,H")
        if lost:
            result.warnings.append(f"no face in {lost} of {info.frame_count} frames: those pass through unchanged")
        editor = self._face_editor or CmetEditor(self.models, self.plan, self.options.blend, self.progress)
        batch = self.options.batch_size or (self.models.runtime.batch_size if self.models else 8)
        result.frames, result.face_frames = run_edit(info, output, face_track, editor, self.options, batch, self.progress,
                                                     metadata=stamp.metadata(), cancel=self.cancel,
                                                     warnings=result.warnings)
        if isinstance(editor, CmetEditor):
            editor.report(result)
        result.seconds = time.perf_counter() - started
        return result


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
