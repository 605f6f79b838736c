"""What a file holds, before anything is decoded: the ffmpeg/ffprobe binaries, ``probe`` (VideoInfo), the
regular-file and is-it-a-video checks, container tags, exact frame counts and the frames' timestamps.

Every ffprobe command goes through ``probe_json`` (``ffmpeg.probe``); file names go in through ``ffmpeg_arg``
as absolute paths so that a name starting with ``-`` can never be read as an option. ``open_input`` and
``video_stream`` are the PyAV side of the same input, shared by the decoder and the muxer.
"""
from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import MediaError


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


def ffmpeg_arg(path: str | Path) -> str:
    """A file path as an ffmpeg/ffprobe argument: absolute, so that a name starting with ``-`` is not read
    as an option, nor one holding ``:`` as a protocol (``a:b.mp4``)."""
    return str(Path(path).absolute())


def ffmpeg_cmd() -> list[str]:
    return [ffmpeg_binary(), "-nostdin", "-hide_banner", "-v", "error", "-y"]


def probe_json(path: str | Path, **options) -> dict:
    """``ffprobe`` as JSON (ffmpeg-python); raises MediaError with ffprobe's last line."""
    import ffmpeg

    try:
        return ffmpeg.probe(ffmpeg_arg(path), cmd=ffprobe_binary(), v="error", **options)
    except ffmpeg.Error as exc:
        text = exc.stderr.decode("utf-8", "replace").replace(f"{ffmpeg_arg(path)}: ", "")  # the path is said once, first
        last = (text.strip().splitlines() or ["unreadable"])[-1]
        raise MediaError(f"{path}: not a readable video ({last})") from None


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
    pixel_aspect: Fraction = Fraction(0)  # of the upright frames (anamorphic video: not 1); 0: not stated
    field_order: str = ""  # interlaced video: "tt", "bb", "tb" or "bt" (ffprobe's names); "": progressive or unknown

    @property
    def damaged(self) -> bool:
        """Whether the file's data ends before the frames its index declares (a cut-off download or copy).

        A stream-copied cut is not damaged: all its packets are there, some just do not show."""
        return self.declared_frames > self.frame_count

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)


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


