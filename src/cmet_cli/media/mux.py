"""What the output keeps from the input besides the edited pictures, and the check of what was written.

The input's audio, subtitle (and what else the output container holds) packets are muxed beside the
edited video in time order (``SideStreams``); the video stream's disposition and tags are carried over
(``input_template``); ``verify_output`` reads the written file's packets to prove it holds what it should.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

from ..errors import MediaError
from .probing import VideoInfo, open_input, video_stream

# Audio codecs the MP4/MOV muxers accept as a stream copy; anything else is re-encoded to AAC. MP2 (MPEG transport
# and program streams) goes into both; FFmpeg's MOV muxer refuses Opus and FLAC ("only supported in MP4").
MP4_AUDIO = {"aac", "mp3", "mp2", "alac", "ac3", "eac3", "opus", "flac"}
CONTAINER_AUDIO = {"mp4": MP4_AUDIO,
                   "mov": (MP4_AUDIO - {"opus", "flac"}) | {"pcm_s16le", "pcm_s24le", "pcm_f32le"},
                   "matroska": None}

# containers whose muxer takes these subtitle codecs as a stream copy
CONTAINER_SUBTITLES = {"mp4": {"mov_text"}, "mov": {"mov_text"},
                       "matroska": {"subrip", "ass", "ssa", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle", "dvb_subtitle"}}

KEPT_VIDEO_TAGS = ("timecode", "language", "title", "creation_time")
KEPT_SIDE_TAGS = ("language", "title", "handler_name", "creation_time")
# container tags the output's muxer writes for itself (the rest of the input's, title, date, comment..., are kept)
MUXER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}


def audio_plan(info: VideoInfo, fmt: str) -> tuple[dict, str | None]:
    """Output options for the audio streams (copied where the container allows), and a note when re-encoded."""
    allowed = CONTAINER_AUDIO.get(fmt)
    if allowed is None or all(a.codec in allowed for a in info.audio):
        return {"acodec": "copy"}, None
    codecs = ", ".join(sorted({a.codec for a in info.audio}))
    return {"acodec": "aac", "b:a": "256k"}, f"audio ({codecs}) cannot be copied into {fmt}: re-encoded to AAC"


def kept_tags(metadata: dict[str, str], keys) -> dict[str, str]:
    """The tags among ``keys`` (lower case), whatever their case in the input (Matroska's are upper case)."""
    return {k.lower(): v for k, v in metadata.items() if k.lower() in keys}


@dataclass(frozen=True)
class InputTemplate:
    """What the output keeps of the input besides its streams' packets: the video stream's disposition flags
    (default, ...) and tags (a ``timecode`` tag makes the MOV/MP4 muxer write a timecode track; a Matroska file
    may hold the timecode as a container tag instead), the container's tags (keys in lower case; not those its
    muxer writes itself) and its chapters."""

    disposition: object | None = None
    video_tags: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    chapters: list[dict] = field(default_factory=list)


def input_template(path: Path) -> InputTemplate:
    """The input's ``InputTemplate``, read in one opening; an empty one if unreadable."""
    try:
        container = open_input(path)
    except MediaError:
        return InputTemplate()
    try:
        outer = {k.lower(): v for k, v in container.metadata.items()}
        tags = {k: v for k, v in outer.items() if k not in MUXER_TAGS}
        chapters = list(container.chapters())
        try:
            stream = video_stream(container)
        except MediaError:
            return InputTemplate(tags=tags, chapters=chapters)
        video_tags = kept_tags(stream.metadata, KEPT_VIDEO_TAGS)
        if "timecode" not in video_tags and "timecode" in outer:
            video_tags["timecode"] = outer["timecode"]
        return InputTemplate(stream.disposition, video_tags, tags, chapters)
    finally:
        container.close()


class SideStreams:
    """The input's audio, subtitle (and what else the output container holds) packets, muxed in time order.

    Audio is copied packet for packet where the container accepts its codec, else re-encoded to AAC.
    Subtitles are copied where the container holds their codec. What cannot be kept is listed in ``notes``.
    """

    def __init__(self, source: Path, output, fmt: str) -> None:
        self.output = output
        self.notes: list[str] = []
        self.input = open_input(source)
        self.video = video_stream(self.input)
        self.map: dict[int, tuple[object, object | None]] = {}  # input index -> (output stream, encoder or None)
        self.kept: list[tuple[object, bool]] = []  # (input stream, re-encoded to AAC), in input order
        allowed_audio = CONTAINER_AUDIO.get(fmt)
        for stream in self.input.streams:
            kind, codec = stream.type, stream.codec_context.name if stream.codec_context else "?"
            codec = {"srt": "subrip"}.get(codec, codec)  # the decoder's name -> the codec's
            if kind == "audio":
                if not has_packets(source, stream.index):
                    self.notes.append(f"audio stream {stream.index} ({codec}) has no packets in what remains of the "
                                      "file (its audio lies past where the data ends): the output has none of it")
                    continue
                self.kept.append((stream, not (allowed_audio is None or codec in allowed_audio)))
            elif kind == "subtitle":
                if codec in CONTAINER_SUBTITLES.get(fmt, set()):
                    self.kept.append((stream, False))
                else:
                    self.notes.append(f"subtitle track {stream.index} ({codec}) cannot be kept in {fmt}: dropped")
            elif kind == "data" and "timecode" in stream.metadata and \
                    stream.metadata["timecode"] == self.video.metadata.get("timecode"):
                continue  # a timecode track: kept as the video's timecode tag (MOV/MP4 write it as a track again)
            elif kind in ("data", "attachment") or (kind == "video" and stream is not self.video):
                what = codec if codec and codec != "?" else stream.metadata.get("handler_name") or kind
                self.notes.append(f"{kind} stream {stream.index} ({what}) is not kept")
        self.demux = iter(())
        self.pending = None
        self.samples: dict[int, int] = {}  # input index -> samples of a re-encoded stream before its next frame

    @property
    def audio_streams(self) -> int:
        """How many audio streams the output gets (what ``verify_output`` then expects)."""
        return sum(stream.type == "audio" for stream, _ in self.kept)

    def add_streams(self, add_video: Callable[[], object]) -> None:
        """Add the kept streams to the output in the input's order, the edited video (``add_video``) where the
        input has its video stream, so that stream indices stay as they were."""
        for stream, encode in [k for k in self.kept if k[0].index < self.video.index]:
            self._add(stream, encode)
        add_video()
        for stream, encode in [k for k in self.kept if k[0].index > self.video.index]:
            self._add(stream, encode)
        if self.map:
            self.demux = self.input.demux(*[self.input.streams[i] for i in self.map])

    def _add(self, stream, encode: bool) -> None:
        if not encode:
            self.map[stream.index] = (self._copy(stream), None)
            return
        out = self.output.add_stream("aac", rate=stream.codec_context.sample_rate or 48000)
        out.bit_rate = 256_000
        if stream.codec_context.layout:
            out.layout = stream.codec_context.layout
        self._keep_tags(stream, out)
        self.map[stream.index] = (out, stream)

    def _copy(self, stream):
        out = self.output.add_stream_from_template(stream)
        self._keep_tags(stream, out)
        return out

    @staticmethod
    def _keep_tags(stream, out) -> None:
        for key, value in kept_tags(stream.metadata, KEPT_SIDE_TAGS).items():
            out.metadata[key] = value
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
                    self._restamp(packet.stream.index, frame)
                    self.output.mux(out.encode(frame))
        if seconds is None:
            for out, decoder in self.map.values():
                if decoder is not None:
                    self.output.mux(out.encode(None))

    def _restamp(self, index: int, frame) -> None:
        """A decoded audio frame's time in samples: the stream's first frame keeps its start time (audio that
        starts after the video, or before it, stays there: lips stay on the sound), and every later frame
        follows the samples before it (decoders' timestamps jitter by a rounding, which the encoder refuses)."""
        rate = frame.sample_rate
        if index not in self.samples:
            self.samples[index] = round(float(frame.time or 0.0) * rate)
        frame.pts, frame.time_base = self.samples[index], Fraction(1, rate)
        self.samples[index] += frame.samples

    def close(self) -> None:
        self.input.close()


def has_packets(source: Path, index: int) -> bool:
    """Whether stream ``index`` of ``source`` has a packet with data. A whole file's streams do; a cut-off file
    whose index lists an audio track that lies past where the data ends has none (muxing an empty stream
    would fail the output). Reads until the stream's first packet: at once, but to the end of a damaged file."""
    try:
        container = open_input(source)
    except MediaError:
        return False
    try:
        return any(packet.size for packet in container.demux(container.streams[index]))
    except Exception:  # noqa: BLE001 - a demuxer error in damaged data: nothing more to read there
        return False
    finally:
        container.close()


def verify_output(path: str | Path, frames: int, audio_streams: int) -> None:
    """That a written file opens, holds ``frames`` whole video packets and ``audio_streams`` audio streams: the
    encoder and muxer can report success and leave a broken file (ffmpeg 5.1 exits 0 after "Error writing
    trailer: No space left on device").

    The packets are read from the data, not counted from the index, so a file cut short is caught even where
    its index survives (a `+faststart` MP4): a packet the file ends inside is flagged corrupt by the demuxer.
    Nothing is decoded: decoding the output again cost as much CPU as decoding the input (1 s for 500 frames at
    720p on 2 cores, a serial tail after the encode) and passed a file cut inside its last frame, which the
    decoder conceals.
    """
    import av

    try:
        container = open_input(Path(path))
    except MediaError as exc:
        raise MediaError(f"{path}: the written file does not open ({str(exc).split('(', 1)[-1].rstrip(')')})") from None
    try:
        video = video_stream(container) if container.streams.video else None  # not cover art
        audio = len(container.streams.audio)
        got = corrupt = 0
        for packet in container.demux():
            if packet.size:
                got += packet.stream is video
                corrupt += packet.is_corrupt
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: the written file is damaged ({exc})") from None
    finally:
        container.close()
    if corrupt:
        raise MediaError(f"{path}: the written file is cut short ({corrupt} incomplete packets)")
    if got != frames:
        raise MediaError(f"{path}: the written file holds {got} of {frames} frames")
    if audio != audio_streams:
        raise MediaError(f"{path}: the written file holds {audio} of {audio_streams} audio streams")
