"""Media I/O through ffmpeg: probe, decode frames, encode frames, mux the original audio.

Every ffmpeg/ffprobe command is built with ffmpeg-python (graphs compiled to argument lists, or
``ffmpeg.probe``) and run without a shell; file names go in as absolute paths so that a name starting
with ``-`` can never be read as an option.
"""
from __future__ import annotations

import re
import sys
import threading
import weakref
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ..errors import MediaError
from .decode import decode_audio, read_frames, read_frames_at
from .probing import (AudioStream, VideoInfo, container_tags, count_frames, ffmpeg_binary,
                      ffprobe_binary, frame_times, is_video, looks_like_video, open_input, probe, probe_json,
                      video_stream)


# Audio codecs the MP4/MOV muxers accept as a stream copy; anything else is re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
CONTAINER_AUDIO = {"mp4": MP4_AUDIO, "mov": MP4_AUDIO | {"pcm_s16le", "pcm_s24le", "pcm_f32le"}, "matroska": None}
FORMAT_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


# ffmpeg lines that mean the output file is broken, whatever its exit status says
MUX_FAILED = re.compile(r"Error writing trailer|Error closing file|No space left|av_interleaved_write_frame|"
                        r"Error muxing|I/O error|Input/output error")


def verify_output(path: str | Path, frames: int, audio_streams: int) -> None:
    """That a written file opens and holds ``frames`` video frames (decoded, not read from its index) and
    ``audio_streams`` audio streams: the encoder and muxer can report success and leave a broken file
    (ffmpeg 5.1 exits 0 after "Error writing trailer: No space left on device")."""
    try:
        meta = probe_json(path, count_frames=None)
    except MediaError as exc:
        raise MediaError(f"{path}: the written file does not open ({str(exc).split('(', 1)[-1].rstrip(')')})") from None
    streams = meta.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video"]
    got = int(video[0].get("nb_read_frames") or 0) if video else 0
    if got != frames:
        raise MediaError(f"{path}: the written file holds {got} of {frames} frames")
    audio = sum(s.get("codec_type") == "audio" for s in streams)
    if audio != audio_streams:
        raise MediaError(f"{path}: the written file holds {audio} of {audio_streams} audio streams")


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        raise MediaError(f"{path}: unsupported output type {suffix or '(none)'}; use one of {', '.join(sorted(FORMAT_BY_SUFFIX))}")
    return FORMAT_BY_SUFFIX[suffix]


def audio_plan(info: VideoInfo, fmt: str) -> tuple[dict, str | None]:
    """Output options for the audio streams (copied where the container allows), and a note when re-encoded."""
    allowed = CONTAINER_AUDIO.get(fmt)
    if allowed is None or all(a.codec in allowed for a in info.audio):
        return {"acodec": "copy"}, None
    codecs = ", ".join(sorted({a.codec for a in info.audio}))
    return {"acodec": "aac", "b:a": "256k"}, f"audio ({codecs}) cannot be copied into {fmt}: re-encoded to AAC"


def audio_packets(path: str | Path) -> list[tuple[str, str, str]]:
    """(pts, size, sha256 of the data) of every audio packet: the test that audio was copied unchanged."""
    meta = probe_json(path, select_streams="a", show_packets=None, show_data_hash="sha256",
                  show_entries="packet=pts,size,data_hash")
    return [(str(p.get("pts")), str(p.get("size")), str(p.get("data_hash"))) for p in meta.get("packets", [])]


# ---------------------------------------------------------------- the edit pass: planes in, planes out (PyAV)
#
# The edit decodes and encodes in-process with PyAV (FFmpeg's libraries): frames arrive as the video's
# own Y, U, V planes with their presentation timestamps and colour properties, and go to the encoder
# the same way. Nothing outside the face crop is converted.

# planar formats the edit works in: name -> (bits, chroma x shift, chroma y shift)
PLANAR = {"yuv420p": (8, 1, 1), "yuv422p": (8, 1, 0), "yuv444p": (8, 0, 0),
          "yuv420p10le": (10, 1, 1), "yuv422p10le": (10, 1, 0), "yuv444p10le": (10, 0, 0)}
