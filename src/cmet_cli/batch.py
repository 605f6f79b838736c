"""Many inputs in one run: which files, where their outputs go, resume, per-file status and the report.

Models load once per run. One failing input never stops the others; outputs are written atomically
(``stream.run_edit``: a hidden temporary file renamed into place), so a file under its final name is
complete, and a re-run skips it once it has checked that it holds every frame of its input and was made
from this input with these settings (``fingerprint``); an output made otherwise fails that input.
Errors and warnings are one plain line each on stderr (``error: INPUT: message``), easy to grep in logs.
"""
from __future__ import annotations

import copy
import json
import os
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from . import atomic, fingerprint, media, pipeline
from .errors import CmetError, MediaError, UsageError, one_line
from .options import EditOptions, Preset
from .pipeline import EditResult, Editor
from .stages import CancelToken, Stage

OUTPUT_SUFFIX = ".mp4"
SKIP_SUFFIXES = {".txt", ".json", ".md", ".csv", ".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac",
                 ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".npy"}
STATUSES = ("done", "skipped", "failed")
REPORT_VERSION = 1


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path


@dataclass(frozen=True)
class Ignored:
    """A file of an input folder that is not a video (listed in the summary and the report)."""

    input: Path
    reason: str


@dataclass(frozen=True)
class Plan:
    jobs: list[Job]
    ignored: list[Ignored]


# ---------------------------------------------------------------- planning

def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and folder.resolve() in path.resolve().parents


def _classify(path: Path) -> str | None:
    """None: a video to edit, or a file that says it is one (by extension or signature) and must then fail
    on its own if it does not decode; else why the file is ignored."""
    if not path.is_file():
        return "not a regular file"
    if path.suffix.lower() in SKIP_SUFFIXES:
        return f"not a video ({path.suffix.lower()})"
    if media.is_video(path) or media.looks_like_video(path):
        return None
    return "not a video"


def _scan_folder(folder: Path, recursive: bool, exclude: Path | None = None) -> tuple[list[Path], list[Ignored]]:
    """A folder's videos (found by probing, not by extension alone) and its other files, sorted.

    Hidden folders, our own temporary files and anything under ``exclude`` (the output folder, when it sits
    inside the input folder) are left out.
    """
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    found, ignored = [], []
    for path in sorted(pattern):
        if path.is_dir() or atomic.is_temp_name(path.name):
            continue
        if _inside(path, exclude) or any(part.startswith(".") for part in path.relative_to(folder).parts[:-1]):
            continue
        reason = _classify(path)
        if reason is None:
            found.append(path)
        else:
            ignored.append(Ignored(path, reason))
    return found, ignored


def _where(path: Path) -> Path:
    """The directory entry a path names (a final symbolic link is not followed: a rename replaces the link)."""
    return path.parent.resolve() / path.name


def _check_jobs(jobs: Sequence[Job]) -> None:
    """Refuse outputs that collide with each other, replace an input, or have a type we cannot write."""
    inputs = {j.input.resolve(): j.input for j in jobs} | {_where(j.input): j.input for j in jobs}
    seen: dict[Path, Path] = {}
    for job in jobs:
        try:
            media.output_format(job.output)
        except MediaError as exc:
            raise UsageError(str(exc)) from None
        target = _where(job.output)
        if target in inputs:
            raise UsageError(f"{job.output}: the output would overwrite the input {inputs[target]}; choose another -o")
        if target in seen:
            raise UsageError(f"{seen[target]} and {job.input} would both be written to {job.output}")
        seen[target] = job.input


def scan(inputs: Sequence[Path], output: Path, *, recursive: bool = False) -> Plan:
    """Pair every input video with its output path; a folder keeps its relative layout under ``output``.

    One input file and an ``output`` with a suffix (not an existing folder): that file. Otherwise
    ``output`` is a folder; an input that does not exist stays in the plan and fails on its own, as does
    a folder's file that looks like a video (extension, signature) but does not decode. A folder's other
    files are ``ignored``.
    """
    inputs = [Path(p) for p in inputs]
    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    if single_file and not (output.is_dir() or output.suffix == ""):
        jobs = [Job(inputs[0], output)]
        _check_jobs(jobs)
        return Plan(jobs, [])
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} is a file: with several inputs or a folder, -o must be a folder")
    if output.suffix.lower() in media.FORMAT_BY_SUFFIX and not output.is_dir():
        why = "the input is a folder" if any(p.is_dir() for p in inputs) else "there are several inputs"
        raise UsageError(f"-o must be a folder when {why}, not a video file name ({output})")
    jobs: list[Job] = []
    ignored: list[Ignored] = []
    for item in inputs:
        if item.is_dir():
            videos, others = _scan_folder(item, recursive, exclude=output)
            if not videos:
                raise UsageError(f"{item}: no videos found" + ("" if recursive else " (--recursive looks in sub-folders)"))
            jobs += [Job(v, (output / v.relative_to(item)).with_suffix(OUTPUT_SUFFIX)) for v in videos]
            ignored += others
        else:
            jobs.append(Job(item, output / (item.stem + OUTPUT_SUFFIX)))
    _check_jobs(jobs)
    return Plan(jobs, ignored)


