"""What a run shows and writes: progress rows, one line per error and warning, JSON lines, the summary
table and the report file.

One ``Reporter`` serves the local runner and the Ray executor: both hand it each ``EditResult`` as it
finishes (``Reporter.result``) and feed it progress; neither prints anything itself. Errors and warnings
are one plain line each on stderr (``error: INPUT: message``), easy to grep in logs.
"""
from __future__ import annotations

import json
import os
import stat
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from . import atomic
from .errors import MediaError, one_line
from .results import EditResult
from .stages import Stage

if TYPE_CHECKING:
    from .batch import Ignored

STATUSES = ("done", "skipped", "failed")
UNFINISHED = ("interrupted", "pending")  # an interrupted run's inputs: being edited, not started
REPORT_VERSION = 1


def say(kind: str, text: str, console=None) -> None:
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
    """Rich progress bars: the files, and one row per stage of the file being edited (``Stage``), with
    frames/s and ETA.

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

    def file_done(self, *, keep: Sequence[Stage] = ()) -> None:
        """One more file finished: its stage rows go (except ``keep``: rows that span files, e.g. Ray's)."""
        with self.lock:
            self.progress.advance(self.files)
            for stage in [s for s in self.tasks if s is not Stage.LOAD_MODELS and s not in keep]:
                self.progress.remove_task(self.tasks.pop(stage))

    def describe(self, text: str) -> None:
        with self.lock:
            self.progress.update(self.files, description=text)

    def __enter__(self) -> "StageProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()


class Reporter:
    """Shows a run as it goes: the bars, each result's error and warnings, its JSON line, its strength line.

    ``quiet``: errors only (no bars, no warnings). ``as_json``: one JSON object per input on stdout (and no
    bars). ``verbose``: each output's expression change and vector norm, and internal errors' tracebacks.
    Thread-safe: the local runner's threads report their results here.
    """

    def __init__(self, console, total_files: int, *, quiet: bool = False, verbose: int = 0, as_json: bool = False,
                 show_progress: bool | None = None) -> None:
        self.quiet, self.verbose, self.as_json = quiet, verbose, as_json
        self.shows_progress = not (quiet or as_json) if show_progress is None else show_progress
        self.bars = StageProgress(console, total_files, disable=not self.shows_progress)
        self.finished: list[EditResult] = []  # in the order they finished (a report after an interrupt)
        self.in_progress: set[str] = set()  # inputs started and not finished (``started``)
        self.lock = threading.Lock()
        self._remote = False  # frames come from Ray workers: their row counts the run, not one file

    @property
    def console(self):
        return self.bars.console

    def __enter__(self) -> "Reporter":
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def __call__(self, stage: Stage, done: int, total: int) -> None:
        """The ``ProgressFn`` of the files edited in this process."""
        self.bars(stage, done, total)

    def say(self, kind: str, text: str) -> None:
        """An ``error``/``warning`` line (warnings are not shown with ``quiet``)."""
        if kind == "error" or not self.quiet:
            say(kind, text, self.console)

    def frames(self, done: int, total: int, workers: int) -> None:
        """Frames written across the files in flight on other processes (Ray workers)."""
        self._remote = True
        self.bars.describe(f"files (ray ×{workers})" if workers else "starting Ray workers")
        self.bars(Stage.WRITE_VIDEO, done, total)

    def started(self, input: str) -> None:
        """An input's edit began (so that an interrupted report can say which ones were cut short)."""
        with self.lock:
            self.in_progress.add(str(input))

    def result(self, result: EditResult) -> None:
        """One input finished (done, skipped or failed)."""
        with self.lock:
            self.in_progress.discard(str(result.input))
        if result.status == "failed":
            self.say("error", f"{result.input}: {result.error}")
            if self.verbose and result.traceback:
                print(result.traceback, file=sys.stderr, end="", flush=True)
        for warning in result.warnings:
            self.say("warning", f"{result.input}: {warning}")
        self.bars.file_done(keep=(Stage.WRITE_VIDEO,) if self._remote else ())
        with self.lock:  # threads of a --jobs run: one whole line each
            self.finished.append(result)
            if self.as_json:
                sys.stdout.write(json.dumps(result.as_dict()) + "\n")
                sys.stdout.flush()
        if self.verbose and result.status == "done":
            from rich.text import Text

            from .presets import strength_line

            self.console.print(Text(strength_line(result)), soft_wrap=True, highlight=False)

    def summary(self, results: Sequence[EditResult], ignored: Sequence[Ignored] = ()) -> None:
        """The closing table (not with ``quiet`` or ``as_json``)."""
        if not (self.quiet or self.as_json):
            summary(results, self.console, ignored)


# ---------------------------------------------------------------- the report file and the summary table

def unfinished(inputs: Sequence[tuple[str, str]], finished: Sequence[EditResult], in_progress: set[str]) -> list[EditResult]:
    """An interrupted run's rows, in input order: each finished result, then ``interrupted`` for the inputs being
    edited and ``pending`` for those not started. ``inputs``: every (input, output) of the run."""
    by_input = {r.input: r for r in finished}
    return [by_input.get(i) or EditResult(i, o, status="interrupted" if i in in_progress else "pending")
            for i, o in inputs]


def report_data(results: Iterable[EditResult], interrupted: bool = False, ignored: Sequence[Ignored] = ()) -> dict:
    rows = [r.as_dict() for r in results]
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES + (UNFINISHED if interrupted else ())}
    counts |= {"ignored": len(ignored)}
    return {"version": REPORT_VERSION, "interrupted": interrupted, "results": rows, "summary": counts,
            "ignored": [{"input": str(i.input), "reason": i.reason} for i in ignored]}


