"""Many inputs in one run: which files are videos and where their outputs go (``scan``).

Running the jobs is ``runner``'s (this machine) or ``distributed``'s (a Ray cluster); showing and
reporting them is ``report``'s.
"""
from __future__ import annotations

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
