"""The weights manager: ``models.lock`` as data, a verified cache, downloads and local installs.

Cache: ``$CMET_HOME`` or the platform's user cache folder (``platformdirs``), holding each file
under its official name, ``bank/<emotion>/*.npy`` for the preset bank and ``hashes.json`` with the
sha256 of every file installed ("trust on first use" for files whose hash no public page states).
Nothing is moved under its final name before it has been verified, so a failed or partial
download never looks installed.

Hub files (``kind = "hub"``) are fetched by ``huggingface_hub.hf_hub_download`` (pinned revision,
resumable, ``HF_ENDPOINT`` mirrors, ``HF_HUB_OFFLINE``) into ``$CMET_HOME/.hub``; every other URL
goes through ``fetch_url``. Either way the file is then verified and moved into place by
``_move_into_place``.
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

from ..errors import WeightsError
from ..stages import ProgressFn, Stage


CHECKPOINT_NAMES = {
    "edtalk": "EDTalk.pt",
    "connector": "_epoch_2105_checkpoint_step000200000.pth",
    "emotion2vec": "emotion2vec_plus_large.pt",
}


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
    """``models.lock``: ``$CMET_MODELS_LOCK``, else beside this module (wheel), else the repository root."""
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
        entries[name] = LockEntry(name=name, **raw)
    return entries


def home() -> Path:
    """The weights cache: ``$CMET_HOME`` or the user cache folder."""
    env = os.environ.get("CMET_HOME")
    if env:
        path = Path(env).expanduser()
        if path.exists() and not path.is_dir():
            raise WeightsError(f"CMET_HOME={env} is a file, not a folder: point it at a folder (or unset it)")
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


def _move_into_place(tmp: Path, final: Path) -> None:
    """The one place where a verified file (or folder) takes its final name."""
    if final.is_dir():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _place(entry: LockEntry, tmp: Path, root: Path, digest: str, **record) -> Path:
    final = installed_path(entry, root)
    _move_into_place(tmp, final)
    _remember(root, entry, digest, final, **record)
    return final


def fetch_url(url: str, dest: Path, progress: ProgressFn | None = None, *, advice: str = "",
              timeout: float = 30.0) -> None:
    """Download a plain URL to ``dest``, resuming a partial ``dest`` with an HTTP Range request.

    Every non-hub download (GitHub's sample clip and archive, face-alignment's files) goes through here;
    ``advice`` ends the "cannot reach" message (how to install that file without a network).
    """
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
                        progress(Stage.DOWNLOAD, done, total)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already complete: verification decides
            return
        raise WeightsError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        host = urllib.parse.urlparse(url).hostname
        reason = getattr(exc, "reason", exc)
        raise WeightsError(f"cannot reach {host} ({reason})" + (f"; {advice}" if advice else "")) from None
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


def _progress_bar(progress: ProgressFn | None):
    """A tqdm class for ``hf_hub_download`` that shows nothing itself and reports to ``progress``."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class Forward(hub_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.done = kwargs.get("initial") or 0

        def update(self, n: float | None = 1) -> bool | None:
            self.done += n or 0
            if progress:
                progress(Stage.DOWNLOAD, int(self.done), int(self.total or 0))
            return None

    return Forward


