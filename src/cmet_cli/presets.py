"""The preset emotions: what the bank holds, which presets are too weak to show much, and strength reports.

A preset's direction is the mean of all its clips' emotion2vec embeddings minus the mean of the
neutral bank (``speech.preset_vector``). Its norm says how far the connector is pushed: about 6–13
for the published presets, but contempt's mean sits almost on top of neutral's (cosine 0.997,
norm ~0.9), so it barely changes a face. ``WEAK_NORM`` is the line below which we say so.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

# A preset whose direction (mean emotion − mean neutral) is this short barely moves the expression:
# contempt's is ~0.9 against 5–13 for the others (its mean sits on top of neutral's, cosine 0.997).
WEAK_NORM = 2.0
NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class PresetInfo:
    name: str
    clips: int
    norm: float | None  # None for neutral itself and for presets missing from the bank
    cosine: float | None = None  # cosine between the preset's mean embedding and neutral's
    note: str = ""
    installed: bool = True  # False: the bank is not installed, only the name is known

    @property
    def weak(self) -> bool:
        return self.norm is not None and self.norm < WEAK_NORM

    def as_dict(self) -> dict:
        return {**asdict(self), "weak": self.weak}


def weak_note(norm: float, cosine: float | None = None, others: tuple[float, float] | None = None) -> str:
    """The note for a weak direction ('' when it is not weak)."""
    if norm >= WEAK_NORM:
        return ""
    close = f"almost neutral (cosine {cosine:.3f}), " if cosine is not None else ""
    against = f" vs {others[0]:.0f}–{others[1]:.0f}" if others else ""
    return f"weak: {close}norm {norm:.1f}{against}: barely changes the face"


def bank_folder(bank_dir: str | Path | None = None, weights_dir: str | Path | None = None) -> Path:
    """``--bank DIR``, else ``WEIGHTS_DIR/bank``, else the installed bank (``weights.bank_folder``)."""
    from . import weights

    return weights.bank_folder(bank_dir, weights_dir)


def describe(bank_dir: str | Path | None = None, weights_dir: str | Path | None = None) -> list[PresetInfo]:
    """Every preset with its clip count, direction norm and note, in the published order.

    Emotions of the bank that are not published presets (a custom ``--bank``) follow, sorted. Without an
    installed bank (and no ``--bank``) the published names are listed, each marked "not installed".
    """
    from . import weights
    from .errors import CmetError
    from .speech import PRESETS, load_bank, preset_vector

    if not bank_dir and not weights.bank_folder(None, weights_dir, verify=False).is_dir():
        return [PresetInfo(name, 0, None, None, NOT_INSTALLED, installed=False) for name in PRESETS]
    folder = bank_folder(bank_dir, weights_dir)
    if not folder.is_dir():
        raise CmetError(f"--bank {folder}: no such folder (layout DIR/<emotion>/*.npy)")
    bank = load_bank(folder)
    neutral_mean = bank["neutral"].astype(np.float64).mean(axis=0)
    measured: dict[str, tuple[float, float]] = {}
    names = list(PRESETS) + sorted(set(bank) - set(PRESETS))
    for name in names:
        if name in bank and name != "neutral":
            mean = bank[name].astype(np.float64).mean(axis=0)
            cosine = float(mean @ neutral_mean / (np.linalg.norm(mean) * np.linalg.norm(neutral_mean) + 1e-12))
            measured[name] = (float(np.linalg.norm(preset_vector(bank, name))), cosine)
    strong = [n for n, _ in measured.values() if n >= WEAK_NORM]
    others = (min(strong), max(strong)) if strong else None
    rows = []
    for name in names:
        if name not in bank:
            rows.append(PresetInfo(name, 0, None, None, "missing from the bank"))
        elif name == "neutral":
            rows.append(PresetInfo(name, len(bank[name]), None, None, "the reference: a zero direction (face unchanged)"))
        else:
            norm, cosine = measured[name]
            rows.append(PresetInfo(name, len(bank[name]), norm, cosine, weak_note(norm, cosine, others)))
    return rows


def weak_warnings(keyframes: Iterable) -> list[str]:
    """One warning per emotion of a plan (``timeline.Keyframe``) whose direction is too weak to show much."""
    out = []
    for key in keyframes:
        norm = getattr(key, "norm", None)
        if norm is None or norm >= WEAK_NORM:
            continue
        name = key.label or "the emotion"
        if norm == 0:
            out.append(f"{name}: a zero direction (the neutral reference): the face is left unchanged")
        else:
            out.append(f"{name} is a weak emotion: direction norm {norm:.1f} (the presets are 6–13, "
                       f"weak below {WEAK_NORM:g}), it barely changes the face; try --intensity 2 or another emotion")
    return out


def strength_line(result) -> str:
    """The ``-v`` line of one output (a ``pipeline.EditResult``): how much the expression changed."""
    if result.code_change is None:
        return f"{result.output}: emotion strength not measured (no face edited)"
    weak = " (weak)" if result.vector_norm is not None and result.vector_norm < WEAK_NORM else ""
    return (f"{result.output}: expression change {result.code_change:.4f} (mean |Δ code|), "
            f"semantic vector norm {result.vector_norm:.2f}{weak}")
