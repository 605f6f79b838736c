"""The face crop's colour conversions: the video's own Y'CbCr code values <-> the RGB the networks see.

Only the face crop is ever converted; the rest of the frame stays in the video's planes. A conversion
is fixed by the video's matrix (bt601, bt709, bt2020nc), range (limited or full), bit depth and
transfer. The networks were trained on 8-bit sRGB-like MEAD frames, so they see values on a 0–255 scale:

- SDR (bt601/bt709 transfer, or untagged): R'G'B' as decoded, scaled to 0–255.
- HLG (arib-std-b67): the HLG signal itself, scaled to 0–255. HLG is designed to look right on an SDR
  display without conversion; its wider bt2020 primaries only look a little less saturated.
- PQ (smpte2084): the PQ signal divided by the signal of reference white (203 cd/m², BT.2408), so that
  diffuse white lands near 255; anything brighter goes past 255 and is carried around the networks.

Every mapping is affine in the code values (one (3, 4) matrix each way, applied in float32), so the inverse
is exact up to float32 rounding (within 5e-5 of a code value): a crop the editor returns unchanged comes back to
the same code values (what the 8-bit crop cannot hold, the sub-level
precision of 10-bit video and values past 0–255, is carried around the networks by the caller).
Untagged video is read with the matrix players assume: bt709 from 720 lines or 1280 columns up, else bt601.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# (Kr, Kb) of each matrix
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
# AVColorSpace values -> matrix name (bt2020c is read as bt2020nc: a close approximation for a face crop)
SPACE_MATRIX = {1: "bt709", 4: "bt601", 5: "bt601", 6: "bt601", 7: "bt601", 9: "bt2020", 10: "bt2020"}
# AVColorTransferCharacteristic values of the HDR transfers
TRC_PQ, TRC_HLG = 16, 18
PQ_REFERENCE_WHITE = 0.5807  # PQ signal of 203 cd/m² (ITU-R BT.2408 reference white)


@dataclass(frozen=True)
class Conversion:
    """How a video's code values map to the networks' 0–255 RGB."""

    matrix: str = "bt709"  # bt601 | bt709 | bt2020 | rgb (planes already hold R, G, B)
    full_range: bool = False
    bits: int = 8
    transfer: str = "sdr"  # sdr | hlg | pq

    @property
    def peak(self) -> int:
        return (1 << self.bits) - 1

    @property
    def gain(self) -> float:
        """Networks' 0–255 per unit of (non-linear) signal."""
        return 255.0 / PQ_REFERENCE_WHITE if self.transfer == "pq" else 255.0


def conversion_for(space: int, colour_range: int, trc: int, bits: int, width: int, height: int,
                   rgb: bool = False) -> Conversion:
    """The conversion of a video from its AVFrame colour properties (unspecified ones as players read them)."""
    if rgb:
        matrix = "rgb"
    else:
        matrix = SPACE_MATRIX.get(space) or ("bt709" if height >= 720 or width >= 1280 else "bt601")
    transfer = {TRC_PQ: "pq", TRC_HLG: "hlg"}.get(trc, "sdr")
    return Conversion(matrix, colour_range == 2 or rgb, bits, transfer)


def _scales(conv: Conversion) -> tuple[float, float, float, float]:
    """(luma offset, luma span, chroma offset, chroma span) in code values."""
    step = float(1 << (conv.bits - 8))
    if conv.full_range:
        return 0.0, float(conv.peak), float(1 << (conv.bits - 1)), float(conv.peak)
    return 16 * step, 219 * step, 128 * step, 224 * step


def to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, conv: Conversion) -> np.ndarray:
    """Code values (same-sized planes) -> float32 (H, W, 3) RGB on the networks' 0–255 scale (not clipped)."""
    return rgb_from_codes(np.stack([y, u, v], axis=-1), conv)


def rgb_from_codes(codes: np.ndarray, conv: Conversion) -> np.ndarray:
    """Code values as one (..., 3) array (Y, U, V; or R, G, B for an RGB source) -> float32 RGB of the same
    shape on the networks' 0–255 scale (not clipped): ``to_rgb`` on interleaved planes."""
    return _affine(codes, _to_rgb_matrix(conv))


def from_rgb(rgb: np.ndarray, conv: Conversion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse of ``to_rgb``: float code values (not rounded, not clipped) of Y, U and V."""
    codes = codes_from_rgb(rgb, conv)
    return codes[..., 0], codes[..., 1], codes[..., 2]


def codes_from_rgb(rgb: np.ndarray, conv: Conversion) -> np.ndarray:
    """The inverse of ``rgb_from_codes``: float32 (..., 3) code values (not rounded, not clipped)."""
    return _affine(rgb, _from_rgb_matrix(conv))


@functools.lru_cache(maxsize=64)
def _to_rgb_matrix(conv: Conversion) -> np.ndarray:
    """The (3, 4) affine map code values -> RGB (0–255 scale): with L = (Y − y0)/ys, Cb = (U − c0)/cs and
    Cr = (V − c0)/cs, R = L + 2(1 − Kr)·Cr, B = L + 2(1 − Kb)·Cb, G = (L − Kr·R − Kb·B)/Kg, times the gain."""
    if conv.matrix == "rgb":  # an RGB source: the planes are R, G and B
        return np.hstack([np.eye(3) * (255.0 / conv.peak), np.zeros((3, 1))])
    kr, kb = MATRICES[conv.matrix]
    kg = 1.0 - kr - kb
    y0, ys, c0, cs = _scales(conv)
    cr_to_r, cb_to_b = 2 * (1 - kr), 2 * (1 - kb)
    per_unit = np.array([[1.0, 0.0, cr_to_r],
                         [1.0, -kb * cb_to_b / kg, -kr * cr_to_r / kg],
                         [1.0, cb_to_b, 0.0]])  # RGB per unit of (L, Cb, Cr)
    scale = per_unit / np.array([ys, cs, cs]) * conv.gain
    return np.hstack([scale, -(scale @ np.array([y0, c0, c0]))[:, None]])


@functools.lru_cache(maxsize=64)
def _from_rgb_matrix(conv: Conversion) -> np.ndarray:
    """The inverse of ``_to_rgb_matrix``: L = Kr·R + Kg·G + Kb·B, Cb = (B − L)/(2(1 − Kb)), Cr = (R − L)/(2(1 − Kr))
    of the signal (RGB / gain), then Y = L·ys + y0, U = Cb·cs + c0, V = Cr·cs + c0."""
    forward = _to_rgb_matrix(conv)
    inverse = np.linalg.inv(forward[:, :3])
    return np.hstack([inverse, -(inverse @ forward[:, 3])[:, None]])


def _affine(values: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``matrix`` (3, 4) applied to each 3-vector of ``values`` (..., 3), in float32 (OpenCV's ``transform``:
    one pass, no temporary per term)."""
    import cv2

    flat = np.ascontiguousarray(values, np.float32).reshape(-1, 1, 3)
    return cv2.transform(flat, matrix).reshape(values.shape)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """The networks' view of a float crop: rounded and clipped to 0–255."""
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