FULL_RANGE_ALIASES = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}
CODECS = ("auto", "h264", "hevc")
# containers whose muxer takes these subtitle codecs as a stream copy
CONTAINER_SUBTITLES = {"mp4": {"mov_text"}, "mov": {"mov_text"},
                       "matroska": {"subrip", "ass", "ssa", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle", "dvb_subtitle"}}


@dataclass(frozen=True)
class Layout:
    """How one video's frames are held: planar format, bit depth, chroma subsampling, colour properties.

    ``range``, ``space``, ``primaries`` and ``trc`` are FFmpeg's AVColor* values (0/2: unspecified), copied
    to the output as they are; ``time_base`` is the unit of the frames' ``pts``.
    """

    pix_fmt: str  # yuv420p ... yuv444p10le, or rgb24 (planes R, G, B)
    bits: int
    sub: tuple[int, int]  # chroma (x, y) shift: (1, 1) 4:2:0, (1, 0) 4:2:2, (0, 0) 4:4:4
    time_base: Fraction
    range: int = 0
    space: int = 2
    primaries: int = 2
    trc: int = 2
    converted_from: str | None = None  # the decoded format, when it had to be converted (e.g. 12-bit, nv12)

    @property
    def rgb(self) -> bool:
        return self.pix_fmt == "rgb24"

    @property
    def dtype(self) -> type:
        return np.uint16 if self.bits > 8 else np.uint8

    def conversion(self, width: int, height: int) -> "Conversion":  # noqa: F821
        from ..colour import conversion_for

        return conversion_for(self.space, self.range, self.trc, self.bits, width, height, self.rgb)


@dataclass
class Frame:
    """One decoded frame: its Y, U, V planes (R, G, B for RGB sources), presentation time and layout.

    The planes may be views of the decoder's memory: treat them as read-only (copy before changing).
    """

    planes: tuple[np.ndarray, ...]
    pts: int | None
    layout: Layout

    @property
    def shape(self) -> tuple[int, int]:
        return self.planes[0].shape[:2]


def _planar_target(name: str, width: int, height: int, rotation: int) -> str:
    """The planar format a decoded format is edited in (itself when possible)."""
    import av

    name = FULL_RANGE_ALIASES.get(name, name)
    if name not in PLANAR:
        fmt = av.VideoFormat(name)
        if fmt.is_rgb:
            return "rgb24"
        deep = max(c.bits for c in fmt.components) > 8
        sx = int(fmt.chroma_width(16) < 16) if hasattr(fmt, "chroma_width") else 1
        sy = int(fmt.chroma_height(16) < 16) if hasattr(fmt, "chroma_height") else 1
        name = {(0, 0): "yuv444p", (1, 0): "yuv422p"}.get((sx, sy), "yuv420p") + ("10le" if deep else "")
    bits, sx, sy = PLANAR[name]
    # H.264/HEVC cannot hold an odd size in subsampled chroma, nor is 4:2:2 4:2:2 after a quarter turn
    if (sx and width % 2) or (sy and height % 2) or (rotation in (90, 270) and sx != sy):
        name = "yuv444p" + ("10le" if bits > 8 else "")
    return name


def _plane_array(plane, dtype, width: int | None = None) -> np.ndarray:
    """A numpy view of one AVFrame plane (line padding cut off)."""
    item = np.dtype(dtype).itemsize
    arr = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // item)
    return arr[:, : (width or plane.width)]


def _upsample_chroma(plane: np.ndarray, sub: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Chroma at every luma sample (repeated, exact values), cut to the luma plane's size."""
    sx, sy = sub
    full = np.repeat(np.repeat(plane, 1 << sy, axis=0), 1 << sx, axis=1)
    return full[: shape[0], : shape[1]]


def _frame_planes(frame, target: str, rotation: int) -> tuple[tuple[np.ndarray, ...], str | None]:
    """A decoded av.VideoFrame as upright planes in ``target`` format (views where no conversion is needed)."""
    name = FULL_RANGE_ALIASES.get(frame.format.name, frame.format.name)
    converted = None
    if target == "rgb24":
        if name != "rgb24":
            converted, frame = frame.format.name, frame.reformat(format="rgb24")
        packed = _plane_array(frame.planes[0], np.uint8, frame.width * 3).reshape(frame.height, frame.width, 3)
        planes = (packed[..., 0], packed[..., 1], packed[..., 2])
    else:
        bits, sx, sy = PLANAR[target]
        dtype = np.uint16 if bits > 8 else np.uint8
        if name == target:
            planes = tuple(_plane_array(p, dtype) for p in frame.planes[:3])
        elif name in PLANAR and PLANAR[name][0] == bits and target.startswith("yuv444"):
            # odd size or quarter turn: the same samples, chroma repeated to full resolution (exact)
            src_bits, ssx, ssy = PLANAR[name]
            y = _plane_array(frame.planes[0], dtype)
            planes = (y, *(_upsample_chroma(_plane_array(p, dtype), (ssx, ssy), y.shape) for p in frame.planes[1:3]))
        else:
            converted = frame.format.name
            frame = frame.reformat(format=target)
            planes = tuple(_plane_array(p, dtype) for p in frame.planes[:3])
    if rotation:
        planes = tuple(np.rot90(p, k=rotation // 90) for p in planes)
    return planes, converted


def read_planes(info: VideoInfo) -> Iterator[Frame]:
    """Decode every frame as planes in the video's own format, with its presentation timestamp.

    Frames come upright (the rotation is applied to the planes), one per decoded frame, in display order.
    Formats the edit does not hold (nv12, 12-bit, ...) are converted to the nearest planar 8/10-bit one.
    """
    container = open_input(info.path)
    try:
        stream = video_stream(container)
        # no frame threading: with it, FFmpeg silently drops the frames in flight around damaged data, so a
        # damaged file would decode fewer frames here than in the tracking pass (decoding is not the bottleneck)
        stream.thread_type = "SLICE"
        layout: Layout | None = None
        for frame in _decode_tolerant(container, stream, info.path):
            if layout is None:
                target = _planar_target(frame.format.name, frame.width, frame.height, info.rotation)
                bits = 8 if target == "rgb24" else PLANAR[target][0]
                sub = (0, 0) if target == "rgb24" else PLANAR[target][1:]
                full = frame.format.name.startswith("yuvj")
                layout = Layout(target, bits, sub, Fraction(stream.time_base or Fraction(1, 90000)),
                                2 if full else int(frame.color_range), int(frame.colorspace),
                                int(frame.color_primaries), int(frame.color_trc))
            planes, converted = _frame_planes(frame, layout.pix_fmt, info.rotation)
            if converted and layout.converted_from is None:
                layout = replace(layout, converted_from=converted)
            yield Frame(planes, frame.pts, layout)
    finally:
        container.close()


def _decode_tolerant(container, stream, path: Path) -> Iterator:
    """Decoded frames; a damaged packet is skipped as ffmpeg does (the frame count then tells), unless
    nothing at all decodes."""
    import av

    produced, error = 0, None
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except (av.InvalidDataError, av.EOFError) as exc:
                error = exc
                continue
            for frame in frames:
                produced += 1
                yield frame
    except av.FFmpegError as exc:  # the container itself ends early or is unreadable from here on
        error = exc
        try:  # the frames the decoder still holds (threads, reordering) come out when it is flushed
            for frame in stream.codec_context.decode(None):
                produced += 1
                yield frame
        except av.FFmpegError:
            pass
    if error is not None and produced == 0:
        raise MediaError(f"{path}: cannot decode video; the file may be damaged ({error})") from None


def frame_to_rgb(frame: Frame) -> np.ndarray:
    """A whole frame as RGB uint8 (for previews and checks; the edit itself converts only the face crop)."""
    from ..colour import to_rgb, to_uint8

    h, w = frame.shape
    conv = frame.layout.conversion(w, h)
    y, u, v = frame.planes
    if not frame.layout.rgb:
        u, v = (_upsample_chroma(p, frame.layout.sub, (h, w)) for p in (u, v))
    return to_uint8(to_rgb(y, u, v, conv))


KEPT_VIDEO_TAGS = ("timecode", "language", "title")


def _video_template(path: Path) -> tuple[object | None, dict[str, str]]:
    """The input video stream's disposition flags (default, ...) and the tags the output keeps
    (a ``timecode`` tag makes the MOV/MP4 muxer write a timecode track); (None, {}) if unreadable."""
    try:
        container = open_input(path)
    except MediaError:
        return None, {}
    try:
        stream = video_stream(container)
        return stream.disposition, {k: v for k, v in stream.metadata.items() if k in KEPT_VIDEO_TAGS}
    except MediaError:
        return None, {}
    finally:
        container.close()


def choose_codec(request: str, layout: Layout, input_codec: str) -> str:
    """The encoder: ``auto`` keeps H.264 for 8-bit video, and for 10-bit video HEVC when the input is HEVC,
    else H.264 High 10. RGB sources are written as H.264 in RGB (libx264rgb)."""
    if request not in CODECS:
        raise MediaError(f"unknown codec {request!r}: use {', '.join(CODECS)}")
    if layout.rgb:
        return "libx264rgb"
    if request == "auto":
        request = "hevc" if layout.bits > 8 and input_codec == "hevc" else "h264"
    return {"h264": "libx264", "hevc": "libx265"}[request]


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == 28 or "No space left" in str(exc)


class _SideStreams:
    """The input's audio, subtitle (and what else the output container holds) packets, muxed in time order.

    Audio is copied packet for packet where the container accepts its codec, else re-encoded to AAC.
    Subtitles are copied where the container holds their codec. What cannot be kept is listed in ``notes``.
    """

    def __init__(self, source: Path, output, fmt: str) -> None:
        self.output = output
        self.notes: list[str] = []
        self.input = open_input(source)
        self.map: dict[int, tuple[object, object | None]] = {}  # input index -> (output stream, encoder or None)
        allowed_audio = CONTAINER_AUDIO.get(fmt)
        for stream in self.input.streams:
            kind, codec = stream.type, stream.codec_context.name if stream.codec_context else "?"
            codec = {"srt": "subrip"}.get(codec, codec)  # the decoder's name -> the codec's
            if kind == "audio":
                if allowed_audio is None or codec in allowed_audio:
                    self.map[stream.index] = (self._copy(stream), None)
                else:
                    out = output.add_stream("aac", rate=stream.codec_context.sample_rate or 48000)
                    out.bit_rate = 256_000
                    if stream.codec_context.layout:
                        out.layout = stream.codec_context.layout
                    self._keep_tags(stream, out)
                    self.map[stream.index] = (out, stream)
            elif kind == "subtitle":
                if codec in CONTAINER_SUBTITLES.get(fmt, set()):
                    self.map[stream.index] = (self._copy(stream), None)
                else:
                    self.notes.append(f"subtitle track {stream.index} ({codec}) cannot be kept in {fmt}: dropped")
            elif kind == "data" and "timecode" in stream.metadata and \
                    stream.metadata["timecode"] == video_stream(self.input).metadata.get("timecode"):
                continue  # a timecode track: kept as the video's timecode tag (MOV/MP4 write it as a track again)
            elif kind in ("data", "attachment") or (kind == "video" and stream is not video_stream(self.input)):
                what = codec if codec and codec != "?" else stream.metadata.get("handler_name") or kind
                self.notes.append(f"{kind} stream {stream.index} ({what}) is not kept")
        self.demux = self.input.demux(*[self.input.streams[i] for i in self.map]) if self.map else iter(())
        self.pending = None

    def _copy(self, stream):
        out = self.output.add_stream_from_template(stream)
        self._keep_tags(stream, out)
        return out

    @staticmethod
    def _keep_tags(stream, out) -> None:
        for key in ("language", "title", "handler_name"):
            if key in stream.metadata:
                out.metadata[key] = stream.metadata[key]
        try:
            out.disposition = stream.disposition
        except (AttributeError, TypeError, ValueError):
            pass

    def _next(self):
        if self.pending is None:
            for packet in self.demux:
                if packet.dts is not None or packet.pts is not None:
                    self.pending = packet
                    break
        return self.pending

    def mux_until(self, seconds: float | None) -> None:
        """Mux every side packet that starts before ``seconds`` (all that remain when None)."""
        while (packet := self._next()) is not None:
            stamp = packet.dts if packet.dts is not None else packet.pts
            if seconds is not None and float(stamp * packet.time_base) > seconds:
                return
            self.pending = None
            out, decoder = self.map[packet.stream.index]
            if decoder is None:
                packet.stream = out
                self.output.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None  # the encoder counts samples from the first one
                    self.output.mux(out.encode(frame))
        if seconds is None:
            for out, decoder in self.map.values():
                if decoder is not None:
                    self.output.mux(out.encode(None))

    def close(self) -> None:
        self.input.close()


_WRITERS: "weakref.WeakSet[FrameWriter]" = weakref.WeakSet()  # writers open now (see stop_writers)


def stop_writers() -> None:
    """Abort every writer still open (after an interrupt, before temporary files are removed)."""
    for writer in list(_WRITERS):
        writer.abort()


class FrameWriter:
    """Encode ``Frame`` planes in-process (PyAV) and mux the input's audio and subtitles unchanged.

    Each frame keeps its presentation timestamp (``Frame.pts``, in the input's time base): variable frame
    rates and start offsets stay as they were. The output keeps the input's planar format and bit depth
    and its colour description (primaries, transfer, matrix, range; untagged stays untagged). The codec:
    see ``choose_codec``. ``metadata``: container-level tags (e.g. ``comment``). Write to a temporary
    path; the caller renames it.
    """

    def __init__(self, path: str | Path, info: VideoInfo, *, crf: int = 18, preset: str = "medium",
                 audio_from: str | Path | None = None, fmt: str | None = None, width: int | None = None,
                 codec: str = "auto", metadata: Mapping[str, str] | None = None, fd: int | None = None) -> None:
        import av

        if codec not in CODECS:
            raise MediaError(f"unknown codec {codec!r}: use {', '.join(CODECS)}")
        self.path = Path(path)
        self.info = info
        self.width = width or info.width
        self.height = info.height
        self.crf, self.preset, self.codec = crf, preset, codec
        self.frames = 0
        self.fmt = fmt or output_format(self.path)
        self.audio_note = audio_plan(info, self.fmt)[1] if audio_from and info.audio else None
        self.stream = None
        self.layout: Layout | None = None
        self._last_pts: int | None = None
        self._closed = False
        # write() runs in the pipeline's writer thread, abort() in the main thread: FFmpeg's contexts must
        # never be closed while a frame is being encoded or muxed
        self._lock = threading.Lock()
        try:
            options = {"movflags": "+faststart"} if self.fmt in ("mp4", "mov") else {}
            # ``fd``: the open file at ``path``. On Linux FFmpeg writes through /dev/fd/N, into that very file: it
            # never opens the name (a link swapped in is not followed) and cannot create it again once removed.
            self._target = f"/dev/fd/{fd}" if fd is not None and sys.platform.startswith("linux") else str(self.path)
            self.container = av.open(self._target, "w", format=self.fmt, options=options)
        except (av.FFmpegError, OSError) as exc:
            raise self._error(exc) from None
        for key, value in (metadata or {}).items():
            self.container.metadata[key] = value
        _WRITERS.add(self)
        self.side = _SideStreams(Path(audio_from), self.container, self.fmt) if audio_from else None
        self.notes = list(self.side.notes) if self.side else []

    def _open_video(self, layout: Layout) -> None:
        name = choose_codec(self.codec, layout, self.info.codec)
        stream = self.container.add_stream(name, rate=self.info.fps)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = layout.pix_fmt
        cc = stream.codec_context
        cc.time_base = layout.time_base
        stream.time_base = layout.time_base
        cc.color_range, cc.colorspace = layout.range, layout.space
        cc.color_primaries, cc.color_trc = layout.primaries, layout.trc
        cc.thread_count = 0
        disposition, tags = _video_template(self.info.path)
        if disposition is not None:
            stream.disposition = disposition
        for key, value in tags.items():
            stream.metadata[key] = value
        options = {"crf": str(self.crf), "preset": self.preset}
        if name == "libx265":
            options["x265-params"] = "log-level=error" + (":lossless=1" if self.crf == 0 else "")
            if self.fmt in ("mp4", "mov"):
                stream.codec_tag = "hvc1"  # the tag Apple players need for HEVC
        stream.options = options
        self.stream, self.layout = stream, layout

    def _av_frame(self, frame: Frame):
        import av

        layout = self.layout
        out = av.VideoFrame(self.width, self.height, layout.pix_fmt)
        if layout.rgb:
            packed = _plane_array(out.planes[0], np.uint8, self.width * 3).reshape(self.height, self.width, 3)
            for k in range(3):
                packed[..., k] = frame.planes[k]
        else:
            for plane, values in zip(out.planes, frame.planes):
                _plane_array(plane, layout.dtype)[...] = values
        out.pts = self._next_pts(frame.pts)
        out.time_base = layout.time_base
        out.color_range, out.colorspace = layout.range, layout.space
        out.color_primaries, out.color_trc = layout.primaries, layout.trc
        return out

    def _next_pts(self, pts: int | None) -> int:
        """The frame's own timestamp; a missing or non-increasing one follows the previous frame."""
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            step = max(1, round(1 / (float(self.info.fps) * float(self.layout.time_base)))) if self.info.fps else 1
            pts = 0 if self._last_pts is None else self._last_pts + step
        self._last_pts = pts
        return pts

    def _check(self, frame: Frame) -> None:
        if not isinstance(frame, Frame):
            raise ValueError(f"write Frame objects (planes with their timestamp), not {type(frame).__name__}")
        if frame.shape != (self.height, self.width):
            raise ValueError(f"frame {frame.shape} does not match {self.height}x{self.width}")
        if self.layout is not None and frame.layout.pix_fmt != self.layout.pix_fmt:
            raise ValueError(f"frame format {frame.layout.pix_fmt} does not match {self.layout.pix_fmt}")

    def write(self, frame: Frame) -> None:
        with self._lock:
            self._write(frame)

    def _write(self, frame: Frame) -> None:
        import av

        if self._closed:
            raise MediaError(f"{self.path}: the writer was closed")
        self._check(frame)
        try:
            if self.stream is None:
                self._open_video(frame.layout)
            av_frame = self._av_frame(frame)
            for packet in self.stream.encode(av_frame):
                self.container.mux(packet)
            if self.side is not None:
                self.side.mux_until(float(av_frame.pts * self.layout.time_base) + 1.0)
        except (av.FFmpegError, OSError) as exc:
            raise self._error(exc) from None
        self.frames += 1

    def _error(self, exc: BaseException) -> MediaError:
        if _is_disk_full(exc):
            return MediaError(f"{self.path}: the disk is full (no space left on device)")
        return MediaError(f"{self.path}: encoding failed ({str(exc).replace(getattr(self, '_target', ''), str(self.path))})")

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        import av

        if self._closed:
            return
        self._closed = True
        try:
            if self.stream is not None:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
            if self.side is not None:
                self.side.mux_until(None)
            self.container.close()
        except (av.FFmpegError, OSError) as exc:
            self._release()
            raise self._error(exc) from None
        finally:
            if self.side is not None:
                self.side.close()

    def abort(self) -> None:
        """Stop and release everything (the caller removes the file); waits for a frame being encoded."""
        with self._lock:
            self._closed = True
            self._release()

    def _release(self) -> None:
        for closing in (getattr(self, "container", None), getattr(self, "side", None)):
            try:
                if closing is not None:
                    closing.close()
            except Exception:  # noqa: BLE001 - already failing; the caller removes the file
                pass

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


