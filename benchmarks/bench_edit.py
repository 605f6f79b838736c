"""Benchmark of the real edit pipeline (``cmet edit``) on a clip made from the MEAD sample.

    python -m benchmarks.bench_edit --frames 50 --device cpu [--size 720p|1080p|2160p|WxH] [--small-model]
    python -m benchmarks.bench_edit --rss-scaling [--device cpu] [--full-model] [--rss-seconds 10,60]
    python -m benchmarks.bench_edit --frames 240 --device cuda --compile [reduce-overhead] --no-flops
    python -m benchmarks.bench_edit --media-only --frames 10 --size 2160p   # and per stage (stage_times)
    python -m benchmarks.bench_edit --track-only --frames 50 --size 2160p

from the repository root: the benchmark is a module of the ``benchmarks`` package, and takes its clip,
its stand-in weights and the ``IdentityEditor`` from the test suite's helpers (``tests.clips``,
``tests.standin``), as the tests do.

The clip is ``tests/data/video/W009_038.mp4`` (the MEAD sample, a 256² face crop) scaled to the frame height,
centred on a grey canvas of the requested size, and looped to ``--frames`` frames (25 fps, with its
audio: ``tests.clips.looped_clip``). The networks use stand-in weights (compute cost does not depend on
weight values), written once into ``--cache-dir`` (default ``$CMET_BENCH_CACHE`` or ``~/.cache/cmet-bench``)
with the clips.

``--small-model`` uses a generator for 8² crops (~0.9 GFLOP per frame; 16² is ~4, 64² ~31, the real
256² ~61): the pipeline around it is the same, so memory and overhead checks run in minutes.

Each measurement runs in a fresh process, so that its peak RSS counts model loading and the run and
nothing else. In that process, after an untimed warm-up (a batch of each length the edit will hand its
face editor; three rounds with ``--compile``, so that compiling and CUDA graph recording happen there):

1. ``network_only`` (first pass): the clip's face crops, in the batches the edit will hand its face
   editor (``stream.face_batches``), through a fresh ``CmetEditor`` (source encoding, encode, rollout,
   render) and nothing else;
2. ``end_to_end``: ``Editor.edit`` on the clip (probe, face tracking pass, the streaming edit pass:
   decode planes → crop → encode codes → connector rollout → render → paste back → encode + audio mux),
   models already loaded. Its face editor is a ``CmetEditor`` wrapped in ``MeasuredEditor``, which
   times every call;
3. ``network_only`` again. Network time is the mean of the two passes around the edit, so that a
   drift of the machine's load cancels to first order (each pass is reported too);
4. ``count_flops`` (not with ``--no-flops``): the FLOPs per edited frame, counted with ``FlopCounterMode`` over a
   batch of each length the edit handed its editor, untimed (the once-per-clip appearance source is reported
   apart). Counted outside the timed runs because the counter sends every op through Python: counted inside the
   edit it slowed the edit's network calls and not the passes it is weighed against (at 720p on 2 CPU cores it
   raised ``overhead_ratio`` by ~0.045). ``tests/test_bench.py`` checks that the count equals one taken inside
   the edit.

``overhead_ratio`` = end-to-end time / network time. ``gpu_busy_share`` = the time inside the network calls of
the edit / its wall time (``busy_share`` says what it is and is not); where ``torch.cuda.utilization()`` works
(pynvml present), ``gpu_util_percent`` is the mean of NVML's utilisation sampled every 0.1 s during the edit.
``peak_rss_mb`` is the process's peak (loading included); ``before_edit_peak_rss_mb`` the peak before the edit
(loading, warm-up, first network pass); ``run_peak_rss_mb`` the peak during the edit alone (VmHWM reset before it; Linux).
The last line of output is one JSON object (see ``REQUIRED_KEYS``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from tests.clips import SAMPLE, looped_clip

if TYPE_CHECKING:
    import numpy as np

    from cmet_cli.face_editor import CmetEditor
    from cmet_cli.pipeline import EditResult

ROOT = Path(__file__).resolve().parents[1]
BANK = SAMPLE.parents[1] / "features"  # the committed preset bank (tests/data/README.md)
FPS = 25
PRESET = "sarcastic"
SMALL_SIZE = 8  # crop size of the --small-model generator
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "2160p": (3840, 2160)}
RSS_SECONDS = (10.0, 60.0)
COMPILE_MODES = ("default", "reduce-overhead")  # torch.compile modes; reduce-overhead: CUDA graphs (benchmark only)
UTIL_PERIOD_S = 0.1  # how often the NVML utilisation is sampled during the edit
MODULE = "benchmarks.bench_edit"  # how this file runs: python -m MODULE, from ROOT
REQUIRED_KEYS = ("device", "precision", "frames", "gflop_per_frame", "network_fps", "end_to_end_fps",
                 "overhead_ratio", "peak_rss_mb", "peak_device_mb")


@dataclass(frozen=True)
class RunSpec:
    """What one measuring child process does."""

    clip: str
    weights_dir: str
    device: str
    precision: str
    batch_size: int | None
    network_only: bool = True
    count_flops: bool = True
    compile: str = ""  # "": eager; "default": the product's --compile; "reduce-overhead": CUDA graphs too
    warm_up: bool = True


# ---------------------------------------------------------------- inputs (weights, clip)

def default_cache() -> Path:
    return Path(os.environ.get("CMET_BENCH_CACHE") or Path.home() / ".cache" / "cmet-bench")


def standin_weights(cache: Path, size: int) -> Path:
    """Stand-in checkpoints for a generator of ``size``² in ``cache`` (``tests.standin.cached_weights``)."""
    from tests.standin import cached_weights

    return cached_weights(cache, size)


def parse_size(text: str) -> tuple[int, int]:
    """``720p``, ``1080p``, ``2160p`` or ``WxH`` (even numbers)."""
    if text in SIZES:
        return SIZES[text]
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: use 720p, 1080p, 2160p or WxH") from None
    if w < 64 or h < 64 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size {text!r}: width and height must be even and at least 64")
    return w, h


def make_clip(cache: Path, frames: int, size: tuple[int, int], source: Path = SAMPLE, faces: int = 1) -> Path:
    """The benchmark's clip of ``frames`` frames at W×H (``tests.clips.looped_clip``; ``faces=2``: the face and its
    mirror side by side), made once into ``cache``.

    Made under a temporary name and renamed, so that an interrupted run never leaves a short clip to be reused."""
    w, h = size
    target = cache / "clips" / f"{source.stem}{'_two_faces' if faces == 2 else ''}_{w}x{h}_{frames}.mp4"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}-{os.getpid()}.mp4")
    try:
        looped_clip(tmp, frames=frames, size=size, rate=FPS, source=source, faces=faces)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------- the measuring child

def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ≥ 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM on Linux, ru_maxrss elsewhere), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


@dataclass
class MeasuredEditor:
    """A face editor (``face_editor.FaceEditor``) that hands every call to ``inner``, a ``CmetEditor``, and
    measures it: wall time of the batches, FLOPs (``FlopCounterMode``), and each batch's frame indices.

    It wraps rather than subclasses, so that what the edit reads of an editor is only what the protocol
    names: ``begin``, the call, and the optional ``crop_size``, ``window``, ``frame_strength`` and ``report``, each
    forwarded to the inner editor. ``count_flops``: count FLOPs too (``count_flops`` below, and the tests'
    reference count inside an edit; the counter slows the calls it counts, so the timed edit does not count).
    """

    inner: CmetEditor
    count_flops: bool = False
    flops: int = 0  # of the batches (not the appearance source)
    source_flops: int = 0  # of ``begin``: the appearance source, once per clip
    network_s: float = 0.0
    began_at: float = 0.0  # perf_counter at ``begin``: when the tracking pass ended
    batches: list = field(default_factory=list)  # frame indices of each batch, in order

    @property
    def crop_size(self) -> int:
        return self.inner.crop_size

    @property
    def window(self) -> int:
        return self.inner.window

    def frame_strength(self, frames: np.ndarray) -> np.ndarray:
        return self.inner.frame_strength(frames)

    def report(self, result: EditResult) -> None:
        self.inner.report(result)

    def begin(self, reference: np.ndarray, n_frames: int, fps: float, times: np.ndarray | None = None) -> None:
        self.began_at = time.perf_counter()
        _, self.source_flops = self._counted(self.inner.begin, reference, n_frames, fps, times)

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        out, flops = self._counted(self.inner, crops, frames)
        self.network_s += time.perf_counter() - started
        self.flops += flops
        self.batches.append(frames.copy())
        return out

    def _counted(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, int]:
        """``fn(*args)`` and the FLOPs it ran (0 when not counting: the counter slows the call down)."""
        if not self.count_flops:
            return fn(*args), 0
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            out = fn(*args)
        return out, counter.get_total_flops()


@dataclass(frozen=True)
class FlopCount:
    flops: int  # of the edit's batches
    frames: int  # the frames those batches held
    source_flops: int  # of ``begin``: the appearance source, once per clip


def count_flops(models, keyframes, blend: float, n_frames: int, batches: list[int]) -> FlopCount:
    """The networks' FLOPs for batches of the lengths in ``batches`` (the edit's, in order), and for the appearance
    source: one batch of each distinct length is counted, through a fresh ``CmetEditor`` with random crops (the
    count depends on the shapes alone), and the batches are summed; untimed, after the timed runs."""
    import numpy as np

    from cmet_cli.face_editor import CmetEditor

    size = models.crop_size
    crops = np.random.default_rng(0).integers(0, 256, (max(batches), size, size, 3), dtype=np.uint8)
    counted = MeasuredEditor(CmetEditor(models, keyframes, blend), count_flops=True)
    counted.begin(crops[0], n_frames, FPS)
    per_length = {}
    for n in sorted(set(batches), reverse=True):
        before = counted.flops
        counted(crops[:n], np.arange(n))
        per_length[n] = counted.flops - before
    return FlopCount(sum(per_length[n] for n in batches), sum(batches), counted.source_flops)


@dataclass
class Span:
    """Wall-clock seconds and CPU seconds (this process and its finished children, e.g. ffmpeg)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@contextmanager
