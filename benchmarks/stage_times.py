"""Per-stage times of the edit's media path, taken by wrapping the stage functions the edit calls (nothing is
re-implemented): ``python -m benchmarks.bench_edit --media-only`` reports them.

Stages, and the function each is the time of:

- ``decode``: each ``next()`` of ``media.read_planes`` (demux, decode, the planes copied out of the decoder);
- ``crop``: ``stream.crop_frame`` (one face crop, resampled and converted to RGB; before the crops ran in a pool
  it was ``stream.crop_face``, a chunk's crops, which is what the "before" rows of RESULTS.md time);
- ``render``: ``stream.render_faces`` (with the identity face editor: the crops to 8 bit and back);
- ``paste-back``: ``stream.composite_faces`` (a frame's planes copied, the face converted back and blended in);
- ``encode``: ``FrameWriter._av_frame`` (the planes copied into an encoder frame) and ``FrameWriter._encode``;
- ``mux``: ``FrameWriter._mux`` (video packets and the copied audio written to the container);
- ``verify``: ``media.verify_output`` (the finished file decoded and counted before its rename).

Each call's wall time (``perf_counter``) and the CPU time of the thread that ran it (``thread_time``, plus that of
child processes that ended meanwhile: ``verify`` runs ffprobe, the only child of the edit pass) are added up per
stage and per thread. CPU time that the libraries spend in their own worker threads (x264's, the decoder's
slice threads) is in no stage: ``unattributed_cpu_s`` is the process's CPU time less the stages'.

The critical path: the edit's stages run in threads joined by bounded queues (decode, crop, render in the
caller's thread, paste-back, encode and mux in the writer's; crop and paste-back frame by frame in a pool), so
the busiest thread sets the pace. Each stage's
``share`` is its wall time over the run's; each thread's ``busy`` share is the sum of its stages'.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

def _cpu() -> float:
    """This thread's CPU seconds, and those of finished child processes."""
    t = os.times()
    return time.thread_time() + t.children_user + t.children_system


STAGES = ("decode", "crop", "render", "paste-back", "encode", "mux", "verify")


@dataclass
class Totals:
    """What the calls of one stage in one thread added up to."""

    calls: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


@dataclass
class StageClock:
    """Totals per (stage, thread name), filled by the wrappers of ``timed``/``timed_iter`` from any thread."""

    totals: dict[tuple[str, str], Totals] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, stage: str, wall_s: float, cpu_s: float) -> None:
        key = (stage, threading.current_thread().name)
        with self.lock:
            t = self.totals.setdefault(key, Totals())
            t.calls += 1
            t.wall_s += wall_s
            t.cpu_s += cpu_s

    def timed(self, stage: str, fn: Callable) -> Callable:
        """``fn``, each call timed as ``stage``."""
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), _cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - wall, _cpu() - cpu)
        return wrapper

    def timed_iter(self, stage: str, fn: Callable[..., Iterator]) -> Callable[..., Iterator]:
        """``fn``, a function returning an iterator, with each ``next()`` of that iterator timed as ``stage``."""
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator:
            items = fn(*args, **kwargs)
            try:
                while True:
                    wall, cpu = time.perf_counter(), _cpu()
                    try:
                        item = next(items)
                    except StopIteration:
                        return
                    finally:
                        self.add(stage, time.perf_counter() - wall, _cpu() - cpu)
                    yield item
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        return wrapper


@contextmanager
def patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, before)


@contextmanager
def stage_timing(clock: StageClock) -> Iterator[StageClock]:
    """While inside, the edit's stage functions are timed into ``clock``."""
    from cmet_cli import media, stream
    from cmet_cli.media.encode import FrameWriter

    wraps = [(media, "read_planes", clock.timed_iter("decode", media.read_planes)),
             (stream, *(("crop_frame", clock.timed("crop", stream.crop_frame)) if hasattr(stream, "crop_frame")
                        else ("crop_face", clock.timed("crop", stream.crop_face)))),
             (stream, "render_faces", clock.timed("render", stream.render_faces)),
             (stream, "composite_faces", clock.timed("paste-back", stream.composite_faces)),
             (FrameWriter, "_av_frame", clock.timed("encode", FrameWriter._av_frame)),
             (FrameWriter, "_encode", clock.timed("encode", FrameWriter._encode)),
             (FrameWriter, "_mux", clock.timed("mux", FrameWriter._mux)),
             (media, "verify_output", clock.timed("verify", media.verify_output))]
    with ExitStack() as stack:
        for owner, name, wrapper in wraps:
            stack.enter_context(patched(owner, name, wrapper))
        yield clock


def stage_report(clock: StageClock, frames: int, wall_s: float, cpu_s: float) -> dict:
    """Per stage: ms per frame of wall and CPU time, share of the run's wall time, the threads it ran in; per
    thread: busy share; the limit (the busiest thread and its largest stage); CPU in no stage."""
    per = max(1, frames)
    stages: dict[str, dict] = {}
    threads: dict[str, float] = {}
    for (stage, thread), t in sorted(clock.totals.items()):
        row = stages.setdefault(stage, {"calls": 0, "wall_s": 0.0, "cpu_s": 0.0, "threads": []})
        row["calls"] += t.calls
        row["wall_s"] += t.wall_s
        row["cpu_s"] += t.cpu_s
        row["threads"].append(thread)
        threads[thread] = threads.get(thread, 0.0) + t.wall_s
    out = {}
    for stage in [s for s in STAGES if s in stages] + sorted(set(stages) - set(STAGES)):
        row = stages[stage]
        out[stage] = {"wall_ms_per_frame": round(1000 * row["wall_s"] / per, 3),
                      "cpu_ms_per_frame": round(1000 * row["cpu_s"] / per, 3),
                      "share": round(row["wall_s"] / wall_s, 3) if wall_s else None,
                      "calls": row["calls"], "threads": row["threads"]}
    busiest = max(threads, key=threads.get) if threads else None
    in_busiest = {stage: t.wall_s for (stage, thread), t in clock.totals.items() if thread == busiest}
    stage_cpu = sum(t.cpu_s for t in clock.totals.values())
    return {"stages": out,
            "threads_busy": {name: round(busy / wall_s, 3) if wall_s else None for name, busy in sorted(threads.items())},
            "limit": {"thread": busiest, "stage": max(in_busiest, key=in_busiest.get) if in_busiest else None},
            "unattributed_cpu_ms_per_frame": round(1000 * (cpu_s - stage_cpu) / per, 3)}


def stage_table(report: dict) -> str:
    """The stage rows as a Markdown table (for RESULTS.md)."""
    lines = ["| stage | wall ms/frame | CPU ms/frame | share of wall | threads |", "|---|---|---|---|---|"]
    for stage, row in report["stages"].items():
        lines.append(f"| {stage} | {row['wall_ms_per_frame']:.2f} | {row['cpu_ms_per_frame']:.2f} | "
                     f"{row['share']:.2f} | {', '.join(row['threads'])} |")
    return "\n".join(lines)
