"""``cmet edit --executor ray``: the jobs of a batch spread over a Ray cluster.

The driver (this module) checks the inputs and computes the emotion plan once; a pool of actors
(``ray_workers``: one per GPU, or per group of CPUs) loads the networks once each and edits the files
handed to it through the same library functions as the local runner (``runner.prepare``/``edit_one``):
the same skip/resume rules, per-file results and atomic writes. The scheduling loop (``Schedule``)
streams jobs to idle actors, retries the files of dead ones and hands each result to the run's
``report.Reporter``.

Only paths and the plan travel through Ray, never video data: workers read the inputs and write the
outputs on a filesystem they share with the driver (the same absolute paths on every node), and find
the weights through ``--weights-dir``/``CMET_HOME`` on shared storage or a ``cmet download-weights``
run on each node. A worker that dies mid-file (killed process, lost node) has its temporary file
removed and the file handed to another worker, up to ``max_retries`` times; a final output appears only
through the atomic rename of a finished edit, so it is complete and written once.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from . import runner
from .batch import Job
from .emotion import standalone_plan
from .errors import CmetError, UsageError, one_line
from .options import EditOptions
from .pipeline import EditResult, Editor
from .ray_workers import ActorPool, Slot, WorkerHook, WorkerInfo, worker_shape

if TYPE_CHECKING:
    from .report import Reporter
    from .emotion import Plans

log = logging.getLogger("cmet")

INSTALL_HINT = "--executor ray needs Ray, which is not installed: pip install 'cmet-cli[ray]'"
DEFAULT_RETRIES = 2
POLL_SECONDS = 0.5


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


# ---------------------------------------------------------------- the scheduling loop

@dataclass
class Schedule:
    """Streams jobs to the pool's idle actors, retries the files of dead ones, collects results."""

    jobs: list[Job]  # as the user gave them (results and messages name these)
    remote: list[Job]  # the same with absolute paths (what workers get)
    queue: deque[int]
    max_retries: int
    reporter: Reporter | None = None
    results: dict[int, EditResult] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    load_error: str | None = None
    pool: ActorPool = field(init=False)

    def run(self, pool: ActorPool) -> list[EditResult]:
        self.pool = pool
        pool.start([self.remote[i] for i in self.queue])
        try:
            while len(self.results) < len(self.jobs):
                self.dispatch()
                if not self.pool.slots:
                    self.fail_remaining()
                    break
                self.wait()
                self.poll_progress()
        finally:
            self.pool.shutdown(lambda index: self.remote[index].output)
        return [self.results[i] for i in range(len(self.jobs))]

    def dispatch(self) -> None:
        for slot in self.pool.slots:
            if slot.info is not None and slot.job is None and self.queue:
                slot.job = self.queue.popleft()
                slot.frames = (0, 0)
                slot.ref = slot.actor.edit.remote(self.remote[slot.job])
                if self.reporter is not None:
                    self.reporter.started(str(self.jobs[slot.job].input))

    def wait(self) -> None:
        """Wait a moment for a worker to start or a file to finish, and handle every one that did."""
        owner = {r: s for s in self.pool.slots for r in (s.ready_ref, s.ref) if r is not None}
        if not owner:
            return
        ray, waiting = self.pool.ray, list(owner)
        ready, _ = ray.wait(waiting, num_returns=1, timeout=POLL_SECONDS)
        if ready:
            ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
        for ref in ready:
            slot = owner[ref]
            if ref == slot.ready_ref:
                self.on_ready(slot)
            else:
                self.on_done(slot)

    def on_ready(self, slot: Slot) -> None:
        ray = self.pool.ray
        ref, slot.ready_ref = slot.ready_ref, None
        try:
            info: WorkerInfo = ray.get(ref)
        except ray.exceptions.RayError as exc:
            self.say("warning", f"a Ray worker died while starting: {first_line(exc)}")
            self.pool.retire(slot)
            self.replace_worker()
            return
        if info.usage_error is not None:
            raise info.usage_error
        slot.info = info
        if info.error:  # keep it only if no other worker can do better: it fails the files that need models
            self.load_error = self.load_error or info.error
            if any(s is not slot and not (s.info and s.info.error) for s in self.pool.slots):
                self.say("warning", f"the Ray worker on {info.host} cannot load the models: {info.error}")
                self.pool.retire(slot)

    def on_done(self, slot: Slot) -> None:
        ray, index = self.pool.ray, slot.job
        assert index is not None
        try:
            result: EditResult = ray.get(slot.ref)
        except ray.exceptions.RayTaskError as exc:  # an exception edit_one did not catch
            result = runner.failed(self.jobs[index], f"internal error: {first_line(exc)}")
        except ray.exceptions.RayError as exc:  # the worker process or its node is gone
            self.on_death(slot, index, exc)
            return
        slot.job = slot.ref = slot.progress_ref = None
        self.finish(index, result)

    def on_death(self, slot: Slot, index: int, exc: Exception) -> None:
        """Retire the dead worker (removing its temporary file) and retry, or fail, its file."""
        self.pool.retire(slot, self.remote[index].output)
        tries = self.attempts[index] = self.attempts.get(index, 0) + 1
        job = self.jobs[index]
        if tries > self.max_retries:
            self.finish(index, runner.failed(job, f"the Ray worker editing it died {tries} times ({first_line(exc)})"))
        else:
            self.say("warning", f"{job.input}: its Ray worker died ({first_line(exc)}); "
                                f"retrying on another worker ({tries} of {self.max_retries})")
            self.queue.appendleft(index)
        self.replace_worker()

    def replace_worker(self) -> None:
        if self.queue:
            self.pool.replace()

    def say(self, kind: str, text: str) -> None:
        if self.reporter is not None:
            self.reporter.say(kind, text)

    def finish(self, index: int, result: EditResult) -> None:
        """A result as the local runner gives it: paths as the user gave them, then reported."""
        job, remote = self.jobs[index], self.remote[index]
        result = local_paths(result, job, remote)
        retries = self.attempts.get(index, 0)
        if retries and result.status != "failed":
            result.warnings.append(f"edited after {retries} Ray worker(s) died while editing it")
        self.results[index] = result
        if self.reporter is not None:
            self.reporter.result(result)

    def fail_remaining(self) -> None:
        error = self.load_error or "no Ray worker is left to edit it"
        for index in list(self.queue):
            self.finish(index, runner.failed(self.jobs[index], error))
        self.queue.clear()

    def poll_progress(self) -> None:
        """Ask busy workers for their frame counts (answered while they edit) and show the sum."""
        ray = self.pool.ray
        busy = [s for s in self.pool.slots if s.job is not None]
        for slot in busy:
            if slot.progress_ref is None:
                slot.progress_ref = slot.actor.progress.remote()
        refs = [s.progress_ref for s in busy]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        answered = {id(r) for r in ready}
        for slot in busy:
            if id(slot.progress_ref) in answered:
                try:
                    slot.frames = ray.get(slot.progress_ref)
                except ray.exceptions.RayError:
                    pass  # the edit's own result reports the death
                slot.progress_ref = None
        if self.reporter is not None:
            finished = sum(r.frames for r in self.results.values())
            self.reporter.frames(finished + sum(d for d, _ in (s.frames for s in busy)),
                                 finished + sum(t for _, t in (s.frames for s in busy)), self.pool.ready())