def timed() -> Iterator[Span]:
    span, wall, cpu = Span(), time.perf_counter(), _cpu_seconds()
    yield span
    span.wall_s, span.cpu_s = time.perf_counter() - wall, _cpu_seconds() - cpu


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _options(spec: RunSpec):
    from cmet_cli.options import EditOptions

    return EditOptions(preset=PRESET, device=spec.device, precision=spec.precision, batch_size=spec.batch_size,
                       weights_dir=Path(spec.weights_dir), bank_dir=BANK, overwrite=True, compile=spec.compile == "default",
                       **face_finding(Path(spec.clip))).validate()


def centre_box(width: int, height: int) -> tuple[int, int, int, int]:
    """A fixed box about the size of the clip's face crop (the face is scaled to the frame height, centred)."""
    side = int(height * 0.8)
    return ((width - side) // 2, (height - side) // 2, side, side)


def face_finding(clip: Path) -> dict:
    """OpenCV's cascade where this OpenCV has it (the detector every CPU row used); else (OpenCV 5, as on CUDA
    images) a fixed box where the face is, and the tracking pass is skipped."""
    import cv2

    from cmet_cli import media
    from cmet_cli.faces.detection import cascade_problem

    if cascade_problem(cv2) is None:
        return {"detector": "cascade"}
    info = media.probe(clip)
    return {"box": centre_box(info.width, info.height)}


def warm_up_shapes(batch: int, n_frames: int) -> list[int]:
    """The batch lengths an edit of ``n_frames`` frames hands its editor when every frame has a face and is edited
    (the benchmark's clip and preset): full batches, then the remainder."""
    return sorted({min(batch, n_frames), n_frames % batch} - {0}, reverse=True)


def _warm_up(models, keyframes, shapes: list[int], rounds: int = 1) -> None:
    """A batch of each length in ``shapes`` through a throwaway editor, ``rounds`` times (first-call allocations,
    kernels per shape; compiled code: a compilation per shape, and CUDA graphs are recorded on a later call than
    the first), untimed."""
    import numpy as np

    from cmet_cli.face_editor import CmetEditor

    if not shapes:
        return
    size = models.crop_size
    crops = np.random.default_rng(0).integers(0, 256, (max(shapes), size, size, 3), dtype=np.uint8)
    editor = CmetEditor(models, keyframes, 0.5)
    editor.begin(crops[0], max(shapes), FPS)
    for _ in range(rounds):
        for n in shapes:
            editor(crops[:n], np.arange(n))
    _sync(models.device)


def compile_generator(models, mode: str) -> None:
    """What ``--compile`` does in ``models.load_models``, with a ``torch.compile`` mode the product does not offer
    (``reduce-overhead``: CUDA graphs, replayed per batch shape)."""
    import torch

    generator = models.generator
    generator.encode = torch.compile(generator.encode, mode=mode)
    generator.render = torch.compile(generator.render, mode=mode)


@dataclass
class NetworkInputs:
    """The crops of a clip in the edit's batches, and the appearance source crop."""

    reference: Any
    batches: list  # frame indices per batch, as the edit passes them
    crops: list  # (B, size, size, 3) uint8 per batch


def network_inputs(clip: Path, options, size: int, batch: int, batches: list | None = None) -> NetworkInputs:
    """Track the clip as the edit does and crop its face frames (untimed)."""
    import numpy as np

    from cmet_cli import faces, media, stream

    info = media.probe(clip)
    face_track = stream.track(info, options, None if options.box else faces.make_detector(options.detector))
    if batches is None:  # the edit's own plan; its chunks without a face hand the editor nothing
        batches = [b for b in stream.face_batches(face_track.present, batch, info.frame_count) if len(b)]
    wanted = {int(i) for b in batches for i in b} | {face_track.reference}
    crops = {i: faces.crop(f, faces.CropBox.from_row(face_track.boxes[i]), size)
             for i, f in enumerate(media.read_frames(info)) if i in wanted}
    return NetworkInputs(crops[face_track.reference], batches, [np.stack([crops[int(i)] for i in b]) for b in batches])


def network_only(models, keyframes, blend: float, n_frames: int, inputs: NetworkInputs) -> Span:
    """The crops, in the edit's batches, through a fresh CmetEditor (source encoding included)."""
    from cmet_cli.face_editor import CmetEditor

    editor = CmetEditor(models, keyframes, blend)
    with timed() as span:
        editor.begin(inputs.reference, n_frames, FPS)
        for idx, crops in zip(inputs.batches, inputs.crops):
            editor(crops, idx)
        _sync(models.device)
    return span


def _same_batches(a: list, b: list) -> bool:
    return len(a) == len(b) and all(len(x) == len(y) and (x == y).all() for x, y in zip(a, b))


def loadavg() -> float | None:
    """The 1-minute load average (other work on the machine skews every timing)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _device_info(device) -> tuple[str, float | None]:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device), torch.cuda.max_memory_allocated(device) / 2**20
    return cpu_model(), None


def _load(spec: RunSpec) -> tuple[Any, Any, list, float]:
    """Options, models and emotion keyframes of the run, and the seconds loading took."""
    from cmet_cli.emotion import emotion_plan
    from cmet_cli.models import load_models

    options = _options(spec)
    started = time.perf_counter()
    models = load_models(options)
    if spec.compile and spec.compile != "default":  # "default" is the product's own --compile (options.compile)
        compile_generator(models, spec.compile)
    keyframes = emotion_plan(options, models.emotion.embed, models.emotion.bank)
    return options, models, keyframes, time.perf_counter() - started


def _utilisation_reader(device) -> Callable[[], int] | None:
    """A call that reads the GPU's utilisation (NVML's percent of time a kernel ran, ``torch.cuda.utilization``),
    or None where it cannot be read (not CUDA, no pynvml, no NVML)."""
    if device.type != "cuda":
        return None
    import torch

    try:
        torch.cuda.utilization(device)
    except Exception:  # pynvml missing, NVML absent or refusing: the figure is left out
        return None
    return lambda: torch.cuda.utilization(device)


@contextmanager
def utilisation_samples(read: Callable[[], int] | None, period_s: float = UTIL_PERIOD_S) -> Iterator[list[int]]:
    """The values ``read()`` returns every ``period_s`` seconds, from a background thread, while the block runs
    (none when ``read`` is None; sampling stops at the first failed read)."""
    samples: list[int] = []
    if read is None:
        yield samples
        return
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(period_s):
            try:
                samples.append(int(read()))
            except Exception:
                return

    thread = threading.Thread(target=sample, name="cmet-bench-util", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def _edit(spec: RunSpec, options, models, keyframes) -> tuple[Any, Span, Any, float, list[int]]:
    """The real edit, timed: (EditResult, span, the measured editor, the start time, the GPU utilisation samples)."""
    from cmet_cli import pipeline

    from cmet_cli.face_editor import CmetEditor

    editor = MeasuredEditor(CmetEditor(models, keyframes, options.blend))
    runner = pipeline.Editor(options, models=models, plan=keyframes, face_editor=editor)
    read = _utilisation_reader(models.device)
    with tempfile.TemporaryDirectory(prefix="cmet-bench-") as tmp:
        with utilisation_samples(read) as samples, timed() as span:
            started = time.perf_counter()
            result = runner.edit(spec.clip, Path(tmp) / "out.mp4")
    return result, span, editor, started, samples


def _reset_peaks(device) -> bool:
    """Reset the host (and device) memory peaks before the edit; False if the host peak cannot be reset."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # the edit's peak; the weights stay counted
    return reset_peak_rss()


