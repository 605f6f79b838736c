"""The preset emotions: what the bank holds, which presets are too weak to show much, and strength reports.

A preset's direction is the mean of all its clips' emotion2vec embeddings minus the mean of the
neutral bank (``preset_vector``). Its norm says how far the connector is pushed: about 6–13
for the published presets, but contempt's mean sits almost on top of neutral's (cosine 0.997,
norm ~0.9), so it barely changes a face. ``WEAK_NORM`` is the line below which we say so.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import CmetError, UsageError

# A preset whose direction (mean emotion − mean neutral) is this short barely moves the expression:
# contempt's is ~0.9 against 5–13 for the others (its mean sits on top of neutral's, cosine 0.997).
WEAK_NORM = 2.0
NOT_INSTALLED = "not installed"

PRESETS: tuple[str, ...] = (
    "angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised",
    "charismatic", "desirous", "empathetic", "envious", "romantic", "sarcastic",
)


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


# ---------------------------------------------------------------- the bank and its vectors

def _mean_embedding(arrays: Sequence[np.ndarray], what: str) -> np.ndarray:
    if len(arrays) == 0:
        raise CmetError(f"no {what} embeddings given: at least one is needed")
    shapes = {np.shape(a) for a in arrays}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise CmetError(f"{what} embeddings must all be 1-d vectors of one length, got shapes {sorted(shapes)}")
    return np.stack([np.asarray(a, dtype=np.float64) for a in arrays]).mean(axis=0)


def emotion_vector(emotional: Sequence[np.ndarray], neutral: Sequence[np.ndarray]) -> np.ndarray:
    """Emotion direction: mean(emotional) - mean(neutral), float32, no normalisation."""
    emo, neu = _mean_embedding(emotional, "emotional"), _mean_embedding(neutral, "neutral")
    if emo.shape != neu.shape:
        raise CmetError(f"emotional embeddings have shape {emo.shape} but neutral ones {neu.shape}")
    return (emo - neu).astype(np.float32)


def _load_embedding(path: Path) -> np.ndarray:
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CmetError(f"cannot read embedding {path}: {exc}") from exc
    value = np.squeeze(value)
    if value.ndim != 1:
        raise CmetError(f"embedding {path} has shape {value.shape}, expected a vector")
    return value.astype(np.float32)


def load_bank(directory: str | Path) -> dict[str, np.ndarray]:
    """Read ``DIR/<emotion>/*.npy`` (sorted by name) into {emotion: (clips, D) float32}."""
    root = Path(directory)
    if not root.is_dir():
        raise CmetError(f"embedding bank not found: {root} (run `cmet download-weights`)")
    bank: dict[str, np.ndarray] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.npy"))
        if not files:
            continue
        vectors = [_load_embedding(f) for f in files]
        if len({v.shape for v in vectors}) != 1:
            raise CmetError(f"embeddings in {folder} have different lengths")
        bank[folder.name] = np.stack(vectors)
    if "neutral" not in bank:
        raise CmetError(f"embedding bank {root} has no neutral clips (expected {root / 'neutral'}/*.npy)")
    return bank


def preset_vector(bank: dict[str, np.ndarray], name: str, neutral: np.ndarray | None = None) -> np.ndarray:
    """The preset's direction: mean of all its clips minus the mean of the neutral clips (the bank's, or ``neutral``).

    ``neutral`` itself is the zero direction (the face left unchanged), whatever the neutral reference: the
    bank's neutral clips minus another speaker's neutral speech is that speaker's difference, not an emotion."""
    if name not in bank:
        raise UsageError(f"unknown emotion preset {name!r}; valid names: {', '.join(sorted(bank))}")
    if name == "neutral":
        return np.zeros(np.asarray(bank[name]).shape[-1], dtype=np.float32)
    return emotion_vector(bank[name], bank["neutral"] if neutral is None else neutral)


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


def installed_names(bank_dir: Path | None, weights_dir: Path | None) -> set[str] | None:
    """The preset names of the bank a run would use, or None when the bank cannot be found yet."""
    from . import weights

    try:
        folder = weights.bank_folder(bank_dir, weights_dir, verify=False)
    except CmetError:
        return None
    if not folder.is_dir():
        return None
    return {p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.npy"))}


def check_presets(options) -> None:
    """An unknown preset name of an edit's options (``EditOptions``) is a usage error, found before any
    model loads."""
    from .options import Preset

    names = [cue.emotion.name for cue in (*options.cues(), *options.face_emotions) if isinstance(cue.emotion, Preset)]
    if not names:
        return
    known = installed_names(options.bank_dir, options.weights_dir) or set(PRESETS)
    for name in names:
        if name not in known:
            raise UsageError(f"unknown emotion preset {name!r}; valid names: {', '.join(sorted(known))} (see `cmet emotions`)")
