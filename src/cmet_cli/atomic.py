"""Every file cmet writes appears under its final name complete, or not at all: ``atomic_output``.

The data goes to a hidden temporary file beside the destination, named
``.NAME.cmet-HOST-PID-RANDOM.part``: created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``: a name that
already exists, a symbolic link included, is never opened; another random name is tried), in the
destination folder (so the final rename stays on one filesystem). Writers write into that open file
(``Staged.fd``; ffmpeg through ``/dev/fd/N`` on Linux), not through its name. On success the file is flushed to disk
and renamed into place without replacing a file that appeared meanwhile (``renameat2(RENAME_NOREPLACE)``,
else link-then-unlink), unless ``overwrite``; on any failure or interrupt it is removed. ``HOST`` and
``PID`` name the process that writes it, so that a later run can remove what a killed process
(SIGKILL, power loss) left behind: ``remove_stale``.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import re
import secrets
import socket
import stat
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import MediaError

SUFFIX = ".part"
_NAME_BYTES = 180  # of the destination's name kept in the temporary name (file names hold 255 bytes)
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_TRIES = 100


def host_tag(hostname: str | None = None) -> str:
    """Six hex digits standing for a machine (outputs on shared storage are written from several)."""
    return hashlib.sha256((hostname or socket.gethostname()).encode()).hexdigest()[:6]


def _short_name(final: Path) -> str:
    return final.name.encode()[:_NAME_BYTES].decode(errors="ignore")


def temp_prefix(final: Path, pid: int | None = None, host: str | None = None) -> str:
    """The start of the temporary names process ``pid`` on ``host`` (a tag, see ``host_tag``) uses for ``final``."""
    return f".{_short_name(final)}.cmet-{host or host_tag()}-{os.getpid() if pid is None else pid}-"


def _temp_pattern(final: Path) -> re.Pattern[str]:
    return re.compile(re.escape(f".{_short_name(final)}.cmet-") + r"([0-9a-f]{6})-(\d+)-[0-9a-f]+" + re.escape(SUFFIX))


@dataclass(frozen=True)
class Staged:
    """The temporary file of one output: ``path`` for writers that open a name, ``fd`` to write directly."""

    path: Path
    fd: int
    final: Path

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]


def create_temp(final: Path) -> Staged:
    """A new empty temporary file for ``final``, in its folder, created exclusively (never through a link)."""
    folder = final.parent
    for _ in range(_TRIES):
        path = folder / f"{temp_prefix(final)}{secrets.token_hex(8)}{SUFFIX}"
        try:
            fd = os.open(path, _OPEN_FLAGS, 0o666)  # the umask applies, as for any file the user creates
        except FileExistsError:
            continue  # something (perhaps a planted link) holds that name: never touch it, take another
        return Staged(path, fd, final)
    raise MediaError(f"{folder}: cannot create a temporary file (every name tried exists)")


def _ours(staged: Staged) -> bool:
    """Whether ``staged.path`` still names the file we created (not something swapped in under its name)."""
    try:
        here, mine = os.lstat(staged.path), os.fstat(staged.fd)
    except OSError:
        return False
    return stat.S_ISREG(here.st_mode) and (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _libc_rename_noreplace(src: Path, dst: Path) -> bool | None:
    """renameat2(RENAME_NOREPLACE) on Linux, renamex_np(RENAME_EXCL) on macOS: True when renamed,
    None when the system or filesystem lacks it; FileExistsError when ``dst`` exists."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        at_fdcwd, noreplace = -100, 1
        result = libc.renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        result = libc.renamex_np(os.fsencode(src), os.fsencode(dst), 0x4)
    else:
        return None
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        raise FileExistsError(code, os.strerror(code), str(dst))
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return None
    raise OSError(code, os.strerror(code), str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (FileExistsError), even if it appeared a moment ago.

    Where neither renameat2 nor hard links exist (some network and FAT filesystems), the check and the
    rename are two steps.
    """
    if _libc_rename_noreplace(src, dst):
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def commit(staged: Staged, overwrite: bool = False) -> None:
    """Flush the temporary file to disk and rename it to its final name."""
    if not _ours(staged):
        raise MediaError(f"{staged.final}: its temporary file was replaced or removed while being written")
    try:
        os.fsync(staged.fd)
    except OSError as exc:
        raise MediaError(f"{staged.final}: {_disk_message(exc)}") from None
    if overwrite:
        os.replace(staged.path, staged.final)
        return
    try:
        rename_noreplace(staged.path, staged.final)
    except FileExistsError:
        raise MediaError(f"{staged.final} exists: pass --overwrite to replace it") from None


def _disk_message(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full (no space left on device)"
    return exc.strerror or str(exc)


def discard(staged: Staged) -> None:
    """Remove the temporary file (when it is still ours: a name taken over by another file is left alone)."""
    if _ours(staged):
        try:
            os.unlink(staged.path)
        except FileNotFoundError:
            pass


@contextmanager
def atomic_output(final: str | Path, *, overwrite: bool = False) -> Iterator[Staged]:
    """Write ``final`` through a temporary file: renamed into place if the block ends normally, removed if
    it raises (an interrupt included). ``overwrite=False``: an existing ``final`` is never replaced, even one
    that appeared while the block ran (MediaError "exists: pass --overwrite").

        with atomic_output(path) as out:
            out.write(data)          # or let a program write to out.path
    """
    final = Path(final)
    remove_stale(final)
    staged = create_temp(final)
    done = False
    try:
        yield staged
        commit(staged, overwrite)
        done = True
    finally:
        if not done:
            discard(staged)
        os.close(staged.fd)


def write_file(final: str | Path, data: bytes, *, overwrite: bool = False) -> Path:
    """``data`` as the whole of ``final``, atomically (reports, previews)."""
    try:
        with atomic_output(final, overwrite=overwrite) as out:
            out.write(data)
    except OSError as exc:
        raise MediaError(f"{final}: {_disk_message(exc)}") from None
    return Path(final)


def check_writable(folder: Path) -> None:
    """That a file can be created in ``folder`` (or in the nearest existing folder above it, where it will be
    made): tried, not guessed from permission bits (root, read-only mounts, ACLs)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise MediaError(f"{existing}: is not a folder, so the output cannot be written there")
    probe = existing / f".cmet-write-test-{secrets.token_hex(8)}{SUFFIX}"
    try:
        os.close(os.open(probe, _OPEN_FLAGS, 0o600))
    except OSError as exc:
        raise MediaError(f"{existing}: the output folder is not writable ({exc.strerror or exc})") from None
    os.unlink(probe)


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine with that id still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_temp_files(final: Path, pid: int, host: str | None = None) -> list[Path]:
    """Remove the temporary files of ``final`` written by process ``pid`` (on the machine ``host``, a hostname;
    None: any machine). For a worker known to be dead."""
    tag = host_tag(host) if host else None
    return _remove(final, lambda t, p: p == pid and (tag is None or t == tag))


def remove_stale(final: Path) -> list[Path]:
    """Remove the temporary files of ``final`` left by processes of this machine that no longer run."""
    mine = host_tag()
    return _remove(final, lambda t, p: t == mine and p != os.getpid() and not pid_alive(p))


def _remove(final: Path, select) -> list[Path]:
    pattern, removed = _temp_pattern(final), []
    try:
        names = os.listdir(final.parent)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match and select(match.group(1), int(match.group(2))):
            path = final.parent / name
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our temporary files (batch folders leave them out)."""
    return name.startswith(".") and re.search(r"\.cmet-[0-9a-f]{6}-\d+-[0-9a-f]+" + re.escape(SUFFIX) + "$", name) is not None


def hide_temp_names(text: str, final: Path) -> str:
    """A message with ``final``'s temporary file names replaced by ``final`` (what the user knows)."""
    name = _temp_pattern(final).pattern
    for folder in (str(final.parent.absolute()), str(final.parent)):
        text = re.sub(re.escape(folder + os.sep) + name, lambda m: str(final), text)
    return re.sub(name, lambda m: final.name, text)