def run_child(spec: RunSpec) -> dict:
    """Load the models; time the network alone, the real edit, the network alone again; return the numbers.

    The two network-only passes sandwich the edit, so that a drift of the machine's load between them
    cancels (to first order) in their mean.
    """
    import torch

    from cmet_cli import media

    options, models, keyframes, load_s = _load(spec)
    batch = models.runtime.batch_size  # --batch-size in whole connector windows, else the default
    n_frames = media.probe(spec.clip).frame_count
    if spec.warm_up:
        _warm_up(models, keyframes, warm_up_shapes(batch, n_frames), rounds=3 if spec.compile else 1)
    network: list[Span] = []
    planned: list = []
    loads = {"before": loadavg()}
    if spec.network_only:
        inputs = network_inputs(Path(spec.clip), options, models.crop_size, batch)
        network.append(network_only(models, keyframes, options.blend, n_frames, inputs))
        loads["after_network_only_1"], planned = loadavg(), inputs.batches
        del inputs
    before_rss = peak_rss_mb()
    can_reset = _reset_peaks(models.device)
    result, end_to_end, editor, started, util = _edit(spec, options, models, keyframes)
    loads["after_end_to_end"] = loadavg()
    run_rss = peak_rss_mb()
    device_name, device_mb = _device_info(models.device)
    if spec.network_only and editor.batches:
        inputs = network_inputs(Path(spec.clip), options, models.crop_size, batch, editor.batches)
        if not _same_batches(planned, editor.batches):
            network = []  # the edit grouped frames differently: only the second pass is comparable
        network.append(network_only(models, keyframes, options.blend, n_frames, inputs))
        loads["after_network_only_2"] = loadavg()
    lengths = [len(b) for b in editor.batches]
    flops = count_flops(models, keyframes, options.blend, n_frames, lengths) if spec.count_flops and lengths else None
    return {
        "frames": result.frames, "face_frames": result.face_frames, "batch_size": batch,
        "load_s": load_s, "end_to_end_s": end_to_end.wall_s, "end_to_end_cpu_s": end_to_end.cpu_s,
        "track_s": editor.began_at - started, "edit_pass_s": started + end_to_end.wall_s - editor.began_at,
        "network_in_run_s": editor.network_s, "network_s": [n.wall_s for n in network],
        "network_cpu_s": [n.cpu_s for n in network], "flops": flops.flops if flops else 0,
        "flop_frames": flops.frames if flops else 0, "source_flops": flops.source_flops if flops else 0,
        "peak_rss_mb": max(before_rss, run_rss), "before_edit_peak_rss_mb": before_rss,
        "run_peak_rss_mb": run_rss if can_reset else None, "peak_device_mb": device_mb, "device_name": device_name,
        "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[models.dtype],
        "torch_threads": torch.get_num_threads(), "loadavg": loads, "compile": spec.compile or None,
        "gpu_util_samples": util,
    }


