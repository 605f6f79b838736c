"""The verified cache: where it is, the sha256 of what it holds (``hashes.json``) and each entry's state.

Trust on first use: a file whose hash ``models.lock`` does not pin is checked against the hash recorded
when it was installed (or first found in the cache).
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from ..errors import WeightsError
from ..stages import ProgressFn, Stage
from .lock import LockEntry, folder_names, offline_advice


def home() -> Path:
    """The weights cache: ``$CMET_HOME`` or the user cache folder."""
    env = os.environ.get("CMET_HOME")
    if env:
        path = Path(env).expanduser()
        if path.exists() and not path.is_dir():
            raise WeightsError(f"CMET_HOME={env} is a file, not a folder: point it at a folder (or unset it)")
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise WeightsError(f"CMET_HOME={env} lies under {blocking}, which is a file: point it at a folder")
        return path
    import platformdirs

    return Path(platformdirs.user_cache_dir("cmet", appauthor=False))


def sha256_file(path: Path, progress: ProgressFn | None = None) -> str:
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(Stage.VERIFY, done, total)
    return digest.hexdigest()


def sha256_tree(root: Path) -> str:
    """A hash over a folder's files (relative names and contents), for the extracted bank."""
    digest = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        digest.update(p.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(p.read_bytes()).digest())
    return digest.hexdigest()


# ---------------------------------------------------------------- hash records (trust on first use)

def _records_path(root: Path) -> Path:
    return root / "hashes.json"


def read_records(root: Path) -> dict[str, dict]:
    corrupt = WeightsError(f"{_records_path(root)} is corrupt: delete it and run `cmet download-weights --check`")
    try:
        records = json.loads(_records_path(root).read_text())
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError):
        raise corrupt from None
    if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
        raise corrupt  # valid JSON of another shape
    return records


