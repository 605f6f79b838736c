"""Setting up: ``cmet download-weights``, ``cmet doctor`` (alias ``weights``) and ``cmet emotions``."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NoReturn

import click

from ..terminal import table_console
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CmetCommand, Terminated, _console, _fail, _handle_termination

if TYPE_CHECKING:
    from rich.console import Console

    from ..weights import LockEntry

Say = Callable[[str], None]


def _lock_names() -> str:
    from .. import weights

    try:
        return ", ".join(weights.load_lock())
    except Exception:  # noqa: BLE001 - help must always print
        return "see models.lock"


class _EntryOption(click.Option):
    """``--only``: its help lists the entries of models.lock, read when help is shown (not at start-up)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = f"Only this entry of models.lock (repeatable): {_lock_names()}."
        return super().get_help_record(ctx)


@click.command("download-weights", cls=CmetCommand, short_help="Download or install (--from DIR) the verified model weights.")
@click.option("--only", multiple=True, cls=_EntryOption, help="Only this entry of models.lock (repeatable).")
@click.option("--from", "from_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Install from a local folder instead of downloading (air-gapped machines).")
@click.option("--check", is_flag=True, help="Verify what is installed (re-hash every file) and exit.")
@click.option("--include-sample", is_flag=True, help="Also fetch the demo's sample clip.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors (no progress bars).")
def download_weights(only: tuple[str, ...], from_dir: Path | None, check: bool, include_sample: bool,
                     quiet: bool) -> NoReturn:
    """Download (or install from --from DIR) the model weights, verified against models.lock."""
    from .. import weights
    from ..errors import CmetError

    console = _console(quiet)
    _handle_termination()  # SIGTERM/SIGHUP end it as Ctrl-C does: what was being written is removed
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
    try:
        if check:
            _check_installed(lock, names, bool(only), say)
        _install(lock, names, only, from_dir, say, console)
    except KeyboardInterrupt as exc:  # the file being written was removed on the way out
        say("interrupted: nothing half-written is left")
        sys.exit(exc.code if isinstance(exc, Terminated) else 130)


def _check_installed(lock: dict[str, LockEntry], names: list[str], asked: bool, say: Say) -> NoReturn:
    """``download-weights --check``: re-hash every file; exit 1 on a mismatch or a missing required file."""
    from .. import weights

    bad = 0
    for name in names:
        status = weights.check(lock[name], rehash=True)
        bad += weights.fails(status, asked=asked)
        say(weights.status_line(status, asked=asked))
    sys.exit(EXIT_FAILED if bad else EXIT_OK)


