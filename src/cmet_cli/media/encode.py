"""The edit pass's output: ``Frame`` planes encoded in-process (PyAV) into the output container, with the
input's audio and subtitles muxed beside them (see ``mux``).

Writers register themselves so that an interrupt can abort every open one (``stop_writers``) before the
temporary files are removed.
"""
from __future__ import annotations

import sys
import threading
import weakref
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import MediaError
from .mux import SideStreams, audio_plan, input_template
from .planes import Frame, Layout, plane_array
from .probing import INTERLACED, HdrMetadata, VideoInfo, hdr_metadata

FORMAT_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
CODECS = ("auto", "h264", "hevc")
# x264's and x265's presets, fastest first (both encoders take the same names); "medium" is both defaults
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        raise MediaError(f"{path}: unsupported output type {suffix or '(none)'}; use one of {', '.join(sorted(FORMAT_BY_SUFFIX))}")
    return FORMAT_BY_SUFFIX[suffix]


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


def hdr10_params(hdr: HdrMetadata, encoder: str) -> list[str]:
    """The encoder parameters that write ``hdr``'s static HDR10 metadata (SEI in every keyframe's headers).

    x265 and x264 take the mastering display as ``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)``, chromaticities in
    units of 0.00002 and luminance in 0.0001 cd/m², and the content light level as ``MaxCLL,MaxFALL``.
    """
    params: list[str] = []
    if hdr.mastering is not None:
        rx, ry, gx, gy, bx, by, wx, wy, low, high = hdr.mastering
        xy = lambda x, y: f"{round(x * 50000)},{round(y * 50000)}"  # noqa: E731
        display = f"G({xy(gx, gy)})B({xy(bx, by)})R({xy(rx, ry)})WP({xy(wx, wy)})L({round(high * 10000)},{round(low * 10000)})"
        params.append(("master-display=" if encoder == "libx265" else "mastering-display=") + display)
    if hdr.light is not None:
        params.append(("max-cll=" if encoder == "libx265" else "cll=") + f"{hdr.light[0]},{hdr.light[1]}")
    if params and encoder == "libx265":
        params = ["hdr10=1", "repeat-headers=1", *params]
    return params


def hdr_notes(hdr: HdrMetadata) -> list[str]:
    """What of the input's HDR metadata the re-encode cannot keep: dynamic metadata, by kind and stream."""
    return [f"video stream {hdr.stream}: its {kind} dynamic metadata cannot be carried through a re-encode: dropped"
            + (" (the static HDR10 metadata is kept)" if hdr.static else "") for kind in hdr.dynamic]


def encoder_options(name: str, crf: int, preset: str) -> dict[str, str]:
    """The encoder's options for ``crf``; 0 is lossless with every encoder: x264 is lossless at 10 bit only
    with ``qp 0`` (its crf 0 is lossless at 8 bit alone), x265 with ``lossless=1``."""
    options = {"preset": preset}
    if name in ("libx264", "libx264rgb") and crf == 0:
        options["qp"] = "0"
    else:
        options["crf"] = str(crf)
    if name == "libx265":
        options["x265-params"] = "log-level=error" + (":lossless=1" if crf == 0 else "")
    return options


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == 28 or "No space left" in str(exc)


_WRITERS: "weakref.WeakSet[FrameWriter]" = weakref.WeakSet()  # writers open now (see stop_writers)


def stop_writers() -> None:
    """Abort every writer still open (after an interrupt, before temporary files are removed)."""
    for writer in list(_WRITERS):
        writer.abort()