@contextmanager
def _records_lock(root: Path):
    """Serialise read-modify-write of hashes.json (Ray workers may share one CMET_HOME)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".hashes.lock", "a") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory locks; single writer assumed
            pass
        yield


def _write_records(root: Path, records: dict[str, dict]) -> None:
    """Replace hashes.json whole: a reader (or a crash) never sees half of it. OSError is left to the caller
    (``check`` ignores it on a read-only shared cache)."""
    with atomic.atomic_output(_records_path(root), overwrite=True) as out:
        out.write(json.dumps(records, indent=1, sort_keys=True).encode())


def _stamp(path: Path) -> dict:
    """What tells, without hashing, that an installed item may have changed: a file's size and modification time;
    for a folder (the bank), those of every file in it (a folder's own change nothing inside it)."""
    if not path.is_dir():
        st = path.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    listing = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if not p.is_dir()):
        st = file.lstat()
        listing.update(f"{file.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"files": listing.hexdigest()}


def _content_hash(path: Path, progress: ProgressFn | None = None) -> str:
    return sha256_tree(path) if path.is_dir() else sha256_file(path, progress)


@dataclass(frozen=True)
class Status:
    """What is installed for one entry."""

    entry: LockEntry
    path: Path
    installed: bool
    state: str  # "verified" (matches models.lock), "recorded" (matches the hash recorded at install), "mismatch", "missing"
    detail: str = ""


def installed_path(entry: LockEntry, root: Path | None = None) -> Path:
    return (root or home()) / entry.filename


def check(entry: LockEntry, root: Path | None = None, *, rehash: bool = False) -> Status:
    """Verify an installed file against models.lock, else against the hash recorded when it was installed.

    Unless ``rehash``, a file whose size and modification time match the record made when it was last
    verified is not hashed again (hashing 2 GB costs seconds on every run).
    """
    root = root or home()
    path = installed_path(entry, root)
    if not path.exists():
        return Status(entry, path, False, "missing")
    record = read_records(root).get(entry.name, {})
    stamp = _stamp(path)
    if not rehash and record.get("stamp") == stamp and record.get("sha256"):
        actual = record["sha256"]
    else:
        actual = _content_hash(path)
    # an archive's pinned hash is the download's; what is installed is checked against its recorded tree hash
    pinned = entry.sha256 if entry.kind != "archive" else ""
    expected = pinned or record.get("sha256", "")
    if expected and actual != expected:
        return Status(entry, path, True, "mismatch", f"sha256 {actual[:12]}… differs from {expected[:12]}…")
    if entry.sha256_prefix and not actual.startswith(entry.sha256_prefix):
        return Status(entry, path, True, "mismatch", f"sha256 does not start with {entry.sha256_prefix}")
    if record.get("stamp") != stamp:  # first use of an unrecorded file records its hash (trust on first use)
        try:
            _remember(root, entry, actual, path)
        except OSError:  # a read-only shared cache: verified now, recorded by whoever installed it
            pass
    verified = bool(pinned) or (entry.kind == "archive" and entry.sha256 and record.get("archive_sha256") == entry.sha256)
    return Status(entry, path, True, "verified" if verified else "recorded")


def fails(status: Status, *, asked: bool = False) -> bool:
    """Whether a status fails ``download-weights --check``: a hash mismatch always; a missing file unless it is
    optional and was not asked for by name (``--only``)."""
    if status.state == "mismatch":
        return True
    return status.state == "missing" and (asked or not status.entry.optional)


def state_text(status: Status, *, asked: bool = False) -> str:
    """The state as ``doctor`` and ``--check`` show it: verified, recorded, mismatch (why), missing, or
    "missing (optional)" for a file the tool works without."""
    if status.state == "missing" and not fails(status, asked=asked):
        return "missing (optional)"
    return status.state + (f" ({status.detail})" if status.detail else "")


def status_line(status: Status, *, asked: bool = False) -> str:
    """One line of ``download-weights --check``."""
    line = f"{status.entry.name:14} {state_text(status, asked=asked):9} {status.path}"
    if status.state == "missing" and not fails(status, asked=asked):
        line += " (needed only by " + ", ".join(status.entry.needed_by) + ")"
    return line


def absent_line(entry: LockEntry, folder: Path, *, asked: bool = False) -> str:
    """What ``download-weights --from DIR`` says about an entry the folder does not hold."""
    slash = "/" if entry.kind == "archive" else ""
    names = " or ".join(f"{n}{slash}" for n in folder_names(entry))
    line = f"{entry.name}: not in {folder} (expected {names})"
    if entry.optional and not asked:
        line += "; optional, needed only by " + ", ".join(entry.needed_by)
    return line


def _remember(root: Path, entry: LockEntry, digest: str, path: Path, via: str | None = None,
              source: str | None = None, **extra) -> None:
    """Record an installed file's hash and where it came from.

    ``via`` is how it was installed: "download" (``source`` is the URL or hub file), "from" (``source`` is the
    folder file it was copied from, ``--from DIR``) or "first-use" (found in the cache without a record).
    ``None`` keeps what an earlier record says (the file's stamp changed, its content did not); a new install
    replaces the whole record (an old download's ``archive_sha256`` says nothing about a folder copy).
    """
    with _records_lock(root):
        records = read_records(root)
        earlier = records.get(entry.name, {}) if via is None else {}
        record = {"via": "first-use", "source": "", **earlier, "sha256": digest, "stamp": _stamp(path), **extra}
        if via is not None:
            record["via"], record["source"] = via, source or ""
        records[entry.name] = record
        _write_records(root, records)


def missing_message(entry: LockEntry, path: Path) -> str:
    """What to say when an entry is not installed: how to download it, and how to do without a network."""
    what = ("the preset bank is" if entry.kind == "archive" else "the sample clip is" if entry.name == "sample-video"
            else f"the {entry.name} weights are")
    return (f"{what} not installed ({path}): run `cmet download-weights --only {entry.name}`; "
            f"offline, {offline_advice(entry)}")


def require(entry: LockEntry, root: Path | None = None) -> Path:
    """The verified installed path of an entry, or a WeightsError that says how to fix it."""
    status = check(entry, root)
    if status.state == "missing":
        raise WeightsError(missing_message(entry, status.path))
    if status.state == "mismatch":
        raise WeightsError(
            f"{status.path} failed its hash check ({status.detail}): delete it and run `cmet download-weights --only {entry.name}`"
        )
    return status.path