def _identities(path: Path) -> set:
    """What names the file at ``path``: the path with every link resolved, the directory entry itself, and the
    file (device, inode) where it exists (a hard link is the same file under another name)."""
    keys: set = {path.resolve(), path.parent.resolve() / path.name}
    try:
        found = path.stat()
    except OSError:
        return keys
    return keys | {(found.st_dev, found.st_ino)}


def writes_through(path: Path) -> bool:
    """Whether ``path`` is a FIFO or a character device (``/dev/null``, a terminal): the report is written into
    it, not renamed over it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def check_report_path(path: Path, inputs: Sequence[Path] = (), outputs: Sequence[Path] = ()) -> None:
    """That the report can be written to ``path`` (before any model loads): a ``UsageError`` if it names a
    folder, an input or an output of the run (the same file, through links too), an existing entry that is
    neither a regular file nor a FIFO or character device (a socket), or lies in a folder where no file can be
    created. A FIFO or character device is written into (``--report /dev/null`` discards it)."""
    from .errors import UsageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--report {path} is a folder: name the report file (e.g. {path / 'report.json'})")
    mine = _identities(path)
    for role, paths in (("input", inputs), ("output", outputs)):
        same = next((p for p in paths if mine & _identities(Path(p))), None)
        if same is not None:
            raise UsageError(f"--report {path} is the {role} {same} of this run: the report would replace it; "
                             "choose another path")
    if writes_through(path):
        if not os.access(path, os.W_OK):
            raise UsageError(f"--report {path}: cannot be written: permission denied")
        return
    if os.path.exists(path) and not path.is_file():
        from .media.probing import FILE_KINDS

        kind = next((name for test, name in FILE_KINDS if test(path.stat().st_mode)), "not a regular file")
        raise UsageError(f"--report {path} is {kind}: name a regular file, a FIFO or a character device")
    try:
        atomic.check_writable(path.parent)
    except MediaError as exc:
        raise UsageError(f"--report {path}: cannot be written: {exc}") from None


def write_report(path: Path, results: Iterable[EditResult], interrupted: bool = False,
                 ignored: Sequence[Ignored] = ()) -> None:
    """The machine-readable report, written atomically (``atomic.write_file``; a previous report is replaced),
    or into a FIFO or character device (``writes_through``), which is never replaced."""
    path = Path(path)
    data = (json.dumps(report_data(results, interrupted, ignored), indent=2) + "\n").encode()
    if writes_through(path):
        try:
            _write_into(path, data)
        except OSError as exc:
            raise MediaError(f"cannot write the report {path}: {exc.strerror or exc}") from None
        return
    if path.parent.exists() and not path.parent.is_dir():
        raise MediaError(f"cannot write the report {path}: {path.parent} is not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_file(path, data, overwrite=True)
    except OSError as exc:
        raise MediaError(f"cannot write the report {path}: {exc.strerror or exc}") from None
    except MediaError as exc:
        raise MediaError(f"cannot write the report {path}: {str(exc).removeprefix(f'{path}: ')}") from None


def _write_into(path: Path, data: bytes) -> None:
    """``data`` written into an existing FIFO or device (opened without creating or truncating anything)."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def summary(results: Sequence[EditResult], console, ignored: Sequence[Ignored] = ()) -> None:
    """The table of every input (and ignored file), never wrapped in a pipe or a log."""
    from rich.table import Table
    from rich.text import Text

    from .terminal import table_console

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
    table_console(console).print(table)
