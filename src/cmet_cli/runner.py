"""Edit files the same way everywhere: ``prepare`` once, then ``edit_one`` per file.

The local runner (``run``, optionally several files at once in threads) and every Ray worker
(``distributed``) call these two functions; neither prints. ``edit_one`` turns every failure of one
input into a ``failed`` result with a one-line message, so that one input never stops the others;
the caller hands each result to a ``report.Reporter``.

Models load once per run, and only when some input needs them. A re-run skips an output that holds
every frame of its input and was made from this input with these settings (``fingerprint``); an
output made otherwise fails that input.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Sequence

from . import atomic, fingerprint, media, pipeline
from .batch import Job
from .errors import CmetError, MediaError, UsageError, one_line
from .options import EditOptions
from .pipeline import EditResult, Editor
from .stages import CancelToken, ProgressFn

if TYPE_CHECKING:
    from .models import Models
    from .report import Reporter
    from .emotion import Plans
    from .timeline import Keyframe

LoadModels = Callable[[EditOptions], "Models"]  # how a run gets its networks (default: ``models.load_models``)


@dataclass
class Prepared:
    """A run ready to edit: the editor (models loaded if any file needs them) and what is known to fail."""

    editor: Editor
    rejected: dict[Job, str] = field(default_factory=dict)  # inputs that cannot be edited, with why
    load_error: str | None = None  # the models or a speech clip could not be loaded: every file needing them fails

    @property
    def overwrite(self) -> bool:
        return self.editor.options.overwrite


def needs_models(job: Job, overwrite: bool) -> bool:
    """Whether editing ``job`` needs the networks (not for a missing input or an output to skip)."""
    return job.input.exists() and (overwrite or not job.output.exists())


# ---------------------------------------------------------------- checks before models load

def preflight(job: Job, options: EditOptions) -> None:
    """Everything that can be checked about a job before models load: the input probes as a complete
    video (``pipeline.check_input``), and a file can be created in the output folder."""
    info = media.probe(job.input)
    pipeline.check_input(info, options)
    atomic.check_writable(job.output.parent)


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
            rejected[job] = message(exc, job)
    return rejected


def check_speech(options: EditOptions) -> None:
    """Decode every speech clip of the run (cheap; the plan reuses the decode) so that a bad one fails
    before the models load: a ``UsageError``, as a missing clip is (the emotion source, not an input, is wrong)."""
    from .speech import load_speech

    for clip in options.speech_clips():
        try:
            load_speech(clip)
        except CmetError as exc:
            raise UsageError(str(exc)) from None


def message(exc: BaseException, job: Job) -> str:
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


# ---------------------------------------------------------------- prepare, edit one

def prepare(options: EditOptions, jobs: Sequence[Job], *, editor: Editor | None = None,
            load_models: LoadModels | None = None, plan: Plans | list[Keyframe] | None = None, settings: str | None = None,
            progress: ProgressFn | None = None, cancel: CancelToken | None = None, check: bool = True) -> Prepared:
    """Check the inputs (``check``), build the editor and load the models if some file needs them.

    ``load_models``: how to get the networks (tests share loaded ones between runs); ``plan``, ``settings``: the
    emotion plan and settings hash made elsewhere (a Ray worker gets the driver's: see ``pipeline.Editor``). A model or speech clip that cannot be loaded becomes ``load_error`` (every file that
    needs the models then fails with it); a ``UsageError`` (e.g. an unavailable ``--device``) is raised.
    """
    rejected = check_inputs(jobs, options) if check else {}
    if editor is None:
        editor = Editor(options, load_models=load_models, plan=plan, settings=settings, progress=progress,
                        cancel=cancel)
    elif cancel is not None:
        editor.cancel = cancel  # an interrupt of an earlier run with this editor must not stop this one
    prepared = Prepared(editor, rejected)
    if any(needs_models(j, options.overwrite) and j not in rejected for j in jobs):
        try:
            if editor.plan is None:
                check_speech(options)
            editor.load()
        except UsageError:
            raise
        except CmetError as exc:
            prepared.load_error = one_line(str(exc))
    return prepared


def edit_one(prepared: Prepared, job: Job, editor: Editor | None = None) -> EditResult:
    """Edit (or skip) one file; never raises for the file's own failure, never prints.

    ``editor``: this thread's copy of ``prepared.editor`` (``Editor.for_thread``).
    """
    if job in prepared.rejected:
        return failed(job, prepared.rejected[job])
    if prepared.load_error and needs_models(job, prepared.overwrite):
        return failed(job, prepared.load_error)
    editor = editor or prepared.editor
    result = EditResult(str(job.input), str(job.output))
    started = time.perf_counter()
    try:
        atomic.remove_stale(job.output)  # what a killed run (SIGKILL, power loss) left
        if job.output.exists() and not prepared.overwrite:
            result.status, result.frames = "skipped", _resumable(editor, job)
        else:
            result = editor.edit(job.input, job.output)
    except Exception as exc:  # noqa: BLE001 - one input must never stop the others
        result.status, result.error = "failed", message(exc, job)
        if not isinstance(exc, CmetError):
            result.traceback = traceback.format_exc()
    result.seconds = result.seconds or (time.perf_counter() - started)
    return result


def failed(job: Job, error: str) -> EditResult:
    """The result of a job that failed before (or instead of) its edit."""
    return EditResult(str(job.input), str(job.output), status="failed", error=error)


def _resumable(editor: Editor, job: Job) -> int:
    """The frame count of an existing output that this run would make the same way; else a MediaError."""
    frames = complete_frames(job)
    if frames is None:
        raise MediaError(f"{job.output} exists but is not a complete edit of {job.input}: remove it or pass --overwrite")
    tags = media.container_tags(job.output)
    reason = fingerprint.verdict(job.output, job.input, fingerprint.parse(tags.get(fingerprint.TAG)),
                                 editor.stamp(job.input))
    if reason is not None:
        raise MediaError(reason)
    return frames


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


# ---------------------------------------------------------------- the local runner

def run(jobs: Sequence[Job], options: EditOptions, *, reporter: Reporter | None = None, jobs_at_once: int = 1,
        editor: Editor | None = None, load_models: LoadModels | None = None,
        cancel: CancelToken | None = None) -> list[EditResult]:
    """Edit every job on this machine; results in job order, each also handed to ``reporter`` as it finishes.

    ``jobs_at_once`` files in parallel on the CPU; on a GPU files run one after another. ``load_models``: see
    ``prepare``. ``cancel``: the run's token (a fresh one by default),
    cancelled on an interrupt. Raises ``UsageError`` like ``prepare``.
    """
    progress = reporter if reporter is not None and reporter.shows_progress else None  # no per-chunk calls for nothing
    prepared = prepare(options, jobs, editor=editor, load_models=load_models, progress=progress,
                       cancel=cancel or CancelToken())

    def one(job: Job, worker: Editor | None = None) -> EditResult:
        if reporter is not None:
            reporter.started(str(job.input))
        result = edit_one(prepared, job, worker)
        if reporter is not None:
            reporter.result(result)
        return result

    if jobs_at_once <= 1 or len(jobs) <= 1 or prepared.editor.on_gpu or prepared.load_error:
        return [one(j) for j in jobs]
    return _in_parallel(one, jobs, prepared.editor, min(jobs_at_once, len(jobs)))


def _in_parallel(one: Callable[[Job, Editor], EditResult], jobs: Sequence[Job], editor: Editor,
                 workers: int) -> list[EditResult]:
    """``workers`` files at once on the CPU, each thread with its own ``Editor.for_thread`` copy; on an
    interrupt every unfinished file is abandoned and cleaned up."""
    import torch

    local = threading.local()

    def mine() -> Editor:
        if not hasattr(local, "editor"):
            local.editor = editor.for_thread()
        return local.editor

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cmet-edit")
    try:
        futures = [pool.submit(lambda j=job: one(j, mine())) for job in jobs]
        return [_result(f) for f in futures]
    except BaseException:
        editor.cancel.cancel()  # running edits stop at their next chunk and remove their temporary files
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        torch.set_num_threads(threads)


def _result(future: Future, poll: float = 0.2):
    """``future.result()``, waited for in slices of ``poll`` seconds. The kernel may hand SIGTERM to any thread
    (a busy encoder or torch thread, say); CPython then runs the handler only when the main thread next runs
    Python code, and a plain wait there would not wake until the whole file was done."""
    while not future.done():
        wait([future], timeout=poll)
    return future.result()


def clean_up(jobs: Sequence[Job]) -> None:
    """After an interrupt: end this process's encoders, then remove its temporary files of every output (what
    an interrupt at an unlucky moment, e.g. while an encoder started, left behind)."""
    media.stop_writers()
    for job in jobs:
        atomic.remove_temp_files(job.output, os.getpid(), socket.gethostname())