# ---------------------------------------------------------------- the parent

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(spec: RunSpec) -> dict:
    """Run one measurement in a fresh Python process; its last stdout line is the JSON result.

    The child runs this module from the repository root, where ``benchmarks`` and ``tests`` are packages."""
    cmd = [sys.executable, "-m", MODULE, "--child", json.dumps(asdict(spec))]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"benchmark run failed (exit {proc.returncode})")
    return json.loads(lines[-1])


def busy_share(network_in_run_s: float, end_to_end_s: float) -> float | None:
    """``gpu_busy_share``: the share of the edit's wall time spent inside its network calls (each call ends with
    the result copied back to the host, so the device's queue has drained).

    It is an upper bound of the share of time the device computed: a call's time also counts the host's work in
    it (moving the crops in and the faces out, launching kernels, the connector's small steps), and none of the
    device's idle gaps inside a call is subtracted. It leaves out the appearance source (encoded once per clip,
    in ``begin``). It is not NVML's utilisation (``gpu_util_percent``: the share of sampling periods in which any
    kernel ran). On the CPU it is the networks' share of the edit's wall time."""
    if not network_in_run_s or not end_to_end_s:
        return None
    return network_in_run_s / end_to_end_s


def utilisation_report(samples: list[int]) -> dict:
    """``gpu_util_percent`` (the mean of the samples) and their count; nothing when there are none."""
    if not samples:
        return {}
    return {"gpu_util_percent": sum(samples) / len(samples), "gpu_util_samples": len(samples)}


