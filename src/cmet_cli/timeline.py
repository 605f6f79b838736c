"""Which emotion vector applies at each frame: one preset or clip, or an emotion timeline (``--at``).

A plan is a list of keyframes (time in seconds, vector). Before the first keyframe the face is left
unchanged; at each keyframe the vector cross-fades from the previous one over ``blend`` seconds
(smoothstep), the first one fading in from "unchanged". ``weights`` gives, per frame, the weight of
"unchanged" (column 0) and of each keyframe's vector: rows sum to 1, so the vector used at a frame
and how much of its direction is applied are both exact per frame.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import UsageError


def parse_time(text: str) -> float:
    """Seconds from ``12.5``, ``1:05`` (mm:ss) or ``1:02:03.5`` (hh:mm:ss)."""
    if not re.fullmatch(r"\d+(\.\d+)?(:\d{1,2}(\.\d+)?){0,2}", text.strip()):
        raise UsageError(f"time {text!r}: use seconds (12.5) or mm:ss (1:05)")
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def parse_duration(text: str) -> float:
    """``0.5s``, ``0.5`` or ``500ms``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
    if not m:
        raise UsageError(f"duration {text!r}: use seconds, e.g. 0.5s")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value


@dataclass(frozen=True)
class Keyframe:
    time: float  # seconds
    vector: np.ndarray  # (1024,) float32, intensity already applied
    label: str = ""


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def weights(keyframes: list[Keyframe], n_frames: int, fps: float, blend: float) -> np.ndarray:
    """(n_frames, 1 + K) weights of [unchanged, keyframe 1..K] per frame (frame i shown at time i/fps)."""
    t = np.arange(n_frames) / float(fps)
    w = np.zeros((n_frames, 1 + len(keyframes)))
    w[:, 0] = 1.0
    for k, key in enumerate(sorted(keyframes, key=lambda kf: kf.time), start=1):
        ramp = _smoothstep((t - key.time) / blend) if blend > 0 else (t >= key.time).astype(float)
        w[:, k] = ramp
        w[:, :k] *= (1.0 - ramp)[:, None]
    return w


def frame_vectors(keyframes: list[Keyframe], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (vector, strength): the keyframe mix renormalised, and 1 − weight of "unchanged".

    Before the first keyframe (strength 0) the vector is the first keyframe's, so that a connector
    window straddling the first keyframe sees one consistent emotion.
    """
    ordered = sorted(keyframes, key=lambda kf: kf.time)
    stack = np.stack([k.vector for k in ordered]).astype(np.float64)
    strength = 1.0 - w[:, 0]
    mix = w[:, 1:] @ stack
    vectors = np.where(strength[:, None] > 0, mix / np.where(strength > 0, strength, 1.0)[:, None], stack[0])
    return vectors.astype(np.float32), strength.astype(np.float32)