class FrameWriter:
    """Encode ``Frame`` planes in-process (PyAV) and mux the input's audio and subtitles unchanged.

    Each frame keeps its presentation timestamp (``Frame.pts``, in the input's time base): variable frame
    rates and start offsets stay as they were. The output keeps the input's planar format and bit depth
    and its colour description (primaries, transfer, matrix, range; untagged stays untagged), its container
    tags (title, date, ...) and chapters. The codec: see ``choose_codec``. ``metadata``: container-level tags
    written over the input's (e.g. ``comment``). Write to a temporary path; the caller renames it.
    """

    def __init__(self, path: str | Path, info: VideoInfo, *, crf: int = 18, preset: str = "medium",
                 audio_from: str | Path | None = None, fmt: str | None = None, width: int | None = None,
                 codec: str = "auto", metadata: Mapping[str, str] | None = None, fd: int | None = None) -> None:
        import av

        if codec not in CODECS:
            raise MediaError(f"unknown codec {codec!r}: use {', '.join(CODECS)}")
        if preset not in PRESETS:
            raise MediaError(f"unknown encoder preset {preset!r}: use {', '.join(PRESETS)}")
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
        self.template = input_template(info.path)
        for key, value in {**self.template.tags, **(metadata or {})}.items():
            self.container.metadata[key] = value
        if self.template.chapters:
            self.container.set_chapters(self.template.chapters)
        _WRITERS.add(self)
        self.side = SideStreams(Path(audio_from), self.container, self.fmt) if audio_from else None
        self.notes = list(self.side.notes) if self.side else []
        self.audio_streams = self.side.audio_streams if self.side else 0  # those the output gets
        self.hdr = hdr_metadata(info.path)
        self.notes += hdr_notes(self.hdr)

    def _open_video(self, layout: Layout) -> None:
        """The video stream, added where the input has its own (the side streams around it, in input order)."""
        if self.side is None:
            return self._add_video(layout)
        self.side.add_streams(lambda: self._add_video(layout))

    def _add_video(self, layout: Layout) -> None:
        name = choose_codec(self.codec, layout, self.info.codec)
        stream = self.container.add_stream(name, rate=self.info.fps)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = layout.pix_fmt
        cc = stream.codec_context
        cc.time_base = layout.time_base
        stream.time_base = layout.time_base
        cc.color_range, cc.colorspace = layout.range, layout.space
        cc.color_primaries, cc.color_trc = layout.primaries, layout.trc
        if self.info.pixel_aspect:  # anamorphic video keeps its shape (so does --compare's canvas of two)
            cc.sample_aspect_ratio = self.info.pixel_aspect
        cc.thread_count = 0
        # frame threads, as the ffmpeg command line runs x264 and x265: PyAV's default (slice threads) cuts every
        # frame into one slice per thread, a low-latency mode that x264 documents as less efficient, and whose
        # slices grow in number with the cores (a 16-core host: a 720p frame in 24 slices)
        cc.thread_type = "FRAME"
        if self.template.disposition is not None:
            stream.disposition = self.template.disposition
        for key, value in self.template.video_tags.items():
            stream.metadata[key] = value
        options = encoder_options(name, self.crf, self.preset)
        hdr = hdr10_params(self.hdr, name)
        x264 = list(hdr)
        if self.info.field_order and name in ("libx264", "libx264rgb"):
            # interlaced video stays interlaced: coded as fields in the input's order, and flagged so
            x264.append("tff=1" if self.info.field_order in ("tt", "tb") else "bff=1")
            cc.field_order = INTERLACED[self.info.field_order]
        if name == "libx264" and layout.range == 1 and (layout.primaries, layout.trc, layout.space) == (2, 2, 2):
            # x264 signals a limited range only beside a video format or a colour description: without
            # this, video tagged `tv` and nothing else would come out untagged
            x264.insert(0, "videoformat=component")
        if name == "libx265":
            options["x265-params"] = ":".join([options["x265-params"], *hdr])
            if self.fmt in ("mp4", "mov"):
                stream.codec_tag = "hvc1"  # the tag Apple players need for HEVC
        elif x264:
            options["x264-params"] = ":".join(x264)
        stream.options = options
        self.stream, self.layout = stream, layout

    def _av_frame(self, frame: Frame):
        import av

        layout = self.layout
        out = av.VideoFrame(self.width, self.height, layout.pix_fmt)
        if layout.rgb:
            packed = plane_array(out.planes[0], np.uint8, self.width * 3).reshape(self.height, self.width, 3)
            for k in range(3):
                packed[..., k] = frame.planes[k]
        else:
            for k, (plane, values) in enumerate(zip(out.planes, frame.planes)):
                # a greyscale source stays grey: its chroma neutral, the face pasted in as luma alone
                plane_array(plane, layout.dtype)[...] = 1 << (layout.bits - 1) if k and layout.monochrome else values
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
            self._mux(self._encode(av_frame), float(av_frame.pts * self.layout.time_base) + 1.0)
        except (av.FFmpegError, OSError) as exc:
            raise self._error(exc) from None
        self.frames += 1

    def _encode(self, av_frame) -> list:
        """The encoder's packets for one frame (``None``: flush what it holds)."""
        return list(self.stream.encode(av_frame))

    def _mux(self, packets: list, until: float | None) -> None:
        """Write the video packets, and the side streams' packets up to ``until`` seconds (``None``: all)."""
        for packet in packets:
            self.container.mux(packet)
        if self.side is not None:
            self.side.mux_until(until)

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
            self._mux(self._encode(None) if self.stream is not None else [], None)
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