def summary(raw: dict, device: str) -> dict:
    """The report: the required keys first, then the detail."""
    edited = max(1, raw["face_frames"])
    passes, cpu = raw["network_s"], raw["network_cpu_s"]
    network_s = sum(passes) / len(passes) if passes else None  # the mean of the passes around the edit
    network_cpu_s = sum(cpu) / len(cpu) if cpu else None
    report = {
        "device": device,
        "precision": raw["precision"],
        "frames": raw["frames"],
        "gflop_per_frame": raw["flops"] / raw["flop_frames"] / 1e9 if raw["flops"] else None,
        "network_fps": edited / network_s if network_s else None,
        "end_to_end_fps": raw["frames"] / raw["end_to_end_s"],
        "overhead_ratio": raw["end_to_end_s"] / network_s if network_s else None,
        "gpu_busy_share": busy_share(raw["network_in_run_s"], raw["end_to_end_s"]),
        **utilisation_report(raw.get("gpu_util_samples") or []),
        "compile": raw.get("compile"),
        "peak_rss_mb": round(raw["peak_rss_mb"], 1),
        "peak_device_mb": None if raw["peak_device_mb"] is None else round(raw["peak_device_mb"], 1),
        "device_name": raw["device_name"],
        "before_edit_peak_rss_mb": round(raw["before_edit_peak_rss_mb"], 1),
        "run_peak_rss_mb": None if raw["run_peak_rss_mb"] is None else round(raw["run_peak_rss_mb"], 1),
        "edited_frames": raw["face_frames"],
        "batch_size": raw["batch_size"],
        "source_gflop": raw["source_flops"] / 1e9 if raw["flops"] else None,
        "end_to_end_s": raw["end_to_end_s"],
        "track_s": raw["track_s"],
        "edit_pass_s": raw["edit_pass_s"],
        "network_in_run_s": raw["network_in_run_s"],
        "network_s": network_s,
        "network_passes_s": [round(t, 3) for t in passes],
        "end_to_end_cpu_s": raw["end_to_end_cpu_s"],
        "network_cpu_s": network_cpu_s,
        "cpu_overhead_ratio": raw["end_to_end_cpu_s"] / network_cpu_s if network_cpu_s else None,
        "serial_overhead_ratio": raw["end_to_end_s"] / raw["network_in_run_s"] if raw["network_in_run_s"] else None,
        "edit_pass_ratio": raw["edit_pass_s"] / network_s if network_s else None,
        "load_s": raw["load_s"],
        "torch_threads": raw["torch_threads"],
        "nproc": os.cpu_count(),
        "loadavg_1m": raw["loadavg"],
    }
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in report.items()}


