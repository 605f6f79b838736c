"""The emotion arguments as typed values, and option errors that name the field, not a flag.

"Is this a preset name or a speech file?" is decided here, once (``parse_emotion``): the CLI's ``--at``
type, the library's ``EditOptions`` and everything downstream (the plan, the checks before the models
load, the settings record, the Ray executor's path rewriting) see a ``Preset`` or a ``Speech``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from .errors import UsageError
from .timeline import parse_time


@dataclass(frozen=True)
class Preset:
    """A preset emotion of the bank, by name."""

    name: str

    @property
    def label(self) -> str:
        return self.name

    def absolute(self) -> "Preset":
        return self


@dataclass(frozen=True)
class Speech:
    """Reference clips of emotional speech (their embeddings are averaged)."""

    clips: tuple[Path, ...]

    @property
    def label(self) -> str:
        return ", ".join(Path(p).name for p in self.clips)

    def absolute(self) -> "Speech":
        """The clips by absolute path (for workers that do not share the caller's working directory)."""
        return Speech(tuple(Path(p).absolute() for p in self.clips))


Emotion = Union[Preset, Speech]


@dataclass(frozen=True)
class Cue:
    """From ``time`` seconds on, the face takes ``emotion`` (one ``--at TIME EMOTION``)."""

    time: float
    emotion: Emotion
    label: str  # as given: the preset name or the speech file


def looks_like_file(text: str) -> bool:
    """A path separator or a suffix (``sad.wav``), or an existing file: a speech clip; else a preset name."""
    return os.sep in text or Path(text).suffix != "" or Path(text).is_file()


def parse_emotion(text: str | Path | Preset | Speech) -> Emotion:
    """The one place that tells a preset name from a speech file."""
    if isinstance(text, (Preset, Speech)):
        return text
    if isinstance(text, Path) or looks_like_file(str(text)):
        return Speech((Path(text),))
    return Preset(str(text))


def parse_cue(time: str | float, emotion: str | Path | Preset | Speech) -> Cue:
    """``("0:04", "sad")`` -> ``Cue(4.0, Preset("sad"), "sad")``; a bad time is a ``UsageError``."""
    seconds = float(time) if isinstance(time, (int, float)) else parse_time(time)
    parsed = parse_emotion(emotion)
    label = emotion if isinstance(emotion, str) else parsed.label if isinstance(emotion, (Preset, Speech)) else str(emotion)
    return Cue(seconds, parsed, label)


def as_cue(value: Cue | tuple) -> Cue:
    """A cue as given to ``EditOptions(at=...)``: a ``Cue``, or a (time, emotion) pair."""
    if isinstance(value, Cue):
        return value
    try:
        time, emotion = value
    except (TypeError, ValueError):
        raise OptionError("{at} takes (time, emotion) pairs, not {value}", value=repr(value)) from None
    try:
        return parse_cue(time, emotion)
    except OptionError:
        raise
    except UsageError as exc:
        raise OptionError("{at} {why}", why=str(exc)) from None


# ---------------------------------------------------------------- errors that name the field

class OptionError(UsageError):
    """A bad option value. The message is a template whose ``{field}`` places name options: ``str()`` shows
    the library's field names (``intensity must be …``); the CLI shows its flags (``render(flag)``).

    ``values``: other placeholders, filled as given (so that user text never reads as a template).
    """

    def __init__(self, template: str, **values: str) -> None:
        self.template, self.values = template, values
        super().__init__(self.render(lambda field: field))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each field named by ``name(field)``."""
        return self.template.format_map(_Names(name, self.values))

    def __reduce__(self):  # pickled by Ray: keep the template, not only the rendered text
        return (_rebuild, (self.template, self.values))


def _rebuild(template: str, values: dict[str, str]) -> OptionError:
    return OptionError(template, **values)


class _Names(dict):
    def __init__(self, name: Callable[[str], str], values: dict[str, str]) -> None:
        super().__init__(values)
        self.name = name

    def __missing__(self, field: str) -> str:
        return self.name(field)
