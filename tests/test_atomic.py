"""``atomic_output``: the one way cmet writes a file (edits, previews, reports). A file appears under its
final name complete or not at all, never replaces one that appeared meanwhile (without overwrite),
never writes through a link planted at its temporary name, and a later run removes what a killed one left."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cmet_cli import atomic
from cmet_cli.errors import MediaError


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_written_and_renamed_on_success(tmp_path):
    final = tmp_path / "out.bin"
    with atomic.atomic_output(final) as out:
        assert out.path.parent == tmp_path and out.path.name.startswith(".out.bin.cmet-")
        assert not final.exists()
        out.write(b"data")
    assert final.read_bytes() == b"data" and names(tmp_path) == ["out.bin"]


def test_removed_on_failure_and_interrupt(tmp_path):
    final = tmp_path / "out.bin"
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic.atomic_output(final) as out:
                out.write(b"half")
                raise exc
    assert names(tmp_path) == []


def test_temporary_names_are_unpredictable(tmp_path):
    final = tmp_path / "out.bin"
    seen = set()
    for _ in range(3):
        with atomic.atomic_output(final, overwrite=True) as out:
            seen.add(out.path.name)
    assert len(seen) == 3


def test_planted_link_at_the_temporary_name_is_never_followed(tmp_path, monkeypatch):
    """The first name the helper would pick is a symbolic link to a file outside the folder: it is skipped
    (another name is taken), the file outside stays as it was, and the link is left alone."""
    folder, outside = tmp_path / "out", tmp_path / "precious.txt"
    folder.mkdir()
    outside.write_text("keep me")
    final = folder / "edit.mp4"
    tokens = iter(["0" * 16, "1" * 16])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(tokens))
    trap = folder / f"{atomic.temp_prefix(final)}{'0' * 16}.part"
    trap.symlink_to(outside)
    with atomic.atomic_output(final) as out:
        assert out.path != trap
        out.write(b"new content")
    assert outside.read_text() == "keep me"
    assert trap.is_symlink() and os.readlink(trap) == str(outside)
    assert final.read_bytes() == b"new content" and not final.is_symlink()


def test_a_file_that_appeared_meanwhile_is_not_replaced(tmp_path):
    """Two writers, one output: the one that finishes second fails instead of replacing the first's file."""
    final = tmp_path / "out.bin"
    with pytest.raises(MediaError, match="exists: pass --overwrite"):
        with atomic.atomic_output(final) as out:
            out.write(b"second")
            final.write_bytes(b"first")  # another process finished first
    assert final.read_bytes() == b"first" and names(tmp_path) == ["out.bin"]
    with atomic.atomic_output(final, overwrite=True) as out:  # asked for: replaced
        out.write(b"second")
    assert final.read_bytes() == b"second"


def test_rename_without_renameat2_uses_a_link(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_libc_rename_noreplace", lambda src, dst: None)
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"a")
    dst.write_bytes(b"b")
    with pytest.raises(FileExistsError):
        atomic.rename_noreplace(src, dst)
    dst.unlink()
    atomic.rename_noreplace(src, dst)
    assert names(tmp_path) == ["b"] and dst.read_bytes() == b"a"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    final = tmp_path / "out.mp4"
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f"{atomic.temp_prefix(final, _dead_pid())}0a1b.part"
        running = tmp_path / f"{atomic.temp_prefix(final, alive.pid)}0a1b.part"
        elsewhere = tmp_path / f"{atomic.temp_prefix(final, _dead_pid(), atomic.host_tag('other-node'))}0a1b.part"
        other_output = tmp_path / f"{atomic.temp_prefix(tmp_path / 'b.mp4', _dead_pid())}0a1b.part"
        for path in (stale, running, elsewhere, other_output):
            path.touch()
        assert atomic.remove_stale(final) == [stale]
        assert names(tmp_path) == sorted(p.name for p in (running, elsewhere, other_output))
    finally:
        alive.kill()
        alive.wait()


def test_long_names_fit(tmp_path):
    final = tmp_path / ("é" * 120 + ".mp4")  # 244 bytes: the temporary name would not fit whole
    with atomic.atomic_output(final) as out:
        assert len(out.path.name.encode()) <= 255
        out.write(b"x")
    assert final.read_bytes() == b"x"


def test_messages_name_the_output_not_the_temporary_file(tmp_path):
    final = tmp_path / "out.mp4"
    with atomic.atomic_output(final) as out:
        text = f"{out.path.absolute()}: the disk is full; {out.path.name} too"
        assert atomic.hide_temp_names(text, final) == f"{final}: the disk is full; out.mp4 too"


def test_unwritable_folder_is_found_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MediaError, match="is not a folder"):
        atomic.check_writable(blocker / "sub")
    atomic.check_writable(tmp_path / "new" / "deeper")  # made later; its parent is writable
    assert names(tmp_path) == ["file"]