def headline(report: dict) -> str:
    """One readable line of the report's main numbers."""
    def fmt(key: str, unit: str = "") -> str:
        value = report.get(key)
        return "n/a" if value is None else f"{value:g}{unit}"

    parts = [f"{report['device']} {report['precision']}, {report['frames']} frames:",
             f"network {fmt('network_fps')} fps, end to end {fmt('end_to_end_fps')} fps,",
             f"overhead {fmt('overhead_ratio')}, busy share {fmt('gpu_busy_share')}, {fmt('gflop_per_frame')} GFLOP/frame,",
             f"peak RSS {fmt('peak_rss_mb')} MB"]
    if "rss_ratio" in report:
        parts.append(f"(RSS ratio long / short clip: {report['rss_ratio']:g})")
    return " ".join(parts)


def bench(args: argparse.Namespace) -> dict:
    cache = args.cache_dir
    weights = args.weights_dir or standin_weights(cache, args.small_size if args.small_model else 256)
    clip = make_clip(cache, args.frames, args.size)
    spec = RunSpec(str(clip), str(weights), args.device, args.precision, args.batch_size,
                   count_flops=not args.no_flops, compile=args.compile or "")
    return summary(measure(spec), args.device)


def media_only(clip: Path, preset: str = "medium") -> dict:
    """The edit without networks (``IdentityEditor``, a fixed box the size of the face crop): what decoding,
    cropping, colour conversion, paste-back and encoding cost, end to end, in this process, and per stage
    (``stage_times``: the stage functions wrapped and timed)."""
    from cmet_cli import media
    from cmet_cli.options import EditOptions
    from cmet_cli.pipeline import Editor

    from benchmarks.stage_times import StageClock, stage_report, stage_timing
    from tests.standin import IdentityEditor

    info = media.probe(clip)
    box = centre_box(info.width, info.height)
    options = EditOptions(preset="neutral", box=box, encoder_preset=preset)
    with tempfile.TemporaryDirectory(prefix="cmet-bench-") as tmp:
        loads = {"before": loadavg()}
        with stage_timing(StageClock()) as clock, timed() as span:
            Editor(options, face_editor=IdentityEditor()).edit(clip, Path(tmp) / "out.mp4")
        loads["after"] = loadavg()
        baseline = plain_transcode(clip, Path(tmp) / "plain.mp4", options.crf, preset)
    return {"mode": "media-only", "frames": info.frame_count, "size": f"{info.width}x{info.height}",
            "encoder_preset": preset, "media_only_s": round(span.wall_s, 3),
            "media_only_fps": round(info.frame_count / span.wall_s, 3), "media_only_cpu_s": round(span.cpu_s, 3),
            "cpu_ms_per_frame": round(1000 * span.cpu_s / info.frame_count, 3),
            "transcode_s": round(baseline.wall_s, 3), "transcode_fps": round(info.frame_count / baseline.wall_s, 3),
            "transcode_cpu_ms_per_frame": round(1000 * baseline.cpu_s / info.frame_count, 3),
            "cpu_ratio_to_transcode": round(span.cpu_s / baseline.cpu_s, 3),
            **stage_report(clock, info.frame_count, span.wall_s, span.cpu_s),
            "nproc": os.cpu_count(), "loadavg_1m": loads}


