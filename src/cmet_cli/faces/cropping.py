"""Crop the tracked face to the networks' square and paste the rendered face back: in RGB frames (previews)
and in the video's own planes (the edit pass: only the crop is converted, with the video's matrix and range)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from ..colour import Conversion

CROP = 256


@dataclass(frozen=True)
class CropBox:
    """An integer square region of the frame (may extend past its edges) and its scale to 256²."""

    x0: int
    y0: int
    side: int

    @classmethod
    def from_row(cls, row: np.ndarray) -> "CropBox":
        cx, cy, side = row
        side_i = max(8, int(round(side)))
        return cls(int(round(cx - side_i / 2)), int(round(cy - side_i / 2)), side_i)


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    shrink = side < image.shape[0]
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def crop(frame: np.ndarray, box: CropBox, size: int = CROP) -> np.ndarray:
    """The square region scaled to ``size``² (area-averaged when shrinking: antialiased); outside the frame is edge-padded."""
    h, w = frame.shape[:2]
    x1, y1 = box.x0 + box.side, box.y0 + box.side
    pad = ((max(0, -box.y0), max(0, y1 - h)), (max(0, -box.x0), max(0, x1 - w)), (0, 0))
    region = frame[max(0, box.y0):min(h, y1), max(0, box.x0):min(w, x1)]
    if any(p for pair in pad[:2] for p in pair):
        region = np.pad(region, pad, mode="edge")
    return _resize(region, size)


def face_mask(size: int = CROP, feather: float = 0.12) -> np.ndarray:
    """A soft ellipse over the face region of a crop (1 inside, 0 at the crop's border, smooth in between)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy, rx, ry = size * 0.5, size * 0.52, size * 0.36, size * 0.44
    r = np.sqrt(((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2)
    return np.clip((1.0 + feather - r) / (2 * feather), 0.0, 1.0)


def match_colour(rendered: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift/scale each channel of the rendered crop to the original crop's statistics inside the mask."""
    weights = mask[..., None] / max(mask.sum(), 1e-6)
    src, ref = rendered.astype(np.float32), original.astype(np.float32)
    mu_s, mu_r = (src * weights).sum((0, 1)), (ref * weights).sum((0, 1))
    sd_s = np.sqrt(((src - mu_s) ** 2 * weights).sum((0, 1))) + 1e-3
    sd_r = np.sqrt(((ref - mu_r) ** 2 * weights).sum((0, 1)))
    return np.clip((src - mu_s) * (sd_r / sd_s) + mu_r, 0, 255).astype(np.uint8)


def paste(frame: np.ndarray, rendered: np.ndarray, box: CropBox, mask: np.ndarray) -> np.ndarray:
    """Put a rendered crop back through the inverse crop transform, blended with the feathered mask.

    Pixels where the (resized) mask is 0 — everything outside the ellipse — are left bit-identical.
    """
    import cv2

    out = frame.copy()
    h, w = frame.shape[:2]
    fx0, fy0 = max(0, box.x0), max(0, box.y0)
    fx1, fy1 = min(w, box.x0 + box.side), min(h, box.y0 + box.side)
    if fx1 <= fx0 or fy1 <= fy0:
        return out
    sl = (slice(fy0 - box.y0, fy1 - box.y0), slice(fx0 - box.x0, fx1 - box.x0))
    face = np.ascontiguousarray(_resize(rendered, box.side)[sl])
    alpha = np.ascontiguousarray(np.clip(_resize(mask, box.side)[sl], 0.0, 1.0), dtype=np.float32)
    region = out[fy0:fy1, fx0:fx1]
    blended = cv2.blendLinear(np.ascontiguousarray(region), face, 1.0 - alpha, alpha)
    inside = alpha > 0
    region[inside] = blended[inside]
    return out


# ---------------------------------------------------------------- crop and paste back in the video's planes

def _window(plane: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """``plane[rows, cols]`` where the window may pass the plane's edges (edge-padded there)."""
    h, w = plane.shape[:2]
    r0, r1, c0, c1 = rows.start, rows.stop, cols.start, cols.stop
    inner = plane[max(0, r0):min(h, r1), max(0, c0):min(w, c1)]
    pad = ((max(0, -r0), max(0, r1 - h)), (max(0, -c0), max(0, c1 - w)))
    return np.pad(inner, pad, mode="edge") if any(p for pair in pad for p in pair) else inner


def _chroma_at_luma(plane: np.ndarray, box: CropBox, sub: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """The chroma sample of each luma pixel of the box (repeated, exact values), edge-padded outside the frame."""
    sx, sy = sub
    rows = np.clip(np.arange(box.y0, box.y0 + box.side), 0, shape[0] - 1) >> sy
    cols = np.clip(np.arange(box.x0, box.x0 + box.side), 0, shape[1] - 1) >> sx
    r0, c0 = int(rows[0]), int(cols[0])
    small = plane[r0:int(rows[-1]) + 1, c0:int(cols[-1]) + 1]
    return small[rows - r0][:, cols - c0]


def crop_planes(planes: Sequence[np.ndarray], box: CropBox, size: int, conv: "Conversion",
                sub: tuple[int, int]) -> np.ndarray:
    """The square region of a frame's Y, U, V planes as float32 RGB (0–255 scale, not clipped) at ``size``².

    Only this region is converted: each plane is scaled in its own code values (chroma taken at each
    luma pixel's chroma sample) and the ``size``² result is converted to RGB. Outside the frame is
    edge-padded, as ``crop`` does. At ``size`` == the box side nothing is resampled.
    """
    import cv2

    from ..colour import rgb_from_codes

    shape = planes[0].shape[:2]
    y = _window(planes[0], slice(box.y0, box.y0 + box.side), slice(box.x0, box.x0 + box.side))
    scaled = [_resize(np.ascontiguousarray(p), size)
              for p in (y, *(_chroma_at_luma(p, box, sub, shape) for p in planes[1:3]))]
    return rgb_from_codes(cv2.merge(scaled), conv)  # interleaved in the planes' own integers: the cheap copy


def mask_support(mask: np.ndarray, margin: int = 3) -> tuple[int, int, int, int]:
    """Rows ``r0:r1`` and columns ``c0:c1`` of a crop-sized mask outside which it is 0, grown by ``margin``
    pixels (the reach of the cubic kernel when it is scaled), clipped to the mask. Empty mask: (0, 0, 0, 0)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return 0, 0, 0, 0
    n, m = mask.shape[:2]
    return (max(0, int(rows[0]) - margin), min(n, int(rows[-1]) + 1 + margin),
            max(0, int(cols[0]) - margin), min(m, int(cols[-1]) + 1 + margin))


def paste_planes(planes: Sequence[np.ndarray], face: np.ndarray, box: CropBox, mask: np.ndarray,
                 conv: "Conversion", sub: tuple[int, int]) -> None:
    """Blend a float RGB face crop into writable Y, U, V planes, in place, with the feathered ``mask``.

    The face is converted back to the video's code values at crop size (converting and scaling are both
    linear, so the order does not matter) and goes back through the inverse crop transform; luma is
    blended at full resolution, chroma with the mask and the face averaged over each chroma sample's
    footprint. Where the (averaged) mask is 0 the blend returns the old value exactly, so those samples
    stay bit-identical; nothing outside the box is touched. Only the part of the box where the scaled mask
    can be non-zero is computed (the feathered ellipse's bounding box: ~80 % of the box).
    """
    import cv2

    from ..colour import codes_from_rgb

    h, w = planes[0].shape[:2]
    r0, r1, c0, c1 = mask_support(mask)
    scale = box.side / mask.shape[0]
    # the window: box ∩ frame ∩ the mask's support scaled to the box
    fx0, fy0 = max(0, box.x0 + int(c0 * scale)), max(0, box.y0 + int(r0 * scale))
    fx1 = min(w, box.x0 + box.side, box.x0 + -int(-c1 * scale // 1))
    fy1 = min(h, box.y0 + box.side, box.y0 + -int(-r1 * scale // 1))
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sx, sy = sub
    # the window, grown to whole chroma samples; what it gains outside the box has alpha 0
    ax0, ay0 = fx0 >> sx << sx, fy0 >> sy << sy
    ax1, ay1 = min(w, -(-fx1 >> sx) << sx), min(h, -(-fy1 >> sy) << sy)
    ix0, iy0 = max(ax0, box.x0), max(ay0, box.y0)
    ix1, iy1 = min(ax1, box.x0 + box.side), min(ay1, box.y0 + box.side)
    inside_box = (ix0, iy0, ix1, iy1) == (ax0, ay0, ax1, ay1)

    def to_region(values: np.ndarray) -> np.ndarray:
        big = _resize(values, box.side)[iy0 - box.y0:iy1 - box.y0, ix0 - box.x0:ix1 - box.x0]
        if inside_box:
            return big
        out = np.zeros((ay1 - ay0, ax1 - ax0, *values.shape[2:]), np.float32)
        out[iy0 - ay0:iy1 - ay0, ix0 - ax0:ix1 - ax0] = big
        return out

    # OpenCV's element-wise calls, not numpy's operators: the same IEEE float32 products and sums, without a
    # fresh full-size temporary for each (at 2160p those page faults were half the paste-back's time)
    alpha = to_region(np.asarray(mask, np.float32))
    np.clip(alpha, 0.0, 1.0, out=alpha)
    y, u, v = cv2.split(codes_from_rgb(face, conv))  # at crop size; each plane scaled to the box on its own
    _blend(planes[0][ay0:ay1, ax0:ax1], cv2.multiply(to_region(y), alpha), alpha, conv.peak)
    weighted = [cv2.multiply(to_region(c), alpha) for c in (u, v)]
    if sx or sy:  # the means over each chroma sample's footprint
        half = ((ax1 - ax0) >> sx, (ay1 - ay0) >> sy)
        alpha = cv2.resize(alpha, half, interpolation=cv2.INTER_AREA)
        weighted = [cv2.resize(c, half, interpolation=cv2.INTER_AREA) for c in weighted]
    rows, cols = slice(ay0 >> sy, ay1 >> sy), slice(ax0 >> sx, ax1 >> sx)
    for plane, values in zip(planes[1:3], weighted):
        _blend(plane[rows, cols], values, alpha, conv.peak)


def _blend(region: np.ndarray, weighted: np.ndarray, alpha: np.ndarray, peak: int) -> None:
    """region = region·(1−alpha) + weighted (the new values pre-multiplied by alpha), in place.

    Where alpha is 0 this is the old integer value exactly, so those samples do not change.
    """
    import cv2

    old = region.astype(np.float32)
    new = cv2.add(cv2.subtract(old, cv2.multiply(old, alpha)), weighted)
    np.rint(new, out=new)
    np.clip(new, 0, peak, out=new)
    region[...] = new