def plan(inputs: Sequence[Path], output: Path, *, recursive: bool = False) -> list[Job]:
    """The jobs of ``scan``."""
    return scan(inputs, output, recursive=recursive).jobs


# ---------------------------------------------------------------- checks before loading models

def complete_frames(job: Job) -> int | None:
    """The frame count of ``job.output`` if it is a finished edit of ``job.input`` (a video holding every
    one of its frames), else None.

    Outputs only appear under their final name once complete, so this guards against files from
    elsewhere (a copy cut short, an unrelated file of the same name), not against our own runs.
    """
    try:
        done = media.probe(job.output).frame_count
        source = media.probe(job.input)
        if done != source.frame_count:  # a stream-copied cut has more packets than frames that show
            source = replace(source, frame_count=media.count_frames(source))
    except CmetError:
        return None
    return done if done == source.frame_count > 0 else None


def _bank_names(options: EditOptions) -> set[str] | None:
    """The preset names of the bank this run would use, or None when the bank cannot be found yet."""
    from . import weights

    try:
        folder = weights.bank_folder(options.bank_dir, options.weights_dir, verify=False)
    except CmetError:
        return None
    if not folder.is_dir():
        return None
    return {p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.npy"))}


def check_presets(options: EditOptions) -> None:
    """An unknown preset name is a usage error, found before any model loads."""
    from .presets import PRESETS

    names = [cue.emotion.name for cue in options.cues() if isinstance(cue.emotion, Preset)]
    if not names:
        return
    known = _bank_names(options) or set(PRESETS)
    for name in names:
        if name not in known:
            raise UsageError(f"unknown emotion preset {name!r}; valid names: {', '.join(sorted(known))} (see `cmet emotions`)")


def check_speech(options: EditOptions) -> None:
    """Decode every speech clip of the run (cheap) so that a bad one fails before the models load."""
    from .speech import load_speech

    for clip in options.speech_clips():
        load_speech(clip)


# ---------------------------------------------------------------- messages and progress

def _say(kind: str, text: str, console=None) -> None:
    """One plain line on stderr (never wrapped: scripts grep their logs; a newline in a file name is escaped).

    ``console``: the console of the live progress bars, which prints the line above them.
    """
    line = f"{kind}: {one_line(text)}"
    if console is None:
        print(line, file=sys.stderr, flush=True)
        return
    from rich.text import Text

    console.print(Text(line), soft_wrap=True, highlight=False)


class StageProgress:
    """Rich progress bars, one per stage of the current file (``Stage``), with frames/s and ETA.

    A row goes as soon as its stage is over for the run (``load models``) or the file (the others):
    only what is still running stays on screen. ``disable``: no bars (the console still prints).
    """

    def __init__(self, console, total_files: int, *, disable: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task) -> Text:
                return Text(f"{task.speed:5.1f}/s" if task.speed else "")

        self.progress = Progress(TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), Rate(),
                                 TimeRemainingColumn(), console=console, transient=True, disable=disable)
        self.files = self.progress.add_task("files", total=total_files)
        self.tasks: dict[Stage, int] = {}
        self.lock = threading.Lock()

    @property
    def console(self):
        return self.progress.console

    def rows(self) -> list[str]:
        """The labels of the rows on screen (for tests)."""
        with self.lock:
            return [task.description for task in self.progress.tasks]

    def __call__(self, stage: Stage, done: int, total: int) -> None:
        stage = Stage(stage)
        with self.lock:
            if stage not in self.tasks:
                self.tasks[stage] = self.progress.add_task(stage.value, total=total)
            self.progress.update(self.tasks[stage], completed=done, total=total)
            if stage is Stage.LOAD_MODELS and done >= total:  # once per run: gone when done
                self.progress.remove_task(self.tasks.pop(stage))

    def file_done(self) -> None:
        with self.lock:
            self.progress.advance(self.files)
            for stage in [s for s in self.tasks if s is not Stage.LOAD_MODELS]:
                self.progress.remove_task(self.tasks.pop(stage))

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()


# ---------------------------------------------------------------- one file