def plain_transcode(clip: Path, out: Path, crf: int, preset: str) -> Span:
    """What the edit's media path is weighed against: the ffmpeg command line decoding the clip and encoding it
    with the same encoder settings (libx264, ``crf``, ``preset``; audio copied), nothing else. Wall and CPU time
    of that child process."""
    from cmet_cli.media import ffmpeg_binary

    cmd = [ffmpeg_binary(), "-nostdin", "-v", "error", "-y", "-i", str(clip), "-map", "0", "-c:v", "libx264",
           "-preset", preset, "-crf", str(crf), "-c:a", "copy", str(out)]
    with timed() as span:
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    return span


YUNET_STANDIN = Path(__file__).resolve().parent.parent / "tests" / "data" / "detectors" / "yunet-standin-dynamic.onnx"


def track_only(clip: Path) -> dict:
    """The face-tracking pass alone (``stream.track`` with the detector ``--detector auto`` finds here: the cascade
    on a machine with no detector models, as every recorded row): decoding every frame and detecting on every
    5th, in this process."""
    from cmet_cli import faces, media, stream
    from cmet_cli.errors import UsageError
    from cmet_cli.models import detector_files
    from cmet_cli.options import EditOptions

    info = media.probe(clip)
    try:
        detector, label = faces.make_detector("auto", detector_files()), None
    except UsageError as exc:  # OpenCV 5 (no cascade) and no detector model installed, as on CUDA images
        if not YUNET_STANDIN.is_file():
            raise SystemExit(f"error: {exc}") from None
        # OpenCV's own FaceDetectorYN on the tests' stand-in network: the pass's decoding, keyframe scaling and
        # OpenCV's DNN call are all there, YuNet's layers are not (a lower bound; its "faces" are bright cells)
        detector, label = faces.YuNetDetector(str(YUNET_STANDIN)), "yunet stand-in network (timing only)"
    loads = {"before": loadavg()}
    with timed() as span:
        track = stream.track(info, EditOptions(preset="neutral", detector=detector.name), detector)
    loads["after"] = loadavg()
    return {"mode": "track-only", "detector": label or detector.name, "frames": info.frame_count, "size": f"{info.width}x{info.height}",
            "face_frames": int(track.present.sum()), "track_s": round(span.wall_s, 3),
            "track_fps": round(info.frame_count / span.wall_s, 3), "track_cpu_s": round(span.cpu_s, 3),
            "nproc": os.cpu_count(), "loadavg_1m": loads}


def rss_scaling(args: argparse.Namespace) -> dict:
    """Peak memory of a short and a long clip (10 s and 60 s unless ``--rss-seconds``), the small model unless
    ``--full-model``: the host's RSS, and on CUDA the device's peak; each ratio should be ≤ 1.1."""
    weights = args.weights_dir or standin_weights(args.cache_dir, 256 if args.full_model else args.small_size)
    runs = []
    for seconds in args.rss_seconds:
        clip = make_clip(args.cache_dir, max(1, round(seconds * FPS)), args.size)
        spec = RunSpec(str(clip), str(weights), args.device, args.precision, args.batch_size,
                       network_only=False, count_flops=False)
        runs.append(summary(measure(spec), args.device))
        print(f"{seconds:>4g} s: {json.dumps(runs[-1])}", flush=True)
    return rss_report(runs[0], runs[1], args.rss_seconds)


def rss_report(short: dict, long: dict, seconds: tuple[float, float] = RSS_SECONDS) -> dict:
    """The long run's report plus both peaks and their ratios: the whole process's RSS, the run's RSS (after
    loading), and the device's (``peak_device_mb``: CUDA's peak allocation during the edit, weights included)."""
    a, b = (f"{s:g}s" for s in seconds)
    report = dict(long)
    report.update({"mode": "rss-scaling", "rss_seconds": list(seconds), f"peak_rss_{a}_mb": short["peak_rss_mb"],
                   f"peak_rss_{b}_mb": long["peak_rss_mb"], "rss_ratio": round(long["peak_rss_mb"] / short["peak_rss_mb"], 4)})
    if short["run_peak_rss_mb"] and long["run_peak_rss_mb"]:
        report.update({f"run_peak_rss_{a}_mb": short["run_peak_rss_mb"], f"run_peak_rss_{b}_mb": long["run_peak_rss_mb"],
                       "run_rss_ratio": round(long["run_peak_rss_mb"] / short["run_peak_rss_mb"], 4)})
    if short.get("peak_device_mb") and long.get("peak_device_mb"):
        report.update({f"peak_device_{a}_mb": short["peak_device_mb"], f"peak_device_{b}_mb": long["peak_device_mb"],
                       "device_ratio": round(long["peak_device_mb"] / short["peak_device_mb"], 4)})
    return report


