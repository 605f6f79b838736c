"""What the networks see, against an independent reference: ffmpeg's zscale (libzimg) conversion of the same
frame to RGB, for every matrix, range and transfer the edit supports.

The clip is tagged with its colour description and encoded losslessly in 4:4:4 (no chroma interpolation to
disagree on); the reference conversion is told the matrix and range by the test, not read from the file, so a
wrong tag reading fails as well as a wrong coefficient.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from cmet_cli import colour, faces, media

from .clips import ffmpeg

SIDE = 128

# case: (ffmpeg -colorspace, -color_trc, zscale matrix, zscale transfer, zscale primaries, -color_primaries,
#        full range, bits, the Conversion the edit must choose)
CASES = {
    "bt601-limited": ("smpte170m", "smpte170m", "170m", "601", "170m", "smpte170m", False, 8),
    "bt601-full": ("smpte170m", "smpte170m", "170m", "601", "170m", "smpte170m", True, 8),
    "bt709-limited": ("bt709", "bt709", "709", "709", "709", "bt709", False, 8),
    "bt709-full": ("bt709", "bt709", "709", "709", "709", "bt709", True, 8),
    "bt2020-limited-10bit": ("bt2020nc", "bt2020-10", "2020_ncl", "2020_10", "2020", "bt2020", False, 10),
    "bt2020-full-10bit": ("bt2020nc", "bt2020-10", "2020_ncl", "2020_10", "2020", "bt2020", True, 10),
    "hlg-10bit": ("bt2020nc", "arib-std-b67", "2020_ncl", "arib-std-b67", "2020", "bt2020", False, 10),
    "pq-10bit": ("bt2020nc", "smpte2084", "2020_ncl", "smpte2084", "2020", "bt2020", False, 10),
}
EXPECTED = {
    "bt601-limited": colour.Conversion("bt601", False, 8, "sdr"),
    "bt601-full": colour.Conversion("bt601", True, 8, "sdr"),
    "bt709-limited": colour.Conversion("bt709", False, 8, "sdr"),
    "bt709-full": colour.Conversion("bt709", True, 8, "sdr"),
    "bt2020-limited-10bit": colour.Conversion("bt2020", False, 10, "sdr"),
    "bt2020-full-10bit": colour.Conversion("bt2020", True, 10, "sdr"),
    "hlg-10bit": colour.Conversion("bt2020", False, 10, "hlg"),
    "pq-10bit": colour.Conversion("bt2020", False, 10, "pq"),
}


def pq_signal(nits: float) -> float:
    """SMPTE ST 2084 inverse EOTF: the PQ signal (0–1) of a luminance in cd/m², from the standard's constants."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = (nits / 10000) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


def make_clip(path: Path, case: str) -> Path:
    """One lossless 4:4:4 frame of ffmpeg's colour pattern, tagged as ``case``."""
    space, trc, _, _, _, primaries, full, bits = CASES[case]
    pix = "yuv444p10le" if bits == 10 else "yuv444p"
    rng = "pc" if full else "tv"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={SIDE}x{SIDE}:r=1:d=1", "-frames:v", "1",
           "-vf", f"scale=out_range={rng},format={pix}", "-c:v", "libx264", "-qp", "0", "-colorspace", space,
           "-color_trc", trc, "-color_primaries", primaries, "-color_range", rng, str(path))
    return path


def zscale_rgb(path: Path, case: str) -> np.ndarray:
    """ffmpeg's own conversion of the first frame to float R'G'B' (0–1, not clipped), no transfer change."""
    _, _, matrix, transfer, primaries, _, full, _ = CASES[case]
    graph = (f"zscale=matrixin={matrix}:rangein={'full' if full else 'limited'}:transferin={transfer}:"
             f"transfer={transfer}:primariesin={primaries}:primaries={primaries}:range=full:dither=none,"
             "format=gbrpf32le")
    raw = subprocess.run([media.ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1",
                          "-vf", graph, "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    g, b, r = np.frombuffer(raw, np.float32).reshape(3, SIDE, SIDE)
    return np.stack([r, g, b], axis=-1)


def test_pq_reference_white_is_203_nits() -> None:
    # BT.2408 reference white (203 cd/m²) in PQ: 0.58069; the constant is rounded to 4 places
    assert colour.PQ_REFERENCE_WHITE == pytest.approx(pq_signal(203.0), abs=5e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_face_crop_rgb_matches_ffmpeg(tmp_path: Path, case: str) -> None:
    src = make_clip(tmp_path / f"{case}.mkv", case)
    frame = next(iter(media.read_planes(media.probe(src))))
    conv = frame.layout.conversion(SIDE, SIDE)
    assert conv == EXPECTED[case]
    # the edit's crop path (a box of the crop's own size, so nothing is resampled)
    ours = faces.crop_planes(frame.planes, faces.CropBox(0, 0, SIDE), SIDE, conv, frame.layout.sub)
    # the networks' 0-255 scale: the signal itself for SDR and HLG, PQ divided by its reference white (whose
    # value test_pq_reference_white_is_203_nits checks against the standard)
    scale = 255.0 / (colour.PQ_REFERENCE_WHITE if case.startswith("pq") else 1.0)
    reference = zscale_rgb(src, case) * scale
    assert np.ptp(reference) > 0.9 * scale  # the pattern spans the range: saturated colours a wrong matrix moves
    # measured max|Δ| 6.1e-5 of 255 (float32 rounding on both sides, every case, 2-core Intel Xeon); bound
    # 1.5e-4 of 255 (2.5x). bt601 coefficients for bt709 move the pattern's colours by up to 49 levels, the
    # wrong range by 28, PQ's white off by 1 % by 5.7 (measured): all far outside.
    assert np.abs(ours - reference).max() < 1.5e-4 * scale / 255
    # and the 8-bit image the networks are handed is that reference, rounded and clipped
    assert np.abs(colour.to_uint8(ours).astype(int) - np.clip(np.rint(reference), 0, 255)).max() <= 1
