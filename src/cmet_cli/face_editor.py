"""Face editors: what turns a batch of face crops into edited ones (``FaceEditor``), and C-MET's.

``CmetEditor`` encodes the crops' codes with the EDTalk generator, rolls the C-MET connector over them
with the emotion plan's per-frame vectors, and renders the edited codes against the clip's appearance
frame. The streaming pass (``stream.run_edit``) calls ``begin`` once per clip, then the editor on each
batch of crops in frame order; ``frame_weights`` says how much of each frame's render it shows.

Several faces: one editor per face track (its own appearance source and connector rollout); ``edit_faces``
hands a chunk's crops of every face to their editors, and C-MET editors sharing one set of networks run the
encoder and the renderer on all of them in one batch (``CmetEditor.together``).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from . import timeline
from .models import Models
from .results import EditResult
from .runtime import WINDOW, whole_windows
from .stages import ProgressFn, Stage


class FaceEditor(Protocol):
    """Edits batches of 256² face crops of one clip, in frame order.

    Optional: ``crop_size`` (crops of another size), ``window`` (frames it edits together: batches are a
    multiple of it, ``batch_of_windows``), ``frame_strength(frames)`` (see ``frame_weights``) and
    ``report(result)`` (adds what the editor measured to the file's ``EditResult``, after the edit).
    """

    def begin(self, reference: np.ndarray, n_frames: int, fps: float, times: np.ndarray | None = None) -> None: ...

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray: ...


def batch_of_windows(editors: Sequence[FaceEditor], batch: int) -> int:
    """``batch`` rounded up to a multiple of the editors' ``window`` (the frames their networks see together:
    C-MET's connector windows of 5), so that no window straddles two batches: batches start at multiples of it
    and the edit does not depend on the batch size (``window_slots``). Editors without one take ``batch``."""
    return whole_windows(batch, max([int(getattr(e, "window", 1)) for e in editors] or [1]))


def frame_weights(editor: FaceEditor, frames: np.ndarray) -> np.ndarray:
    """How much of the rendered face each frame shows (0: the frame passes through, not rendered).

    An editor with an emotion plan gives its applied strength per frame; others render every face frame fully.
    """
    strength = getattr(editor, "frame_strength", None)
    return np.ones(len(frames), np.float32) if strength is None else np.asarray(strength(frames), np.float32)


def edit_faces(editors: Sequence[FaceEditor], work: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Each face's crops through its editor: ``work[k]`` = (crops, frame indices) of ``editors[k]``'s face.

    C-MET editors that share one set of networks encode and render all faces' crops in one batch
    (``CmetEditor.together``); other editors are called one after another.
    """
    shared = len(editors) > 1 and all(isinstance(e, CmetEditor) for e in editors) \
        and len({id(e.models) for e in editors}) == 1  # type: ignore[attr-defined]
    if shared:
        return CmetEditor.together(list(editors), work)  # type: ignore[arg-type]
    return [editor(crops, frames) for editor, (crops, frames) in zip(editors, work)]


class Tally:
    """Progress shared by the editors of one clip's faces: frames done per stage, out of every face's frames."""

    def __init__(self, progress: ProgressFn | None = None) -> None:
        self.progress = progress or (lambda *a: None)
        self.total = 0
        self.done = {Stage.READ_CODES: 0, Stage.TRANSFER: 0, Stage.RENDER: 0}

    def tick(self, stage: Stage, n: int) -> None:
        self.done[stage] += n
        self.progress(stage, self.done[stage], self.total)


class CmetEditor:
    """C-MET on face crops: encode codes, roll the connector forward, render against the appearance source.

    ``tally``: progress shared with the editors of the clip's other faces (default: this editor's own).
    """

    def __init__(self, models: Models, plan: list[timeline.Keyframe], blend: float,
                 progress: ProgressFn | None = None, tally: Tally | None = None) -> None:
        self.models = models
        self.plan = plan
        self.blend = blend
        self.tally = tally or Tally(progress)
        self.crop_size = models.crop_size
        self.window = WINDOW  # the connector's windows (``window_slots``)
        self.change_sum = 0.0
        self.change_n = 0
        self.norm_sum = 0.0

    def _autocast(self):
        import contextlib

        import torch

        if self.models.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.models.device.type, dtype=self.models.dtype)

    def _to_tensor(self, crops: np.ndarray):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.models.device)
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        if self.models.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def begin(self, reference: np.ndarray, n_frames: int, fps: float, times: np.ndarray | None = None) -> None:
        """Prepare a clip: encode the appearance source; ``times``: each frame's seconds since the first
        (default i/fps), so that keyframes fall on the frames shown at their time."""
        import torch

        self.n_frames = n_frames
        self.tally.total += n_frames
        self.weights = timeline.weights(self.plan, n_frames, fps, self.blend, times)  # (N, 1+K): small
        self.strength = timeline.frame_vectors(self.plan, self.weights)[1] if n_frames else np.zeros(0, np.float32)
        self.prev = None
        with torch.inference_mode(), self._autocast():
            self.source = self.models.generator.encode_source(self._to_tensor(reference[None]))

    def frame_strength(self, frames: np.ndarray) -> np.ndarray:
        """The applied emotion strength of each frame (0 before the first keyframe, ramps across ``blend``)."""
        return self.strength[np.asarray(frames, dtype=int)]

    def window_vectors(self, frames: np.ndarray) -> np.ndarray:
        """One semantic vector per connector window (``window_slots``): the mean of its slots' frames' vectors."""
        idx = np.asarray(frames)[window_slots(frames)[0]]
        return self.vectors(idx.ravel()).reshape(*idx.shape, -1).mean(axis=1)

    def vectors(self, frames: np.ndarray) -> np.ndarray:
        """The semantic vector of each frame (computed per batch: an (N, 1024) table would grow with the clip)."""
        return timeline.frame_vectors(self.plan, self.weights[frames])[0]

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            with self._autocast():
                codes = self.models.generator.encode(self._to_tensor(crops))
            self.tally.tick(Stage.READ_CODES, len(frames))
            edited = self._transfer(codes.exp, frames)
            with self._autocast():
                image = self.models.generator.render(self.source, codes.lip, codes.pose, edited.to(codes.exp.dtype))
            self.tally.tick(Stage.RENDER, len(frames))
            return _to_uint8(image)

    def _transfer(self, exp, frames: np.ndarray):
        """The edited expression codes of a face's frames: its connector rollout goes on from its last window."""
        import torch

        exp = exp.float()
        strength = torch.from_numpy(self.strength[frames]).to(self.models.device)[:, None]
        if bool((strength > 0).any()):
            fill, rows = window_slots(frames)
            e2v = torch.from_numpy(self.window_vectors(frames)).to(self.models.device)
            with self._autocast():
                directions, self.prev = self.models.connector.directions(
                    exp[torch.from_numpy(fill.ravel()).to(exp.device)], e2v, prev_direction=self.prev, return_last=True)
            edited = exp + strength * directions.float()[torch.from_numpy(rows).to(exp.device)]
        else:
            edited = exp
        self.change_sum += float((edited - exp).abs().mean()) * len(frames)
        self.norm_sum += float(np.linalg.norm(self.vectors(frames) * self.strength[frames, None], axis=1).sum())
        self.change_n += len(frames)
        self.tally.tick(Stage.TRANSFER, len(frames))
        return edited

    @staticmethod
    def together(editors: list["CmetEditor"], work: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Several faces' crops (``work[k]`` for ``editors[k]``, all on one set of networks) in shared batches:
        one encoder pass over every crop, each face's own connector rollout, one render pass with each crop's
        own appearance source."""
        import torch

        from .render import AppearanceSource

        gen = editors[0].models.generator
        sizes = [len(frames) for _, frames in work]
        with torch.inference_mode():
            with editors[0]._autocast():
                codes = gen.encode(editors[0]._to_tensor(np.concatenate([crops for crops, _ in work])))
            editors[0].tally.tick(Stage.READ_CODES, sum(sizes))
            parts = np.cumsum([0, *sizes])
            edited = torch.cat([e._transfer(codes.exp[a:b], frames)
                                for e, (_, frames), a, b in zip(editors, work, parts[:-1], parts[1:])])

            def each(get) -> torch.Tensor:  # a source tensor repeated for each crop of its face
                return torch.cat([get(e.source).expand(n, *get(e.source).shape[1:]) for e, n in zip(editors, sizes)])

            n_feats = len(editors[0].source.feats)
            normalized = editors[0].source.normalized
            source = AppearanceSource(
                wa=each(lambda s: s.wa), feats=[each(lambda s, i=i: s.feats[i]) for i in range(n_feats)],
                normalized=None if normalized is None else
                [each(lambda s, i=i: s.normalized[i]) for i in range(len(normalized))])
            with editors[0]._autocast():
                image = gen.render(source, codes.lip, codes.pose, edited.to(codes.exp.dtype))
            editors[0].tally.tick(Stage.RENDER, sum(sizes))
            out = _to_uint8(image)
        return [out[a:b] for a, b in zip(parts[:-1], parts[1:])]

    def report(self, result: EditResult) -> None:
        """The mean expression change and vector norm over the frames this editor rendered."""
        if self.change_n:
            result.code_change = self.change_sum / self.change_n
            result.vector_norm = self.norm_sum / self.change_n


def window_slots(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connector's 5-frame windows for a batch's frames (increasing clip indices), aligned to the clip: frame
    ``i`` is in window ``i // 5``, at slot ``i % 5``. So the windows, and the edit, do not depend on the batch
    size or on where a batch starts (batches begin at multiples of 5), nor on which frames of a window are left
    out (no face, or strength 0): a slot without its frame repeats the nearest frame of the window before it,
    else after it.

    Returns ``fill`` (W, 5): for each window's slots, the position in ``frames`` of the frame that fills it; and
    ``rows`` (len(frames),): each frame's row in the windows flattened (W * 5)."""
    frames = np.asarray(frames, dtype=np.int64)
    groups, first = np.unique(frames // WINDOW, return_index=True)
    fill = np.empty((len(groups), WINDOW), np.int64)
    rows = np.empty(len(frames), np.int64)
    bounds = [*first, len(frames)]
    for w in range(len(groups)):
        pos = np.arange(bounds[w], bounds[w + 1])
        slots = frames[pos] % WINDOW
        before = np.searchsorted(slots, np.arange(WINDOW), side="right") - 1  # the last frame at or before each slot
        fill[w] = pos[np.where(before >= 0, before, 0)]
        rows[pos] = w * WINDOW + slots
    return fill, rows


def _to_uint8(image) -> np.ndarray:
    """Rendered images (B, 3, H, W) in [-1, 1] as uint8 RGB crops (B, H, W, 3)."""
    import torch

    out = image.float().clamp_(-1, 1).add_(1).mul_(127.5).round_().to(torch.uint8)
    return out.permute(0, 2, 3, 1).cpu().numpy()
