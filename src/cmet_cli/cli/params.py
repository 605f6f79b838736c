"""The option types and the option declarations ``edit`` and ``preview`` share (declared once, so that
their help and checks cannot drift apart)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

FLAGS = {"bank_dir": "--bank", "n_frames": "--frames", "face_emotions": "--face-emotion"}  # the library's field -> the CLI's flag, where not --field-name


def flag(field: str) -> str:
    """The CLI flag of a library option field (``batch_size`` -> ``--batch-size``)."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def _message(exc: Exception) -> str:
    """A library error as the CLI says it: option fields named by their flags."""
    from ..options import OptionError

    return exc.render(flag) if isinstance(exc, OptionError) else str(exc)


class BoxType(click.ParamType):
    """``--box X,Y,W,H`` in pixels."""

    name = "X,Y,W,H"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            box = tuple(int(v) for v in value.split(","))
        except ValueError:
            box = ()
        if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
            self.fail("expected X,Y,W,H in pixels, e.g. 600,200,256,256", param, ctx)
        return box


class DurationType(click.ParamType):
    """``--blend``: seconds, ``0.5s`` or ``250ms``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..errors import UsageError
        from ..timeline import parse_duration

        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(value)
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


class DeviceType(click.ParamType):
    """``--device``: auto, cpu, cuda, cuda:N or mps."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..runtime import is_device_name

        if not is_device_name(value):
            self.fail(f"{value!r} is not one of auto, cpu, cuda, cuda:N, mps", param, ctx)
        return value


class CueType(click.ParamType):
    """``--at TIME EMOTION``: parsed once into a ``Cue`` (the emotion a preset or a speech file)."""

    name = "TIME EMOTION"
    is_composite = True
    arity = 2

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..errors import UsageError
        from ..options import Cue, parse_cue

        if isinstance(value, Cue):
            return value
        try:
            return parse_cue(*value)
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


class FaceChoiceType(click.ParamType):
    """``--face``: a face id, ids separated by commas (``1,3``) or ``all``."""

    name = "ID[,ID...]|all"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..errors import OptionError
        from ..options import parse_face_choice

        try:
            choice = parse_face_choice(value)
        except OptionError:
            self.fail(f"{value!r}: give a face id (see `cmet faces`), ids separated by commas (1,3) or all", param, ctx)
        ids = choice if isinstance(choice, tuple) else (choice,) if isinstance(choice, int) else ()
        if any(i < 1 for i in ids):
            self.fail(f"{value!r}: face ids count from 1 (see `cmet faces`)", param, ctx)
        return choice


class FaceEmotionType(click.ParamType):
    """``--face-emotion ID=EMOTION``: parsed once into a ``FaceEmotion`` (a preset or a speech file)."""

    name = "ID=EMOTION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..errors import OptionError
        from ..options import parse_face_emotion

        try:
            return parse_face_emotion(value)
        except OptionError:
            self.fail(f"{value!r}: use ID=EMOTION, a face id (see `cmet faces`) and a preset or speech file, "
                      "e.g. 2=sad", param, ctx)


def option_group(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator, listed in the order given."""
    def apply(command: F) -> F:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command
    return apply


# the options `edit` and `preview` share: declared once
EMOTION_OPTIONS = option_group(
    click.option("--emotion-speech", multiple=True, type=click.Path(path_type=Path),
                 help="Clip of emotional speech (WAV, FLAC, MP3, ...); repeat to average several."),
    click.option("--preset", help="Preset emotion, one of the 14 of the bank (see `cmet emotions`), e.g. happy, sarcastic."),
    click.option("--neutral-speech", multiple=True, type=click.Path(path_type=Path),
                 help="Neutral speech of the same speaker (repeatable); default: the built-in neutral bank."),
)
INTENSITY_OPTION = click.option(
    "--intensity", type=click.FloatRange(0, 2), default=1.0, show_default=True,
    help="Scale of the emotion's semantic vector, 0 to 2 (0 = expression unchanged, exactly).")
BANK_OPTION = click.option("--bank", "bank_dir", type=click.Path(path_type=Path),
                           help="Preset bank folder (DIR/<emotion>/*.npy).")
WEIGHTS_DIR_OPTION = click.option("--weights-dir", type=click.Path(path_type=Path), envvar="CMET_WEIGHTS_DIR",
                                  help="Folder of checkpoints under their official names (env CMET_WEIGHTS_DIR).")
DEVICE_OPTION = click.option("--device", type=DeviceType(), default="auto", show_default=True, help="auto, cpu, cuda or mps.")
FACE_OPTIONS = option_group(
    click.option("--detector", default="auto", show_default=True, type=click.Choice(["auto", "fan", "yunet", "cascade"]),
                 help="Face detector: face-alignment (fan), OpenCV's YuNet or OpenCV's cascade (no download, "
                      "not in OpenCV 5); auto: the first of these that can run (`cmet doctor` says which)."),
    click.option("--box", type=BoxType(), help="Face box X,Y,W,H: skip detection."),
)
FACE_CHOICE_OPTIONS = option_group(
    click.option("--face", type=FaceChoiceType(),
                 help="Which face tracks to edit: an id (see `cmet faces`), ids (1,3) or all (default: face 1, "
                      "and the faces --face-emotion names)."),
    click.option("--face-emotion", "face_emotions", type=FaceEmotionType(), multiple=True,
                 help="The emotion of one face, ID=EMOTION (a preset or a speech file), e.g. 2=sad or 1=angry.wav; "
                      "repeatable. Chosen faces without one take the global emotion."),
)