def _first_video(path: Path, streams: list[dict]) -> dict:
    """The first video stream that is not a still cover image, or MediaError saying what the file holds."""
    video = next((s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")), None)
    if video is None:
        if any(s.get("disposition", {}).get("attached_pic") for s in streams):
            raise MediaError(f"{path}: holds no video, only a still cover image")
        kinds = sorted({s.get("codec_type", "?") for s in streams}) or ["nothing"]
        raise MediaError(f"{path}: holds no video stream (found {', '.join(kinds)})")
    return video


def probe(path: str | Path) -> VideoInfo:
    """Probe a video: exact frame rate (29.97 stays 30000/1001), frame count, displayed size, rotation, audio."""
    path = Path(path)
    check_regular_file(path)
    meta = probe_json(path, count_packets=None)
    streams = meta.get("streams", [])
    video = _first_video(path, streams)
    avg, real = _fraction(video.get("avg_frame_rate")), _fraction(video.get("r_frame_rate"))
    fps = avg if avg > 0 else real
    if fps <= 0:
        raise MediaError(f"{path}: the video stream has no frame rate")
    count = int(video.get("nb_read_packets") or video.get("nb_frames") or 0)
    if count <= 0:
        raise MediaError(f"{path}: the video stream holds no frames")
    rotation = _rotation(video)
    width, height = int(video["width"]), int(video["height"])
    pixel_aspect = _fraction(str(video.get("sample_aspect_ratio", "0")).replace(":", "/"))
    if rotation in (90, 270):
        width, height = height, width
        pixel_aspect = 1 / pixel_aspect if pixel_aspect else pixel_aspect  # the frames are written upright
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
        declared_frames=_declared_frames(path, meta, video, count),
        pixel_aspect=pixel_aspect,
        field_order=video.get("field_order", "") if video.get("field_order") in INTERLACED else "",
    )


INTERLACED = {"tt": 2, "bb": 3, "tb": 4, "bt": 5}  # ffprobe's field orders -> FFmpeg's AVFieldOrder


def _declared_frames(path: Path, meta: dict, video: dict, count: int) -> int:
    """The frame count the container's index declares, as far as it tells of frames the data should hold.

    An AVI's count includes the empty "dropped frame" entries its muxer writes to keep the video level with
    the audio (FFmpeg does so for MP3 audio and B-frames): they are no packets but gaps in the timestamps. So
    where an AVI declares more frames than it has packets, the frames its timestamps span are what it holds:
    a whole file spans its declared count, a cut-off one ends early."""
    declared = int(video.get("nb_frames") or 0)
    if declared <= count or "avi" not in meta.get("format", {}).get("format_name", "").split(","):
        return declared
    packets = probe_json(path, select_streams="V:0", show_entries="packet=pts,dts").get("packets", [])
    stamps = [int(p[key]) for p in packets for key in ("pts", "dts") if str(p.get(key, "N/A")).lstrip("-").isdigit()]
    spanned = max(stamps) - min(stamps) + 1 if stamps else 0  # an AVI's video time base is one frame
    return count if spanned >= declared else declared


def count_frames(info: VideoInfo) -> int:
    """The number of frames that decode (ffprobe decodes the stream: exact, and cheaper than RGB frames)."""
    meta = probe_json(info.path, count_frames=None, select_streams="V:0")
    stream = next(iter(meta.get("streams", [])), {})
    return int(stream.get("nb_read_frames") or info.frame_count)


def container_tags(path: str | Path) -> dict[str, str]:
    """The container's tags (``comment``, ``encoder``, ...), keys in lower case; empty when unreadable."""
    try:
        tags = probe_json(path).get("format", {}).get("tags", {}) or {}
    except MediaError:
        return {}
    return {str(k).lower(): str(v) for k, v in tags.items()}


def is_video(path: str | Path) -> bool:
    """Whether ffprobe finds a (non-still-image) video stream in the file."""
    try:
        meta = probe_json(path)
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


def open_input(path: Path):
    """The file opened for reading with PyAV (imported here, not at module level: ``cmet --help`` stays fast)."""
    import av

    try:
        return av.open(str(path), "r")
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: not a readable video ({exc})") from None


def video_stream(container):
    streams = [s for s in container.streams.video if not s.disposition & 0x0400]  # not attached pictures (cover art)
    if not streams:
        raise MediaError(f"{container.name}: holds no video stream")
    return streams[0]


# ---------------------------------------------------------------- damage where the container declares no frame count

SHORT_END_S = 0.25  # a stream that ends this much before the container's declared end is cut off (see ``damage``)


def _vint(data: bytes, at: int) -> tuple[int, int, bool]:
    """An EBML variable-length integer at ``at``: (value, its length in bytes, whether it is "unknown")."""
    first = data[at]
    length = 9 - first.bit_length() if first else 9
    if length > 8 or at + length > len(data):
        raise ValueError("not an EBML integer")
    value = first & (0xFF >> length)
    for byte in data[at + 1:at + length]:
        value = (value << 8) | byte
    return value, length, value == (1 << (7 * length)) - 1


def ebml_shortfall(path: Path) -> int:
    """Matroska/WebM: how many bytes the file lacks of the size its Segment element declares (0: none, or
    not a Matroska file, or a live stream's unknown size)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    try:
        if head[:4] != b"\x1a\x45\xdf\xa3":
            return 0
        size, n, _ = _vint(head, 4)
        at = 4 + n + size
        if head[at:at + 4] != b"\x18\x53\x80\x67":
            return 0
        size, n, unknown = _vint(head, at + 4)
    except (ValueError, IndexError):
        return 0
    return 0 if unknown else max(0, at + 4 + n + size - path.stat().st_size)


def ts_packet_size(path: Path) -> int:
    """188 (MPEG-TS), 192 (M2TS: a 4-byte timecode before each packet) or 0 (neither)."""
    with open(path, "rb") as fh:
        data = fh.read(192 * 3)
    for size, sync in ((188, 0), (192, 4)):
        if len(data) > 2 * size + sync and all(data[sync + k * size] == 0x47 for k in range(3) if sync + k * size < len(data)):
            return size
    return 0


def damage(info: VideoInfo) -> str | None:
    """Why a file whose container declares no frame count (Matroska, WebM, MPEG-TS, ...) is cut off, or None.

    Read from the container alone (no frame is decoded): a Matroska segment shorter than its declared size,
    a transport stream ending mid-packet, packets the demuxer flags as incomplete or cannot read, and streams
    that all end more than ``SHORT_END_S`` before the end the container's header declares. A stream-copied cut is whole.
    """
    import av

    missing = ebml_shortfall(info.path)
    if missing:
        return f"the file ends {missing} bytes short of the size its header declares"
    packet = ts_packet_size(info.path)
    if packet and info.path.stat().st_size % packet:
        return f"the file ends mid-packet (its size is not a multiple of {packet} bytes)"
    container = open_input(info.path)
    ends: dict[int, float] = {}
    corrupt, error = 0, None
    try:
        estimated = container.format.name in ("mpegts", "mpeg", "mpegvideo")  # duration estimated from the data itself
        start = (container.start_time or 0) / 1e6
        declared = container.duration / 1e6 if container.duration and not estimated else None
        try:
            for pk in container.demux():
                if pk.size == 0:
                    continue
                corrupt += bool(pk.is_corrupt)
                if pk.pts is not None and pk.stream.time_base:
                    end = float((pk.pts + (pk.duration or 0)) * pk.stream.time_base)
                    ends[pk.stream.index] = max(ends.get(pk.stream.index, end), end)
        except av.FFmpegError as exc:
            error = exc
    finally:
        container.close()
    last = max(ends.values(), default=start)
    if error is not None:
        return f"unreadable after {last - start:.2f} s ({error})"
    if corrupt:
        return f"{corrupt} packet{'s' if corrupt > 1 else ''} incomplete"
    if declared is not None and ends and last < start + declared - SHORT_END_S:
        return f"its streams end at {last - start:.2f} s of the {declared:.2f} s its header declares"
    return None


@dataclass(frozen=True)
class HdrMetadata:
    """A video's HDR metadata, as its first frame carries it (FFmpeg hands container-level boxes to the frames too).

    ``mastering``: the mastering display's colour volume, (red x, red y, green x, green y, blue x, blue y,
    white x, white y) chromaticities and (min, max) luminance in cd/m²; ``light``: (MaxCLL, MaxFALL) in cd/m²;
    ``dynamic``: the kinds of dynamic metadata found (``HDR10+``, ``Dolby Vision``), which a re-encode cannot keep;
    ``stream``: the video stream's index.
    """

    mastering: tuple[Fraction, ...] | None = None
    light: tuple[int, int] | None = None
    dynamic: tuple[str, ...] = ()
    stream: int = 0

    @property
    def static(self) -> bool:
        return self.mastering is not None or self.light is not None


_DYNAMIC = {"DYNAMIC_HDR_PLUS": "HDR10+", "DOVI_RPU_BUFFER": "Dolby Vision", "DOVI_METADATA": "Dolby Vision",
            "DYNAMIC_HDR_VIVID": "HDR Vivid"}


def mastering_display(raw: bytes) -> tuple[Fraction, ...] | None:
    """FFmpeg's AVMasteringDisplayMetadata (10 rationals: R, G, B and white x/y, min and max luminance; then
    has_primaries, has_luminance) as 10 fractions; None unless both parts are present."""
    if len(raw) < 88:
        return None
    ints = np.frombuffer(raw[:88], np.int32)
    if not (ints[20] and ints[21]) or np.any(ints[1:20:2] == 0):
        return None
    return tuple(Fraction(int(n), int(d)) for n, d in zip(ints[0:20:2], ints[1:20:2]))


def content_light(raw: bytes) -> tuple[int, int] | None:
    """FFmpeg's AVContentLightMetadata (MaxCLL, MaxFALL as unsigned ints); None when both are 0."""
    if len(raw) < 8:
        return None
    cll, fall = (int(v) for v in np.frombuffer(raw[:8], np.uint32))
    return (cll, fall) if cll or fall else None


