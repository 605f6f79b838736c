"""``models.lock`` as data: one ``LockEntry`` per downloadable file, and how each can be installed offline."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError


@dataclass(frozen=True)
class LockEntry:
    """One downloadable file of ``models.lock``."""

    name: str
    kind: str  # "hub" (hf_hub_download), "url" (one file) or "archive" (a tarball from which `path` members are extracted)
    url: str
    filename: str
    sha256: str = ""
    size: int = 0
    revision: str = ""
    repo: str = ""
    path: str = ""
    license: str = ""
    sha256_prefix: str = ""
    aliases: tuple[str, ...] = ()
    needed_by: tuple[str, ...] = ()
    optional: bool = False  # the tool works without it: a missing optional file fails no command


def folder_names(entry: LockEntry) -> tuple[str, ...]:
    """The names under which a folder (``--from DIR``, ``--weights-dir DIR``) may hold this entry, preferred first:
    the official file name, its aliases and its name in the source repository; for the bank, a folder
    ``bank/`` or ``features/`` (``<emotion>/*.npy``)."""
    if entry.kind == "archive":
        return (entry.filename, "features")
    return tuple(dict.fromkeys((entry.filename, *entry.aliases, Path(entry.path).name)))


def offline_advice(entry: LockEntry) -> str:
    """How to install this one entry without a network (each kind of file has its own way)."""
    names = ", ".join(f"DIR/{n}" for n in folder_names(entry))
    if entry.kind == "archive":
        return (f"install it from a folder with `cmet download-weights --from DIR --only {entry.name}` "
                f"(DIR/bank/ or DIR/features/ holding <emotion>/*.npy), or pass --bank DIR")
    if entry.name == "sample-video":
        return (f"copy {entry.filename} into a folder DIR and run "
                f"`cmet download-weights --from DIR --only {entry.name}`")
    advice = f"install it from a folder with `cmet download-weights --from DIR --only {entry.name}` ({names})"
    if entry.kind == "hub":
        advice += ", or point --weights-dir DIR at checkpoints under their official names"
    return advice


def lock_path() -> Path:
    """``models.lock``: ``$CMET_MODELS_LOCK``, else beside the package (wheel), else the repository root."""
    if os.environ.get("CMET_MODELS_LOCK"):
        return Path(os.environ["CMET_MODELS_LOCK"])
    package = Path(__file__).resolve().parents[1]  # cmet_cli/: this module lives in cmet_cli/weights/
    for candidate in (package / "models.lock", package.parents[1] / "models.lock"):
        if candidate.is_file():
            return candidate
    raise WeightsError("models.lock is missing from the installation")


def load_lock(path: str | Path | None = None) -> dict[str, LockEntry]:
    import tomllib

    data = tomllib.loads(Path(path or lock_path()).read_text())
    entries = {}
    for name, raw in data.get("files", {}).items():
        raw = dict(raw)
        raw["aliases"] = tuple(raw.get("aliases", ()))
        raw["needed_by"] = tuple(raw.get("needed_by", ()))
        for file_name in (raw.get("filename", ""), *raw["aliases"]):
            if not file_name or Path(file_name).name != file_name or file_name in (".", ".."):
                raise WeightsError(f"models.lock: {name}'s file name {file_name!r} must be a plain name "
                                   "(no folder, no '..')")
        entries[name] = LockEntry(name=name, **raw)
    return entries
