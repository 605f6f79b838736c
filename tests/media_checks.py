"""What tests read back from media to compare: audio packets, and whole frames as RGB.

Test-only: the product never needs them (the edit converts only the face crop, and copies audio unread).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cmet_cli import media
from cmet_cli.colour import to_rgb, to_uint8
from cmet_cli.media import Frame
from cmet_cli.media.planes import upsample_chroma
from cmet_cli.media.probing import probe_json


def audio_packets(path: str | Path) -> list[tuple[str, str, str]]:
    """(pts, size, sha256 of the data) of every audio packet: the test that audio was copied unchanged."""
    meta = probe_json(path, select_streams="a", show_packets=None, show_data_hash="sha256",
                      show_entries="packet=pts,size,data_hash")
    return [(str(p.get("pts")), str(p.get("size")), str(p.get("data_hash"))) for p in meta.get("packets", [])]


def frame_to_rgb(frame: Frame) -> np.ndarray:
    """A whole frame as RGB uint8 (for previews and checks; the edit itself converts only the face crop)."""
    h, w = frame.shape
    conv = frame.layout.conversion(w, h)
    y, u, v = frame.planes
    if not frame.layout.rgb:
        u, v = (upsample_chroma(p, frame.layout.sub, (h, w)) for p in (u, v))
    return to_uint8(to_rgb(y, u, v, conv))


def frames(path: Path) -> np.ndarray:
    """Every frame of a video as RGB, in int16 (so that differences of two clips do not wrap around)."""
    info = media.probe(path)
    return np.stack([f.astype(np.int16) for f in media.read_frames(info)])
