"""Small generated media for tests: ffmpeg's test sources and the committed MEAD sample clip."""
from __future__ import annotations

import subprocess
from pathlib import Path

from cmet_cli.media import ffmpeg_binary

SAMPLE = Path(__file__).resolve().parent / "data" / "video" / "W009_038.mp4"  # MEAD W009, see data/README.md


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-nostdin", "-v", "error", "-y", *args], check=True)


def synthetic(path: Path, *, size: str = "320x240", rate: str = "25", seconds: float = 1.0, audio: bool = True,
              pix_fmt: str = "yuv420p", codec: str = "libx264", extra: tuple[str, ...] = ()) -> Path:
    """A test pattern clip (with a sine tone unless ``audio`` is False)."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}", "-c:a", "aac"]
    ffmpeg(*args, "-c:v", codec, "-pix_fmt", pix_fmt, *extra, "-shortest" if audio else "-an", str(path))
    return path


def composite(path: Path, *, offset: tuple[int, int] = (600, 200), canvas: str = "1280x720", seconds: float | None = None,
              source: Path = SAMPLE) -> Path:
    """The MEAD sample clip placed into a larger frame at a known offset, with its audio."""
    args = ["-i", str(source), "-filter_complex",
            f"color=c=0x5a6470:s={canvas}:r=25[bg];[bg][0:v]overlay={offset[0]}:{offset[1]}:shortest=1,format=yuv420p[v]",
            "-map", "[v]", "-map", "0:a", "-c:v", "libx264", "-crf", "12", "-c:a", "copy"]
    if seconds:
        args += ["-t", str(seconds)]
    ffmpeg(*args, str(path))
    return path
