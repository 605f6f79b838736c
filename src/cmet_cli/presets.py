"""The preset emotions: what the bank holds and which presets are too weak to show much."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A preset whose direction (mean emotion − mean neutral) is this short barely moves the expression:
# contempt's is ~0.9 against 5–13 for the others (its mean sits on top of neutral's, cosine 0.997).
WEAK_NORM = 2.0


@dataclass(frozen=True)
class PresetInfo:
    name: str
    clips: int
    norm: float | None  # None for neutral itself
    note: str = ""


def weak_note(norm: float) -> str:
    return f"weak: direction norm {norm:.1f} (others 5–13), barely changes the face" if norm < WEAK_NORM else ""


def bank_folder(bank_dir: str | Path | None = None) -> Path:
    from . import weights

    if bank_dir:
        return Path(bank_dir)
    return weights.require(weights.load_lock()["bank"])


def describe(bank_dir: str | Path | None = None) -> list[PresetInfo]:
    """Every preset with its clip count and direction norm, in the published order."""
    from .speech import PRESETS, load_bank, preset_vector

    bank = load_bank(bank_folder(bank_dir))
    rows = []
    for name in PRESETS:
        if name not in bank:
            rows.append(PresetInfo(name, 0, None, "missing from the bank"))
            continue
        if name == "neutral":
            rows.append(PresetInfo(name, len(bank[name]), None, "the reference: a zero direction"))
            continue
        norm = float(np.linalg.norm(preset_vector(bank, name)))
        rows.append(PresetInfo(name, len(bank[name]), norm, weak_note(norm)))
    return rows
