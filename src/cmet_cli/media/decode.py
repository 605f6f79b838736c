"""Decoding through the ffmpeg binary: whole RGB frames and mono audio (speech clips).

Every command is an ffmpeg-python graph compiled to an argument list and run without a shell. The edit pass,
the tracking pass and previews do not come through here: they read the video's own planes (see ``planes``);
``read_frames`` stays as a decoder independent of PyAV (the tests compare against it).
"""
from __future__ import annotations

import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import MediaError
from .probing import VideoInfo, ffmpeg_arg, ffmpeg_cmd

# Exact rounding in the RGB <-> YUV conversions: without it every re-encode shifts colours by one level.
SWS = {"sws_flags": "accurate_rnd+full_chroma_int"}


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

    video = ffmpeg.input(ffmpeg_arg(info.path))["V:0"]  # V: not cover art, as probe picks
    extra = {}
    if select:
        video = video.filter("select", "+".join(f"eq(n,{i})" for i in select))
        extra["frames:v"] = len(select)
    video = video.filter("scale", flags=SWS["sws_flags"]).filter("format", "rgb24")  # the conversion, explicit
    out = ffmpeg.output(video, "pipe:1", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough", **extra)
    return out.compile(cmd=ffmpeg_cmd())


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


def decode_audio(path: str | Path, rate: int) -> np.ndarray:
    """Any audio ffmpeg reads, as float32 mono at ``rate`` Hz (ffmpeg down-mixes and resamples)."""
    import ffmpeg

    out = ffmpeg.input(ffmpeg_arg(path)).output("pipe:1", format="f32le", acodec="pcm_f32le", ac=1, ar=rate, vn=None)
    try:
        proc = subprocess.run(out.compile(cmd=ffmpeg_cmd()), stdin=subprocess.DEVNULL, capture_output=True)
    except OSError as exc:
        raise MediaError(f"{path}: running ffmpeg failed ({exc})") from None
    if proc.returncode != 0 or not proc.stdout:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        if not lines or any("does not contain any stream" in line or "matches no streams" in line for line in lines):
            raise MediaError("has no audio stream")
        raise MediaError(lines[-1].replace(f"{ffmpeg_arg(path)}: ", ""))
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
