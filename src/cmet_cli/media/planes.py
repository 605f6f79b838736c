"""The edit pass's input: every frame as the video's own planes (PyAV), with its timestamp and colour layout.

The edit decodes and encodes in-process with PyAV (FFmpeg's libraries): frames arrive as the video's
own Y, U, V planes with their presentation timestamps and colour properties, and go to the encoder
the same way (see ``encode``). Nothing outside the face crop is converted.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..errors import MediaError
from .probing import VideoInfo, open_input, video_stream

if TYPE_CHECKING:  # colour imports nothing of media; at run time it is imported where it is used
    from ..colour import Conversion

# planar formats the edit works in: name -> (bits, chroma x shift, chroma y shift)
PLANAR = {"yuv420p": (8, 1, 1), "yuv422p": (8, 1, 0), "yuv444p": (8, 0, 0),
          "yuv420p10le": (10, 1, 1), "yuv422p10le": (10, 1, 0), "yuv444p10le": (10, 0, 0)}
FULL_RANGE_ALIASES = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}


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
    def monochrome(self) -> bool:
        """Decoded from a greyscale format (gray, gray10le, ya8...): its chroma planes must stay neutral."""
        return (self.converted_from or "").startswith(("gray", "ya"))

    @property
    def dtype(self) -> type:
        return np.uint16 if self.bits > 8 else np.uint8

    def conversion(self, width: int, height: int) -> Conversion:
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


def plane_array(plane, dtype, width: int | None = None) -> np.ndarray:
    """A numpy view of one AVFrame plane (line padding cut off)."""
    item = np.dtype(dtype).itemsize
    arr = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // item)
    return arr[:, : (width or plane.width)]


def upsample_chroma(plane: np.ndarray, sub: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Chroma at every luma sample (repeated, exact values), cut to the luma plane's size."""
    sx, sy = sub
    full = np.repeat(np.repeat(plane, 1 << sy, axis=0), 1 << sx, axis=1)
    return full[: shape[0], : shape[1]]


