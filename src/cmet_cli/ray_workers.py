"""The Ray actors of ``--executor ray``: what each one is (``Worker``) and the pool that starts,
replaces and stops them (``ActorPool``).

A ``Worker`` runs the same library functions as the local runner (``runner.prepare`` once,
``runner.edit_one`` per file) with the emotion plan the driver computed: workers receive the semantic
vectors, never speech clips to decode and embed again.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import atomic, runner
from .batch import Job
from .errors import UsageError
from .pipeline import Editor
from .stages import Stage

if TYPE_CHECKING:
    from .options import EditOptions
    from .results import EditResult
    from .emotion import Plans
    from .timeline import Keyframe

log = logging.getLogger("cmet")

CPUS_PER_WORKER = 4  # default CPU share of a CPU-only worker

WorkerHook = Callable[[Job, Stage, int, int], None]  # (job, stage, done, total), called inside the worker


@dataclass(frozen=True)
class WorkerShape:
    count: int
    cpus: float
    gpus: float


def worker_shape(workers: int | None, gpus_per_worker: float | None, resources: dict[str, float],
                 node_cpus: Sequence[float], n_jobs: int) -> WorkerShape:
    """How many actors to start and what each reserves, from the cluster's resources (``workers`` and
    ``gpus_per_worker``: what the user asked for, None for the defaults)."""
    total_gpus = resources.get("GPU", 0.0)
    total_cpus = resources.get("CPU", 0.0)
    gpus = gpus_per_worker if gpus_per_worker is not None else (1.0 if total_gpus >= 1 else 0.0)
    if gpus > 0 and total_gpus <= 0:
        raise UsageError(f"--gpus-per-worker {gpus:g}: the Ray cluster has no GPUs (use --gpus-per-worker 0)")
    if gpus > 0:
        count = workers or max(1, int(total_gpus // gpus))
        cpus = 1.0
    else:
        count = workers or max(1, int(total_cpus // CPUS_PER_WORKER))
        smallest = min((c for c in node_cpus if c > 0), default=1.0)
        cpus = float(max(1, min(int(total_cpus // count), int(smallest))))
    return WorkerShape(max(1, min(count, n_jobs)), cpus, gpus)


@dataclass(frozen=True)
class WorkerInfo:
    pid: int
    host: str
    error: str | None = None  # the models could not be loaded here
    usage_error: UsageError | None = None  # ... because of a usage error (e.g. --device cuda without a GPU)


class Worker:
    """One Ray worker process: the models loaded once, then the jobs handed to it, one at a time.

    Run with ``max_concurrency=2`` so that ``progress`` answers while ``edit`` runs.
    """

    def __init__(self, options: EditOptions, plan: Plans | list[Keyframe] | None, settings: tuple[str, str] | None,
                 verbose: int = 0, hook: WorkerHook | None = None) -> None:
        self.options, self.plan, self.settings, self.hook = options, plan, settings, hook
        self.prepared: runner.Prepared | None = None
        self.job: Job | None = None
        self.frames = (0, 0)
        self.lock = threading.Lock()
        level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.CRITICAL + 1
        logging.getLogger("cmet").setLevel(level)  # the driver reports results; workers stay quiet

    def ready(self, jobs: Sequence[Job]) -> WorkerInfo:
        """Load the models if any of ``jobs`` needs them (``runner.prepare``; the driver checked the inputs)."""
        info = WorkerInfo(os.getpid(), socket.gethostname())
        try:
            self.prepared = runner.prepare(self.options, jobs, plan=self.plan, settings=self._settings(),
                                           progress=self._progress, check=False)
        except UsageError as exc:
            return replace(info, error=str(exc), usage_error=exc)
        return replace(info, error=self.prepared.load_error)

    def _settings(self) -> str | None:
        """The driver's settings hash, unless this node's face detector differs from the one it assumed
        (``--detector auto`` finds face-alignment's files per node): then the editor computes its own."""
        if self.settings is None:
            return None
        digest, detector = self.settings
        return digest if Editor(self.options).detector_kind() == detector else None

    def edit(self, job: Job) -> EditResult:
        with self.lock:
            self.job, self.frames = job, (0, 0)
        assert self.prepared is not None, "ready() first"
        return runner.edit_one(self.prepared, job)

    def progress(self) -> tuple[int, int]:
        """(frames written, frames in total) of the file being edited."""
        with self.lock:
            return self.frames

    def _progress(self, stage: Stage, done: int, total: int) -> None:
        if stage is Stage.WRITE_VIDEO:
            with self.lock:
                self.frames = (done, total)
        if self.hook is not None and self.job is not None:
            self.hook(self.job, stage, done, total)


@dataclass
class Slot:
    """One actor as the driver sees it."""

    actor: Any
    ready_ref: Any = None  # while the actor starts and loads its models
    info: WorkerInfo | None = None
    job: int | None = None  # index of the job in flight
    ref: Any = None  # its edit() result
    progress_ref: Any = None
    frames: tuple[int, int] = (0, 0)


class ActorPool:
    """Starts, replaces, retires and stops the ``Worker`` actors; knows nothing of jobs but their paths."""

    def __init__(self, ray, shape: WorkerShape, options: EditOptions, plan: Plans | list[Keyframe] | None,
                 settings: tuple[str, str] | None = None, *, verbose: int = 0, hook: WorkerHook | None = None,
                 replacements: int = 0) -> None:
        self.ray, self.shape = ray, shape
        self.actor_class = ray.remote(Worker).options(num_cpus=shape.cpus, num_gpus=shape.gpus,
                                                      max_concurrency=2, max_restarts=0)
        self.arguments = (options, ray.put(plan), settings, verbose, hook)  # the plan travels once, not once per actor
        self.slots: list[Slot] = []
        self.jobs: list[Job] = []  # what each actor is told it may be given (``start``)
        self.budget = replacements  # actors that may still be started to replace dead ones
        self.dead: list[tuple[int, str, Path]] = []  # (pid, host, output) of workers stopped mid-file

    def start(self, jobs: Sequence[Job]) -> None:
        log.info("starting %d Ray workers (%g CPU, %g GPU each)", self.shape.count, self.shape.cpus, self.shape.gpus)
        self.jobs = list(jobs)
        for _ in range(self.shape.count):
            self.spawn()

    def spawn(self) -> None:
        actor = self.actor_class.remote(*self.arguments)
        self.slots.append(Slot(actor, ready_ref=actor.ready.remote(self.jobs)))

    def replace(self) -> bool:
        """Start a fresh actor for a dead one, within the budget; whether one was started."""
        if self.budget <= 0:
            return False
        self.budget -= 1
        self.spawn()
        return True

    def retire(self, slot: Slot, output: Path | None = None) -> None:
        """Stop an actor; ``output``: the file it was editing, whose temporary file is then removed."""
        self.ray.kill(slot.actor, no_restart=True)
        self.slots.remove(slot)
        if output is not None and slot.info is not None:
            self.dead.append((slot.info.pid, slot.info.host, output))
            for path in atomic.remove_temp_files(output, slot.info.pid, slot.info.host):
                log.info("removed %s, left by a dead worker", path)

    def shutdown(self, output_of: Callable[[int], Path]) -> None:
        """Stop every actor and remove the temporary files of the files still in flight (after an interrupt)."""
        in_flight = [s.ref for s in self.slots if s.ref is not None]
        for slot in list(self.slots):
            self.retire(slot)
            if slot.info is not None and slot.job is not None:
                self.dead.append((slot.info.pid, slot.info.host, output_of(slot.job)))
        if in_flight:  # ray.kill is asynchronous: wait until the killed edits are seen to end
            self.ray.wait(in_flight, num_returns=len(in_flight), timeout=10)
        for pid, host, output in self.dead:  # again: a killed encoder may have created its file late
            atomic.remove_temp_files(output, pid, host)

    def ready(self) -> int:
        return sum(s.info is not None for s in self.slots)