def local_paths(result: EditResult, job: Job, remote: Job) -> EditResult:
    """A worker's result with the paths as the user gave them (messages included), like the local runner's."""
    def local(text: str) -> str:
        return text.replace(str(remote.output), str(job.output)).replace(str(remote.input), str(job.input))

    return replace(result, input=str(job.input), output=str(job.output), error=result.error and local(result.error),
                   warnings=[local(w) for w in result.warnings])


# ---------------------------------------------------------------- paths and the emotion plan

def absolute_job(job: Job) -> Job:
    return Job(job.input.absolute(), job.output.absolute())


def absolute_options(options: EditOptions) -> EditOptions:
    """Options with every path absolute: workers do not share the driver's working directory."""
    def path(p: Path | None) -> Path | None:
        return None if p is None else Path(p).absolute()

    at = tuple(replace(cue, emotion=cue.emotion.absolute()) for cue in options.at)
    per_face = tuple(replace(f, emotion=f.emotion.absolute()) for f in options.face_emotions)
    return replace(options, emotion_speech=tuple(Path(p).absolute() for p in options.emotion_speech),
                   neutral_speech=tuple(Path(p).absolute() for p in options.neutral_speech), at=at,
                   face_emotions=per_face,
                   weights_dir=path(options.weights_dir), bank_dir=path(options.bank_dir))