def scaled_size(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(height, width) of a frame scaled down to at most ``max_side`` pixels on its longer side (never up)."""
    h, w = shape
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def scaled_rgb(frame: Frame, size: tuple[int, int]) -> np.ndarray:
    """A whole frame as uint8 RGB at ``size`` (height, width): each plane is scaled in its own code values
    (area averaging), then only the small image is converted, with the video's matrix and range (as the face
    crop is). The cheap view of a frame for a face detector or a thumbnail."""
    import cv2

    from ..colour import to_rgb, to_uint8

    h, w = frame.shape
    conv = frame.layout.conversion(w, h)

    def scale(plane: np.ndarray) -> np.ndarray:
        if any(step < 0 for step in plane.strides):  # a rotated view: OpenCV needs forward strides
            plane = np.ascontiguousarray(plane)
        if plane.shape[:2] == size:
            return plane
        return cv2.resize(plane, (size[1], size[0]), interpolation=cv2.INTER_AREA)

    y, u, v = (scale(p) for p in frame.planes)  # chroma straight from its own resolution to the target's
    return to_uint8(to_rgb(y, u, v, conv))


def _frame_planes(frame, target: str, rotation: int) -> tuple[tuple[np.ndarray, ...], str | None]:
    """A decoded av.VideoFrame as upright planes in ``target`` format (views where no conversion is needed)."""
    name = FULL_RANGE_ALIASES.get(frame.format.name, frame.format.name)
    converted = None
    if target == "rgb24":
        if name != "rgb24":
            converted, frame = frame.format.name, frame.reformat(format="rgb24")
        packed = plane_array(frame.planes[0], np.uint8, frame.width * 3).reshape(frame.height, frame.width, 3)
        planes = (packed[..., 0], packed[..., 1], packed[..., 2])
    else:
        bits, sx, sy = PLANAR[target]
        dtype = np.uint16 if bits > 8 else np.uint8
        if name == target:
            planes = tuple(plane_array(p, dtype) for p in frame.planes[:3])
        elif name in PLANAR and PLANAR[name][0] == bits and target.startswith("yuv444"):
            # odd size or quarter turn: the same samples, chroma repeated to full resolution (exact)
            src_bits, ssx, ssy = PLANAR[name]
            y = plane_array(frame.planes[0], dtype)
            planes = (y, *(upsample_chroma(plane_array(p, dtype), (ssx, ssy), y.shape) for p in frame.planes[1:3]))
        else:
            converted = frame.format.name
            frame = frame.reformat(format=target)
            planes = tuple(plane_array(p, dtype) for p in frame.planes[:3])
    if rotation:
        planes = tuple(np.rot90(p, k=rotation // 90) for p in planes)
    return planes, converted


DECODE_THREADS = ("slice", "frame")
MAX_FRAME_THREADS = 8  # each frame thread holds frames in flight: 8 keep 2160p memory under ~100 MB


@dataclass
class DecodeHealth:
    """What a decode met of damage, counted as it goes: packets that would not decode (or a container that
    ended early) and frames the decoder flagged as concealed."""

    errors: int = 0
    corrupt: int = 0

    @property
    def clean(self) -> bool:
        return not (self.errors or self.corrupt)


def read_planes(info: VideoInfo, threads: str = "slice", health: DecodeHealth | None = None) -> Iterator[Frame]:
    """Decode every frame as planes in the video's own format, with its presentation timestamp.

    Frames come upright (the rotation is applied to the planes), one per decoded frame, in display order.
    Formats the edit does not hold (nv12, 12-bit, ...) are converted to the nearest planar 8/10-bit one.

    ``threads``: ``slice`` (FFmpeg's slice threads: one thread for the usual one-slice H.264) or ``frame``
    (several frames at once, up to ``MAX_FRAME_THREADS``). Both give the same frames for a clean stream, as
    FFmpeg's frame threading is bit-exact there; around damage they conceal differently (frame threads not even
    the same way twice), so ``frame`` is for streams known to decode clean (``health``: what this decode met).
    """
    with _video_decoder(info, threads) as (container, stream):
        layout: Layout | None = None
        for frame in _decode_tolerant(container, stream, info.path, health or DecodeHealth()):
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


def decoded_count(info: VideoInfo, threads: str = "slice", health: DecodeHealth | None = None) -> int:
    """How many frames decode, decoded as ``read_planes`` decodes them (``threads``, ``health``) but not
    converted: the frame count of a pass that needs no pixels (``--box``)."""
    with _video_decoder(info, threads) as (container, stream):
        return sum(1 for _ in _decode_tolerant(container, stream, info.path, health or DecodeHealth()))


@contextlib.contextmanager
def _video_decoder(info: VideoInfo, threads: str) -> Iterator[tuple]:
    """The open container and its video stream, set to decode with ``threads``; closed on leaving."""
    if threads not in DECODE_THREADS:
        raise ValueError(f"threads must be one of {DECODE_THREADS}, not {threads!r}")
    container = open_input(info.path)
    try:
        stream = video_stream(container)
        stream.thread_type = "FRAME" if threads == "frame" else "SLICE"
        if threads == "frame":
            stream.thread_count = max(1, min(MAX_FRAME_THREADS, os.cpu_count() or 1))
        yield container, stream
    finally:
        container.close()


def planes_at(info: VideoInfo, indices) -> dict[int, Frame]:
    """A few frames by index (for previews), as planes: decoding stops after the last; only those are kept."""
    wanted = set(int(i) for i in indices)
    picked: dict[int, Frame] = {}
    if not wanted:
        return picked
    frames = read_planes(info)
    try:
        for i, frame in enumerate(frames):
            if i in wanted:
                picked[i] = frame
            if i >= max(wanted):
                break
    finally:
        frames.close()
    return picked


def _decode_tolerant(container, stream, path: Path, health: DecodeHealth) -> Iterator:
    """Decoded frames; a damaged packet is skipped as ffmpeg does (the frame count then tells), unless
    nothing at all decodes. ``health`` counts what was skipped and the frames the decoder concealed."""
    import av

    produced, error = 0, None
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except (av.InvalidDataError, av.EOFError) as exc:
                error = exc
                health.errors += 1
                continue
            for frame in frames:
                produced += 1
                health.corrupt += bool(frame.is_corrupt)
                yield frame
    except av.FFmpegError as exc:  # the container itself ends early or is unreadable from here on
        error = exc
        health.errors += 1
        try:  # the frames the decoder still holds (threads, reordering) come out when it is flushed
            for frame in stream.codec_context.decode(None):
                produced += 1
                health.corrupt += bool(frame.is_corrupt)
                yield frame
        except av.FFmpegError:
            pass
    if error is not None and produced == 0:
        raise MediaError(f"{path}: cannot decode video; the file may be damaged ({error})") from None