def parse_seconds(text: str) -> tuple[float, float]:
    """``--rss-seconds SHORT,LONG``: two clip lengths in seconds, the short one first."""
    try:
        short, long = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use SHORT,LONG in seconds, e.g. 10,60") from None
    if not 0 < short < long:
        raise argparse.ArgumentTypeError(f"{text!r}: the short clip must be longer than 0 s and shorter than the long one")
    return short, long


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=50, help="clip length in frames at 25 fps (default 50: 2 s)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    ap.add_argument("--size", type=parse_size, default=SIZES["720p"], help="720p | 1080p | 2160p | WxH (default 720p)")
    ap.add_argument("--small-model", action="store_true", help="a small generator (fast runs, memory checks)")
    ap.add_argument("--small-size", type=int, default=SMALL_SIZE, choices=(8, 16, 32, 64, 128),
                    help="crop size of the --small-model generator (default %(default)s)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    ap.add_argument("--batch-size", type=int, default=None, help="frames per network batch (default: the pipeline's)")
    ap.add_argument("--compile", nargs="?", const="default", default=None, choices=COMPILE_MODES,
                    help="torch.compile the generator: plain --compile is cmet's own (mode default); "
                         "--compile reduce-overhead adds CUDA graphs (a benchmark option only)")
    ap.add_argument("--no-flops", action="store_true",
                    help="do not count FLOPs (an untimed pass after the timed runs, a batch of each length under "
                         "FlopCounterMode; it saves that pass's time)")
    ap.add_argument("--rss-scaling", action="store_true",
                    help="peak RSS (and on CUDA peak device memory) of a short and a long clip, and their ratios")
    ap.add_argument("--rss-seconds", type=parse_seconds, default=RSS_SECONDS,
                    help="with --rss-scaling: the two clip lengths in seconds (default 10,60)")
    ap.add_argument("--full-model", action="store_true",
                    help="with --rss-scaling: the full-size (256²) stand-in generator instead of the small one")
    ap.add_argument("--media-only", action="store_true",
                    help="time the edit without networks (identity face editor): the media path alone")
    ap.add_argument("--encoder-preset", default="medium", help="x264/x265 preset of --media-only (default medium)")
    ap.add_argument("--track-only", action="store_true",
                    help="time the face-tracking pass alone (decode, the auto detector on every 5th frame)")
    ap.add_argument("--weights-dir", type=Path, default=None, help="checkpoints under their official names (default: stand-ins)")
    ap.add_argument("--cache-dir", type=Path, default=default_cache(), help="stand-in weights and clips (default %(default)s)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.frames < 1:
        ap.error("--frames must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    if not __package__:  # run as a file: ``tests`` (stand-in weights, clips) is then not importable
        raise SystemExit(f"run the benchmark as a module, from the repository root: python -m {MODULE} [options]")
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(RunSpec(**json.loads(args.child)))), flush=True)
        return 0
    if not SAMPLE.is_file():
        raise SystemExit(f"{SAMPLE} is missing: the benchmark needs the repository's tests/data")
    if args.media_only or args.track_only:
        clip = make_clip(args.cache_dir, args.frames, args.size)
        report = track_only(clip) if args.track_only else media_only(clip, args.encoder_preset)
        if args.media_only:
            from benchmarks.stage_times import stage_table

            print(stage_table(report), flush=True)
            print(f"CPU per frame: this media path {report['cpu_ms_per_frame']:g} ms, a plain ffmpeg transcode with the "
                  f"same x264 settings {report['transcode_cpu_ms_per_frame']:g} ms (ratio {report['cpu_ratio_to_transcode']:g}); "
                  f"wall {report['media_only_fps']:g} fps against {report['transcode_fps']:g} fps", flush=True)
        print(json.dumps(report), flush=True)
        return 0
    args.small_model = args.small_model or (args.rss_scaling and not args.full_model)
    report = rss_scaling(args) if args.rss_scaling else bench(args)
    print(headline(report), flush=True)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
