"""Which emotion vector applies at each frame: one preset or clip, or an emotion timeline (``--at``).

A plan is a list of keyframes (time in seconds, vector). Before the first keyframe the face is left
unchanged; at each keyframe the vector cross-fades from the previous one over ``blend`` seconds
(smoothstep, from TIME to TIME + blend), the first one fading in from "unchanged". A keyframe at
time 0 applies from the first frame (there is nothing to fade in from). ``weights`` gives, per frame,
the weight of "unchanged" (column 0) and of each keyframe's vector: rows sum to 1, so the vector used
at a frame and how much of its direction is applied are both exact per frame.

Frame i is shown at time i / fps, or at its own presentation time (relative to the first frame) when the
caller knows it (variable frame rates). A keyframe's time is matched to the frame grid with a tolerance
of a microsecond, so ``1.001`` at 30000/1001 fps is exactly frame 30.

A keyframe with a zero vector (``--intensity 0``, or the ``neutral`` preset: mean neutral − mean
neutral) means "unchanged": it weighs on the strength, not on the vector, so such frames keep their
original expression codes exactly (the connector does not map a zero vector to a zero direction).
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
    parts = text.strip().split(":")
    if any(float(part) >= 60 for part in parts[1:]):
        raise UsageError(f"time {text!r}: minutes and seconds after a ':' must be below 60")
    seconds = 0.0
    for part in parts:
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
    norm: float | None = None  # norm of the direction before intensity (None: unknown)

    @property
    def active(self) -> bool:
        """Whether the keyframe changes the face at all (a zero vector leaves it unchanged)."""
        return bool(np.any(self.vector != 0))


TIME_TOLERANCE = 1e-6  # seconds: a keyframe this close to a frame's time starts on that frame


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def weights(keyframes: list[Keyframe], n_frames: int, fps: float, blend: float,
            times: np.ndarray | None = None) -> np.ndarray:
    """(n_frames, 1 + K) weights of [unchanged, keyframe 1..K] per frame.

    Frame i is shown at ``times[i]`` (seconds since the first frame: a variable frame rate's real times),
    or at i/fps when no times are given.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    if times is not None and len(times) != n_frames:
        raise ValueError(f"{len(times)} frame times for {n_frames} frames")
    t = np.arange(n_frames) / float(fps) if times is None else np.asarray(times, np.float64)
    w = np.zeros((n_frames, 1 + len(keyframes)))
    w[:, 0] = 1.0
    for k, key in enumerate(sorted(keyframes, key=lambda kf: kf.time), start=1):
        since = t - key.time
        since[np.abs(since) < TIME_TOLERANCE] = 0.0
        if key.time <= TIME_TOLERANCE:
            ramp = np.ones(n_frames)  # from the first frame: nothing to fade in from
        elif blend > 0:
            ramp = _smoothstep(since / blend)
        else:
            ramp = (since >= 0).astype(float)
        w[:, k] = ramp
        w[:, :k] *= (1.0 - ramp)[:, None]
    return w


def frame_vectors(keyframes: list[Keyframe], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (vector, strength): the mix of the active keyframes renormalised, and their total weight.

    Strength is 1 − the weight of "unchanged" (and of zero-vector keyframes, which mean the same).
    Where it is 0 the vector is the first active keyframe's (zeros if none), so that a connector
    window straddling the first keyframe sees one consistent emotion.
    """
    ordered = sorted(keyframes, key=lambda kf: kf.time)
    if not ordered:
        raise ValueError("an emotion plan needs at least one keyframe")
    stack = np.stack([k.vector for k in ordered]).astype(np.float64)
    active = np.array([k.active for k in ordered])
    inactive = (w[:, 1:] * ~active).sum(axis=1)
    strength = np.clip(1.0 - w[:, 0] - inactive, 0.0, 1.0)
    strength[strength < 1e-12] = 0.0
    mix = (w[:, 1:] * active) @ stack
    rest = stack[int(np.argmax(active))] if active.any() else np.zeros(stack.shape[1])
    vectors = np.where(strength[:, None] > 0, mix / np.where(strength > 0, strength, 1.0)[:, None], rest)
    return vectors.astype(np.float32), strength.astype(np.float32)
