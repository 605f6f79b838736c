"""``cmet edit --executor ray``: the batch of ``cmet_cli.batch`` spread over a Ray cluster.

One Ray actor per GPU (or per group of CPUs) loads the models once and edits the files handed to it,
one at a time, through ``batch.edit_one``: the same skip/resume rules, per-file results and atomic
writes as the local batch. The driver sends only paths through Ray, never video data: workers read
the inputs and write the outputs on a filesystem they share with the driver (the same absolute paths
on every node), and find the weights through ``--weights-dir``/``CMET_HOME`` on shared storage or a
``cmet download-weights`` run on each node.

A worker that dies mid-file (killed process, lost node) has its temporary ``.part`` file removed and
the file handed to another worker, up to ``max_retries`` times; a final output appears only through
the atomic rename of a finished edit, so it is complete and written once.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import socket
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from . import atomic, batch
from .batch import Job
from .errors import CmetError, UsageError
from .options import EditOptions
from .pipeline import EditResult, Editor
from .stages import Stage

log = logging.getLogger("cmet")

INSTALL_HINT = "--executor ray needs Ray, which is not installed: pip install 'cmet-cli[ray]'"
DEFAULT_RETRIES = 2
CPUS_PER_WORKER = 4  # default CPU share of a CPU-only worker
POLL_SECONDS = 0.5

WorkerHook = Callable[[Job, Stage, int, int], None]  # (job, stage, done, total), called inside the worker


@dataclass(frozen=True)
class RayConfig:
    """The ``--executor ray`` options."""

    address: str | None = None  # None: RAY_ADDRESS, the latest local cluster, or a new local instance
    workers: int | None = None  # None: one per GPU (GPU workers) or one per 4 CPUs
    gpus_per_worker: float | None = None  # None: 1 if the cluster has GPUs, else 0
    max_retries: int = DEFAULT_RETRIES  # extra attempts for a file whose worker died

    def validate(self) -> "RayConfig":
        if self.workers is not None and self.workers < 1:
            raise UsageError("--workers must be at least 1")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise UsageError("--gpus-per-worker must not be negative")
        if self.max_retries < 0:
            raise UsageError("--max-retries must not be negative")
        return self


def import_ray():
    """The ``ray`` module, or a one-line UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def config_from_cli(executor: str, address: str | None, workers: int | None, gpus_per_worker: float | None,
                    max_retries: int | None, jobs: int) -> RayConfig | None:
    """The Ray configuration of ``cmet edit`` (None for ``--executor local``); checks Ray is installed."""
    if executor != "ray":
        given = [name for name, value in (("--ray-address", address), ("--workers", workers),
                                          ("--gpus-per-worker", gpus_per_worker), ("--max-retries", max_retries))
                 if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: only with --executor ray")
        return None
    if jobs > 1:
        raise UsageError("--jobs applies to --executor local; with --executor ray use --workers")
    config = RayConfig(address, workers, gpus_per_worker,
                       DEFAULT_RETRIES if max_retries is None else max_retries).validate()
    import_ray()
    return config


# ---------------------------------------------------------------- sizing

@dataclass(frozen=True)
class WorkerShape:
    count: int
    cpus: float
    gpus: float


def worker_shape(config: RayConfig, resources: dict[str, float], node_cpus: Sequence[float], n_jobs: int) -> WorkerShape:
    """How many actors to start and what each reserves, from the cluster's resources."""
    total_gpus = resources.get("GPU", 0.0)
    total_cpus = resources.get("CPU", 0.0)
    gpus = config.gpus_per_worker if config.gpus_per_worker is not None else (1.0 if total_gpus >= 1 else 0.0)
    if gpus > 0 and total_gpus <= 0:
        raise UsageError(f"--gpus-per-worker {gpus:g}: the Ray cluster has no GPUs (use --gpus-per-worker 0)")
    if gpus > 0:
        count = config.workers or max(1, int(total_gpus // gpus))
        cpus = 1.0
    else:
        count = config.workers or max(1, int(total_cpus // CPUS_PER_WORKER))
        smallest = min((c for c in node_cpus if c > 0), default=1.0)
        cpus = float(max(1, min(int(total_cpus // count), int(smallest))))
    return WorkerShape(max(1, min(count, n_jobs)), cpus, gpus)


# ---------------------------------------------------------------- the worker (a Ray actor)

@dataclass(frozen=True)
class WorkerInfo:
    pid: int
    host: str
    error: str | None = None  # the models (or a speech clip) could not be loaded here
    usage: bool = False  # ... because of a usage error (e.g. --device cuda without a GPU)
    usage_error: UsageError | None = None  # that error itself: an OptionError names its field, the CLI its flag


class Worker:
    """Holds the loaded models of one Ray worker process and edits the jobs handed to it.

    Run with ``max_concurrency=2`` so that ``progress`` answers while ``edit`` runs.
    """

    def __init__(self, options: EditOptions, verbose: int = 0, hook: WorkerHook | None = None) -> None:
        self.options, self.verbose, self.hook = options, verbose, hook
        self.editor: Editor | None = None
        self.load_error: str | None = None
        self.job: Job | None = None
        self.frames = (0, 0)
        self.lock = threading.Lock()
        level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.CRITICAL + 1
        logging.getLogger("cmet").setLevel(level)  # the driver reports results; workers stay quiet

    def ready(self, load: bool) -> WorkerInfo:
        """Build the editor and, if any file needs editing, load the models (as ``batch.run`` does)."""
        info = WorkerInfo(os.getpid(), socket.gethostname())
        try:
            self.editor = Editor(self.options, progress=self._progress)
            if load:
                batch.check_speech(self.options)
                self.editor.load()
        except UsageError as exc:
            return replace(info, error=str(exc), usage=True, usage_error=exc)
        except CmetError as exc:
            self.load_error = " ".join(str(exc).split())
            return replace(info, error=self.load_error)
        return info

    def edit(self, job: Job) -> EditResult:
        with self.lock:
            self.job, self.frames = job, (0, 0)
        if self.load_error and batch._needs_models(job, self.options.overwrite):
            return EditResult(str(job.input), str(job.output), status="failed", error=self.load_error)
        quiet = contextlib.nullcontext() if self.verbose else contextlib.redirect_stderr(io.StringIO())
        with quiet:  # the driver prints each result's error and warnings once
            return batch.edit_one(self.editor, job, self.options.overwrite, self.verbose, quiet=True)  # type: ignore[arg-type]

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


# ---------------------------------------------------------------- paths

def absolute_job(job: Job) -> Job:
    return Job(job.input.absolute(), job.output.absolute())


def absolute_options(options: EditOptions) -> EditOptions:
    """Options with every path absolute: workers do not share the driver's working directory."""
    def path(p: Path | None) -> Path | None:
        return None if p is None else Path(p).absolute()

    at = tuple(replace(cue, emotion=cue.emotion.absolute()) for cue in options.at)
    return replace(options, emotion_speech=tuple(Path(p).absolute() for p in options.emotion_speech),
                   neutral_speech=tuple(Path(p).absolute() for p in options.neutral_speech), at=at,
                   weights_dir=path(options.weights_dir), bank_dir=path(options.bank_dir))


# ---------------------------------------------------------------- progress

class RayProgress:
    """One rich bar over all files, fed by finished results and the workers' frame counters."""

    def __init__(self, console, total_files: int, *, disable: bool = False) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.total_files = total_files
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[files]}"),
                                 TextColumn("{task.fields[frames]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=True, disable=disable)
        self.task = self.progress.add_task("ray", total=total_files, files="", frames="")
        self.finished = self.failed = self.frames_done = 0
        self.workers = 0

    def result(self, result: EditResult) -> None:
        self.finished += 1
        self.failed += result.status == "failed"
        self.frames_done += result.frames

    def update(self, in_flight: Sequence[tuple[int, int]]) -> None:
        """Redraw with the (done, total) frames of every file in flight."""
        done = self.frames_done + sum(d for d, _ in in_flight)
        total = self.frames_done + sum(t for _, t in in_flight)  # finished files: done == total
        fraction = sum(d / t for d, t in in_flight if t)
        description = f"ray ×{self.workers}" if self.workers else "starting Ray workers"
        self.progress.update(self.task, completed=self.finished + fraction, description=description,
                             files=f"files {self.finished}/{self.total_files}, {self.failed} failed",
                             frames=f"frames {done}/{total}")

    def __enter__(self) -> "RayProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()


# ---------------------------------------------------------------- the driver

@dataclass
class _Slot:
    """One actor as the driver sees it."""

    actor: Any
    ready_ref: Any = None  # while the actor starts and loads its models
    info: WorkerInfo | None = None
    job: int | None = None  # index of the job in flight
    ref: Any = None  # its edit() result
    progress_ref: Any = None
    frames: tuple[int, int] = (0, 0)


@dataclass
class _State:
    queue: deque[int]
    attempts: dict[int, int] = field(default_factory=dict)
    results: dict[int, EditResult] = field(default_factory=dict)
    dead: list[tuple[int, str, int]] = field(default_factory=list)  # (pid, host, job index) of workers that died mid-file
    load_error: str | None = None
    replacements: int = 0


class Driver:
    """Streams jobs to a pool of Worker actors, retries the files of dead workers, collects results."""

    def __init__(self, ray, jobs: Sequence[Job], options: EditOptions, config: RayConfig, *, quiet: bool = False,
                 verbose: int = 0, on_result: Callable[[EditResult], None] | None = None,
                 progress: RayProgress | None = None, hook: WorkerHook | None = None) -> None:
        self.ray, self.jobs, self.config, self.quiet, self.verbose = ray, list(jobs), config, quiet, verbose
        self.remote_jobs = [absolute_job(j) for j in self.jobs]
        self.options = absolute_options(options)
        self.on_result, self.progress, self.hook = on_result, progress, hook
        self.state = _State(deque(range(len(self.jobs))))
        self.load = any(batch._needs_models(j, options.overwrite) for j in self.jobs)
        self.slots: list[_Slot] = []

    # -- actors

    def start(self) -> None:
        ray = self.ray
        nodes = [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
        config = self.config
        if self.options.device == "cpu" and config.gpus_per_worker is None:
            config = replace(config, gpus_per_worker=0.0)  # --device cpu: reserve no GPUs
        self.shape = worker_shape(config, ray.cluster_resources(), nodes, len(self.jobs))
        self.actor_class = ray.remote(Worker).options(num_cpus=self.shape.cpus, num_gpus=self.shape.gpus,
                                                      max_concurrency=2, max_restarts=0)
        log.info("starting %d Ray workers (%g CPU, %g GPU each)", self.shape.count, self.shape.cpus, self.shape.gpus)
        for _ in range(self.shape.count):
            self.spawn()

    def spawn(self) -> None:
        actor = self.actor_class.remote(self.options, self.verbose, self.hook)
        self.slots.append(_Slot(actor, ready_ref=actor.ready.remote(self.load)))

    def retire(self, slot: _Slot) -> None:
        self.ray.kill(slot.actor, no_restart=True)
        self.slots.remove(slot)

    def shutdown(self) -> None:
        """Stop every actor and remove the temporary files of the files still in flight (after an interrupt)."""
        in_flight = [s.ref for s in self.slots if s.ref is not None]
        for slot in list(self.slots):
            self.retire(slot)
            if slot.info is not None and slot.job is not None:
                self.state.dead.append((slot.info.pid, slot.info.host, slot.job))
        if in_flight:  # ray.kill is asynchronous: wait until the killed edits are seen to end
            self.ray.wait(in_flight, num_returns=len(in_flight), timeout=10)
        self.sweep()

    def sweep(self) -> None:
        for pid, host, index in self.state.dead:
            atomic.remove_temp_files(self.remote_jobs[index].output, pid, host)

    # -- the loop

    def run(self) -> list[EditResult]:
        self.reject_unusable()
        if not self.state.queue:  # every input failed its checks: no worker is started
            return [self.state.results[i] for i in range(len(self.jobs))]
        self.start()
        try:
            while len(self.state.results) < len(self.jobs):
                self.dispatch()
                if not self.slots:
                    self.fail_remaining()
                    break
                self.wait()
                self.poll_progress()
        finally:
            self.shutdown()
        return [self.state.results[i] for i in range(len(self.jobs))]

    def reject_unusable(self) -> None:
        """Fail the inputs that cannot be edited (``batch.check_inputs``) before any worker loads models."""
        rejected = batch.check_inputs(self.jobs, self.options)
        for index, job in enumerate(self.jobs):
            if job in rejected:
                self.state.queue.remove(index)
                self.finish(index, EditResult(str(job.input), str(job.output), status="failed", error=rejected[job]))
        self.load = any(batch._needs_models(self.jobs[i], self.options.overwrite) for i in self.state.queue)

    def dispatch(self) -> None:
        for slot in self.slots:
            if slot.info is not None and slot.job is None and self.state.queue:
                slot.job = self.state.queue.popleft()
                slot.frames = (0, 0)
                slot.ref = slot.actor.edit.remote(self.remote_jobs[slot.job])

    def wait(self) -> None:
        """Wait a moment for a worker to start or a file to finish, and handle every one that did."""
        owner = {r: s for s in self.slots for r in (s.ready_ref, s.ref) if r is not None}
        if not owner:
            return
        waiting = list(owner)
        ready, _ = self.ray.wait(waiting, num_returns=1, timeout=POLL_SECONDS)
        if ready:
            ready, _ = self.ray.wait(waiting, num_returns=len(waiting), timeout=0)
        for ref in ready:
            slot = owner[ref]
            if ref == slot.ready_ref:
                self.on_ready(slot)
            else:
                self.on_done(slot)

    def on_ready(self, slot: _Slot) -> None:
        ref, slot.ready_ref = slot.ready_ref, None
        try:
            info: WorkerInfo = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            self.say("warning", f"a Ray worker died while starting: {_first_line(exc)}")
            self.retire(slot)
            self.replace_worker()
            return
        if info.usage:
            raise info.usage_error or UsageError(info.error)
        slot.info = info
        if info.error:  # keep it only if no other worker can do better: it fails the files that need models
            self.state.load_error = self.state.load_error or info.error
            if any(s is not slot and not (s.info and s.info.error) for s in self.slots):
                self.say("warning", f"the Ray worker on {info.host} cannot load the models: {info.error}")
                self.retire(slot)

    def on_done(self, slot: _Slot) -> None:
        ref, index = slot.ref, slot.job
        assert index is not None
        try:
            result: EditResult = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # an exception edit_one did not catch
            result = EditResult(str(self.jobs[index].input), str(self.jobs[index].output), status="failed",
                                error=f"internal error: {_first_line(exc)}")
        except self.ray.exceptions.RayError as exc:  # the worker process or its node is gone
            self.on_death(slot, index, exc)
            return
        slot.job = slot.ref = slot.progress_ref = None
        self.finish(index, result)

    def on_death(self, slot: _Slot, index: int, exc: Exception) -> None:
        """Retire the dead worker, remove its temporary file and retry (or fail) its file."""
        self.retire(slot)
        if slot.info is not None:
            self.state.dead.append((slot.info.pid, slot.info.host, index))
            for path in atomic.remove_temp_files(self.remote_jobs[index].output, slot.info.pid, slot.info.host):
                log.info("removed %s, left by a dead worker", path)
        tries = self.state.attempts[index] = self.state.attempts.get(index, 0) + 1
        job = self.jobs[index]
        if tries > self.config.max_retries:
            self.finish(index, EditResult(str(job.input), str(job.output), status="failed",
                                          error=f"the Ray worker editing it died {tries} times ({_first_line(exc)})"))
        else:
            self.say("warning", f"{job.input}: its Ray worker died ({_first_line(exc)}); "
                                f"retrying on another worker ({tries} of {self.config.max_retries})")
            self.state.queue.appendleft(index)
        self.replace_worker()

    def replace_worker(self) -> None:
        """Start a fresh actor for a dead one, within a budget of max_retries per worker."""
        if self.state.queue and self.state.replacements < self.shape.count * self.config.max_retries:
            self.state.replacements += 1
            self.spawn()

    def say(self, kind: str, text: str) -> None:
        if kind == "error" or not self.quiet:
            batch._say(kind, text, self.progress.progress.console if self.progress else None)

    def finish(self, index: int, result: EditResult) -> None:
        job, remote = self.jobs[index], self.remote_jobs[index]
        result.input, result.output = str(job.input), str(job.output)  # as given, like the local batch
        local = lambda text: text.replace(str(remote.output), str(job.output)).replace(str(remote.input), str(job.input))  # noqa: E731
        result.error = result.error and local(result.error)
        result.warnings = [local(w) for w in result.warnings]
        retries = self.state.attempts.get(index, 0)
        if retries and result.status != "failed":
            result.warnings.append(f"edited after {retries} Ray worker(s) died while editing it")
        if result.status == "failed":
            self.say("error", f"{job.input}: {result.error}")
        for warning in result.warnings:
            self.say("warning", f"{job.input}: {warning}")
        self.state.results[index] = result
        if self.progress:
            self.progress.result(result)
        if self.on_result:
            self.on_result(result)

    def fail_remaining(self) -> None:
        error = self.state.load_error or "no Ray worker is left to edit it"
        for index in list(self.state.queue):
            job = self.jobs[index]
            self.finish(index, EditResult(str(job.input), str(job.output), status="failed", error=error))
        self.state.queue.clear()

    def poll_progress(self) -> None:
        busy = [s for s in self.slots if s.job is not None]
        for slot in busy:
            if slot.progress_ref is None:
                slot.progress_ref = slot.actor.progress.remote()
        refs = [s.progress_ref for s in busy]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        ready_ids = {id(r) for r in ready}
        for slot in busy:
            if id(slot.progress_ref) in ready_ids:
                try:
                    slot.frames = self.ray.get(slot.progress_ref)
                except self.ray.exceptions.RayError:
                    pass  # the edit's own result reports the death
                slot.progress_ref = None
        if self.progress:
            self.progress.workers = sum(s.info is not None for s in self.slots)
            self.progress.update([s.frames for s in busy])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def connect(ray, address: str | None, quiet: bool = False) -> bool:
    """Connect to (or start) Ray; True when this call started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, logging_level=logging.ERROR if quiet else logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f" at {address}" if address else ""
        raise UsageError(f"cannot connect to Ray{where}: {_first_line(exc)} (see --ray-address)") from None
    if callable(on_sigterm) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)  # Ray's core installs its own; keep the CLI's clean exit (143)
    return True


@contextlib.contextmanager
def _signal_exceptions() -> Iterator[None]:
    """Ray turns an exception raised by a signal handler during its calls into a bare KeyboardInterrupt:
    re-raise the SIGTERM handler's own exception (the CLI's ``Terminated``, exit code 143)."""
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield
        return
    raised: list[BaseException] = []

    def handler(signum, frame) -> None:
        try:
            previous(signum, frame)
        except BaseException as exc:
            raised.append(exc)
            raise

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except KeyboardInterrupt as exc:
        if raised and exc is not raised[0]:
            raise raised[0] from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(jobs: Sequence[Job], options: EditOptions, config: RayConfig, *, quiet: bool = False, verbose: int = 0,
        on_result: Callable[[EditResult], None] | None = None, show_progress: bool | None = None,
        hook: WorkerHook | None = None, console=None) -> list[EditResult]:
    """Edit every job on a Ray cluster: the counterpart of ``batch.run`` (same results, in job order).

    Connects to ``config.address`` (or reuses an initialised Ray, or starts a local instance, shut
    down at the end). ``hook`` runs inside the workers on every progress update (tests use it to
    kill a worker mid-file). Raises UsageError like ``batch.run``.
    """
    from rich.console import Console

    ray = import_ray()
    show = (not quiet) if show_progress is None else show_progress
    started = connect(ray, config.address, quiet)
    try:
        with _signal_exceptions(), RayProgress(console or Console(stderr=True), len(jobs), disable=not show) as progress:
            driver = Driver(ray, jobs, options, config, quiet=quiet, verbose=verbose, on_result=on_result,
                            progress=progress if show else None, hook=hook)
            return driver.run()
    finally:
        if started:
            ray.shutdown()