def hub_download(entry: LockEntry, staging: Path, progress: ProgressFn | None = None) -> tuple[Path, str]:
    """Fetch a hub entry with ``hf_hub_download`` into ``staging``: (the downloaded file, its source URL).

    ``HF_ENDPOINT`` (a mirror), ``HF_HUB_OFFLINE`` and the hub's token apply as usual; a partial download is
    resumed by the next call.
    """
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    from .. import __version__

    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, not when huggingface_hub was imported
    revision = entry.revision or None
    source = huggingface_hub.hf_hub_url(entry.repo, entry.path, revision=revision, endpoint=endpoint)
    host = urllib.parse.urlparse(source).hostname
    unreachable = f"cannot reach {host} for {entry.name} ({{}}); {offline_advice(entry)}"
    try:  # one HEAD without retries first: hf_hub_download retries an unreachable hub for ~25 s
        huggingface_hub.get_hf_file_metadata(source)
    except HfHubHTTPError as exc:
        raise WeightsError(_hub_http_error(entry, source, exc)) from None
    except OfflineModeIsEnabled:
        raise WeightsError(unreachable.format("HF_HUB_OFFLINE is set")) from None
    except Exception as exc:  # the hub client's transport errors: refused, DNS, timeout, TLS
        raise WeightsError(unreachable.format(exc)) from None
    try:
        path = huggingface_hub.hf_hub_download(
            entry.repo, entry.path, revision=revision, local_dir=staging, endpoint=endpoint,
            library_name="cmet-cli", library_version=__version__, tqdm_class=_progress_bar(progress))
    except HfHubHTTPError as exc:
        raise WeightsError(_hub_http_error(entry, source, exc)) from None
    except LocalEntryNotFoundError as exc:
        raise WeightsError(unreachable.format(exc.__cause__ or exc)) from None
    except Exception as exc:  # connection lost mid-file, size mismatch, disk full
        raise WeightsError(f"download of {source} failed ({exc}); run the command again to resume, "
                           f"or {offline_advice(entry)}") from None
    return Path(path), source


def _hub_http_error(entry: LockEntry, source: str, exc) -> str:
    status = exc.response.status_code if getattr(exc, "response", None) is not None else "?"
    what = "no such file, revision or repository" if status == 404 else "access denied" if status in (401, 403) else ""
    return f"download of {source} failed: HTTP {status}" + (f" ({what})" if what else "") + f"; {offline_advice(entry)}"


def _verified_or_removed(entry: LockEntry, tmp: Path, progress: ProgressFn | None = None) -> str:
    """``_verify_new``, removing ``tmp`` (file or folder) when it fails."""
    try:
        return _verify_new(entry, tmp, progress)
    except WeightsError:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise


def download(entry: LockEntry, root: Path | None = None, progress: ProgressFn | None = None) -> Path:
    """Download, verify and install one entry; resumes a partial download left by an earlier try."""
    root = root or home()
    root.mkdir(parents=True, exist_ok=True)
    if entry.kind == "hub":
        staging = root / ".hub" / entry.name
        got, source = hub_download(entry, staging, progress)
        try:
            digest = _verified_or_removed(entry, got)
            return _place(entry, got, root, digest, via="download", source=source)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # only the hub client's metadata is left
    part = root / f"{entry.filename}.download.part"
    fetch_url(entry.url, part, progress, advice=offline_advice(entry))
    digest = _verified_or_removed(entry, part)
    if entry.kind != "archive":
        return _place(entry, part, root, digest, via="download", source=entry.url)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.filename}.", dir=root))
    try:
        _extract_bank(part, entry.path, staging)
        return _place(entry, staging, root, sha256_tree(staging), via="download", source=entry.url,
                      archive_sha256=digest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        part.unlink(missing_ok=True)


def find_in_folder(entry: LockEntry, folder: str | Path) -> Path | None:
    """Where ``folder`` holds this entry (see ``folder_names``), or None: the one rule shared by ``--from DIR``
    and ``--weights-dir DIR``."""
    is_there = Path.is_dir if entry.kind == "archive" else Path.is_file
    return next((Path(folder) / n for n in folder_names(entry) if is_there(Path(folder) / n)), None)


def install_from(entry: LockEntry, src: Path, root: Path | None = None, progress: ProgressFn | None = None) -> Path | None:
    """Install one entry from a local folder (air-gapped machines), verified like a download.

    Returns the installed path, or None when the folder does not hold this entry. The hash record says the
    file came from that folder (``via = "from"``), not from the official URL.
    """
    root = root or home()
    found = find_in_folder(entry, src)
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
        digest = _verified_or_removed(entry, tmp, progress)
    except WeightsError as exc:
        raise WeightsError(f"{found}: {exc}") from None
    return _place(entry, tmp, root, digest, via="from", source=str(found.resolve()))


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

    def pick(name: str) -> Path:
        if weights_dir:
            found = find_in_folder(lock[name], weights_dir)
            if found is not None:
                return found
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
