"""What an edit loads: the checkpoints and the preset bank, from ``--weights-dir``/``--bank`` or the verified cache."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError
from .cache import installed_path, require
from .lock import LockEntry, folder_names, load_lock


CHECKPOINT_NAMES = {
    "edtalk": "EDTalk.pt",
    "connector": "_epoch_2105_checkpoint_step000200000.pth",
    "emotion2vec": "emotion2vec_plus_large.pt",
}


def find_in_folder(entry: LockEntry, folder: str | Path) -> Path | None:
    """Where ``folder`` holds this entry (see ``folder_names``), or None: the one rule shared by ``--from DIR``
    and ``--weights-dir DIR``."""
    is_there = Path.is_dir if entry.kind == "archive" else Path.is_file
    return next((Path(folder) / n for n in folder_names(entry) if is_there(Path(folder) / n)), None)


@dataclass(frozen=True)
class WeightPaths:
    """The files one edit loads; ``None`` where the run does not need that file."""

    edtalk: Path
    connector: Path
    emotion2vec: Path | None = None
    bank: Path | None = None


def bank_folder(bank_dir: str | Path | None = None, weights_dir: str | Path | None = None,
                lock: dict[str, LockEntry] | None = None, *, verify: bool = True) -> Path:
    """The preset bank: ``--bank DIR``, else ``WEIGHTS_DIR/bank`` or ``WEIGHTS_DIR/features``, else the installed (verified) bank."""
    if bank_dir:
        if not Path(bank_dir).is_dir():
            raise WeightsError(f"--bank {bank_dir}: no such folder (layout DIR/<emotion>/*.npy)")
        return Path(bank_dir)
    weights_dir = weights_dir or os.environ.get("CMET_WEIGHTS_DIR") or None
    entry = (lock or load_lock())["bank"]
    found = find_in_folder(entry, weights_dir) if weights_dir else None
    if found is not None:
        return found
    return require(entry) if verify else installed_path(entry)


def resolve(
    weights_dir: str | Path | None = None,
    *,
    need_speech: bool = False,
    need_bank: bool = True,
    bank_dir: str | Path | None = None,
    lock: dict[str, LockEntry] | None = None,
) -> WeightPaths:
    """Find every checkpoint a run needs: in ``weights_dir`` (official names) or the verified cache."""
    weights_dir = weights_dir or os.environ.get("CMET_WEIGHTS_DIR") or None
    lock = lock or load_lock()
    emotion2vec, bank = emotion_files(weights_dir, need_speech=need_speech, need_bank=need_bank, bank_dir=bank_dir,
                                      lock=lock)
    return WeightPaths(edtalk=checkpoint("edtalk", weights_dir, lock), connector=checkpoint("connector", weights_dir, lock),
                       emotion2vec=emotion2vec, bank=bank)


def emotion_files(weights_dir: str | Path | None = None, *, need_speech: bool = False, need_bank: bool = True,
                  bank_dir: str | Path | None = None,
                  lock: dict[str, LockEntry] | None = None) -> tuple[Path | None, Path | None]:
    """(emotion2vec, preset bank): what an emotion plan is computed from, each only if needed."""
    weights_dir = weights_dir or os.environ.get("CMET_WEIGHTS_DIR") or None
    lock = lock or load_lock()
    bank = bank_folder(bank_dir, weights_dir, lock, verify=True) if need_bank else None
    return (checkpoint("emotion2vec", weights_dir, lock) if need_speech else None), bank


def weights_source(weights_dir: str | Path) -> str:
    """What named the weights folder: ``CMET_WEIGHTS_DIR`` when that variable holds ``weights_dir`` (the CLI's
    ``--weights-dir`` takes its default from it), else ``--weights-dir``."""
    env = os.environ.get("CMET_WEIGHTS_DIR")
    return "CMET_WEIGHTS_DIR" if env and Path(env) == Path(weights_dir) else "--weights-dir"


def weights_label(weights_dir: str | Path) -> str:
    """The weights folder as the user gave it: ``--weights-dir DIR`` or ``CMET_WEIGHTS_DIR=DIR``."""
    source = weights_source(weights_dir)
    return f"{source}={weights_dir}" if source == "CMET_WEIGHTS_DIR" else f"{source} {weights_dir}"


def checkpoint(name: str, weights_dir: str | Path | None, lock: dict[str, LockEntry]) -> Path:
    """A checkpoint of ``models.lock`` by entry name: from ``weights_dir`` (official names), else the verified cache."""
    if weights_dir:
        found = find_in_folder(lock[name], weights_dir)
        if found is not None:
            return found
        if not Path(weights_dir).is_dir():
            raise WeightsError(f"{weights_label(weights_dir)}: no such folder; or run `cmet download-weights`")
        raise WeightsError(
            f"{Path(weights_dir) / CHECKPOINT_NAMES[name]} not found ({weights_source(weights_dir)} expects the official "
            f"file names: {', '.join(CHECKPOINT_NAMES.values())}); or run `cmet download-weights`"
        )
    return require(lock[name])