def _message(exc: BaseException, job: Job) -> str:
    """A one-line message about ``job.input`` (which the caller names: the message does not repeat it); our
    hidden temporary file is named by the output it stands for."""
    if isinstance(exc, CmetError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = f"{exc.filename or job.output}: {exc.strerror or exc}"
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    text = atomic.hide_temp_names(text, job.output)
    for name in (str(job.input), str(job.input.absolute())):
        if text.startswith(f"{name}: "):
            text = text[len(name) + 2:]
    return one_line(text.strip())


def preflight(job: Job, options: EditOptions) -> None:
    """Everything that can be checked about a job before models load: the input probes as a complete
    video (``pipeline.check_input``), and a file can be created in the output folder."""
    info = media.probe(job.input)
    pipeline.check_input(info, options)
    atomic.check_writable(job.output.parent)


def edit_one(editor: Editor, job: Job, overwrite: bool, verbose: int = 0, quiet: bool = False,
             console=None) -> EditResult:
    """Edit one file; every failure becomes a ``failed`` result with a one-line message (printed on ``console``)."""
    result = EditResult(str(job.input), str(job.output))
    started = time.perf_counter()
    try:
        atomic.remove_stale(job.output)  # what a killed run (SIGKILL, power loss) left
        if job.output.exists() and not overwrite:
            frames = complete_frames(job)
            if frames is None:
                raise MediaError(f"{job.output} exists but is not a complete edit of {job.input}: "
                                 "remove it or pass --overwrite")
            reason = fingerprint.verdict(job.output, job.input, fingerprint.parse(media.container_tags(job.output).get(
                fingerprint.TAG)), editor.stamp(job.input))
            if reason is not None:
                raise MediaError(reason)
            result.status, result.frames = "skipped", frames
        else:
            result = editor.edit(job.input, job.output)
    except Exception as exc:  # noqa: BLE001 - one input must never stop the others
        result.status, result.error = "failed", _message(exc, job)
        if verbose and not isinstance(exc, CmetError):
            traceback.print_exc()
    result.seconds = result.seconds or (time.perf_counter() - started)
    if result.status == "failed":
        _say("error", f"{job.input}: {result.error}", console)
    if not quiet:
        for warning in result.warnings:
            _say("warning", f"{job.input}: {warning}", console)
    return result


# ---------------------------------------------------------------- the run

def _needs_models(job: Job, overwrite: bool) -> bool:
    return job.input.exists() and (overwrite or not job.output.exists())


class _PerThread:
    """An editor per worker thread: the models and emotion plan are shared, the face detector is not
    (OpenCV's cascade classifier must not be used from two threads at once)."""

    def __init__(self, editor: Editor) -> None:
        self.editor = editor
        self.local = threading.local()

    def get(self) -> Editor:
        if not hasattr(self.local, "editor"):
            clone = copy.copy(self.editor)
            clone._detector = None
            self.local.editor = clone
        return self.local.editor


def _in_parallel(one: Callable[[Job, Editor], EditResult], jobs: Sequence[Job], editors: _PerThread,
                 workers: int, cancel: CancelToken) -> list[EditResult]:
    """``workers`` files at once on the CPU; on an interrupt every unfinished file is abandoned and cleaned up."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cmet-edit")
    try:
        futures = [pool.submit(lambda j=job: one(j, editors.get())) for job in jobs]
        return [f.result() for f in futures]
    except BaseException:
        cancel.cancel()  # running edits stop at their next chunk and remove their temporary files
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        torch.set_num_threads(threads)


def run(jobs: Sequence[Job], options: EditOptions, *, jobs_at_once: int = 1, quiet: bool = False, verbose: int = 0,
        on_result: Callable[[EditResult], None] | None = None, editor: Editor | None = None,
        show_progress: bool | None = None, console=None, cancel: CancelToken | None = None) -> list[EditResult]:
    """Edit every job (models loaded once, only when some input needs them); results in job order.

    ``jobs_at_once`` files in parallel on the CPU; on a GPU files run one after another. A model or
    speech clip that cannot be loaded fails every input that needed it, with the same message;
    a ``UsageError`` (e.g. an unavailable ``--device``) is raised. ``console``: the rich console of the
    bars; give the one the log handler writes to, so that log lines print above the bars. ``cancel``: the
    run's token (a fresh one by default; a given ``editor`` is handed it), cancelled on an interrupt.
    """
    from rich.console import Console

    cancel = cancel or CancelToken()
    show = (not quiet) if show_progress is None else show_progress
    console = console or Console(stderr=True)
    rejected = check_inputs(jobs, options)  # before any model loads: a batch of bad files fails in a second
    with StageProgress(console, len(jobs), disable=not show) as progress:
        editor = editor or Editor(options, progress=progress if show else None, cancel=cancel)
        editor.cancel = cancel  # an interrupt of an earlier run with this editor must not stop this one
        load_error: str | None = None
        if any(_needs_models(j, options.overwrite) and j not in rejected for j in jobs):
            try:
                check_speech(options)
                editor.load()
            except UsageError:
                raise
            except CmetError as exc:  # models missing, a bad speech clip: every input that needs them fails
                load_error = one_line(str(exc))

        def one(job: Job, worker: Editor) -> EditResult:
            if job in rejected:
                result = EditResult(str(job.input), str(job.output), status="failed", error=rejected[job])
                _say("error", f"{job.input}: {rejected[job]}", console)
            elif load_error and _needs_models(job, options.overwrite):
                result = EditResult(str(job.input), str(job.output), status="failed", error=load_error)
                _say("error", f"{job.input}: {load_error}", console)
            else:
                result = edit_one(worker, job, options.overwrite, verbose, quiet, console)
            progress.file_done()
            if on_result:
                on_result(result)
            return result

        on_gpu = editor.models is not None and getattr(editor.models.device, "type", "cpu") != "cpu"
        if jobs_at_once <= 1 or len(jobs) <= 1 or on_gpu or load_error:
            return [one(j, editor) for j in jobs]
        return _in_parallel(one, jobs, _PerThread(editor), min(jobs_at_once, len(jobs)), cancel)


def check_inputs(jobs: Sequence[Job], options: EditOptions) -> dict[Job, str]:
    """``preflight`` for every job that will be edited: the one-line message of each that cannot be.
    A ``UsageError`` (``--box`` outside a frame) is raised: the option, not the file, is wrong."""
    rejected: dict[Job, str] = {}
    for job in jobs:
        if not (options.overwrite or not job.output.exists()):
            continue  # skipped or refused on its own, without models
        try:
            preflight(job, options)
        except UsageError:
            raise
        except CmetError as exc:
            rejected[job] = _message(exc, job)
    return rejected


def clean_up(jobs: Sequence[Job]) -> None:
    """After an interrupt: end this process's encoders, then remove its temporary files of every output (what
    an interrupt at an unlucky moment, e.g. while an encoder started, left behind)."""
    media.stop_writers()
    for job in jobs:
        atomic.remove_temp_files(job.output, os.getpid(), socket.gethostname())


# ---------------------------------------------------------------- report and summary

def report_data(results: Iterable[EditResult], interrupted: bool = False, ignored: Sequence[Ignored] = ()) -> dict:
    rows = [r.as_dict() for r in results]
    summary = {s: sum(r["status"] == s for r in rows) for s in STATUSES} | {"ignored": len(ignored)}
    return {"version": REPORT_VERSION, "interrupted": interrupted, "results": rows, "summary": summary,
            "ignored": [{"input": str(i.input), "reason": i.reason} for i in ignored]}


def write_report(path: Path, results: Iterable[EditResult], interrupted: bool = False,
                 ignored: Sequence[Ignored] = ()) -> None:
    """The machine-readable report, written atomically (``atomic.write_file``; a previous report is replaced)."""
    path = Path(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise MediaError(f"cannot write the report {path}: {path.parent} is not a folder")
    data = (json.dumps(report_data(results, interrupted, ignored), indent=2) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_file(path, data, overwrite=True)
    except OSError as exc:
        raise MediaError(f"cannot write the report {path}: {exc.strerror or exc}") from None
    except MediaError as exc:
        raise MediaError(f"cannot write the report {path}: {str(exc).removeprefix(f'{path}: ')}") from None


def summary(results: Sequence[EditResult], console, ignored: Sequence[Ignored] = ()) -> None:
    from rich.table import Table
    from rich.text import Text

    counts = {s: sum(r.status == s for r in results) for s in STATUSES} | {"ignored": len(ignored)}
    table = Table(title="cmet edit", caption=", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "ignored"))
    for col in ("input", "status", "frames", "seconds", "output / error"):
        table.add_column(col)
    style = {"done": "green", "skipped": "yellow", "failed": "red"}
    for r in results:  # Text, not markup: file names may hold brackets
        table.add_row(Text(one_line(r.input)), Text(r.status, style=style[r.status]), str(r.frames or "-"),
                      f"{r.seconds:.1f}", Text(one_line(r.error or "" if r.status == "failed" else r.output)))
    for i in ignored:
        table.add_row(Text(one_line(str(i.input))), Text("ignored", style="dim"), "-", "-", Text(i.reason))
    from .terminal import table_console

    table_console(console).print(table)  # in a pipe or a log: never wrapped at 80 columns
