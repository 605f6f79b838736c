"""The two streaming passes over a video (memory does not grow with its length) and their threads.

1. ``track_all``: decode as planes (frame-threaded where the stream is clean), detect faces on keyframes
   (scaled down, ``detect``, in a pool of detector threads: ``scan_keyframes``), and on the frames between two
   keyframes whose faces differ (a face enters or leaves there: its run of boxes ends exactly where the
   detector stops seeing it), link them into tracks and smooth them: every face track with its id, a crop box
   per frame and its appearance (reference) frame (``track``: one of them);
2. ``run_edit``: frames flow through in chunks (a multiple of the connector's 5-frame window) as the
   video's own planes, once whatever the number of faces edited (``FaceEdit``: a track and its editor): a
   decoder thread (``prefetch``) decodes a few frames ahead, a crop thread crops every edited face of a chunk
   (``crop_face``), the face editors render the crops in shared batches (``render_faces``), every face of a
   frame is pasted back into its planes at once (``paste_back``, ``composite_faces``), and a writer thread
   (``_Writer``) encodes, so that the networks are kept busy. Cropping and paste-back run frame by frame in a
   small thread pool (``media_workers``: numpy and OpenCV release the GIL); every queue between the threads is
   bounded, and frames stay in order.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import os
import queue
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from . import atomic, colour, faces, media
from .errors import MediaError
from .face_editor import FaceEditor, edit_faces, frame_weights
from .options import EditOptions
from .stages import CancelToken, ProgressFn, Stage

# ---------------------------------------------------------------- streaming helpers

_END = object()
DECODE_AHEAD = 8  # frames the decoder thread may run ahead of the crop thread
HELD_BYTES = 256 << 20  # decoded frames the tracking pass keeps for run-end searches (besides the open interval's)


def prefetch(items: Iterable, depth: int, name: str = "prefetch") -> Iterator:
    """Iterate ``items`` in a background thread (``cmet-NAME``), at most ``depth`` ahead (bounded memory)."""
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

    thread = threading.Thread(target=run, daemon=True, name=f"cmet-{name}")
    try:
        thread.start()  # inside the try: a signal raised while it waits for the thread must still stop and drain it
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


@dataclass(frozen=True)
class FaceEdit:
    """One face to edit: its track and its face editor (its own appearance source and connector rollout)."""

    track: faces.FaceTrack
    editor: FaceEditor


@dataclass
class FaceCrops:
    """One face's crops to render in a chunk."""

    have: np.ndarray  # indices of the frames whose face is rendered (a face, and a weight above 0)
    boxes: dict[int, faces.CropBox]
    weights: dict[int, float]  # how much of the render each of those frames shows
    crops: np.ndarray | None  # float32 RGB crops (0–255 scale) of those frames, None if none


@dataclass
class Batch:
    """A chunk of decoded frames and, for each edited face (in the order of the edits), its crops to render."""

    start: int
    frames: list  # media.Frame
    faces: list[FaceCrops]


def face_batches(present: np.ndarray, batch: int, n_frames: int | None = None) -> list[np.ndarray]:
    """The edit's batch plan: for each ``batch``-frame chunk of the clip, in order, the indices of its frames
    with a face (empty for a chunk without one). ``present``: the face track's per-frame flags; ``n_frames``:
    the frames the edit writes (default ``len(present)``; frames past ``present`` have no face).

    The edit pass hands the face editor exactly these frames, less those the editor weighs 0
    (``face_editor.frame_weights``); the benchmark asks here which batches it times.
    """
    n = len(present) if n_frames is None else n_frames
    face = np.zeros(n, bool)
    face[:min(n, len(present))] = present[:n]
    idx = np.arange(n)
    return [idx[s:s + batch][face[s:s + batch]] for s in range(0, n, batch)]


Mapper = Callable[..., Iterable]  # ``map`` or ``ThreadPoolExecutor.map``: results in the order of the items


