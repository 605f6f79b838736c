"""What every layer of a run shares: the stages of an edit (named for people), the one progress callback
type, and the cancel token that a caller hands in to stop edits running in other threads."""
from __future__ import annotations

import threading
from enum import Enum
from typing import Callable


class Stage(str, Enum):
    """One step of a run. The value is the progress row's label (a ``str``, so it compares with text)."""

    LOAD_MODELS = "load models"
    TRACK_FACES = "track faces"  # pass 1: find the face in every frame
    READ_CODES = "read codes"  # the network reads each face's lip, pose and expression codes
    TRANSFER = "transfer"  # the emotion moves the expression codes
    RENDER = "render"  # the network draws the edited faces
    WRITE_VIDEO = "write video"  # paste back and encode the output file
    DOWNLOAD = "download"  # `cmet download-weights`: bytes fetched
    VERIFY = "verify"  # bytes hashed against models.lock

    def __str__(self) -> str:
        return self.value


# the stages of one file, in order (LOAD_MODELS happens once per run)
PER_FILE = (Stage.TRACK_FACES, Stage.READ_CODES, Stage.TRANSFER, Stage.RENDER, Stage.WRITE_VIDEO)

ProgressFn = Callable[[Stage, int, int], None]
"""Every progress callback: (stage, done, total); frames for an edit, bytes for a download (total 0: unknown)."""


class CancelToken:
    """Handed in by whoever runs edits; ``cancel()`` from any thread makes each edit holding the token stop
    at its next chunk (raising ``KeyboardInterrupt`` there, so that its temporary files are removed)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` once cancelled."""
        if self._event.is_set():
            raise KeyboardInterrupt("cancelled")
