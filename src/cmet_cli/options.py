"""The typed options of an edit (``EditOptions``), the emotion arguments as typed values, and option
errors that name the field, not a flag.

"Is this a preset name or a speech file?" is decided here, once (``parse_emotion``): the CLI's ``--at``
type, the library's ``EditOptions`` and everything downstream (the plan, the checks before the models
load, the settings record, the Ray executor's path rewriting) see a ``Preset`` or a ``Speech``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from .errors import OptionError, UsageError  # noqa: F401  (OptionError: importers take it from here too)
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


@dataclass(frozen=True)
class FaceEmotion:
    """Face track ``face`` takes ``emotion`` (one ``--face-emotion ID=EMOTION``), from the first frame."""

    face: int
    emotion: Emotion
    label: str  # as given: the preset name or the speech file


FaceChoice = Union[int, tuple[int, ...], str, None]  # one id, several, "all", or None (see EditOptions.chosen_faces)


def parse_face_choice(value: FaceChoice | list) -> FaceChoice:
    """``--face``: ``2`` -> 2, ``"1,3"`` -> (1, 3), ``"all"`` -> ``"all"``; a bad value is an ``OptionError``."""
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return "all"
        parts = [p.strip() for p in text.split(",")]
        if not all(p.isdigit() for p in parts):
            raise OptionError("{face} takes a face id, ids separated by commas (1,3) or all, not {value}",
                              value=repr(value))
        ids = tuple(int(p) for p in parts)
        return ids[0] if len(ids) == 1 else ids
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise OptionError("{face} takes a face id, ids separated by commas (1,3) or all, not {value}", value=repr(value))


def parse_face_emotion(value: "FaceEmotion | str | tuple") -> FaceEmotion:
    """``"2=sad"`` or ``(2, "angry.wav")`` -> ``FaceEmotion``; a bad value is an ``OptionError``."""
    if isinstance(value, FaceEmotion):
        return value
    if isinstance(value, str):
        face, sep, emotion = value.partition("=")
    else:
        try:
            face, emotion = value
        except (TypeError, ValueError):
            face, sep, emotion = "", "", ""
        sep = "="
    face = str(face).strip()
    if not sep or not face.isdigit() or int(face) < 1 or not str(emotion).strip():
        raise OptionError("{face_emotions} takes ID=EMOTION (a face id from 1, a preset or a speech file), "
                          "e.g. 2=sad, not {value}", value=repr(value))
    parsed = parse_emotion(emotion if not isinstance(emotion, str) else emotion.strip())
    label = emotion.strip() if isinstance(emotion, str) else parsed.label
    return FaceEmotion(int(face), parsed, label)


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


# ---------------------------------------------------------------- the options of an edit

@dataclass(frozen=True)
class EditOptions:
    """Everything that shapes an edit. The CLI's options map one to one onto these fields."""

    preset: str | None = None  # a preset emotion of the bank
    emotion_speech: tuple[Path, ...] = ()  # reference clips of emotional speech (embeddings averaged)
    neutral_speech: tuple[Path, ...] = ()  # neutral reference clips; default: the bank's neutral clips
    at: tuple[Cue, ...] = ()  # emotion timeline; (time, preset name or speech file) pairs are parsed into cues
    blend: float = 0.5  # seconds of cross-fade at each timeline keyframe
    intensity: float = 1.0  # scales the semantic vector; 0 leaves the expression untouched
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 elsewhere) | fp32 | bf16 | fp16
    batch_size: int | None = None  # frames per network batch; default from free device memory
    weights_dir: Path | None = None  # checkpoints under their official names, instead of the cache
    bank_dir: Path | None = None  # preset bank folder (DIR/<emotion>/*.npy)
    detector: str = "auto"  # auto | fan | yunet | cascade
    box: tuple[int, int, int, int] | None = None  # fixed face box X,Y,W,H: no detection
    face: FaceChoice = None  # which face tracks: an id, several ((1, 3) or "1,3"), "all"; None: see chosen_faces
    face_emotions: tuple[FaceEmotion, ...] = ()  # per face: (id, emotion) pairs or "2=sad" strings are parsed
    crf: int = 18  # encoder quality (libx264/libx265 CRF; 0 is lossless)
    codec: str = "auto"  # auto | h264 | hevc (auto: H.264, or HEVC for 10-bit HEVC input)
    encoder_preset: str = "medium"  # x264/x265 preset: ultrafast ... placebo (faster = bigger file at the same crf)
    compare: bool = False  # write original | edit side by side
    colour_match: bool = False  # match the rendered face's colour statistics to the original crop
    overwrite: bool = False
    compile: bool = False  # torch.compile the networks (CUDA)
    allow_damaged: bool = False  # edit the frames that decode of a file whose data ends early (else it fails)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", tuple(as_cue(cue) for cue in self.at))
        object.__setattr__(self, "face", parse_face_choice(self.face))
        object.__setattr__(self, "face_emotions", tuple(parse_face_emotion(f) for f in self.face_emotions))

    @property
    def global_emotion(self) -> bool:
        """Whether an emotion for every chosen face is given (``preset``, ``emotion_speech`` or ``at``)."""
        return bool(self.preset or self.emotion_speech or self.at)

    def face_emotion(self, face: int) -> FaceEmotion | None:
        """The ``--face-emotion`` of face track ``face``, if any."""
        return next((f for f in self.face_emotions if f.face == face), None)

    def chosen_faces(self, ids: Sequence[int]) -> tuple[int, ...]:
        """The face tracks to edit, given the ids there are: ``face`` (an id, several, or all of ``ids``); without
        it, face 1 when a global emotion is given, and every face a ``face_emotions`` entry names."""
        if self.face == "all":
            return tuple(ids)
        if isinstance(self.face, int):
            return (self.face,)
        if isinstance(self.face, tuple):
            return self.face
        named = [f.face for f in self.face_emotions]
        return tuple(dict.fromkeys(([1] if self.global_emotion else []) + sorted(named)))

    def cues(self) -> tuple[Cue, ...]:
        """The emotion over time: the ``at`` cues, else the one emotion (preset or speech clips) from 0 s."""
        if self.at:
            return self.at
        if self.preset:
            return (Cue(0.0, Preset(self.preset), self.preset),)
        if self.emotion_speech:
            speech = Speech(tuple(Path(p) for p in self.emotion_speech))
            return (Cue(0.0, speech, speech.label),)
        return ()

    def speech_clips(self) -> list[Path]:
        """Every speech clip of the run: emotional, neutral and those of the timeline."""
        timeline_clips = [clip for cue in self.at if isinstance(cue.emotion, Speech) for clip in cue.emotion.clips]
        face_clips = [clip for f in self.face_emotions if isinstance(f.emotion, Speech) for clip in f.emotion.clips]
        return [*map(Path, self.emotion_speech), *map(Path, self.neutral_speech), *timeline_clips, *face_clips]

    def validate(self) -> "EditOptions":
        """Check the combination and ranges; an ``OptionError`` names the field (the CLI shows its flag)."""
        # imported here, not at the top: `cmet --help` loads this module and must not import numpy
        from . import faces, media
        from .runtime import PRECISIONS, is_device_name

        sources = sum(bool(x) for x in (self.preset, self.emotion_speech, self.at))
        if sources == 0 and not self.face_emotions:
            raise OptionError("give the target emotion: {emotion_speech} FILE, {preset} NAME or {at} TIME EMOTION")
        if self.preset and self.emotion_speech:
            raise OptionError("{preset} and {emotion_speech} are exclusive: choose one")
        if self.at and (self.preset or self.emotion_speech):
            raise OptionError("{at} sets the emotion over time: start with `{at} 0 EMOTION` instead of {preset}/{emotion_speech}")
        times = [cue.time for cue in self.at]
        for time in sorted({t for t in times if times.count(t) > 1}):
            emotions = ", ".join(cue.label for cue in self.at if cue.time == time)
            raise OptionError("{at} {time}: {count} emotions at the same time ({emotions}); give one per time",
                              time=f"{time:g}", count=str(times.count(time)), emotions=emotions)
        for cue in self.at:
            if isinstance(cue.emotion, Speech) and not all(Path(c).is_file() for c in cue.emotion.clips):
                raise OptionError("{at} {time} {what}: no such speech file (or a preset name: see `cmet emotions`)",
                                  time=f"{cue.time:g}", what=cue.label)
        if not 0.0 <= self.intensity <= 2.0:
            raise OptionError("{intensity} must be between 0 and 2, not {value}", value=f"{self.intensity:g}")
        if self.blend < 0:
            raise OptionError("{blend} must not be negative")
        if self.precision not in PRECISIONS:
            raise OptionError("{precision} must be fp32, bf16 or fp16, not {value}", value=repr(self.precision))
        if not is_device_name(self.device):
            raise OptionError("{device} must be auto, cpu, cuda or mps, not {value}", value=repr(self.device))
        if self.detector not in faces.DETECTORS:
            raise OptionError("{detector} must be auto, fan, yunet or cascade, not {value}", value=repr(self.detector))
        self._validate_faces()
        if not 0 <= self.crf <= 51:
            raise OptionError("{crf} must be between 0 and 51, not {value}", value=str(self.crf))
        if self.codec not in media.CODECS:
            raise OptionError("{codec} must be auto, h264 or hevc, not {value}", value=repr(self.codec))
        if self.encoder_preset not in media.PRESETS:
            raise OptionError("{encoder_preset} must be one of {names}, not {value}", names=", ".join(media.PRESETS),
                              value=repr(self.encoder_preset))
        if self.batch_size is not None and self.batch_size < 1:
            raise OptionError("{batch_size} must be at least 1")
        for clip in (*self.emotion_speech, *self.neutral_speech):
            if not Path(clip).exists():
                raise UsageError(f"speech clip not found: {clip}")
            if not Path(clip).is_file():
                raise UsageError(f"speech clip {clip} is not a regular file")
        return self

    def _validate_faces(self) -> None:
        """The face choice and the per-face emotions agree with each other and with the global emotion."""
        chosen = self.face if isinstance(self.face, tuple) else (self.face,) if isinstance(self.face, int) else ()
        if any(i < 1 for i in chosen) or (self.face is not None and not chosen and self.face != "all"):
            raise OptionError("{face} counts from 1 (see `cmet faces`)")
        seen: set[int] = set()
        for f in self.face_emotions:
            if f.face in seen:
                raise OptionError("{face_emotions} gives face {fid} two emotions", fid=str(f.face))
            seen.add(f.face)
            if isinstance(f.emotion, Speech) and not all(Path(c).is_file() for c in f.emotion.clips):
                raise OptionError("{face_emotions} {fid}={what}: no such speech file (or a preset name: see "
                                  "`cmet emotions`)", fid=str(f.face), what=f.label)
            if chosen and f.face not in chosen:
                raise OptionError("{face_emotions} {fid}={what}: face {fid} is not chosen by {face} {ids}",
                                  fid=str(f.face), what=f.label, ids=",".join(map(str, chosen)))
        if chosen and not self.global_emotion:
            bare = [i for i in chosen if i not in seen]
            if bare:
                raise OptionError("face {ids} has no emotion: give {face_emotions} {first}=EMOTION, or {preset}, "
                                  "{emotion_speech} or {at} for every chosen face", ids=",".join(map(str, bare)),
                                  first=str(bare[0]))