def media_workers(cores: int | None = None) -> int:
    """Threads of the edit's crop and paste-back pool: one per two cores (at least 1, at most 8), since the
    decoder, x264's own threads and the networks want the rest. Both stages spend their time in numpy and
    OpenCV, which release the GIL, so the frames of a chunk are cropped and pasted at once. (On a 2-core machine
    under load, two workers made the 2160p media path slower: benchmarks/RESULTS.md, issue 21.)"""
    return max(1, min(8, (cores if cores is not None else os.cpu_count() or 1) // 2))


def crop_frame(frame: "media.Frame", box: faces.CropBox, size: int) -> np.ndarray:
    """One face crop of one frame: resampled to ``size``² and converted to float RGB (0–255 scale)."""
    conv = frame.layout.conversion(frame.shape[1], frame.shape[0])
    return faces.crop_planes(frame.planes, box, size, conv, frame.layout.sub)


def crop_face(start: int, frames: list, have: np.ndarray, face_track: faces.FaceTrack, size: int,
              weigh: Callable[[np.ndarray], np.ndarray], mapper: Mapper = map) -> FaceCrops:
    """One face's crops in a chunk of frames (``have``: its frames there, from ``face_batches``), less the frames
    its editor weighs 0: only the crops are converted to RGB (``crop_frame``, over ``mapper``: a pool crops the
    frames at once)."""
    have = have[have < start + len(frames)]  # a damaged file can decode fewer frames than the plan counts
    weights = weigh(have) if len(have) else np.zeros(0, np.float32)
    have, weights = have[weights > 0], weights[weights > 0]
    boxes = {int(i): faces.CropBox.from_row(face_track.boxes[i]) for i in have}
    crops = None
    if len(have):
        crops = np.stack(list(mapper(lambda i: crop_frame(frames[int(i) - start], boxes[int(i)], size), have)))
    return FaceCrops(have, boxes, {int(i): float(w) for i, w in zip(have, weights)}, crops)


def crop_batches(batches: Iterable[tuple[int, list]], plans: Sequence[Iterable[np.ndarray]],
                 face_tracks: Sequence[faces.FaceTrack], size: int,
                 weighs: Sequence[Callable[[np.ndarray], np.ndarray]], mapper: Mapper = map) -> Iterator[Batch]:
    """Each chunk of frames with the crops of every edited face (``crop_face``).

    ``plans[k]``: the frames of face ``k`` in each chunk (``face_batches``), in step with ``batches``."""
    empty = np.zeros(0, int)
    plans = [iter(plan) for plan in plans]
    for start, frames in batches:
        yield Batch(start, frames, [crop_face(start, frames, next(plan, empty), track, size, weigh, mapper)
                                    for plan, track, weigh in zip(plans, face_tracks, weighs)])


def composite_faces(frame: "media.Frame", layers: Sequence[tuple[faces.CropBox, np.ndarray, np.ndarray]]) -> "media.Frame":
    """The frame with every (box, float RGB face, mask) layer blended into one copy of its planes; everything
    else unchanged. Smaller faces first, so where masks overlap the larger face is on top; each face is blended
    once, over what is there (the frame, or a smaller face pasted before)."""
    planes = tuple(p.copy() for p in frame.planes)
    h, w = frame.shape
    conv = frame.layout.conversion(w, h)
    for box, face, mask in sorted(layers, key=lambda layer: layer[0].side):
        faces.paste_planes(planes, face, box, mask, conv, frame.layout.sub)
    return media.Frame(planes, frame.pts, frame.layout)


def composite(frame: "media.Frame", face: np.ndarray, box: faces.CropBox, mask: np.ndarray) -> "media.Frame":
    """The frame with one (float RGB) face blended into copies of its planes; everything else unchanged."""
    return composite_faces(frame, [(box, face, mask)])


def side_by_side(left: "media.Frame", right: "media.Frame") -> "media.Frame":
    return media.Frame(tuple(np.concatenate([a, b], axis=1) for a, b in zip(left.planes, right.planes)),
                       left.pts, left.layout)


class _Writer:
    """Encoding in a background thread (``cmet-write``), fed through a bounded queue of jobs, each a callable
    that returns (original, edited) frame pairs in order (their paste-back may still be running in a pool)."""

    def __init__(self, writer: media.FrameWriter, compare: bool, depth: int = 2) -> None:
        self.writer, self.compare = writer, compare
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="cmet-write")
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
    """Pass 1 for one face: the track ``options.face`` names when it is one id, else face 1 (``track_all``)."""
    tracks = track_all(info, options, detector, progress, config, cancel)
    return faces.pick(tracks, [options.face if isinstance(options.face, int) else 1])[0]


def track_all(info: media.VideoInfo, options: EditOptions, detector=None, progress: ProgressFn | None = None,
              config: faces.TrackConfig = faces.TrackConfig(), cancel: CancelToken | None = None) -> list[faces.FaceTrack]:
    """Pass 1: detect faces on keyframes and build every face track (smoothed per-frame crop boxes), by id
    (``faces.face_tracks``); ``--box``: one track, id 1. An empty list: no face anywhere.

    The boxes cover the frames that really decode (a stream-copied cut holds more packets than frames). The
    frames are decoded with frame threads unless the file is known to be damaged; if that decode meets damage
    the pass starts again with slice threads, which conceal it the same way every time. The tracks record
    which (``FaceTrack.decoding``), and the edit pass decodes the same way, so its frames are these frames.
    """
    cancel = cancel or CancelToken()
    if options.box:  # no detection: only the frame count, decoded the same way
        count, decoding = clean_decode(info, functools.partial(media.decoded_count, info))
        return [dataclasses.replace(faces.fixed_track(options.box, count), decoding=decoding)]
    detector = detector or faces.make_detector(options.detector)
    (keys, count), decoding = clean_decode(info, lambda threads, health: scan_keyframes(
        info, detector, config.keyframe_every, threads, health, progress, cancel, ends=config))
    if progress:
        progress(Stage.TRACK_FACES, count, count)
    if count == 0:
        raise MediaError(f"{info.path}: no frame could be decoded; the file may be damaged")
    tracks = faces.face_tracks(keys, count, float(info.fps), getattr(detector, "name", "cascade"), config)
    return [dataclasses.replace(t, decoding=decoding) for t in tracks]


T = TypeVar("T")


def clean_decode(info: media.VideoInfo, run: Callable[[str, media.DecodeHealth], T]) -> tuple[T, str]:
    """``run(threads, health)`` over a decode of ``info`` (``media.read_planes``'s ``threads``), and the threads
    it ended with: frame threads where the stream decodes clean; slice threads, which conceal damage the same way
    every time, for a file known damaged or once the frame-threaded decode met damage (its result is dropped)."""
    if not info.damaged:
        health = media.DecodeHealth()
        result = run("frame", health)
        if health.clean:
            return result, "frame"
    return run("slice", media.DecodeHealth()), "slice"


def detect_workers(detector, cores: int | None = None) -> int:
    """Threads that run the detector in the tracking pass: as ``media_workers`` when the detector can make a
    copy of itself for each (``fresh``: OpenCV's detectors), else one (face-alignment's, which runs its
    networks on its own device)."""
    return media_workers(cores) if callable(getattr(detector, "fresh", None)) else 1


def scan_keyframes(info: media.VideoInfo, detector, every: int, decoding: str, health: media.DecodeHealth,
                   progress: ProgressFn | None, cancel: CancelToken,
                   ends: faces.TrackConfig | None = None) -> tuple[list[tuple[int, list[faces.Detection]]], int]:
    """Decode every frame (``decoding``: ``media.read_planes``'s threads; ``health``: what the decode met) and
    detect faces on every ``every``-th one and on the last: (keyframe index, detections) in order, and the number
    of frames decoded. A frame-threaded decode stops at the first damage (``clean_decode`` then decodes again).

    ``ends``: also find where faces enter and leave. Where two neighbouring keyframes do not show the same faces
    (``faces.tracking.same_faces`` with ``ends.min_iou``), the frames between them are detected too, and their
    (index, detections) are in the list as well, in frame order; elsewhere they cost nothing. The frames between
    two keyframes are kept, as decoded (no conversion), until both keyframes' detections are known, and then
    until their own detection has run where it is needed: at most ``HELD_BYTES`` of them besides the interval
    being decoded (past it the pass waits for the oldest detections), so memory does not grow with the clip.

    A decoder thread (``cmet-decode``) runs ahead of the detector threads (``cmet-detect``, ``detect_workers``,
    each with its own copy of ``detector``); at most twice as many keyframes as threads are in flight (bounded
    memory)."""
    every = max(1, every)
    workers = detect_workers(detector)
    spares, lock, local = [detector], threading.Lock(), threading.local()

    def given_up() -> bool:
        return decoding == "frame" and not health.clean

    def run(frame: "media.Frame") -> list[faces.Detection]:
        own = getattr(local, "detector", None)
        if own is None:
            with lock:
                own = spares.pop() if spares else detector.fresh()
            local.detector = own
        return detect(own, frame)

    Held = list[tuple[int, "media.Frame", int]]  # (index, frame, bytes) of frames between two keyframes
    keys: list[tuple[int, list[faces.Detection]]] = []
    pending: collections.deque[tuple[int, Future, Held]] = collections.deque()  # keyframes, with the frames before
    searches: collections.deque[tuple[int, Future, int]] = collections.deque()  # frames detected for a run end
    between: Held = []  # the frames since the last keyframe (with ``ends``)
    held = 0  # bytes of the frames kept in ``between``, ``pending`` and ``searches``
    seen: list[faces.Detection] | None = None  # the last collected keyframe's detections

    def collect_key() -> None:
        nonlocal seen, held
        j, job, gap = pending.popleft()
        found = job.result()
        keys.append((j, found))
        if gap and seen is not None and not faces.tracking.same_faces(seen, found, ends.min_iou):
            searches.extend((i, pool.submit(run, frame), size) for i, frame, size in gap)  # a face entered or left
        else:
            held -= sum(size for _, _, size in gap)
        seen = found

    def collect_search() -> None:
        nonlocal held
        i, job, size = searches.popleft()
        keys.append((i, job.result()))
        held -= size

    def keyframe(i: int, frame: "media.Frame") -> None:
        nonlocal between
        pending.append((i, pool.submit(run, frame), between))
        between = []

    count, last = 0, None
    frames = prefetch(media.read_planes(info, decoding, health), depth=DECODE_AHEAD, name="decode")
    pool = ThreadPoolExecutor(workers, thread_name_prefix="cmet-detect")
    try:
        for i, frame in enumerate(frames):
            cancel.check()
            if given_up():
                break
            count, last = i + 1, frame
            if i % every == 0:
                keyframe(i, frame)
                while len(pending) > 2 * workers:
                    collect_key()
                if progress:
                    progress(Stage.TRACK_FACES, i + 1, info.frame_count)
            elif ends is not None:
                size = sum(p.nbytes for p in frame.planes)
                between.append((i, frame, size))
                held += size
            while searches and searches[0][1].done():
                collect_search()
            while held - sum(size for _, _, size in between) > HELD_BYTES and (searches or pending):
                if searches:  # the frames of a search are let go once it ran, those of a keyframe once it is known
                    collect_search()
                else:
                    collect_key()
        if not given_up():
            if last is not None and (count - 1) % every:  # the last frame too, so the track reaches the end
                if between:
                    held -= between.pop()[2]  # a keyframe, not a frame between
                keyframe(count - 1, last)
            while pending:
                collect_key()
            while searches:
                collect_search()
            keys.sort(key=lambda k: k[0])
    finally:
        frames.close()
        pool.shutdown(wait=True, cancel_futures=True)
    return keys, count


def detect(detector: Callable[[np.ndarray], list[faces.Detection]], frame: "media.Frame",
           max_side: int = faces.detection.DETECT_MAX_SIDE) -> list[faces.Detection]:
    """The detector's faces in a frame, in full-frame pixels: it sees the frame scaled down to ``max_side``
    (only that small image is converted to RGB), and its boxes are scaled back up."""
    h, w = frame.shape
    small = media.scaled_size((h, w), max_side)
    sy, sx = h / small[0], w / small[1]
    return [faces.Detection(d.x * sx, d.y * sy, d.w * sx, d.h * sy, d.score * sx * sy)
            for d in detector(media.scaled_rgb(frame, small))]


def run_edit(info: media.VideoInfo, output: Path, edits: Sequence[FaceEdit], options: EditOptions, batch: int,
             progress: ProgressFn | None = None, metadata: dict[str, str] | None = None,
             cancel: CancelToken | None = None, warnings: list[str] | None = None) -> tuple[int, int]:
    """Pass 2: stream every frame through the face editors and write the output atomically, decoding and
    encoding the video once whatever the number of faces.

    Frames travel as the video's own planes with their timestamps. Only the crop of a chosen face in a
    frame where it is present with a non-zero emotion strength is converted to RGB, rendered and blended
    back (cross-faded by the strength); every other pixel and frame goes to the encoder as decoded.
    ``metadata``: container tags of the output (the settings record, see ``fingerprint``). ``cancel``:
    checked before each chunk; once cancelled the edit stops and removes its temporary file. Returns
    (frames written, frames with a chosen face); what of the input the output cannot keep is added to
    ``warnings``.
    """
    size = getattr(edits[0].editor, "crop_size", faces.CROP)
    cancel = cancel or CancelToken()
    begin_clip(info, edits, size, warnings)
    fmt = media.output_format(output)
    width = info.width * (2 if options.compare else 1)
    with atomic.atomic_output(output, overwrite=options.overwrite) as staged:
        writer = media.FrameWriter(staged.path, info, crf=options.crf, preset=options.encoder_preset,
                                   audio_from=info.path,  # audio, subtitles, ...
                                   fmt=fmt, width=width, codec=options.codec, metadata=metadata, fd=staged.fd)
        if warnings is not None:
            warnings.extend(writer.notes)
        sink = _Writer(writer, options.compare)
        pool = ThreadPoolExecutor(media_workers(), thread_name_prefix="cmet-media")
        finished = False
        try:
            written = edit_chunks(info, edits, sink, batch, size, options.colour_match, cancel, progress, pool)
            sink.finish()
            writer.close()
            finished = True
        finally:
            if not finished:
                writer.abort()  # first: the writer thread's pending writes then fail at once
                sink.stop()
            pool.shutdown(wait=True, cancel_futures=True)
        if writer.frames != info.frame_count:
            raise MediaError(f"{info.path}: decoded {writer.frames} of {info.frame_count} frames; the file may be damaged")
        # what the encoder and muxer say is not enough: ffmpeg can exit 0 and leave a broken file
        media.verify_output(staged.path, info.frame_count, writer.audio_streams)
    present = np.zeros(info.frame_count, bool)
    for edit in edits:
        present[:len(edit.track.boxes)] |= edit.track.present[:info.frame_count]
    return written, int(present.sum())


def begin_clip(info: media.VideoInfo, edits: Sequence[FaceEdit], size: int, warnings: list[str] | None = None) -> None:
    """Start each face's editor on a clip: the face crop of its reference frame (all decoded in one pass),
    the clip's frame count, rate and frame times."""
    wanted = {edit.track.reference for edit in edits}
    frames = media.read_planes(info, edits[0].track.decoding)
    refs: dict[int, media.Frame] = {}
    try:
        for i, frame in enumerate(itertools.islice(frames, max(wanted) + 1)):
            if i in wanted:
                refs[i] = frame
    finally:
        frames.close()  # the decoder is released now, not when the generator is collected
    missing = sorted(wanted - set(refs))
    if missing:
        raise MediaError(f"{info.path}: cannot decode frame {missing[0]}; the file may be damaged")
    first = refs[min(refs)]
    if first.layout.converted_from and warnings is not None:
        warnings.append(f"pixel format {first.layout.converted_from} cannot be edited as it is: "
                        f"converted to {first.layout.pix_fmt} (the whole frame"
                        + ("; its chroma stays neutral, so the picture stays grey)" if first.layout.monochrome else ")"))
    times = media.frame_times(info)
    times = times if times is not None and len(times) == info.frame_count else None
    for edit in edits:
        ref = refs[edit.track.reference]
        conv = ref.layout.conversion(ref.shape[1], ref.shape[0])
        box = faces.CropBox.from_row(edit.track.boxes[edit.track.reference])
        crop = colour.to_uint8(faces.crop_planes(ref.planes, box, size, conv, ref.layout.sub))
        edit.editor.begin(crop, info.frame_count, float(info.fps), times)


def edit_chunks(info: media.VideoInfo, edits: Sequence[FaceEdit], sink: _Writer, batch: int, size: int,
                colour_match: bool, cancel: CancelToken, progress: ProgressFn | None = None,
                pool: Executor | None = None) -> int:
    """Decode, crop and render the clip chunk by chunk, and hand each chunk to the writer; returns the frames handed.

    Threads, joined by bounded queues: decoding (``cmet-decode``, one chunk ahead), cropping (``cmet-crop``, one
    chunk ahead; the frames of a chunk cropped at once in ``pool``), the networks (the caller's thread), paste-back
    (each frame a job in ``pool``, started as soon as its chunk is rendered) and encoding (``cmet-write``, which
    takes the pasted frames in order). Frames and their timestamps stay in order everywhere."""
    mask = faces.face_mask(size)
    written = 0
    mapper: Mapper = pool.map if pool is not None else map
    # as many frames as the tracking pass decoded: a damaged file's tail may decode differently
    # decoded as the tracking pass decoded (``FaceTrack.decoding``), so that these are the frames its boxes index
    planes = prefetch(itertools.islice(media.read_planes(info, edits[0].track.decoding), info.frame_count),
                      depth=min(batch, DECODE_AHEAD), name="decode")
    plans = [face_batches(edit.track.present, batch, info.frame_count) for edit in edits]
    weighs = [functools.partial(frame_weights, edit.editor) for edit in edits]
    cropped = prefetch(crop_batches(chunks(planes, batch), plans, [edit.track for edit in edits], size, weighs, mapper),
                       depth=1, name="crop")
    editors = [edit.editor for edit in edits]
    try:
        for part in cropped:
            cancel.check()
            rendered = render_faces(editors, part, mask, colour_match)
            pasted = paste_back(part, rendered, mask, pool)
            sink.put(lambda pasted=pasted: (pair() for pair in pasted))  # the writer thread takes them in order
            written += len(part.frames)
            if progress:
                progress(Stage.WRITE_VIDEO, written, info.frame_count)
    finally:
        cropped.close()  # first the crop thread ends, then the decoder thread it was reading from
        planes.close()
    return written


def render_faces(editors: Sequence[FaceEditor], part: Batch, mask: np.ndarray,
                 colour_match: bool) -> list[dict[int, np.ndarray]]:
    """For each edited face (in the order of ``editors``), its edited crop in each frame of a chunk that has
    one to render: float RGB (0–255 scale), by frame index. The faces' crops go through the networks together
    (``face_editor.edit_faces``)."""
    rendered: list[dict[int, np.ndarray]] = [{} for _ in part.faces]
    busy = [k for k, crops in enumerate(part.faces) if len(crops.have)]
    if not busy:
        return rendered
    seen = {k: colour.to_uint8(part.faces[k].crops) for k in busy}
    edited = edit_faces([editors[k] for k in busy], [(seen[k], part.faces[k].have) for k in busy])
    for k, out in zip(busy, edited):
        crops = part.faces[k]
        for n, i in enumerate(crops.have):
            face = out[n]
            if colour_match:
                face = faces.match_colour(face, seen[k][n], mask)
            # what the 8-bit crop could not hold (10-bit precision, values past 0-255) comes back
            rendered[k][int(i)] = face.astype(np.float32) + (crops.crops[n] - seen[k][n])
    return rendered


def paste_back(part: Batch, rendered: Sequence[dict[int, np.ndarray]], mask: np.ndarray,
               pool: Executor | None = None) -> list[Callable[[], tuple["media.Frame", "media.Frame"]]]:
    """Each frame of a chunk with its output, in order, as a callable that returns (frame, output): every rendered
    face blended into its planes at once (each by the frame's weight for that face; ``composite_faces``), or the
    frame as decoded when none is. With a ``pool`` the frames' paste-backs start at once there; without, each
    runs when its callable is called."""
    out: list[Callable[[], tuple[media.Frame, media.Frame]]] = []
    for j, frame in enumerate(part.frames):
        i = part.start + j
        layers = [(crops.boxes[i], faces_i[i], mask * crops.weights[i])
                  for crops, faces_i in zip(part.faces, rendered) if i in faces_i]
        if not layers:
            out.append(functools.partial(lambda f: (f, f), frame))
        elif pool is None:
            out.append(functools.partial(lambda f, ls: (f, composite_faces(f, ls)), frame, layers))
        else:
            job = pool.submit(lambda f, ls: composite_faces(f, ls), frame, layers)
            out.append(functools.partial(lambda f, done: (f, done.result()), frame, job))
    return out
