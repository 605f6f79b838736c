"""``cmet edit`` and ``cmet preview``: the thin layer over ``runner``/``distributed`` and ``preview`` that parses,
hands the run to a ``report.Reporter`` and sets the exit code. The heavy modules load inside the commands, so that ``--help`` stays light."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from .common import (EPILOG, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CmetCommand, Terminated, _console, _fail,
                     _handle_termination, _setup_logging)
from .params import (BANK_OPTION, DEVICE_OPTION, EMOTION_OPTIONS, FACE_CHOICE_OPTIONS, FACE_OPTIONS, INTENSITY_OPTION,
                     WEIGHTS_DIR_OPTION, CueType, DurationType, _message, option_group)

if TYPE_CHECKING:
    from ..batch import Ignored, Plan
    from ..results import EditResult
    from ..report import Reporter
    from ..runner import LoadModels

# x264's and x265's presets (``media.PRESETS``, which EditOptions checks), fastest first; spelled out here so
# that `cmet --help` does not import the media package (numpy)
ENCODER_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                   "placebo")

EDIT_SECTIONS = {
    "Emotion": ("emotion_speech", "preset", "neutral_speech", "at", "blend", "intensity", "bank_dir"),
    "Faces": ("detector", "box", "face", "face_emotions", "colour_match"),
    "Output": ("output", "output_format", "crf", "encoder_preset", "compare", "recursive", "overwrite", "report", "as_json", "quiet", "verbose"),
    "Models and performance": ("weights_dir", "device", "precision", "batch_size", "compile_", "jobs"),
    "Ray cluster": ("executor", "ray_address", "workers", "gpus_per_worker", "max_retries"),
}

# every option of `edit`, in the order its help lists them
EDIT_OPTIONS = option_group(
    click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path)),
    click.option("-o", "--output", required=True, type=click.Path(),  # as typed: a trailing / names a folder
                 help="Output file (one input) or folder (several inputs, a folder, or a name ending with /)."),
    EMOTION_OPTIONS,
    click.option("--at", "at", type=CueType(), multiple=True, metavar="TIME EMOTION",
                 help="Emotion timeline: from TIME (seconds or mm:ss) switch to EMOTION (preset or speech file). "
                      "Repeatable; before the first TIME the face is unchanged."),
    click.option("--blend", type=DurationType(), default="0.5s", show_default=True,
                 help="Cross-fade between timeline emotions, starting at each TIME (e.g. 1s, 250ms)."),
    INTENSITY_OPTION,
    BANK_OPTION,
    DEVICE_OPTION,
    click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
                 help="auto (bf16 on CUDA), fp32, bf16 or fp16."),
    click.option("--batch-size", type=click.IntRange(min=1), help="Frames per network batch, a multiple of 5 (others are rounded up; default: from free device memory)."),
    click.option("--compile", "compile_", is_flag=True, help="torch.compile the networks (CUDA; slow first batch)."),
    WEIGHTS_DIR_OPTION,
    FACE_OPTIONS,
    FACE_CHOICE_OPTIONS,
    click.option("--format", "output_format", type=click.Choice(["mp4", "mov", "mkv"]),
                 help="Container of the outputs in a folder (default: each input's own: .mp4, .m4v, .mov, .mkv kept, "
                      "others written as .mp4)."),
    click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
                 help="Encoder quality (lower = better, bigger; 0 = lossless)."),
    click.option("--encoder-preset", type=click.Choice(ENCODER_PRESETS), default="medium", show_default=True,
                 help="x264/x265 preset: faster ones encode sooner and write bigger files at the same --crf."),
    click.option("--codec", type=click.Choice(["auto", "h264", "hevc"]), default="auto", show_default=True,
                 help="Output video codec; auto: H.264, or HEVC Main10 for 10-bit HEVC input (bit depth is always kept)."),
    click.option("--colour-match/--no-colour-match", default=False, help="Match the rendered face's colours to the original."),
    click.option("--compare", is_flag=True, help="Write the original and the edit side by side (same audio)."),
    click.option("--recursive", "-r", is_flag=True, help="Look for videos in sub-folders too (layout kept)."),
    click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: skip those made from the same input with the same settings; "
                      "fail on others)."),
    click.option("--allow-damaged", is_flag=True,
                 help="Edit the frames that decode of a file whose data ends early (default: such a file fails)."),
    click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True, help="Files edited at once (CPU)."),
    click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="Edit on this machine, or on a Ray cluster (pip install 'cmet-cli[ray]'; paths shared by all nodes)."),
    click.option("--ray-address", help="Ray cluster: auto, HOST:PORT or ray://HOST:10001 (default: RAY_ADDRESS, else a local instance)."),
    click.option("--workers", type=int, help="Ray workers, each loading the models once (default: one per GPU, else one per 4 CPUs)."),
    click.option("--gpus-per-worker", type=float, help="GPUs per Ray worker, e.g. 1 or 0.5 (default: 1 if the cluster has GPUs, else 0)."),
    click.option("--max-retries", type=int, help="Retries of a file whose Ray worker died (default: 2)."),
    click.option("--report", type=click.Path(path_type=Path), help="Write a JSON report of every input here."),
    click.option("--json", "as_json", is_flag=True,
                 help="Print one JSON object per input on stdout (with code_change and vector_norm: the emotion's strength)."),
    click.option("-q", "--quiet", is_flag=True, help="No progress bars or warnings (errors still print)."),
    click.option("-v", "--verbose", count=True,
                 help="More detail: a line per output with its expression change and semantic vector norm and tracebacks of internal errors (-vv: debug)."),
)


@click.command(cls=CmetCommand, epilog=EPILOG, sections=EDIT_SECTIONS,
               short_help="Change the facial emotion of videos or folders of videos.")
@EDIT_OPTIONS
def edit(inputs, output, emotion_speech, preset, neutral_speech, at, blend, intensity, bank_dir, device, precision,
         batch_size, compile_, weights_dir, detector, box, face, face_emotions, output_format, crf, encoder_preset, codec, colour_match, compare, recursive, overwrite,
         allow_damaged, jobs, executor, ray_address, workers, gpus_per_worker, max_retries, report, as_json, quiet,
         verbose) -> NoReturn:
    """Edit the facial emotion of INPUTS (videos or folders of videos).

    \b
      cmet edit talk.mp4 -o talk-sad.mp4 --preset sad
      cmet edit talk.mp4 -o out.mp4 --emotion-speech a.wav --emotion-speech b.wav --intensity 0.7
      cmet edit talk.mp4 -o out.mp4 --at 0 happy --at 0:04 sad --blend 1s
      cmet edit talk.mp4 -o side-by-side.mp4 --preset happy --intensity 1.5 --compare -v
      cmet edit interview.mp4 -o out.mp4 --face all --face-emotion 1=happy --face-emotion 2=sad
      cmet edit clips/ -o edited/ --preset sarcastic --recursive --report report.json
    """
    from .. import batch, distributed, presets, runner
    from ..errors import CmetError, UsageError
    from ..options import EditOptions
    from ..report import Reporter, check_report_path

    console = _console()  # one console for the bars, the log lines and the summary
    _setup_logging(verbose, quiet, console)
    _handle_termination()
    try:
        options = EditOptions(
            preset=preset, emotion_speech=tuple(emotion_speech), neutral_speech=tuple(neutral_speech), at=tuple(at),
            blend=blend, intensity=intensity, device=device, precision=precision,
            batch_size=batch_size, weights_dir=weights_dir, bank_dir=bank_dir, detector=detector, box=box, face=face,
            face_emotions=tuple(face_emotions), crf=crf, encoder_preset=encoder_preset, codec=codec, compare=compare, colour_match=colour_match, overwrite=overwrite, compile=compile_,
            allow_damaged=allow_damaged,
        ).validate()
        ray_config = distributed.config_from_cli(executor, ray_address, workers, gpus_per_worker, max_retries, jobs)
        presets.check_presets(options)
        scanned = batch.scan(inputs, output, recursive=recursive, fmt=output_format)
        if report:  # before any model loads, as the output folder is
            check_report_path(report, [j.input for j in scanned.jobs], [j.output for j in scanned.jobs])
    except CmetError as exc:
        _fail(_message(exc), EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED)
    except OSError as exc:
        _fail(f"{exc.filename or output}: {exc.strerror or exc}")
    reporter = Reporter(console, len(scanned.jobs), quiet=quiet, verbose=verbose, as_json=as_json)
    try:
        with reporter:
            if ray_config is not None:
                results = distributed.run(scanned.jobs, options, ray_config, reporter=reporter, verbose=verbose)
            else:
                results = runner.run(scanned.jobs, options, reporter=reporter, jobs_at_once=jobs,
                                     load_models=injected_loader())
    except UsageError as exc:
        _fail(_message(exc), EXIT_USAGE)
    except KeyboardInterrupt as exc:
        _interrupted(exc, scanned, report, reporter)
    if report:
        _write_report(report, results, scanned.ignored)
    reporter.summary(results, scanned.ignored)
    sys.exit(EXIT_FAILED if any(r.status == "failed" for r in results) else EXIT_OK)


def injected_loader() -> LoadModels | None:
    """A model loader handed in by whoever invoked the command (``main(obj={"load_models": fn})``: tests share
    loaded networks between in-process runs, an application its own); None: the runner loads them itself."""
    obj = click.get_current_context().obj
    return obj.get("load_models") if isinstance(obj, dict) else None


def _interrupted(exc: KeyboardInterrupt, scanned: Plan, report: Path | None, reporter: Reporter) -> NoReturn:
    """Ctrl-C, SIGTERM or SIGHUP during ``edit``: remove unfinished outputs, report every input (finished, then
    ``interrupted`` or ``pending``), exit 128+N."""
    from .. import runner
    from ..report import unfinished

    runner.clean_up(scanned.jobs)
    if report:  # every input, for scripts that resume
        rows = unfinished([(str(j.input), str(j.output)) for j in scanned.jobs], reporter.finished, reporter.in_progress)
        _write_report(report, rows, scanned.ignored, interrupted=True)
    click.echo("interrupted: unfinished outputs were removed", err=True)
    sys.exit(exc.code if isinstance(exc, Terminated) else 130)


def _write_report(path: Path, results: list[EditResult], ignored: list[Ignored], *, interrupted: bool = False) -> None:
    """The JSON report; after an interrupt, one that cannot be written is not a second error."""
    from ..errors import CmetError
    from ..report import write_report

    try:
        write_report(path, results, interrupted=interrupted, ignored=ignored)
    except CmetError as exc:
        if not interrupted:
            _fail(str(exc))


@click.command(cls=CmetCommand,
               epilog="Exit codes: 0 sheet written, 1 failed (no face, missing weights, ...), 2 usage error.",
               short_help="Contact sheet of a few frames, original above edited: choose before a long edit.")
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Contact sheet image (.png or .jpg).")
@EMOTION_OPTIONS
@INTENSITY_OPTION
@click.option("--frames", "n_frames", type=click.IntRange(1, 64), default=6, show_default=True,
              help="Evenly spaced frames to show (only these are processed).")
@BANK_OPTION
@WEIGHTS_DIR_OPTION
@DEVICE_OPTION
@FACE_OPTIONS
@FACE_CHOICE_OPTIONS
@click.option("--overwrite", is_flag=True, help="Replace an existing sheet.")
@click.option("-q", "--quiet", is_flag=True, help="No warnings.")
def preview(input, output, preset, emotion_speech, neutral_speech, intensity, n_frames, bank_dir, weights_dir, device,
            detector, box, face, face_emotions, overwrite, quiet) -> None:
    """Contact sheet of N evenly spaced frames, original above and edited below.

    Only those frames go through the networks, so it takes seconds where a full edit takes
    minutes: choose an emotion (and intensity) before a long render.

    \b
      cmet preview talk.mp4 --preset sarcastic -o sheet.png
      cmet preview talk.mp4 --emotion-speech angry.wav --frames 8 -o sheet.png
      cmet preview interview.mp4 --face all --face-emotion 1=happy --face-emotion 2=sad -o sheet.png
    """
    from ..errors import CmetError, UsageError
    from ..options import EditOptions
    from ..pipeline import Editor
    from ..preview import contact_sheet

    _setup_logging(0, quiet)
    _handle_termination()
    try:
        if not preset and not emotion_speech and not face_emotions:
            raise UsageError("give the emotion to preview: --preset NAME, --emotion-speech FILE or --face-emotion ID=EMOTION")
        options = EditOptions(preset=preset, emotion_speech=tuple(emotion_speech), neutral_speech=tuple(neutral_speech),
                              intensity=intensity, bank_dir=bank_dir, weights_dir=weights_dir, device=device,
                              detector=detector, box=box, face=face, face_emotions=tuple(face_emotions),
                              overwrite=overwrite).validate()
        path = contact_sheet(input, output, options, n_frames, editor=Editor(options, load_models=injected_loader()))
    except UsageError as exc:
        _fail(_message(exc), EXIT_USAGE)
    except CmetError as exc:
        _fail(_message(exc))
    click.echo(str(path))


@click.command(cls=CmetCommand, epilog="Exit codes: 0 listed, 1 failed (unreadable video, ...), 2 usage error.",
               short_help="List the face tracks of a video, with the ids --face takes.")
@click.argument("input", type=click.Path(path_type=Path))
@FACE_OPTIONS
@WEIGHTS_DIR_OPTION
@click.option("--sheet", type=click.Path(path_type=Path), help="Also write a contact sheet (.jpg or .png): one "
              "thumbnail per track, labelled with its id.")
@click.option("--overwrite", is_flag=True, help="Replace an existing sheet.")
@click.option("--json", "as_json", is_flag=True, help="Print the tracks as one JSON object.")
def faces(input, detector, box, weights_dir, sheet, overwrite, as_json) -> None:
    """List the face tracks of INPUT: id, frames and times where present, mean size and position.

    Ids are those `cmet edit --face` and `--face-emotion` take for the same video and detector settings:
    ordered by the share of frames in which the face is present, then by its mean size.

    \b
      cmet faces interview.mp4
      cmet faces interview.mp4 --sheet who.jpg
      cmet faces interview.mp4 --json
    """
    import json

    from .. import face_list
    from ..errors import CmetError, UsageError
    from ..media.probing import check_regular_file
    from ..models import detector_files
    from ..options import EditOptions
    from ..report import say

    _setup_logging(0, False)
    _handle_termination()
    try:
        check_regular_file(Path(input))  # the messages of edit and preview (a folder, a FIFO, no such file)
        if sheet is not None:
            face_list.check_sheet_path(sheet, overwrite)
        options = EditOptions(preset="neutral", detector=detector, box=box, weights_dir=weights_dir)
        from .. import faces as face_detection

        found = None if box else face_detection.make_detector(detector, detector_files(weights_dir))
        listed, tracks, info = face_list.list_faces(input, options, found)
        if sheet is not None and tracks:
            face_list.contact_sheet(info, tracks, sheet, overwrite=overwrite)
        elif sheet is not None:  # listed as "0 face tracks" (exit 0): the sheet's absence is said, not an error
            say("warning", f"{input}: no face found, so no sheet was written ({sheet})")
    except UsageError as exc:
        _fail(_message(exc), EXIT_USAGE)
    except CmetError as exc:
        _fail(_message(exc))
    if as_json:
        click.echo(json.dumps(listed.as_dict()))
    else:
        for line in face_list.table(listed):
            click.echo(line)
        if sheet is not None and tracks:
            click.echo(f"sheet: {sheet}")
