"""Installing: downloads (the hub's client or ``fetch_url``), the bank archive, and ``install_from`` a folder.

Every file written here goes through ``atomic.atomic_output``: an exclusive, unpredictable temporary name
beside its final name (never a link planted there), hashed while it is written, and renamed into place only
once that hash passes ``models.lock``; on a failure or an interrupt it is removed. So a failed, interrupted
or tampered download never looks installed, and the bytes verified are the bytes installed. There is no
fixed-name partial file: an interrupted plain download starts over; a hub download resumes only as far as
huggingface_hub's own working files (``$CMET_HOME/.hub``) let it. The temporary file of a killed process is
removed by the next download of that file (``atomic.remove_stale``).
"""
from __future__ import annotations

import fnmatch
import hashlib
import http.client
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

from .. import atomic
from ..errors import WeightsError
from ..stages import ProgressFn, Stage
from .cache import _records_lock, _remember, home, installed_path, sha256_tree
from .hub import hub_download
from .lock import LockEntry, offline_advice
from .paths import find_in_folder

_NET_CHUNK = 1 << 20
_COPY_CHUNK = 1 << 22


class HashedOutput:
    """A staged output that hashes what is written to it, so the hash checked is that of the bytes installed."""

    def __init__(self, staged: atomic.Staged) -> None:
        self.staged = staged
        self.final = staged.final
        self.size = 0
        self._sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.staged.write(data)
        self._sha256.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


def _check_digest(entry: LockEntry, digest: str, copied_from: Path | None = None) -> None:
    """A new file's sha256 against ``models.lock``: the pin, else the prefix face-alignment's names promise.
    ``copied_from``: the file was copied from there (``--from DIR``), not downloaded."""
    if entry.sha256 and digest != entry.sha256 and copied_from is not None:
        raise WeightsError(f"{copied_from} has sha256 {digest} but models.lock pins {entry.sha256} for {entry.name}: "
                           "it is not that file; nothing was installed")
    if entry.sha256 and digest != entry.sha256:
        raise WeightsError(
            f"downloaded {entry.name} has sha256 {digest} but models.lock pins {entry.sha256}; "
            f"the bad file was removed, nothing was installed; try again, "
            f"or install it with `cmet download-weights --from DIR`"
        )
    if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
        raise WeightsError(f"{entry.name}: sha256 {digest[:12]}… does not start with {entry.sha256_prefix} as its name promises")


@contextmanager
def verified_output(entry: LockEntry, final: Path, copied_from: Path | None = None) -> Iterator[HashedOutput]:
    """Write ``final`` through ``atomic_output``: it takes its name only if the block ends and its hash passes.

    An existing ``final`` is replaced: a reinstall replaces a file that failed its check (the CLI skips
    verified ones).
    """
    with atomic.atomic_output(final, overwrite=True) as staged:
        out = HashedOutput(staged)
        yield out
        _check_digest(entry, out.hexdigest(), copied_from)  # raising here removes the temporary file


def _copy_verified(entry: LockEntry, src: Path, final: Path, progress: ProgressFn | None = None,
                   from_folder: bool = False) -> str:
    """``src`` copied to ``final`` through ``verified_output``: one read both copies and hashes it
    (``from_folder``: a user's ``--from DIR`` file, named as such if it fails, rather than a download)."""
    total = src.stat().st_size
    with open(src, "rb") as source, verified_output(entry, final, src if from_folder else None) as out:
        while chunk := source.read(_COPY_CHUNK):
            out.write(chunk)
            if progress:
                progress(Stage.VERIFY, out.size, total)
    return out.hexdigest()


# ---------------------------------------------------------------- plain URLs

