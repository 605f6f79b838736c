"""Media I/O through ffmpeg: probe, decode frames, encode frames, mux the original audio.

Every ffmpeg/ffprobe command is built with ffmpeg-python (graphs compiled to argument lists, or
``ffmpeg.probe``) and run without a shell; file names go in as absolute paths so that a name starting
with ``-`` can never be read as an option.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections import deque
from functools import lru_cache
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from .errors import MediaError


@lru_cache(maxsize=None)
def ffmpeg_binary() -> str:
    """The ffmpeg executable: ``$CMET_FFMPEG``, else ``ffmpeg`` on PATH, else imageio-ffmpeg's bundled one."""
    override = os.environ.get("CMET_FFMPEG")
    if override:
        return override
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # type: ignore

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - any failure means "not available"
        raise MediaError("ffmpeg was not found: install it (`apt-get install ffmpeg`, `brew install ffmpeg`) or `pip install imageio-ffmpeg`") from None


# Audio codecs the MP4/MOV muxers accept as a stream copy; anything else is re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
CONTAINER_AUDIO = {"mp4": MP4_AUDIO, "mov": MP4_AUDIO | {"pcm_s16le", "pcm_s24le", "pcm_f32le"}, "matroska": None}
# Exact rounding in the RGB <-> YUV conversions: without it every re-encode shifts colours by one level.
SWS = {"sws_flags": "accurate_rnd+full_chroma_int"}
FORMAT_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


@lru_cache(maxsize=None)
def ffprobe_binary() -> str:
    """ffprobe beside the ffmpeg in use, or on PATH."""
    override = os.environ.get("CMET_FFPROBE")
    if override:
        return override
    sibling = Path(ffmpeg_binary()).with_name("ffprobe")
    if sibling.is_file():
        return str(sibling)
    found = shutil.which("ffprobe")
    if found:
        return found
    raise MediaError("ffprobe was not found next to ffmpeg: install ffmpeg with its ffprobe (`apt-get install ffmpeg`)")


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. ``width``/``height`` are the displayed size (after rotation)."""

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    rotation: int
    pix_fmt: str
    codec: str
    audio: tuple[AudioStream, ...]
    variable_frame_rate: bool = False
    declared_frames: int = 0  # the frame count the container's index declares (0: it declares none)

    @property
    def damaged(self) -> bool:
        """Whether the file's data ends before the frames its index declares (a cut-off download or copy).

        A stream-copied cut is not damaged: all its packets are there, some just do not show."""
        return self.declared_frames > self.frame_count

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)


# ffmpeg lines that mean the output file is broken, whatever its exit status says
MUX_FAILED = re.compile(r"Error writing trailer|Error closing file|No space left|av_interleaved_write_frame|"
                        r"Error muxing|I/O error|Input/output error")


class _StderrTail:
    """Collects the last lines a child process writes to stderr, without risking a pipe deadlock."""

    def __init__(self, stream) -> None:
        self.lines: deque[str] = deque(maxlen=20)
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self.lines.append(line)

    def all(self) -> list[str]:
        self._thread.join(timeout=5)
        return list(self.lines)

    def last(self) -> str:
        self._thread.join(timeout=5)
        return self.lines[-1] if self.lines else "no message from ffmpeg"


def _arg(path: str | Path) -> str:
    """A file path as an ffmpeg/ffprobe argument: absolute, so that a name starting with ``-`` is not read
    as an option, nor one holding ``:`` as a protocol (``a:b.mp4``)."""
    return str(Path(path).absolute())


def _ffmpeg_cmd() -> list[str]:
    return [ffmpeg_binary(), "-nostdin", "-hide_banner", "-v", "error", "-y"]


def _probe(path: str | Path, **options) -> dict:
    """``ffprobe`` as JSON (ffmpeg-python); raises MediaError with ffprobe's last line."""
    import ffmpeg

    try:
        return ffmpeg.probe(_arg(path), cmd=ffprobe_binary(), v="error", **options)
    except ffmpeg.Error as exc:
        text = exc.stderr.decode("utf-8", "replace").replace(f"{_arg(path)}: ", "")  # the path is said once, first
        last = (text.strip().splitlines() or ["unreadable"])[-1]
        raise MediaError(f"{path}: not a readable video ({last})") from None


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    return int(stream.get("tags", {}).get("rotate", 0)) % 360


