"""Installing: downloads (the hub's client or ``fetch_url``), the bank archive, and ``install_from`` a folder.

Nothing is moved under its final name before it has been verified, so a failed or partial download never
looks installed.
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import WeightsError
from ..stages import ProgressFn, Stage
from .cache import _content_hash, _remember, home, installed_path, sha256_tree
from .hub import hub_download
from .lock import LockEntry, offline_advice
from .paths import find_in_folder


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