def _network_error(url: str, exc: Exception, advice: str) -> WeightsError:
    if isinstance(exc, urllib.error.HTTPError):
        return WeightsError(f"download of {url} failed: HTTP {exc.code} {exc.reason}")
    if isinstance(exc, (urllib.error.URLError, socket.timeout, ConnectionError)):
        host = urllib.parse.urlparse(url).hostname
        reason = getattr(exc, "reason", exc)
        return WeightsError(f"cannot reach {host} ({reason})" + (f"; {advice}" if advice else ""))
    return WeightsError(f"download of {url} failed ({exc!r}); run the command again")  # e.g. a chunked body cut short


_NETWORK_ERRORS = (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException)


def fetch_url(url: str, out: HashedOutput | atomic.Staged, progress: ProgressFn | None = None, *, advice: str = "",
              timeout: float = 30.0) -> None:
    """Download a plain URL into ``out`` (a staged output: see ``verified_output``), from the start.

    Every non-hub download (GitHub's sample clip and archive, face-alignment's files) goes through here;
    ``advice`` ends the "cannot reach" message (how to install that file without a network). Network errors
    become a WeightsError; an OSError writing ``out`` is left to the caller, which knows the file's name.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "cmet-cli"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except _NETWORK_ERRORS as exc:
        raise _network_error(url, exc, advice) from None
    with response:
        total, done = int(response.headers.get("Content-Length") or 0), 0
        while True:
            try:
                chunk = response.read(_NET_CHUNK)
            except _NETWORK_ERRORS as exc:
                raise _network_error(url, exc, advice) from None
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(Stage.DOWNLOAD, done, total)
    if total and done != total:  # http.client ends a short body silently: an unpinned file would be trusted cut
        raise WeightsError(f"download of {url} failed: the connection closed after {done} of {total} bytes; "
                           f"run the command again")


def _fetch_verified(entry: LockEntry, final: Path, progress: ProgressFn | None = None) -> str:
    """``entry.url`` downloaded to ``final`` through ``verified_output``: its sha256."""
    try:
        with verified_output(entry, final) as out:
            fetch_url(entry.url, out, progress, advice=offline_advice(entry))
    except OSError as exc:  # the cache's folder is read-only or full (network errors are WeightsErrors by now)
        raise WeightsError(f"cannot write {final}: {exc.strerror or exc}") from None
    return out.hexdigest()


# ---------------------------------------------------------------- folders: the bank

@contextmanager
def _staging_folder(entry: LockEntry, root: Path) -> Iterator[Path]:
    """A private folder in ``root`` (``mkdtemp``: unpredictable name, mode 0700) for what an install assembles
    before it takes its final name; removed with whatever is left in it, whatever happens."""
    remove_stale_staging(entry, root)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.filename}.cmet-{atomic.host_tag()}-{os.getpid()}-", dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_stale_staging(entry: LockEntry, root: Path) -> list[Path]:
    """Remove the staging folders of ``entry`` that killed installs of this machine left (their process is gone)."""
    import re

    pattern = re.compile(re.escape(f".{entry.filename}.cmet-{atomic.host_tag()}-") + r"(\d+)-\w+")
    removed = []
    for path in root.glob(f".{entry.filename}.cmet-*"):
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and int(match.group(1)) != os.getpid() and not atomic.pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _place_folder(tree: Path, final: Path) -> None:
    """The one place where a verified folder (the bank) takes its final name, replacing an earlier one.

    Installs of one cache take turns here (the records' lock): two at once removed each other's folder while it
    was being put in place, and one failed. The earlier folder is renamed aside first, so the bank is missing
    only between two renames, and removed after."""
    with _records_lock(final.parent):
        aside = None
        if final.is_symlink() or final.is_file():
            final.unlink()
        elif final.is_dir():
            aside = final.with_name(f".{final.name}.old-{atomic.host_tag()}-{os.getpid()}")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(final, aside)
        os.replace(tree, final)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _copy_stream(source: IO[bytes], target: Path) -> None:
    """One file of a folder being assembled, through ``atomic_output`` like every file this module writes."""
    with atomic.atomic_output(target, overwrite=True) as out:  # a tar may hold one name twice: the last wins
        while chunk := source.read(_COPY_CHUNK):
            out.write(chunk)


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
            with tar.extractfile(member) as src:  # type: ignore[union-attr]
                _copy_stream(src, target)
            count += 1
    if not count:
        raise WeightsError(f"the archive {archive.name} holds no files matching {pattern}")
    return count


def _copy_tree(src: Path, dst: Path) -> None:
    """``src``'s files under ``dst``, links followed (as ``shutil.copytree`` does by default)."""
    for folder, _, names in os.walk(src, followlinks=True):
        here = dst / Path(folder).relative_to(src)
        here.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = Path(folder) / name
            if not stat.S_ISREG(path.stat().st_mode):  # a named pipe would wait for a writer for ever
                raise WeightsError(f"{path}: not a regular file (a named pipe, device or socket); the bank holds "
                                   ".npy files only")
            with open(path, "rb") as source:
                _copy_stream(source, here / name)


def _install_folder(entry: LockEntry, root: Path, fill: Callable[[Path], None], *, check: bool) -> tuple[Path, str]:
    """Assemble a folder entry (``fill`` writes its files) in a staging folder, check its tree hash against
    ``models.lock`` if ``check``, and give it its final name: (the installed folder, its tree hash)."""
    final = installed_path(entry, root)
    with _staging_folder(entry, root) as staging:
        tree = staging / entry.filename
        tree.mkdir()
        fill(tree)
        digest = sha256_tree(tree)
        if check:
            _check_digest(entry, digest)
        _place_folder(tree, final)
    return final, digest


# ---------------------------------------------------------------- download, install_from

def _download_hub(entry: LockEntry, root: Path, progress: ProgressFn | None) -> Path:
    staging = root / ".hub" / entry.name
    got, source = hub_download(entry, staging, progress)
    final = installed_path(entry, root)
    try:
        digest = _copy_verified(entry, got, final)
    except OSError as exc:
        raise WeightsError(f"cannot copy {got} to {final}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # installed or rejected, the hub client's copy has served
    _remember(root, entry, digest, final, via="download", source=source)
    return final


def _download_archive(entry: LockEntry, root: Path, progress: ProgressFn | None) -> Path:
    """The bank: its archive is verified against the pin as it downloads, then its members are extracted."""
    pinned: list[str] = []

    def fill(tree: Path) -> None:
        archive = tree.parent / "archive"  # beside the tree, in the private staging folder: removed with it
        pinned.append(_fetch_verified(entry, archive, progress))
        _extract_bank(archive, entry.path, tree)

    # an archive's pin is the download's: the extracted tree's hash is recorded, not compared
    final, digest = _install_folder(entry, root, fill, check=False)
    _remember(root, entry, digest, final, via="download", source=entry.url, archive_sha256=pinned[0])
    return final


def download(entry: LockEntry, root: Path | None = None, progress: ProgressFn | None = None) -> Path:
    """Download, verify and install one entry."""
    root = root or home()
    root.mkdir(parents=True, exist_ok=True)
    if entry.kind == "hub":
        return _download_hub(entry, root, progress)
    if entry.kind == "archive":
        return _download_archive(entry, root, progress)
    final = installed_path(entry, root)
    digest = _fetch_verified(entry, final, progress)
    _remember(root, entry, digest, final, via="download", source=entry.url)
    return final


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
    final = installed_path(entry, root)
    try:
        if found.is_dir():
            _, digest = _install_folder(entry, root, lambda tree: _copy_tree(found, tree), check=True)
        else:
            digest = _copy_verified(entry, found, final, progress, from_folder=True)
    except OSError as exc:
        raise WeightsError(f"cannot copy {found} into {root}: {exc.strerror or exc}") from None
    except WeightsError as exc:
        raise WeightsError(f"{found}: {exc}") from None
    _remember(root, entry, digest, final, via="from", source=str(found.resolve()))
    return final
