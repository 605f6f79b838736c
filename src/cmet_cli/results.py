"""What an edit reports: one row per input (``EditResult``, the JSON report's row) and per edited face
(``FaceRow``). Plain data, importable without the pipeline (``face_editor`` fills in part of a row)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EditResult:
    """What happened to one input (the JSON report's row)."""

    input: str
    output: str
    status: str = "done"  # done | skipped | failed
    frames: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    face_frames: int = 0
    code_change: float | None = None  # mean |edited - original| of the expression codes
    vector_norm: float | None = None  # norm of the semantic vector used (mean over frames)
    warnings: list[str] = field(default_factory=list)
    faces: list[dict] = field(default_factory=list)  # one row per edited face (``FaceRow.as_dict``)
    traceback: str | None = None  # of an internal error: shown with -v, not part of the report

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "traceback"}


@dataclass(frozen=True)
class FaceRow:
    """What happened to one edited face: its track id, the frames where it was edited, its expression change,
    its emotion and where that came from (``face-emotion`` for its own, ``global`` for the run's)."""

    id: int
    frames: int
    code_change: float | None
    vector_norm: float | None
    emotion: str
    source: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)