def hdr_metadata(path: Path) -> HdrMetadata:
    """The HDR metadata of the first video frame that decodes (see ``HdrMetadata``); empty when none decodes."""
    import av

    try:
        container = open_input(path)
    except MediaError:
        return HdrMetadata()
    try:
        stream = video_stream(container)
        index = int(stream.index)
        frame = next(container.decode(stream), None)
    except (av.FFmpegError, MediaError):
        return HdrMetadata()
    finally:
        container.close()
    if frame is None:
        return HdrMetadata()
    mastering = light = None
    dynamic: list[str] = []
    for side in frame.side_data:
        kind = getattr(side.type, "name", str(side.type))
        if kind == "MASTERING_DISPLAY_METADATA":
            mastering = mastering_display(bytes(side))
        elif kind == "CONTENT_LIGHT_LEVEL":
            light = content_light(bytes(side))
        elif kind in _DYNAMIC and _DYNAMIC[kind] not in dynamic:
            dynamic.append(_DYNAMIC[kind])
    return HdrMetadata(mastering, light, tuple(dynamic), index)


def frame_times(info: VideoInfo) -> np.ndarray | None:
    """Each shown frame's presentation time in seconds since the first one, from the packets (no decoding).

    None when some packet has no timestamp (the caller then assumes a constant rate).
    """
    container = open_input(info.path)
    try:
        stream = video_stream(container)
        stamps = []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            if packet.pts is None:
                return None
            stamps.append(packet.pts)
    except Exception:  # noqa: BLE001 - damaged input: the edit reports it; timing falls back to the rate
        return None
    finally:
        container.close()
    if not stamps:
        return None
    stamps.sort()
    base, unit = stamps[0], Fraction(stream.time_base)
    return np.array([float((s - base) * unit) for s in stamps], np.float64)
