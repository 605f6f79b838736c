"""Face editors: what turns a batch of face crops into edited ones (``FaceEditor``), and C-MET's.

``CmetEditor`` encodes the crops' codes with the EDTalk generator, rolls the C-MET connector over them
with the emotion plan's per-frame vectors, and renders the edited codes against the clip's appearance
frame. The streaming pass (``stream.run_edit``) calls ``begin`` once per clip, then the editor on each
batch of crops in frame order; ``frame_weights`` says how much of each frame's render it shows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from . import timeline
from .models import Models
from .runtime import WINDOW
from .stages import ProgressFn, Stage

if TYPE_CHECKING:
    from .pipeline import EditResult


class FaceEditor(Protocol):
    """Edits batches of 256² face crops of one clip, in frame order.

    Optional: ``crop_size`` (crops of another size), ``frame_strength(frames)`` (see ``frame_weights``) and
    ``report(result)`` (adds what the editor measured to the file's ``EditResult``, after the edit).
    """

    def begin(self, reference: np.ndarray, n_frames: int, fps: float, times: np.ndarray | None = None) -> None: ...

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray: ...


def frame_weights(editor: FaceEditor, frames: np.ndarray) -> np.ndarray:
    """How much of the rendered face each frame shows (0: the frame passes through, not rendered).

    An editor with an emotion plan gives its applied strength per frame; others render every face frame fully.
    """
    strength = getattr(editor, "frame_strength", None)
    return np.ones(len(frames), np.float32) if strength is None else np.asarray(strength(frames), np.float32)


class CmetEditor:
    """C-MET on face crops: encode codes, roll the connector forward, render against the appearance source."""

    def __init__(self, models: Models, plan: list[timeline.Keyframe], blend: float,
                 progress: ProgressFn | None = None) -> None:
        self.models = models
        self.plan = plan
        self.blend = blend
        self.progress = progress or (lambda *a: None)
        self.crop_size = models.crop_size
        self.change_sum = 0.0
        self.change_n = 0
        self.norm_sum = 0.0
        self.done = {Stage.READ_CODES: 0, Stage.TRANSFER: 0, Stage.RENDER: 0}

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
        self.weights = timeline.weights(self.plan, n_frames, fps, self.blend, times)  # (N, 1+K): small
        self.strength = timeline.frame_vectors(self.plan, self.weights)[1] if n_frames else np.zeros(0, np.float32)
        self.prev = None
        with torch.inference_mode(), self._autocast():
            self.source = self.models.generator.encode_source(self._to_tensor(reference[None]))

    def frame_strength(self, frames: np.ndarray) -> np.ndarray:
        """The applied emotion strength of each frame (0 before the first keyframe, ramps across ``blend``)."""
        return self.strength[np.asarray(frames, dtype=int)]

    def window_vectors(self, frames: np.ndarray) -> np.ndarray:
        """One semantic vector per 5-frame window: the mean of its frames' vectors."""
        pad = (-len(frames)) % WINDOW
        idx = np.concatenate([frames, np.repeat(frames[-1:], pad)]).reshape(-1, WINDOW)
        return self.vectors(idx.ravel()).reshape(*idx.shape, -1).mean(axis=1)

    def vectors(self, frames: np.ndarray) -> np.ndarray:
        """The semantic vector of each frame (computed per batch: an (N, 1024) table would grow with the clip)."""
        return timeline.frame_vectors(self.plan, self.weights[frames])[0]

    def __call__(self, crops: np.ndarray, frames: np.ndarray) -> np.ndarray:
        import torch

        gen, dev = self.models.generator, self.models.device
        with torch.inference_mode():
            x = self._to_tensor(crops)
            with self._autocast():
                codes = gen.encode(x)
            self._tick(Stage.READ_CODES, len(frames))
            exp = codes.exp.float()
            strength = torch.from_numpy(self.strength[frames]).to(dev)[:, None]
            if bool((strength > 0).any()):
                e2v = torch.from_numpy(self.window_vectors(frames)).to(dev)
                with self._autocast():
                    directions, self.prev = self.models.connector.directions(
                        exp, e2v, prev_direction=self.prev, return_last=True)
                edited = exp + strength * directions.float()
            else:
                edited = exp
            self.change_sum += float((edited - exp).abs().mean()) * len(frames)
            self.norm_sum += float(np.linalg.norm(self.vectors(frames) * self.strength[frames, None], axis=1).sum())
            self.change_n += len(frames)
            self._tick(Stage.TRANSFER, len(frames))
            with self._autocast():
                image = gen.render(self.source, codes.lip, codes.pose, edited.to(codes.exp.dtype))
            out = image.float().clamp_(-1, 1).add_(1).mul_(127.5).round_().to(torch.uint8)
            out = out.permute(0, 2, 3, 1).cpu().numpy()
            self._tick(Stage.RENDER, len(frames))
        return out

    def _tick(self, stage: Stage, n: int) -> None:
        self.done[stage] += n
        self.progress(stage, self.done[stage], self.n_frames)

    def report(self, result: EditResult) -> None:
        if self.change_n:
            result.code_change = self.change_sum / self.change_n
            result.vector_norm = self.norm_sum / self.change_n