def driver_plan(jobs: Sequence[Job], options: EditOptions) -> tuple[Plans | None, str | None]:
    """The emotion plan, computed once here for every worker (None when no job needs models), or the
    one-line reason it cannot be (a missing bank, a bad speech clip): every file needing models then fails."""
    if not any(runner.needs_models(j, options.overwrite) for j in jobs):
        return None, None
    try:
        runner.check_speech(options)
        return standalone_plan(options), None
    except UsageError:
        raise
    except CmetError as exc:
        return None, one_line(str(exc))


def driver_settings(options: EditOptions) -> tuple[str, str] | None:
    """The settings hash outputs are stamped with, computed once here (the weights are hashed, not loaded), and
    the face detector it assumes; None when the weights cannot be found here: each worker then computes it."""
    try:
        editor = Editor(options)
        return editor.settings(), editor.detector_kind()
    except UsageError:
        raise
    except CmetError:
        return None


def first_line(exc: BaseException) -> str:
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
        raise UsageError(f"cannot connect to Ray{where}: {first_line(exc)} (see --ray-address)") from None
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


def run(jobs: Sequence[Job], options: EditOptions, config: RayConfig, *, reporter: Reporter | None = None,
        verbose: int = 0, hook: WorkerHook | None = None) -> list[EditResult]:
    """Edit every job on a Ray cluster: the counterpart of ``runner.run`` (same results, in job order).

    Connects to ``config.address`` (or reuses an initialised Ray, or starts a local instance, shut
    down at the end). ``hook`` runs inside the workers on every progress update (tests use it to
    kill a worker mid-file). Raises UsageError like ``runner.run``.
    """
    ray = import_ray()
    started = connect(ray, config.address, quiet=reporter is not None and reporter.quiet)
    try:
        with _signal_exceptions():
            return _schedule(ray, list(jobs), options, config, reporter, verbose, hook)
    finally:
        if started:
            ray.shutdown()


def _schedule(ray, jobs: list[Job], options: EditOptions, config: RayConfig, reporter: Reporter | None,
              verbose: int, hook: WorkerHook | None) -> list[EditResult]:
    """Fail what can be failed here (inputs that do not probe, a plan that cannot be made), send the rest."""
    options = absolute_options(options)
    remote = [absolute_job(j) for j in jobs]
    rejected = runner.check_inputs(jobs, options)
    plan, load_error = driver_plan([j for j in jobs if j not in rejected], options)
    failed = {i: rejected.get(job, load_error) for i, job in enumerate(jobs)
              if job in rejected or (load_error and runner.needs_models(job, options.overwrite))}
    if config.gpus_per_worker is None and options.device == "cpu":
        config = replace(config, gpus_per_worker=0.0)  # --device cpu: reserve no GPUs
    queue = deque(i for i in range(len(jobs)) if i not in failed)
    schedule = Schedule(jobs, remote, queue, config.max_retries, reporter)
    for index, error in failed.items():
        schedule.finish(index, runner.failed(jobs[index], str(error)))
    if not queue:  # every input failed here: no worker is started
        return [schedule.results[i] for i in range(len(jobs))]
    nodes = [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    shape = worker_shape(config.workers, config.gpus_per_worker, ray.cluster_resources(), nodes, len(queue))
    pool = ActorPool(ray, shape, options, plan, driver_settings(options), verbose=verbose, hook=hook,
                     replacements=shape.count * config.max_retries)
    return schedule.run(pool)
