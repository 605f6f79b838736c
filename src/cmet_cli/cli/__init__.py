"""The ``cmet`` command: a thin layer over ``cmet_cli.pipeline`` that parses, reports and sets exit codes.

Exit codes: 0 every input done or skipped; 1 some input failed; 2 usage error; 130/143 interrupted
(SIGINT/SIGTERM). Heavy libraries (torch, huggingface_hub, face-alignment) load only inside commands.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import click

from .. import __version__
from ..terminal import StyledErrors, table_console

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EPILOG = """\b
Exit codes: 0 all inputs done or skipped, 1 some input failed, 2 usage error,
130/143/129 interrupted (Ctrl-C / SIGTERM / SIGHUP; no partial output is left).
"""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (terminal closed), raised in the main thread so that every temporary file is
    cleaned up and every ffmpeg child ended; ``code``: the exit status (128 + the signal)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + int(signum)


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by a subprocess test
    raise Terminated(signum)


def _handle_termination() -> None:
    """SIGTERM and SIGHUP end a command the way Ctrl-C does (SIGHUP: where the platform has it)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _on_sigterm)


def _console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def _setup_logging(verbose: int, quiet: bool, console=None) -> "logging.Handler":
    """Log records go through ``console``: the one the progress bars draw on, so that a log line is
    printed above the live bars instead of being glued to one of them."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    from rich.logging import RichHandler

    handler = RichHandler(console=console or _console(), show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    return handler


def _fail(message: str, code: int = EXIT_FAILED) -> "NoReturn":  # noqa: F821
    from ..errors import one_line

    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


# ---------------------------------------------------------------- help layout and message style

SECTION_ORDER = ("Emotion", "Faces", "Output", "Models and performance", "Ray cluster")
EDIT_SECTIONS = {
    "Emotion": ("emotion_speech", "preset", "neutral_speech", "at", "blend", "intensity", "bank_dir"),
    "Faces": ("detector", "box", "face", "colour_match"),
    "Output": ("output", "crf", "compare", "recursive", "overwrite", "report", "as_json", "quiet", "verbose"),
    "Models and performance": ("weights_dir", "device", "precision", "batch_size", "compile_", "jobs"),
    "Ray cluster": ("executor", "ray_address", "workers", "gpus_per_worker", "max_retries"),
}


class CmetCommand(click.Command):
    """A command whose options are listed in named sections (``sections``: section -> parameter names)."""

    def __init__(self, *args, sections: dict[str, tuple[str, ...]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sections = {name: section for section, names in (sections or {}).items() for name in names}

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self.sections:
            return super().format_options(ctx, formatter)
        rows: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                rows.setdefault(self.sections.get(param.name or "", "Other options"), []).append(record)
        for section in sorted(rows, key=lambda s: SECTION_ORDER.index(s) if s in SECTION_ORDER else len(SECTION_ORDER)):
            with formatter.section(section):
                formatter.write_dl(rows[section])


class CmetGroup(click.Group):
    """The ``cmet`` group: click's own usage errors print as ``error: …``, like the tool's."""

    command_class = CmetCommand

    def make_context(self, *args, **kwargs) -> click.Context:
        with StyledErrors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        with StyledErrors():
            return super().invoke(ctx)


@click.group("cmet", cls=CmetGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="cmet")
def main() -> None:
    """Change the emotion of the face in a talking-face video, driven by emotional speech (C-MET).

    \b
      cmet edit input.mp4 --emotion-speech sarcastic.wav -o out.mp4
      cmet edit clips/ -o edited/ --preset happy
      cmet download-weights
      cmet doctor
    """


# ---------------------------------------------------------------- option types and shared declarations

FLAGS = {"bank_dir": "--bank", "n_frames": "--frames"}  # the library's field -> the CLI's flag, where not --field-name


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

    def convert(self, value, param, ctx):
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

    def convert(self, value, param, ctx):
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

    def convert(self, value, param, ctx):
        from ..runtime import is_device_name

        if not is_device_name(value):
            self.fail(f"{value!r} is not one of auto, cpu, cuda, cuda:N, mps", param, ctx)
        return value


class CueType(click.ParamType):
    """``--at TIME EMOTION``: parsed once into a ``Cue`` (the emotion a preset or a speech file)."""

    name = "TIME EMOTION"
    is_composite = True
    arity = 2

    def convert(self, value, param, ctx):
        from ..errors import UsageError
        from ..options import Cue, parse_cue

        if isinstance(value, Cue):
            return value
        try:
            return parse_cue(*value)
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


def _options(*decorators):
    """Several click options as one decorator, listed in the order given."""
    def apply(command):
        for decorator in reversed(decorators):
            command = decorator(command)
        return command
    return apply


# the options `edit` and `preview` share: declared once
EMOTION_OPTIONS = _options(
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
FACE_OPTIONS = _options(
    click.option("--detector", default="auto", show_default=True, type=click.Choice(["auto", "fan", "cascade"]),
                 help="Face detector: face-alignment (fan) or OpenCV's cascade (no download)."),
    click.option("--box", type=BoxType(), help="Face box X,Y,W,H: skip detection."),
)


# ---------------------------------------------------------------- edit

@main.command(epilog=EPILOG, sections=EDIT_SECTIONS, short_help="Change the facial emotion of videos or folders of videos.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output file (one input) or folder (several inputs or a folder).")
@EMOTION_OPTIONS
@click.option("--at", "at", type=CueType(), multiple=True, metavar="TIME EMOTION",
              help="Emotion timeline: from TIME (seconds or mm:ss) switch to EMOTION (preset or speech file). "
                   "Repeatable; before the first TIME the face is unchanged.")
@click.option("--blend", type=DurationType(), default="0.5s", show_default=True,
              help="Cross-fade between timeline emotions, starting at each TIME (e.g. 1s, 250ms).")
@INTENSITY_OPTION
@BANK_OPTION
@DEVICE_OPTION
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="auto (bf16 on CUDA), fp32, bf16 or fp16.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Frames per network batch (default: from free device memory).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the networks (CUDA; slow first batch).")
@WEIGHTS_DIR_OPTION
@FACE_OPTIONS
@click.option("--face", type=click.IntRange(min=1), help="Which face to edit when several are found (1 = largest).")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
              help="Encoder quality (lower = better, bigger; 0 = lossless).")
@click.option("--codec", type=click.Choice(["auto", "h264", "hevc"]), default="auto", show_default=True,
              help="Output video codec; auto: H.264, or HEVC Main10 for 10-bit HEVC input (bit depth is always kept).")
@click.option("--colour-match/--no-colour-match", default=False, help="Match the rendered face's colours to the original.")
@click.option("--compare", is_flag=True, help="Write the original and the edit side by side (same audio).")
@click.option("--recursive", "-r", is_flag=True, help="Look for videos in sub-folders too (layout kept).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: skip those made from the same input with the same settings; "
                   "fail on others).")
@click.option("--allow-damaged", is_flag=True,
              help="Edit the frames that decode of a file whose data ends early (default: such a file fails).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True, help="Files edited at once (CPU).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Edit on this machine, or on a Ray cluster (pip install 'cmet-cli[ray]'; paths shared by all nodes).")
@click.option("--ray-address", help="Ray cluster: auto, HOST:PORT or ray://HOST:10001 (default: RAY_ADDRESS, else a local instance).")
@click.option("--workers", type=int, help="Ray workers, each loading the models once (default: one per GPU, else one per 4 CPUs).")
@click.option("--gpus-per-worker", type=float, help="GPUs per Ray worker, e.g. 1 or 0.5 (default: 1 if the cluster has GPUs, else 0).")
@click.option("--max-retries", type=int, help="Retries of a file whose Ray worker died (default: 2).")
@click.option("--report", type=click.Path(path_type=Path), help="Write a JSON report of every input here.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per input on stdout (with code_change and vector_norm: the emotion's strength).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or warnings (errors still print).")
@click.option("-v", "--verbose", count=True,
              help="More detail: a line per output with its expression change and semantic vector norm and tracebacks of internal errors (-vv: debug).")
def edit(inputs, output, emotion_speech, preset, neutral_speech, at, blend, intensity, bank_dir, device, precision,
         batch_size, compile_, weights_dir, detector, box, face, crf, codec, colour_match, compare, recursive, overwrite,
         allow_damaged, jobs, executor, ray_address, workers, gpus_per_worker, max_retries, report, as_json, quiet, verbose):
    """Edit the facial emotion of INPUTS (videos or folders of videos).

    \b
      cmet edit talk.mp4 -o talk-sad.mp4 --preset sad
      cmet edit talk.mp4 -o out.mp4 --emotion-speech a.wav --emotion-speech b.wav --intensity 0.7
      cmet edit talk.mp4 -o out.mp4 --at 0 happy --at 0:04 sad --blend 1s
      cmet edit talk.mp4 -o side-by-side.mp4 --preset happy --intensity 1.5 --compare -v
      cmet edit clips/ -o edited/ --preset sarcastic --recursive --report report.json
    """
    from .. import batch, distributed
    from ..errors import CmetError, UsageError
    from ..pipeline import EditOptions

    console = _console()  # one console for the bars, the log lines and the summary
    _setup_logging(verbose, quiet, console)
    _handle_termination()
    try:
        options = EditOptions(
            preset=preset, emotion_speech=tuple(emotion_speech), neutral_speech=tuple(neutral_speech), at=tuple(at),
            blend=blend, intensity=intensity, device=device, precision=precision,
            batch_size=batch_size, weights_dir=weights_dir, bank_dir=bank_dir, detector=detector, box=box, face=face,
            crf=crf, codec=codec, compare=compare, colour_match=colour_match, overwrite=overwrite, compile=compile_,
            allow_damaged=allow_damaged,
        ).validate()
        ray_config = distributed.config_from_cli(executor, ray_address, workers, gpus_per_worker, max_retries, jobs)
        batch.check_presets(options)
        scanned = batch.scan(inputs, output, recursive=recursive)
        jobs_list = scanned.jobs
    except CmetError as exc:
        _fail(_message(exc), EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED)
    except OSError as exc:
        _fail(f"{exc.filename or output}: {exc.strerror or exc}")
    finished = []

    def on_result(result) -> None:
        from ..presets import strength_line

        finished.append(result)
        if as_json:
            click.echo(json.dumps(result.as_dict()))
        if verbose and result.status == "done":  # through the bars' console: printed above them, not over them
            from rich.text import Text

            console.print(Text(strength_line(result)), soft_wrap=True, highlight=False)

    try:
        if ray_config is not None:
            results = distributed.run(jobs_list, options, ray_config, quiet=quiet, verbose=verbose,
                                      show_progress=not (quiet or as_json), on_result=on_result, console=console)
        else:
            results = batch.run(jobs_list, options, jobs_at_once=jobs, quiet=quiet, verbose=verbose,
                                show_progress=not (quiet or as_json), on_result=on_result, console=console)
    except UsageError as exc:
        _fail(_message(exc), EXIT_USAGE)
    except KeyboardInterrupt as exc:
        code = exc.code if isinstance(exc, Terminated) else 130
        batch.clean_up(jobs_list)
        if report:  # what finished before the interrupt, for scripts that resume
            try:
                batch.write_report(report, finished, interrupted=True, ignored=scanned.ignored)
            except CmetError:
                pass
        click.echo("interrupted: unfinished outputs were removed", err=True)
        sys.exit(code)
    if report:
        try:
            batch.write_report(report, results, ignored=scanned.ignored)
        except CmetError as exc:
            _fail(str(exc))
    if not as_json and not quiet:
        batch.summary(results, console, scanned.ignored)
    sys.exit(EXIT_FAILED if any(r.status == "failed" for r in results) else EXIT_OK)


# ---------------------------------------------------------------- weights

def _lock_names() -> str:
    from .. import weights

    try:
        return ", ".join(weights.load_lock())
    except Exception:  # noqa: BLE001 - help must always print
        return "see models.lock"


class _EntryOption(click.Option):
    """``--only``: its help lists the entries of models.lock, read when help is shown (not at start-up)."""

    def get_help_record(self, ctx: click.Context):
        self.help = f"Only this entry of models.lock (repeatable): {_lock_names()}."
        return super().get_help_record(ctx)


@main.command("download-weights", short_help="Download or install (--from DIR) the verified model weights.")
@click.option("--only", multiple=True, cls=_EntryOption, help="Only this entry of models.lock (repeatable).")
@click.option("--from", "from_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Install from a local folder instead of downloading (air-gapped machines).")
@click.option("--check", is_flag=True, help="Verify what is installed (re-hash every file) and exit.")
@click.option("--include-sample", is_flag=True, help="Also fetch the demo's sample clip.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors (no progress bars).")
def download_weights(only, from_dir, check, include_sample, quiet):
    """Download (or install from --from DIR) the model weights, verified against models.lock."""
    from .. import weights
    from ..errors import CmetError

    console = _console(quiet)
    try:
        weights.home()
    except CmetError as exc:
        _fail(str(exc))
    lock = weights.load_lock()

    def say(line: str) -> None:  # plain text, never wrapped: paths and commands stay whole in a pipe or a log
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    unknown = [n for n in only if n not in lock]
    if unknown:
        _fail(f"unknown entry {', '.join(unknown)}; models.lock has {', '.join(lock)}", EXIT_USAGE)
    # --check and --from look at every entry (the sample clip too); a plain download skips the sample clip
    names = list(only) or [n for n in lock if n != "sample-video" or include_sample or check or from_dir]
    if check:
        bad = 0
        for name in names:
            status = weights.check(lock[name], rehash=True)
            bad += weights.fails(status, asked=bool(only))
            say(weights.status_line(status, asked=bool(only)))
        sys.exit(EXIT_FAILED if bad else EXIT_OK)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    failed = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True) as progress:
        for name in names:
            entry = lock[name]
            status = weights.check(entry)
            if status.state in ("verified", "recorded"):
                say(f"{name}: already installed ({status.path})")
                continue
            task = progress.add_task(name, total=entry.size or None)
            update = lambda stage, done, total, task=task: progress.update(task, completed=done, total=total or None)  # noqa: E731
            try:
                if from_dir:
                    path = weights.install_from(entry, from_dir, progress=update)
                    if path is None:
                        say(weights.absent_line(entry, from_dir, asked=bool(only)))
                        failed += not entry.optional or bool(only)
                        continue
                else:
                    path = weights.download(entry, progress=update)
            except CmetError as exc:  # say it and go on: each missing file gets its own advice
                say(f"error: {exc}")
                failed += 1
                continue
            finally:
                progress.remove_task(task)
            say(f"{name}: installed {path}")
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


@main.command("doctor", short_help="What is installed and usable: weights, ffmpeg, CUDA (alias: weights).")
def doctor():
    """What is installed and usable: the weights (verified or not), ffmpeg and CUDA.

    `cmet weights` is another name for it.
    """
    _doctor()


main.add_command(click.Command("weights", callback=doctor.callback, help=doctor.help, hidden=True))


def _doctor() -> None:
    from rich.table import Table

    from .. import media, weights
    from ..errors import CmetError

    console = _console()
    try:
        weights.home()
    except CmetError as exc:
        _fail(str(exc))
    table = Table(title=f"weights in {weights.home()}")
    for col in ("name", "state", "path", "needed by"):
        table.add_column(col)
    for name, entry in weights.load_lock().items():
        status = weights.check(entry)
        table.add_row(name, weights.state_text(status), str(status.path), ", ".join(entry.needed_by))
    table_console(console).print(table)
    try:
        console.print(f"ffmpeg:  {media.ffmpeg_binary()}\nffprobe: {media.ffprobe_binary()}")
    except CmetError as exc:
        console.print(f"ffmpeg:  [red]{exc}[/red]")
    import torch

    cuda = torch.cuda.is_available()
    console.print(f"torch {torch.__version__}; CUDA: " + (torch.cuda.get_device_name(0) if cuda else "not available"))


# ---------------------------------------------------------------- emotions and previews

@main.command(short_help="List the preset emotions, their clip counts and strength.")
@click.option("--bank", "bank_dir", type=click.Path(path_type=Path),
              help="Preset bank folder (DIR/<emotion>/*.npy); default: the one `cmet download-weights` installs.")
@click.option("--weights-dir", type=click.Path(path_type=Path), envvar="CMET_WEIGHTS_DIR",
              help="Folder of checkpoints; its bank/ sub-folder is used when present (env CMET_WEIGHTS_DIR).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON on stdout.")
def emotions(bank_dir, weights_dir, as_json):
    """List the preset emotions for --preset and --at, with their clip counts and strength.

    \b
    A preset is the mean embedding of all its clips minus the mean of the neutral bank;
    "direction norm" is that difference's length. Weak presets (norm below 2, e.g. contempt)
    barely change a face.
    """
    from .. import presets
    from ..errors import CmetError

    try:
        rows = presets.describe(bank_dir, weights_dir)
    except CmetError as exc:
        _fail(str(exc))
    if rows and not any(row.installed for row in rows):
        from .. import weights

        lock = weights.load_lock()
        click.echo(weights.missing_message(lock["bank"], weights.installed_path(lock["bank"])), err=True)
    if as_json:
        click.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="preset emotions")
    for col in ("emotion", "clips", "direction norm", "note"):
        table.add_column(col)
    for row in rows:
        style = "yellow" if row.weak else None
        table.add_row(row.name, str(row.clips) if row.installed else "-", "-" if row.norm is None else f"{row.norm:.1f}", row.note, style=style)
    table_console(Console(soft_wrap=False)).print(table)


@main.command(epilog="Exit codes: 0 sheet written, 1 failed (no face, missing weights, ...), 2 usage error.",
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
@click.option("--overwrite", is_flag=True, help="Replace an existing sheet.")
@click.option("-q", "--quiet", is_flag=True, help="No warnings.")
def preview(input, output, preset, emotion_speech, neutral_speech, intensity, n_frames, bank_dir, weights_dir, device,
            detector, box, overwrite, quiet):
    """Contact sheet of N evenly spaced frames, original above and edited below.

    Only those frames go through the networks, so it takes seconds where a full edit takes
    minutes: choose an emotion (and intensity) before a long render.

    \b
      cmet preview talk.mp4 --preset sarcastic -o sheet.png
      cmet preview talk.mp4 --emotion-speech angry.wav --frames 8 -o sheet.png
    """
    from ..errors import CmetError, UsageError
    from ..pipeline import EditOptions
    from ..preview import contact_sheet

    _setup_logging(0, quiet)
    _handle_termination()
    try:
        if not preset and not emotion_speech:
            raise UsageError("give the emotion to preview: --preset NAME or --emotion-speech FILE")
        options = EditOptions(preset=preset, emotion_speech=tuple(emotion_speech), neutral_speech=tuple(neutral_speech),
                              intensity=intensity, bank_dir=bank_dir, weights_dir=weights_dir, device=device,
                              detector=detector, box=box, overwrite=overwrite).validate()
        path = contact_sheet(input, output, options, n_frames)
    except UsageError as exc:
        _fail(_message(exc), EXIT_USAGE)
    except CmetError as exc:
        _fail(_message(exc))
    click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    main()
