"""What an edit was made from, recorded in the output so that a re-run can tell a finished edit from a stale one.

Every output carries a container ``comment`` tag such as
``cmet-edit settings=3f0c…; input=1048576:1717171717000000000`` (``ffprobe -show_format`` shows it):

- ``settings``: a hash over everything that shapes the pixels: the emotion source (preset names, or the
  content hashes of the speech clips), the neutral reference, the preset bank's content, intensity,
  timeline and blend, the face detector actually used, box, face choice and per-face emotions, colour matching, side by
  side, the codec settings and the content hashes of the network weights;
- ``input``: the input file's size and modification time.

The record is the tag's first line; the input's own comment, if it had one, follows it (a record the input
carried from an earlier edit is left out). A re-run skips an output only when both match; otherwise the input fails with a message that says
``--overwrite`` replaces it (never a silent skip of an edit made with other settings).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .options import Cue, FaceEmotion, Preset

if TYPE_CHECKING:
    from .options import EditOptions

TAG = "comment"
PREFIX = "cmet-edit"
_FIELDS = re.compile(r"(settings|input)=([^;\s]+)")
_DIGESTS: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Stamp:
    """The record written into an output: the settings hash and the input's identity."""

    settings: str
    input: str

    def tag(self) -> str:
        return f"{PREFIX} settings={self.settings}; input={self.input}"

    def metadata(self, comment: str | None = None) -> dict[str, str]:
        """Container tags for ``media.FrameWriter(metadata=...)``: the record, then the input's ``comment``
        (without a record of an earlier edit it may hold)."""
        kept = [line for line in (comment or "").splitlines() if parse(line) is None]
        return {TAG: "\n".join([self.tag(), *kept]).rstrip()}


def parse(tag: str | None) -> Stamp | None:
    """The stamp in a ``comment`` tag (its first line), or None when the tag is not ours."""
    first = (tag or "").split("\n", 1)[0]
    if not first.startswith(PREFIX):
        return None
    fields = dict(_FIELDS.findall(first))
    if "settings" not in fields or "input" not in fields:
        return None
    return Stamp(fields["settings"], fields["input"])


def input_identity(path: Path) -> str:
    """``size:mtime_ns`` of an input file (cheap; a changed or replaced input differs)."""
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def digest(path: Path) -> str:
    """sha256 of a file's content (or of a folder's files), hashed once per process while unchanged."""
    from . import weights

    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        known = _DIGESTS.get(key)
    if known is None:
        known = weights.sha256_tree(path) if path.is_dir() else weights.sha256_file(path)
        with _LOCK:
            _DIGESTS[key] = known
    return known


def settings_record(options: EditOptions, files: dict[str, Path | None], detector: str) -> dict:
    """Everything that shapes an edit's pixels, as plain data: files by content hash, not by name."""
    def emotion(cue: Cue | FaceEmotion) -> str:
        source = cue.emotion
        return f"preset:{source.name}" if isinstance(source, Preset) else f"file:{digest(source.clips[0])}"

    face = list(options.face) if isinstance(options.face, tuple) else options.face
    record = {
        "version": 1,
        "preset": options.preset,
        "emotion_speech": [digest(Path(p)) for p in options.emotion_speech],
        "neutral_speech": [digest(Path(p)) for p in options.neutral_speech],
        "at": [[cue.time, emotion(cue)] for cue in options.at],
        "blend": options.blend if options.at else None,
        "intensity": options.intensity,
        "precision": options.precision,
        "detector": "box" if options.box else detector,
        "box": list(options.box) if options.box else None,
        "face": face,
        "colour_match": options.colour_match,
        "compare": options.compare,
        "codec": {"vcodec": options.codec, "crf": options.crf},
        "weights": {name: digest(path) for name, path in sorted(files.items()) if path is not None},
    }
    if options.encoder_preset != "medium":  # only then: outputs made before the option stay finished
        record["codec"]["preset"] = options.encoder_preset
    if options.face_emotions:  # only then: the records (and so the hashes) of earlier edits stay as they were
        record["face_emotions"] = [[f.face, emotion(f)] for f in sorted(options.face_emotions, key=lambda f: f.face)]
    return record


def settings_hash(record: Mapping[str, object]) -> str:
    """A short, stable hash of a settings record (JSON with sorted keys)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def verdict(output: Path, input: Path, found: Stamp | None, expected: Stamp) -> str | None:
    """None when ``found`` (read from ``output``) shows it was made from ``input`` with the expected
    settings; else the reason it cannot be skipped, ending in what to do."""
    if found is None:
        return (f"{output} exists but holds no record of the settings it was made with "
                "(made by another tool or an older cmet): pass --overwrite to replace it")
    if found.input != expected.input:
        return f"{output} exists, made from another version of {input}: pass --overwrite"
    if found.settings != expected.settings:
        return f"{output} exists, made with other settings: pass --overwrite"
    return None
