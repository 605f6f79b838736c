"""Many inputs in one run: which files are videos and where their outputs go (``scan``).

Running the jobs is ``runner``'s (this machine) or ``distributed``'s (a Ray cluster); showing and
reporting them is ``report``'s.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import atomic, media
from .errors import MediaError, UsageError

OUTPUT_SUFFIX = ".mp4"
SKIP_SUFFIXES = {".txt", ".json", ".md", ".csv", ".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac",
                 ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".npy"}


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

    Hidden folders and our own temporary files are left out; the files under ``exclude`` (the output folder,
    when it sits inside the input folder: earlier outputs) are ignored, and listed as such.
    """
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    found, ignored = [], []
    for path in sorted(pattern):
        if path.is_dir() or atomic.is_temp_name(path.name):
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts[:-1]):
            continue
        reason = "inside the output folder" if _inside(path, exclude) else _classify(path)
        if reason is None:
            found.append(path)
        else:
            ignored.append(Ignored(path, reason))
    return found, ignored


def _where(path: Path) -> Path:
    """The directory entry a path names (a final symbolic link is not followed: a rename replaces the link)."""
    return path.parent.resolve() / path.name


def output_suffix(path: Path, fmt: str | None = None) -> str:
    """The suffix of ``path``'s output in a folder: ``fmt`` (``mp4``, ``mov``, ``mkv``) when given, else the
    input's own where cmet can write it (``.mp4``, ``.m4v``, ``.mov``, ``.mkv``), else ``.mp4``."""
    if fmt:
        return "." + fmt
    suffix = path.suffix.lower()
    return path.suffix if suffix in media.FORMAT_BY_SUFFIX else OUTPUT_SUFFIX


def _names(paths: Sequence[Path]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = [str(p) for p in paths]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _check_jobs(jobs: Sequence[Job]) -> None:
    """Refuse outputs that collide with each other (naming every input that would), replace an input, or have
    a type we cannot write."""
    inputs = {j.input.resolve(): j.input for j in jobs} | {_where(j.input): j.input for j in jobs}
    by_target: dict[Path, list[Job]] = {}
    for job in jobs:
        try:
            media.output_format(job.output)
        except MediaError as exc:
            raise UsageError(str(exc)) from None
        target = _where(job.output)
        linked = job.output.resolve() if job.output.is_symlink() else target  # a link to an input names it too
        if target in inputs or linked in inputs:
            named = inputs.get(target, inputs.get(linked))
            raise UsageError(f"{job.output}: the output would overwrite the input {named}; choose another -o")
        by_target.setdefault(target, []).append(job)
    clashes = [_clash(same) for same in by_target.values() if len(same) > 1]
    if clashes:
        raise UsageError("; ".join(clashes))


def _clash(same: Sequence[Job]) -> str:
    """``a and b would both be written to o/a.mp4`` (``all`` for three or more)."""
    both = "both" if len(same) == 2 else "all"
    return f"{_names([j.input for j in same])} would {both} be written to {same[0].output}"


def names_folder(output: str | Path) -> bool:
    """Whether ``output`` as typed ends with a path separator (``results.2024/``): a folder, whatever its name.
    A ``Path`` has lost that separator: only a string can say it."""
    return isinstance(output, str) and output.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep))


def scan(inputs: Sequence[Path], output: str | Path, *, recursive: bool = False, fmt: str | None = None) -> Plan:
    """Pair every input video with its output path; a folder keeps its relative layout under ``output``.

    One input file and an ``output`` with a suffix (not an existing folder, nor a string ending with a path
    separator: ``names_folder``): that file. Otherwise ``output`` is a folder (made when the first output is
    written), and each output keeps its input's container (``output_suffix``; ``fmt``: one
    for all); an input that does not exist stays in the plan and fails on its own, as does
    a folder's file that looks like a video (extension, signature) but does not decode. A folder's other
    files are ``ignored``. An input folder that is the output folder is a ``UsageError``.
    """
    inputs = [Path(p) for p in inputs]
    as_folder, output = names_folder(output), Path(output)
    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    if single_file and not (as_folder or output.is_dir() or output.suffix == ""):
        named = media.FORMAT_BY_SUFFIX.get(output.suffix.lower())
        if fmt and named and named != {"mkv": "matroska"}.get(fmt, fmt):
            raise UsageError(f"--format {fmt} contradicts -o {output}: a file's suffix decides its container "
                             "(--format is for outputs in a folder)")
        jobs = [Job(inputs[0], output)]
        _check_jobs(jobs)
        return Plan(jobs, [])
    if output.exists() and not output.is_dir():
        if as_folder:
            raise UsageError(f"-o {output}{os.sep}: {output} is a file, not a folder")
        raise UsageError(f"{output} is a file: with several inputs or a folder, -o must be a folder")
    if output.suffix.lower() in media.FORMAT_BY_SUFFIX and not output.is_dir() and not as_folder:
        why = "the input is a folder" if any(p.is_dir() for p in inputs) else "there are several inputs"
        raise UsageError(f"-o must be a folder when {why}, not a video file name ({output})")
    jobs: list[Job] = []
    ignored: list[Ignored] = []
    for item in inputs:
        if item.is_dir():
            if output.exists() and output.resolve() == item.resolve():
                raise UsageError(f"{output}: the output folder is the input folder (outputs would be scanned as inputs "
                                 "or overwrite them); choose another -o")
            videos, others = _scan_folder(item, recursive, exclude=output)
            if not videos:
                raise UsageError(f"{item}: no videos found" + ("" if recursive else " (--recursive looks in sub-folders)"))
            jobs += [Job(v, (output / v.relative_to(item)).with_suffix(output_suffix(v, fmt))) for v in videos]
            ignored += others
        else:
            jobs.append(Job(item, output / (item.stem + output_suffix(item, fmt))))
    _check_jobs(jobs)
    return Plan(jobs, ignored)


def plan(inputs: Sequence[Path], output: Path, *, recursive: bool = False, fmt: str | None = None) -> list[Job]:
    """The jobs of ``scan``."""
    return scan(inputs, output, recursive=recursive, fmt=fmt).jobs
