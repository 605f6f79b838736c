"""Every clip the tests and the benchmark edit, made here and nowhere else.

- ``synthetic``: ffmpeg's moving test pattern (no face), with a tone;
- ``face_clip``: the committed MEAD sample's face (``SAMPLE``, 256², 25 fps) placed on a grey canvas;
- ``two_faces_clip``: the sample twice, a big face and a small one;
- ``looped_clip``: the sample scaled to a frame height, centred and looped to any length (the benchmark);
  ``faces=2``: the sample and its mirror image side by side (the benchmark's two-face row).

``ffmpeg`` runs the ffmpeg binary the package found (``media.ffmpeg_binary``). This module is the one place
outside ``cmet_cli.media`` that builds ffmpeg commands; tests call ``ffmpeg`` directly only for one-off
variants of a clip (remuxes, tags, extra streams) that no maker here needs to know about.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from cmet_cli.media import ffmpeg_binary

SAMPLE = Path(__file__).resolve().parent / "data" / "video" / "W009_038.mp4"  # MEAD W009, see data/README.md
BACKGROUND = "0x5a6470"  # the grey every face clip sits on


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-nostdin", "-v", "error", "-y", *args], check=True)


def synthetic(path: Path, *, size: str = "320x240", rate: str = "25", seconds: float = 1.0, audio: bool = True,
              pix_fmt: str = "yuv420p", codec: str = "libx264", extra: tuple[str, ...] = ()) -> Path:
    """A test pattern clip (with a sine tone unless ``audio`` is False); ``extra``: more output options."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}", "-c:a", "aac"]
    ffmpeg(*args, "-c:v", codec, "-pix_fmt", pix_fmt, *extra, "-shortest" if audio else "-an", str(path))
    return path


def face_clip(path: Path, *, canvas: str = "384x288", offset: tuple[int, int] = (64, 16), rate: int = 10,
              seconds: float | None = 0.3, start: float = 0.0, audio: bool = True, until: float | None = None,
              since: float | None = None, source: Path = SAMPLE) -> Path:
    """The sample's 256² face at ``offset`` on a ``canvas`` (W×H) at ``rate`` fps, ``seconds`` long from ``start``
    (None: to its end), with its speech re-encoded (cut exactly); ``until``: the face leaves at that time;
    ``since``: it enters at that time (the canvas alone before).

    The CLI tests' default: 3 frames, small and at a low rate, so that a run takes a fraction of a second.
    """
    shown = ([f"gte(t,{since})"] if since is not None else []) + ([f"lt(t,{until})"] if until is not None else [])
    enable = f":enable='{'*'.join(shown)}'" if shown else ""
    graph = (f"color=c={BACKGROUND}:s={canvas}:r={rate}[bg];[0:v]fps={rate}[fg];"
             f"[bg][fg]overlay={offset[0]}:{offset[1]}:shortest=1{enable},format=yuv420p[v]")
    args = ["-ss", str(start)] if start else []
    args += ["-i", str(source), "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-crf", "12"]
    args += ["-map", "0:a", "-c:a", "aac"] if audio else ["-an"]
    ffmpeg(*args, *(["-t", str(seconds)] if seconds else []), str(path))
    return path


def two_faces_clip(path: Path, *, seconds: float = 0.3, until: float | None = None) -> Path:
    """A big face (box about x 0–256) and a small one (x 300–460) side by side, 10 fps, no audio; ``until``: the
    small face leaves at that time."""
    enable = f":enable='lt(t,{until})'" if until is not None else ""
    graph = (f"color=c={BACKGROUND}:s=480x288:r=10[bg];[0:v]fps=10,split[a][b];[b]scale=160:160[s];"
             f"[bg][a]overlay=0:16:shortest=1[t];[t][s]overlay=300:60{enable},format=yuv420p[v]")
    ffmpeg("-i", str(SAMPLE), "-filter_complex", graph, "-map", "[v]", "-an", "-c:v", "libx264", "-crf", "12",
           "-t", str(seconds), str(path))
    return path


def looped_clip(path: Path, *, frames: int, size: tuple[int, int], rate: int = 25, source: Path = SAMPLE,
                faces: int = 1) -> Path:
    """The sample scaled to the frame height, centred on a W×H canvas, looped to ``frames`` frames, with audio;
    ``faces=2``: the sample and its mirror image, each scaled to half the width (at most the height), side by side.

    The benchmark's input: any resolution and any length, from the one committed clip.
    """
    w, h = size
    side = min(w, h) if faces == 1 else min(w // 2, h)
    video = (f"scale={side}:{side}:flags=bicubic,pad={w}:{h}:{(w - side) // 2}:{(h - side) // 2}:color={BACKGROUND},"
             f"fps={rate},format=yuv420p")
    if faces == 2:
        video = (f"scale={side}:{side}:flags=bicubic,split[a][b];[b]hflip[m];[a][m]hstack,"
                 f"pad={w}:{h}:{(w - 2 * side) // 2}:{(h - side) // 2}:color={BACKGROUND},fps={rate},format=yuv420p")
    ffmpeg("-stream_loop", "-1", "-i", str(source), "-vf", video, "-frames:v", str(frames), "-t", f"{frames / rate:.3f}",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-c:a", "aac", "-b:a", "128k", str(path))
    return path
