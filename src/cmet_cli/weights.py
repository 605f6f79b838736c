"""The weights manager: ``models.lock`` as data, a verified cache, downloads and local installs.

Cache: ``$CMET_HOME`` or the platform's user cache folder (``platformdirs``), holding each file
under its official name, ``bank/<emotion>/*.npy`` for the preset bank and ``hashes.json`` with the
sha256 of every file installed ("trust on first use" for files whose hash no public page states).
Nothing is moved under its final name before it has been verified, so a failed or partial
download never looks installed.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .errors import WeightsError

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total or 0)

CHECKPOINT_NAMES = {
    "edtalk": "EDTalk.pt",
    "connector": "_epoch_2105_checkpoint_step000200000.pth",
    "emotion2vec": "emotion2vec_plus_large.pt",
}
HF_FIX = "install the weights from a folder with `cmet download-weights --from DIR`, or point `--weights-dir DIR` at checkpoints under their official names"


@dataclass(frozen=True)
class LockEntry:
    """One downloadable file of ``models.lock``."""

    name: str
    kind: str  # "url" (one file) or "archive" (a tarball from which `path` members are extracted)
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


def lock_path() -> Path:
    """``models.lock``: ``$CMET_MODELS_LOCK``, else beside this module (wheel), else the repository root."""
    if os.environ.get("CMET_MODELS_LOCK"):
        return Path(os.environ["CMET_MODELS_LOCK"])
    here = Path(__file__).resolve().parent
    for candidate in (here / "models.lock", here.parents[1] / "models.lock"):
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
        entries[name] = LockEntry(name=name, **raw)
    return entries


def home() -> Path:
    """The weights cache: ``$CMET_HOME`` or the user cache folder."""
    env = os.environ.get("CMET_HOME")
    if env:
        return Path(env).expanduser()
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
                progress(done, total)
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
    try:
        return json.loads(_records_path(root).read_text())
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WeightsError(f"{_records_path(root)} is corrupt: delete it and run `cmet download-weights --check`") from None


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
    fd, tmp = tempfile.mkstemp(prefix=".hashes.", suffix=".part", dir=root)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(records, indent=1, sort_keys=True))
    os.replace(tmp, _records_path(root))


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


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


def _remember(root: Path, entry: LockEntry, digest: str, path: Path, **extra) -> None:
    with _records_lock(root):
        records = read_records(root)
        records[entry.name] = {**records.get(entry.name, {}), "sha256": digest, "stamp": _stamp(path),
                               "source": entry.url, **extra}
        _write_records(root, records)


def require(entry: LockEntry, root: Path | None = None) -> Path:
    """The verified installed path of an entry, or a WeightsError that says how to fix it."""
    status = check(entry, root)
    if status.state == "missing":
        raise WeightsError(f"{entry.name} weights are not installed ({status.path}): run `cmet download-weights` or pass --weights-dir DIR")
    if status.state == "mismatch":
        raise WeightsError(
            f"{status.path} failed its hash check ({status.detail}): delete it and run `cmet download-weights --only {entry.name}`"
        )
    return status.path


# ---------------------------------------------------------------- installing

def _verify_new(entry: LockEntry, tmp: Path, progress: ProgressFn | None = None) -> str:
    digest = _content_hash(tmp, progress)
    if entry.sha256 and digest != entry.sha256:
        raise WeightsError(
            f"downloaded {entry.name} has sha256 {digest} but models.lock pins {entry.sha256}; "
            f"the bad file was removed ({tmp}); try again, or install it with `cmet download-weights --from DIR`"
        )
    if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
        raise WeightsError(f"{entry.name}: sha256 {digest[:12]}… does not start with {entry.sha256_prefix} as its name promises")
    return digest


def _place(entry: LockEntry, tmp: Path, root: Path, digest: str, **extra) -> Path:
    final = installed_path(entry, root)
    if final.is_dir():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _remember(root, entry, digest, final, **extra)
    return final


def _fetch(url: str, dest: Path, progress: ProgressFn | None, timeout: float = 30.0) -> None:
    """Download ``url`` to ``dest``, resuming a partial ``dest`` with an HTTP Range request."""
    have = dest.stat().st_size if dest.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "cmet-cli"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:  # server ignored the range: start over
                have = 0
            total = int(response.headers.get("Content-Length") or 0) + have
            with open(dest, "ab" if have else "wb") as out:
                done = have
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already complete: verification decides
            return
        raise WeightsError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        host = urllib.parse.urlparse(url).hostname
        reason = getattr(exc, "reason", exc)
        raise WeightsError(f"cannot reach {host} ({reason}); {HF_FIX}") from None
    except OSError as exc:
        raise WeightsError(f"cannot write {dest}: {exc.strerror or exc}") from None


def _extract_bank(archive: Path, pattern: str, out: Path) -> int:
    """Extract ``audios/<SOURCE>/<emotion>/emotion2vec+large_features/<stem>.npy`` as ``<emotion>/<SOURCE>_<stem>.npy``."""
    try:
        return _extract_members(archive, pattern, out)
    except (tarfile.TarError, OSError) as exc:
        raise WeightsError(f"cannot extract {archive.name}: {exc}; run `cmet download-weights --only bank` again") from None


def _extract_members(archive: Path, pattern: str, out: Path) -> int:
    count = 0
    with tarfile.open(archive) as tar:
        for member in tar:
            rel = member.name.split("/", 1)[-1]  # drop the archive's top folder
            if not (member.isfile() and fnmatch.fnmatch(rel, pattern)):
                continue
            parts = rel.split("/")
            if len(parts) != 5 or any(p in ("", ".", "..") for p in parts):  # fnmatch's * also matches "/"
                continue
            source, emotion, stem = parts[1], parts[2], parts[-1]
            target = out / emotion / f"{source}_{stem}"
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as dst:  # type: ignore[union-attr]
                shutil.copyfileobj(src, dst)
            count += 1
    if not count:
        raise WeightsError(f"the archive {archive.name} holds no files matching {pattern}")
    return count


def download(entry: LockEntry, root: Path | None = None, progress: ProgressFn | None = None) -> Path:
    """Download, verify and install one entry; resumes a partial download left by an earlier try."""
    root = root or home()
    root.mkdir(parents=True, exist_ok=True)
    part = root / f"{entry.filename}.download.part"
    _fetch(entry.url, part, progress)
    if entry.kind == "archive":
        try:
            digest = _verify_new(entry, part)
        except WeightsError:
            part.unlink(missing_ok=True)
            raise
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.filename}.", dir=root))
        try:
            _extract_bank(part, entry.path, staging)
            final = _place(entry, staging, root, sha256_tree(staging), archive_sha256=digest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            part.unlink(missing_ok=True)
        return final
    try:
        digest = _verify_new(entry, part)
    except WeightsError:
        part.unlink(missing_ok=True)
        raise
    return _place(entry, part, root, digest)


def _candidates(entry: LockEntry, src: Path) -> Iterable[Path]:
    for name in (entry.filename, *entry.aliases, Path(entry.path).name):
        yield src / name
    if entry.kind == "archive":
        yield src / "features"


def install_from(entry: LockEntry, src: Path, root: Path | None = None, progress: ProgressFn | None = None) -> Path | None:
    """Install one entry from a local folder (air-gapped machines), verified like a download.

    Returns the installed path, or None when the folder does not hold this entry.
    """
    root = root or home()
    found = next((p for p in _candidates(entry, Path(src)) if p.exists()), None)
    if found is None:
        return None
    root.mkdir(parents=True, exist_ok=True)
    if found.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.filename}.", dir=root))
        shutil.rmtree(tmp)
        try:
            shutil.copytree(found, tmp)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise WeightsError(f"cannot copy {found} into {root}: {exc}") from None
    else:
        tmp = root / f"{entry.filename}.copy.part"
        try:
            shutil.copyfile(found, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise WeightsError(f"cannot copy {found} into {root}: {exc.strerror or exc}") from None
    try:
        digest = _verify_new(entry, tmp, progress)
    except WeightsError as exc:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise WeightsError(f"{found}: {exc}") from None
    return _place(entry, tmp, root, digest)


# ---------------------------------------------------------------- what an edit loads

@dataclass(frozen=True)
class WeightPaths:
    """The files one edit loads; ``None`` where the run does not need that file."""

    edtalk: Path
    connector: Path
    emotion2vec: Path | None = None
    bank: Path | None = None


def bank_folder(bank_dir: str | Path | None = None, weights_dir: str | Path | None = None,
                lock: dict[str, LockEntry] | None = None, *, verify: bool = True) -> Path:
    """The preset bank: ``--bank DIR``, else ``WEIGHTS_DIR/bank``, else the installed (verified) bank."""
    if bank_dir:
        if not Path(bank_dir).is_dir():
            raise WeightsError(f"--bank {bank_dir}: no such folder (layout DIR/<emotion>/*.npy)")
        return Path(bank_dir)
    weights_dir = weights_dir or os.environ.get("CMET_WEIGHTS_DIR") or None
    if weights_dir and (Path(weights_dir) / "bank").is_dir():
        return Path(weights_dir) / "bank"
    entry = (lock or load_lock())["bank"]
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

    def pick(name: str) -> Path:
        if weights_dir:
            entry = lock[name]
            for cand in _candidates(entry, Path(weights_dir)):
                if cand.is_file():
                    return cand
            raise WeightsError(
                f"{Path(weights_dir) / CHECKPOINT_NAMES[name]} not found (--weights-dir expects the official file names: "
                f"{', '.join(CHECKPOINT_NAMES.values())}); or run `cmet download-weights`"
            )
        return require(lock[name])

    bank = bank_folder(bank_dir, weights_dir, lock, verify=True) if need_bank else None
    return WeightPaths(
        edtalk=pick("edtalk"),
        connector=pick("connector"),
        emotion2vec=pick("emotion2vec") if need_speech else None,
        bank=bank,
    )
