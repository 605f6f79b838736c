"""Many inputs in one run: which files, where their outputs go, resume, per-file status and the report.

Models load once per run. One failing input never stops the others; outputs are written atomically
(``pipeline.run_edit``), so an output under its final name is complete, and a re-run skips it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from . import media
from .errors import CmetError, MediaError, UsageError
from .pipeline import EditOptions, EditResult, Editor

log = logging.getLogger("cmet")

OUTPUT_SUFFIX = ".mp4"
SKIP_SUFFIXES = {".txt", ".json", ".md", ".csv", ".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac",
                 ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".npy", ".part"}


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path


def _videos_in(folder: Path, recursive: bool) -> list[Path]:
    """Files in a folder that probe as videos (by content, not by extension alone), sorted."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    found = []
    for path in sorted(pattern):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() in SKIP_SUFFIXES:
            continue
        if media.is_video(path):
            found.append(path)
    return found


def plan(inputs: Sequence[Path], output: Path, *, recursive: bool = False) -> list[Job]:
    """Pair every input video with its output path; a folder keeps its relative layout under ``output``."""
    inputs = [Path(p) for p in inputs]
    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    if single_file and not (output.is_dir() or output.suffix == ""):
        return [Job(inputs[0], output)]
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} is a file: with several inputs or a folder, -o must be a folder")
    jobs: list[Job] = []
    for item in inputs:
        if item.is_dir():
            videos = _videos_in(item, recursive)
            if not videos:
                raise UsageError(f"{item}: no videos found" + ("" if recursive else " (use --recursive for sub-folders)"))
            jobs += [Job(v, (output / v.relative_to(item)).with_suffix(OUTPUT_SUFFIX)) for v in videos]
        else:
            jobs.append(Job(item, output / (item.stem + OUTPUT_SUFFIX)))
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.output in seen:
            raise UsageError(f"{seen[job.output]} and {job.input} would both be written to {job.output}")
        seen[job.output] = job.input
    return jobs


def is_complete(path: Path) -> bool:
    """An output under its final name is complete (written atomically) if it probes as a video."""
    try:
        return media.probe(path).frame_count > 0
    except CmetError:
        return False


class StageProgress:
    """Rich progress bars, one per stage of the current file, with frames/s and ETA."""

    STAGES = ("load models", "track faces", "encode", "transfer", "render", "write")

    def __init__(self, console, total_files: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task) -> Text:
                return Text(f"{task.speed:5.1f}/s" if task.speed else "")

        self.progress = Progress(TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), Rate(),
                                 TimeRemainingColumn(), console=console, transient=True)
        self.files = self.progress.add_task("files", total=total_files)
        self.tasks: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self.lock:
            if stage not in self.tasks:
                self.tasks[stage] = self.progress.add_task(stage, total=total)
            self.progress.update(self.tasks[stage], completed=done, total=total)

    def file_done(self) -> None:
        with self.lock:
            self.progress.advance(self.files)
            for stage, task in self.tasks.items():
                if stage != "load models":
                    self.progress.reset(task)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()


def edit_one(editor: Editor, job: Job, overwrite: bool, verbose: int = 0) -> EditResult:
    """Edit one file; every failure becomes a ``failed`` result with a one-line message."""
    result = EditResult(str(job.input), str(job.output))
    started = time.perf_counter()
    try:
        if job.output.exists() and not overwrite:
            if job.output.resolve() == job.input.resolve():
                raise UsageError(f"{job.output}: the output would overwrite the input")
            if is_complete(job.output):
                result.status = "skipped"
                return result
            raise MediaError(f"{job.output} exists but is not a complete video: remove it or pass --overwrite")
        result = editor.edit(job.input, job.output)
    except CmetError as exc:
        result.status, result.error = "failed", str(exc)
    except OSError as exc:
        where = exc.filename or job.output
        result.status, result.error = "failed", f"{where}: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - one input must never stop the others
        result.status, result.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
        if verbose:
            traceback.print_exc()
    result.seconds = result.seconds or (time.perf_counter() - started)
    if result.status == "failed":
        log.error("%s: %s", job.input, result.error)
    for warning in result.warnings:
        log.warning("%s: %s", job.input, warning)
    return result


def run(jobs: Sequence[Job], options: EditOptions, *, jobs_at_once: int = 1, quiet: bool = False, verbose: int = 0,
        on_result: Callable[[EditResult], None] | None = None, editor: Editor | None = None) -> list[EditResult]:
    """Edit every job (models loaded once); ``jobs_at_once`` files in parallel on the CPU."""
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    with StageProgress(console, len(jobs)) as progress:
        editor = editor or Editor(options, progress=None if quiet else progress)
        pending = [j for j in jobs if options.overwrite or not j.output.exists()]
        if pending:
            try:
                editor.load()
            except CmetError as exc:  # models missing: every input fails with the same clear message
                results = [EditResult(str(j.input), str(j.output), status="failed", error=str(exc)) for j in jobs]
                for r in results:
                    log.error("%s: %s", r.input, r.error)
                    on_result and on_result(r)
                return results

        def one(job: Job) -> EditResult:
            result = edit_one(editor, job, options.overwrite, verbose)
            progress.file_done()
            if on_result:
                on_result(result)
            return result

        if jobs_at_once <= 1 or (editor.models is not None and editor.models.device.type != "cpu"):
            return [one(j) for j in jobs]
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs_at_once))
        with ThreadPoolExecutor(max_workers=jobs_at_once) as pool:
            return list(pool.map(one, jobs))


def write_report(path: Path, results: Iterable[EditResult]) -> None:
    """The machine-readable report, written atomically."""
    rows = [{k: v for k, v in r.as_dict().items()} for r in results]
    data = {"version": 1, "results": rows,
            "summary": {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}}
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def summary(results: Sequence[EditResult], console) -> None:
    from rich.table import Table

    table = Table(title="cmet edit")
    for col in ("input", "status", "frames", "seconds", "output / error"):
        table.add_column(col)
    style = {"done": "green", "skipped": "yellow", "failed": "red"}
    for r in results:
        table.add_row(r.input, f"[{style[r.status]}]{r.status}[/]", str(r.frames or "-"), f"{r.seconds:.1f}",
                      r.error if r.status == "failed" else r.output)
    console.print(table)