def _fraction(text: str | None) -> Fraction:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return Fraction(0)
    return value


FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
              (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular_file(path: Path) -> None:
    """A readable regular file, or MediaError at once: a FIFO or device would block a reader forever."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except OSError as exc:
        raise MediaError(f"{path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise MediaError(f"{path}: is a folder, not a video")
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in FILE_KINDS if test(mode)), "not a regular file")
        raise MediaError(f"{path}: is {kind}, not a regular file")


def probe(path: str | Path) -> VideoInfo:
    """Probe a video: exact frame rate (29.97 stays 30000/1001), frame count, displayed size, rotation, audio."""
    path = Path(path)
    check_regular_file(path)
    meta = _probe(path, count_packets=None)
    streams = meta.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")), None)
    if video is None:
        if any(s.get("disposition", {}).get("attached_pic") for s in streams):
            raise MediaError(f"{path}: holds no video, only a still cover image")
        kinds = sorted({s.get("codec_type", "?") for s in streams}) or ["nothing"]
        raise MediaError(f"{path}: holds no video stream (found {', '.join(kinds)})")
    avg, real = _fraction(video.get("avg_frame_rate")), _fraction(video.get("r_frame_rate"))
    fps = avg if avg > 0 else real
    if fps <= 0:
        raise MediaError(f"{path}: the video stream has no frame rate")
    count = int(video.get("nb_read_packets") or video.get("nb_frames") or 0)
    if count <= 0:
        raise MediaError(f"{path}: the video stream holds no frames")
    rotation = _rotation(video)
    width, height = int(video["width"]), int(video["height"])
    if rotation in (90, 270):
        width, height = height, width
    duration = float(video.get("duration") or meta.get("format", {}).get("duration") or count / fps)
    audio = tuple(
        AudioStream(int(s["index"]), s.get("codec_name", "?"), int(s.get("sample_rate") or 0), int(s.get("channels") or 0))
        for s in streams
        if s.get("codec_type") == "audio"
    )
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        frame_count=count,
        duration=duration,
        rotation=rotation,
        pix_fmt=video.get("pix_fmt", "?"),
        codec=video.get("codec_name", "?"),
        audio=audio,
        variable_frame_rate=bool(avg and real and avg != real),
        declared_frames=int(video.get("nb_frames") or 0),
    )


def read_frames(info: VideoInfo, start: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
    """Decode frames as RGB ``uint8 (H, W, 3)`` arrays, one at a time (memory does not grow with length).

    Frames come upright (ffmpeg applies the rotation) and one per coded frame: nothing is dropped or
    duplicated, whatever the frame rate does.
    """
    frame_bytes = info.width * info.height * 3
    proc = subprocess.Popen(_decode_cmd(info), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=frame_bytes)
    tail = _StderrTail(proc.stderr)
    index, produced = 0, 0
    try:
        while count is None or produced < count:
            buf = proc.stdout.read(frame_bytes)  # type: ignore[union-attr]
            if len(buf) < frame_bytes:
                break
            if index >= start:
                produced += 1
                yield np.frombuffer(buf, np.uint8).reshape(info.height, info.width, 3)
            index += 1
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
    if count is None and code != 0 and index == 0:
        raise MediaError(f"{info.path}: cannot decode video ({tail.last()})")


def _decode_cmd(info: VideoInfo, select: Sequence[int] = ()) -> list[str]:
    """Decode the first video stream to raw RGB on stdout; ``select``: only those frame indices."""
    import ffmpeg

    video = ffmpeg.input(_arg(info.path))["V:0"]  # V: not cover art, as probe picks
    extra = {}
    if select:
        video = video.filter("select", "+".join(f"eq(n,{i})" for i in select))
        extra["frames:v"] = len(select)
    video = video.filter("scale", flags=SWS["sws_flags"]).filter("format", "rgb24")  # the conversion, explicit
    out = ffmpeg.output(video, "pipe:1", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough", **extra)
    return out.compile(cmd=_ffmpeg_cmd())


def count_frames(info: VideoInfo) -> int:
    """The number of frames that decode (ffprobe decodes the stream: exact, and cheaper than RGB frames)."""
    meta = _probe(info.path, count_frames=None, select_streams="V:0")
    stream = next(iter(meta.get("streams", [])), {})
    return int(stream.get("nb_read_frames") or info.frame_count)


def read_frames_at(info: VideoInfo, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """A few frames by index (for previews): only those are converted and piped, decoding stops after the last.

    Falls back to reading every frame up to the last one if ffmpeg does not hand back exactly those frames.
    """
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return {}
    frame_bytes = info.width * info.height * 3
    proc = subprocess.run(_decode_cmd(info, wanted), stdin=subprocess.DEVNULL, capture_output=True)
    if proc.returncode == 0 and len(proc.stdout) == frame_bytes * len(wanted):
        frames = np.frombuffer(proc.stdout, np.uint8).reshape(len(wanted), info.height, info.width, 3)
        return {i: frames[k].copy() for k, i in enumerate(wanted)}
    return {i: f.copy() for i, f in enumerate(read_frames(info, 0, wanted[-1] + 1)) if i in set(wanted)}


def verify_output(path: str | Path, frames: int, audio_streams: int) -> None:
    """That a written file opens and holds ``frames`` video frames (decoded, not read from its index) and
    ``audio_streams`` audio streams: the encoder and muxer can report success and leave a broken file
    (ffmpeg 5.1 exits 0 after "Error writing trailer: No space left on device")."""
    try:
        meta = _probe(path, count_frames=None)
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


def decode_audio(path: str | Path, rate: int) -> np.ndarray:
    """Any audio ffmpeg reads, as float32 mono at ``rate`` Hz (ffmpeg down-mixes and resamples)."""
    import ffmpeg

    out = ffmpeg.input(_arg(path)).output("pipe:1", format="f32le", acodec="pcm_f32le", ac=1, ar=rate, vn=None)
    try:
        proc = subprocess.run(out.compile(cmd=_ffmpeg_cmd()), stdin=subprocess.DEVNULL, capture_output=True)
    except OSError as exc:
        raise MediaError(f"{path}: running ffmpeg failed ({exc})") from None
    if proc.returncode != 0 or not proc.stdout:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        if not lines or any("does not contain any stream" in line or "matches no streams" in line for line in lines):
            raise MediaError("has no audio stream")
        raise MediaError(lines[-1].replace(f"{_arg(path)}: ", ""))
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


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


_WRITERS: set[subprocess.Popen] = set()  # encoders running now (ended by stop_writers on an interrupt)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    _WRITERS.discard(proc)


def stop_writers() -> None:
    """End every encoder still running (after an interrupt, before temporary files are removed: an orphaned
    ffmpeg would otherwise create its output file again)."""
    for proc in list(_WRITERS):
        _stop(proc)


class FrameWriter:
    """Encode RGB frames to H.264 (yuv420p) and mux the input's audio unchanged, in one ffmpeg process.

    Frames are written at the input's exact frame rate, so the output has the same frame count and
    timestamps. An odd width or height is encoded in yuv444p: 4:2:0 H.264 can only crop in steps of 2
    pixels, so this is the one way for the output to keep the input's size. Write to a temporary path;
    the caller renames it.
    """

    def __init__(self, path: str | Path, info: VideoInfo, *, crf: int = 18, preset: str = "medium",
                 audio_from: str | Path | None = None, fmt: str | None = None, width: int | None = None,
                 metadata: Mapping[str, str] | None = None, fd: int | None = None) -> None:
        self.path = Path(path)
        self.metadata = dict(metadata or {})
        self.width = width or info.width
        self.height = info.height
        self.frames = 0
        # ``fd``: the open file at ``path``. On Linux ffmpeg writes through /dev/fd/N, into that very file: it never
        # opens the name (a link swapped in is not followed) and cannot create it again once it was removed.
        self._target = f"/dev/fd/{fd}" if fd is not None and sys.platform.startswith("linux") else _arg(self.path)
        command = self._command(info, crf, preset, audio_from, fmt or output_format(self.path))
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      pass_fds=(fd,) if self._target.startswith("/dev/fd/") else ())
        _WRITERS.add(self._proc)
        self._tail = _StderrTail(self._proc.stderr)

    def _command(self, info: VideoInfo, crf: int, preset: str, audio_from: str | Path | None, fmt: str) -> list[str]:
        import ffmpeg

        frames = ffmpeg.input("pipe:0", format="rawvideo", pix_fmt="rgb24", s=f"{self.width}x{self.height}",
                              framerate=f"{info.fps.numerator}/{info.fps.denominator}")
        streams = [frames["v"]]
        options = {"vcodec": "libx264", "preset": preset, "crf": crf, "format": fmt, **SWS,
                   "pix_fmt": "yuv444p" if self.width % 2 or self.height % 2 else "yuv420p"}
        self.audio_note = None
        if audio_from and info.audio:
            audio_options, self.audio_note = audio_plan(info, fmt)
            streams.append(ffmpeg.input(_arg(audio_from))["a"])
            options.update(audio_options)
        if fmt in ("mp4", "mov"):
            options["movflags"] = "+faststart"
        command = ffmpeg.output(*streams, self._target, **options).compile(cmd=_ffmpeg_cmd())
        tags = [arg for key, value in self.metadata.items() for arg in ("-metadata", f"{key}={value}")]
        return command[:-1] + tags + command[-1:]  # container tags (e.g. ``fingerprint``'s record) before the output

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype} does not match {self.height}x{self.width}x3 uint8")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            self._proc.wait()
            raise self._error() from None
        self.frames += 1

    def _error(self) -> MediaError:
        last = self._tail.last()
        if any("No space left" in line for line in self._tail.lines):  # ffmpeg's last line may be a follow-up
            return MediaError(f"{self.path}: the disk is full (no space left on device)")
        return MediaError(f"{self.path}: encoding failed ({last.replace(self._target, str(self.path))})")

    def close(self) -> None:
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            pass
        code = self._proc.wait()
        _WRITERS.discard(self._proc)
        # ffmpeg can exit 0 after a failed write ("Error writing trailer of ...: No space left on device")
        if code != 0 or any(MUX_FAILED.search(line) for line in self._tail.all()):
            raise self._error()

    def abort(self) -> None:
        _stop(self._proc)

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def audio_packets(path: str | Path) -> list[tuple[str, str, str]]:
    """(pts, size, sha256 of the data) of every audio packet: the test that audio was copied unchanged."""
    meta = _probe(path, select_streams="a", show_packets=None, show_data_hash="sha256",
                  show_entries="packet=pts,size,data_hash")
    return [(str(p.get("pts")), str(p.get("size")), str(p.get("data_hash"))) for p in meta.get("packets", [])]


def container_tags(path: str | Path) -> dict[str, str]:
    """The container's tags (``comment``, ``encoder``, ...), keys in lower case; empty when unreadable."""
    try:
        tags = _probe(path).get("format", {}).get("tags", {}) or {}
    except MediaError:
        return {}
    return {str(k).lower(): str(v) for k, v in tags.items()}


def is_video(path: str | Path) -> bool:
    """Whether ffprobe finds a (non-still-image) video stream in the file."""
    try:
        meta = _probe(path)
    except MediaError:
        return False
    format_name = meta.get("format", {}).get("format_name", "")
    if "image2" in format_name or "_pipe" in format_name:
        return False
    return any(s.get("codec_type") == "video" for s in meta.get("streams", []))


VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".wmv", ".asf", ".flv", ".mpg", ".mpeg",
                  ".m2ts", ".mts", ".ts", ".3gp", ".3g2", ".ogv", ".mxf", ".vob", ".dv", ".y4m"}
_NOT_VIDEO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"}


def looks_like_video(path: str | Path) -> bool:
    """Whether a file says it is a video, by its extension or its first bytes (MP4/MOV, Matroska/WebM, AVI,
    MPEG-TS/PS, FLV, ASF), whether or not it decodes."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if head[4:8] == b"ftyp":
        return head[8:12] not in _NOT_VIDEO_BRANDS
    return (head[4:8] in (b"moov", b"mdat", b"wide", b"free")
            or head.startswith((b"\x1a\x45\xdf\xa3", b"FLV\x01", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3",
                                b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"))
            or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
            or (head[:1] == b"\x47" and _ts_sync(path)))


def _ts_sync(path: Path) -> bool:
    """MPEG-TS: a sync byte every 188 bytes."""
    with open(path, "rb") as fh:
        data = fh.read(188 * 3 + 1)
    return len(data) > 188 * 2 and all(data[i] == 0x47 for i in range(0, len(data), 188))
