"""The stages of an edit, named for people: the progress rows and the progress callbacks use these."""
from __future__ import annotations

from enum import Enum


class Stage(str, Enum):
    """One step of an edit. The value is the progress row's label (a ``str``, so it compares with text)."""

    LOAD_MODELS = "load models"
    TRACK_FACES = "track faces"  # pass 1: find the face in every frame
    READ_CODES = "read codes"  # the network reads each face's lip, pose and expression codes
    TRANSFER = "transfer"  # the emotion moves the expression codes
    RENDER = "render"  # the network draws the edited faces
    WRITE_VIDEO = "write video"  # paste back and encode the output file

    def __str__(self) -> str:
        return self.value


# the stages of one file, in order (LOAD_MODELS happens once per run)
PER_FILE = (Stage.TRACK_FACES, Stage.READ_CODES, Stage.TRANSFER, Stage.RENDER, Stage.WRITE_VIDEO)
