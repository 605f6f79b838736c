"""The ``cmet`` command: a thin layer over the library (``runner``, ``distributed``, ``preview``, ``weights``) that
parses, reports and sets exit codes.

Exit codes: 0 every input done or skipped; 1 some input failed; 2 usage error; 130/143 interrupted
(SIGINT/SIGTERM). Heavy libraries (torch, huggingface_hub, face-alignment) load only inside commands.

By concern: ``common`` (exit codes, console and logging, ``_fail``, signals, the help layout), ``params``
(option types and the options ``edit`` and ``preview`` share), ``editing`` (``edit``, ``preview``) and ``setup``
(``download-weights``, ``doctor``, ``emotions``) and ``app`` (``cmet app``, the local web page). This module makes the group and adds the commands to it.
"""
from __future__ import annotations

import click

from .. import __version__
from .app import app
from .common import EPILOG, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CmetCommand, CmetGroup, Terminated
from .editing import edit, faces, preview
from .params import BoxType, CueType, DeviceType, DurationType, flag
from .setup import doctor, download_weights, emotions

__all__ = [
    "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "BoxType", "CmetCommand", "CmetGroup", "CueType", "DeviceType",
    "DurationType", "Terminated", "app", "doctor", "download_weights", "edit", "emotions", "faces", "flag", "main",
    "preview",
]


@click.group("cmet", cls=CmetGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="cmet")
def main() -> None:
    """Change the emotion of the face in a talking-face video, driven by emotional speech (C-MET).

    \b
      cmet edit input.mp4 --emotion-speech sarcastic.wav -o out.mp4
      cmet edit clips/ -o edited/ --preset happy
      cmet faces interview.mp4
      cmet download-weights
      cmet doctor
    """


for command in (edit, faces, preview, download_weights, doctor, emotions, app):
    main.add_command(command)
main.add_command(click.Command("weights", callback=doctor.callback, params=doctor.params, help=doctor.help, hidden=True))