def _install(lock: dict[str, LockEntry], names: list[str], only: tuple[str, ...], from_dir: Path | None, say: Say,
             console: Console) -> NoReturn:
    """Download (or install ``from_dir``) every entry not already installed; each failure is said and the
    rest go on, so that every missing file gets its own advice."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from .. import weights
    from ..errors import CmetError

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


@click.command("doctor", cls=CmetCommand, short_help="What is installed and usable: weights, ffmpeg, CUDA (alias: weights).")
@click.option("--weights-dir", type=click.Path(path_type=Path), envvar="CMET_WEIGHTS_DIR",
              help="Describe the checkpoints of this folder, as `cmet edit --weights-dir` loads them (env CMET_WEIGHTS_DIR).")
@click.option("--bank", "bank_dir", type=click.Path(path_type=Path), help="Describe this preset bank folder, as `cmet edit --bank` uses it.")
def doctor(weights_dir: Path | None, bank_dir: Path | None) -> None:
    """What is installed and usable: the weights an edit would load (verified or not), ffmpeg and CUDA.

    The same rules as `cmet edit`: --weights-dir (or CMET_WEIGHTS_DIR), --bank, else the cache
    (CMET_HOME). The report goes to stdout. `cmet weights` is another name for it.
    """
    from .. import weights
    from ..errors import CmetError

    try:
        weights.home()
    except CmetError as exc:
        _fail(str(exc))
    console = table_console(_stdout_console())
    for section in DOCTOR_SECTIONS:
        for line in section(weights_dir, bank_dir):
            if isinstance(line, str):  # plain text: paths stay whole
                console.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                console.print(line)


def _stdout_console() -> Console:
    from rich.console import Console

    return Console()


def weight_rows(weights_dir: Path | None, bank_dir: Path | None) -> list[tuple[str, str, str, str]]:
    """(name, state, path, needed by) of every models.lock entry, found by the rules an edit uses
    (``weights.paths``): ``--bank``, then ``--weights-dir`` (official names; a checkpoint missing there is
    missing, as the edit then fails; the bank falls back to the cache), then the verified cache."""
    from .. import weights
    from ..models import DETECTOR_FILES
    from ..weights.paths import CHECKPOINT_NAMES, find_in_folder, weights_source

    source = weights_source(weights_dir) if weights_dir else "--weights-dir"
    rows = []
    for name, entry in weights.load_lock().items():
        needed = ", ".join(entry.needed_by)
        if name == "bank" and bank_dir:
            state = "given (--bank)" if Path(bank_dir).is_dir() else "missing (--bank: no such folder)"
            rows.append((name, state, str(bank_dir), needed))
            continue
        in_folder = name in CHECKPOINT_NAMES or name == "bank" or name in DETECTOR_FILES  # what an edit takes there
        found = find_in_folder(entry, weights_dir) if weights_dir and in_folder else None
        if found is not None:
            rows.append((name, f"given ({source}, not verified)", str(found), needed))
        elif weights_dir and name in CHECKPOINT_NAMES:
            rows.append((name, f"missing (not in {source})", str(Path(weights_dir) / CHECKPOINT_NAMES[name]), needed))
        else:
            status = weights.check(entry)
            rows.append((name, weights.state_text(status), str(status.path), needed))
    return rows


def _weights_section(weights_dir: Path | None, bank_dir: Path | None) -> list:
    from rich.table import Table

    from .. import weights

    where = f"weights in {weights.home()}"
    if weights_dir:
        where = f"weights in {weights_dir} ({_weights_dir_state(weights_dir)}), else {weights.home()}"
    table = Table(title=where)
    for col in ("name", "state", "path", "needed by"):
        table.add_column(col)
    for row in weight_rows(weights_dir, bank_dir):
        table.add_row(*row)
    return [table]


def _weights_dir_state(weights_dir: Path) -> str:
    """Where the weights folder came from, and whether it is there: ``CMET_WEIGHTS_DIR: no such folder``."""
    from ..weights.paths import weights_source

    return weights_source(weights_dir) + ("" if Path(weights_dir).is_dir() else ": no such folder")


def _ffmpeg_section(weights_dir: Path | None, bank_dir: Path | None) -> list[str]:
    from .. import media
    from ..errors import CmetError

    try:
        return [f"ffmpeg:  {media.ffmpeg_binary()}", f"ffprobe: {media.ffprobe_binary()}"]
    except CmetError as exc:
        return [f"ffmpeg:  {exc}"]


def _torch_section(weights_dir: Path | None, bank_dir: Path | None) -> list[str]:
    import torch  # loads only here

    cuda = torch.cuda.is_available()
    return [f"torch {torch.__version__}; CUDA: " + (torch.cuda.get_device_name(0) if cuda else "not available")]


def _detectors_section(weights_dir: Path | None, bank_dir: Path | None) -> list[str]:
    """Which face detectors can run here, which one ``--detector auto`` takes, and why the others cannot."""
    import cv2

    from ..errors import CmetError
    from ..faces.detection import detector_kind, detector_problems
    from ..models import detector_files

    files = detector_files(weights_dir)
    try:
        auto = f"auto takes {detector_kind('auto', files)}"
    except CmetError:
        auto = "none can run: an edit needs --box X,Y,W,H"
    lines = [f"face detectors (OpenCV {cv2.__version__}; {auto}):"]
    for name, problem in detector_problems(files).items():
        lines.append(f"  {name:8} " + (f"cannot run: {problem}" if problem else "usable"))
    return lines


def _networks_section(weights_dir: Path | None, bank_dir: Path | None) -> list[str]:
    """What ``--device auto --precision auto`` picks here, and why (``Runtime.why``)."""
    from ..errors import CmetError
    from ..runtime import Runtime

    try:
        return [f"networks (--device auto --precision auto): {Runtime.build('auto', 'auto').why}"]
    except CmetError as exc:
        return [f"networks: {exc}"]


# doctor's report, section by section: each a function (weights_dir, bank_dir) -> lines (text or rich tables)
DOCTOR_SECTIONS: tuple[Callable[[Path | None, Path | None], list], ...] = (
    _weights_section, _detectors_section, _ffmpeg_section, _torch_section, _networks_section)


# ---------------------------------------------------------------- emotions

@click.command(cls=CmetCommand, short_help="List the preset emotions, their clip counts and strength.")
@click.option("--bank", "bank_dir", type=click.Path(path_type=Path),
              help="Preset bank folder (DIR/<emotion>/*.npy); default: the one `cmet download-weights` installs.")
@click.option("--weights-dir", type=click.Path(path_type=Path), envvar="CMET_WEIGHTS_DIR",
              help="Folder of checkpoints; its bank/ sub-folder is used when present (env CMET_WEIGHTS_DIR).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON on stdout.")
def emotions(bank_dir: Path | None, weights_dir: Path | None, as_json: bool) -> None:
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
    if rows and not any(row.installed for row in rows):  # the names are still listed: a warning, exit 0
        from .. import weights
        from ..report import say

        lock = weights.load_lock()
        say("warning", weights.missing_message(lock["bank"], weights.installed_path(lock["bank"])))
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
