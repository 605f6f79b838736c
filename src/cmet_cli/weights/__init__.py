"""The weights manager: ``models.lock`` as data, a verified cache, downloads and local installs.

Cache: ``$CMET_HOME`` or the platform's user cache folder (``platformdirs``), holding each file
under its official name, ``bank/<emotion>/*.npy`` for the preset bank and ``hashes.json`` with the
sha256 of every file installed ("trust on first use" for files whose hash no public page states).
Every file is written through ``atomic.atomic_output`` and takes its final name only once verified, so a
failed, partial or interrupted download never looks installed (``install``).

By concern: ``lock`` (``models.lock``, ``LockEntry``), ``cache`` (the cache folder, hash records, each entry's
state, ``require``), ``install`` (downloads, the bank archive, ``install_from`` a folder) with ``hub`` (the
hub's client), and ``paths`` (what an edit loads: ``resolve``, ``bank_folder``). Callers use the names
re-exported here (``weights.check``); a test that patches one patches it in the module that defines it.
"""
from __future__ import annotations

from .cache import (Status, absent_line, check, fails, home, installed_path, missing_message, read_records, require,
                    sha256_file, sha256_tree, state_text, status_line)
from .hub import hub_download
from .install import download, fetch_url, install_from
from .lock import LockEntry, folder_names, load_lock, lock_path, offline_advice
from .paths import CHECKPOINT_NAMES, WeightPaths, bank_folder, emotion_files, find_in_folder, resolve

__all__ = [
    "CHECKPOINT_NAMES", "LockEntry", "Status", "WeightPaths", "absent_line", "bank_folder", "check", "download", "emotion_files",
    "fails", "fetch_url", "find_in_folder", "folder_names", "home", "hub_download", "install_from", "installed_path",
    "load_lock", "lock_path", "missing_message", "offline_advice", "read_records", "require", "resolve",
    "sha256_file", "sha256_tree", "state_text", "status_line",
]
