"""The networks of a run and the files they load from: ``load_models`` reads the checkpoints once.

``weight_paths`` finds the checkpoints (and the preset bank) an edit's options need without loading
them: the settings record hashes their content. ``detector_files`` does the same for the face
detectors' models (face-alignment's, YuNet's). torch is imported only when networks are built.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import weights
from .errors import CmetError, WeightsError
from .options import EditOptions, Speech
from .runtime import Runtime, pick_device, to_channels_last

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .render import EDTalkGenerator
    from .speech import Emotion2Vec
    from .transfer import Connector


@dataclass
class EmotionSources:
    """What an emotion plan is computed from: the preset bank and emotion2vec+large, loaded on first use
    (only runs with speech clips need it). Each clip is decoded and embedded once (keyed by path, mtime, size)."""

    preset_bank: dict[str, np.ndarray] | None = None
    speech_path: Path | None = None
    device: torch.device | str = "cpu"
    _speech: Emotion2Vec | None = None
    _embeddings: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict)  # by ``speech.clip_key``

    def bank(self) -> dict[str, np.ndarray]:
        if self.preset_bank is None:
            raise CmetError("the preset bank is not installed: run `cmet download-weights` or pass --bank")
        return self.preset_bank

    def speech(self) -> Emotion2Vec:
        if self._speech is None:
            from .speech import Emotion2Vec

            if self.speech_path is None:
                raise CmetError("emotion2vec+large is not installed: run `cmet download-weights` or pass --weights-dir")
            self._speech = Emotion2Vec.from_file(self.speech_path).to(self.device).eval()
        return self._speech

    def embed(self, clip: Path) -> np.ndarray:
        """The emotion2vec embedding of a speech clip."""
        from .speech import clip_key, load_speech

        key = clip_key(clip)
        if key not in self._embeddings:
            self._embeddings[key] = self.speech().embed(load_speech(clip)).cpu().numpy()
        return self._embeddings[key]


def emotion_sources(options: EditOptions, device: torch.device | str = "cpu") -> EmotionSources:
    """The bank and emotion2vec that the options' emotions need, nothing else (no generator): what a Ray
    driver computes the plan from. A WeightsError says how to get a missing file."""
    from .presets import load_bank

    speech_path, bank_path = weights.emotion_files(options.weights_dir, need_speech=needs_speech(options),
                                                   need_bank=needs_bank(options), bank_dir=options.bank_dir)
    return EmotionSources(load_bank(bank_path) if bank_path else None, speech_path, device)


@dataclass
class Models:
    """The networks of one run, loaded once; ``emotion``: what its emotion plan is made from (None when the
    plan was computed elsewhere)."""

    generator: EDTalkGenerator
    connector: Connector
    runtime: Runtime
    emotion: EmotionSources | None = None

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype; None: plain fp32."""
        return self.runtime.dtype

    @property
    def crop_size(self) -> int:
        return self.generator.config.size


def load_models(options: EditOptions, *, emotion: bool = True) -> Models:
    """The generator and connector on the options' device, and (``emotion``) what the emotion plan is made
    from; without it (the plan was computed elsewhere) neither the bank nor emotion2vec is looked for."""
    import torch

    from .checkpoint import read_checkpoint
    from .presets import load_bank
    from .render import EDTalkGenerator, generator_config
    from .transfer import Connector

    paths = weight_paths(options, emotion=emotion)
    device = pick_device(options.device)
    state = read_checkpoint(paths.edtalk, "gen")
    try:
        config = generator_config(state)
    except KeyError as exc:
        raise WeightsError(f"checkpoint {paths.edtalk} is not EDTalk's generator: its 'gen' has no entry {exc} "
                           "(re-run `cmet download-weights`)") from None
    generator = EDTalkGenerator(config)
    load_strict(generator, state, paths.edtalk)
    connector = Connector()
    load_strict(connector, read_checkpoint(paths.connector, "state_dict"), paths.connector)
    del state
    generator.to(device).eval()
    connector.to(device).eval()
    runtime = Runtime.build(precision=options.precision, batch_size=options.batch_size, picked=device)
    if runtime.channels_last:
        to_channels_last(generator)
    if options.compile:
        generator.encode = torch.compile(generator.encode)  # type: ignore[method-assign]
        generator.render = torch.compile(generator.render)  # type: ignore[method-assign]
    sources = EmotionSources(load_bank(paths.bank) if paths.bank else None, paths.emotion2vec, device) if emotion else None
    return Models(generator, connector, runtime, sources)


def weight_paths(options: EditOptions, *, emotion: bool = True) -> weights.WeightPaths:
    """The checkpoint files (and, with ``emotion``, the bank and emotion2vec) the run's options need; a
    WeightsError says how to get missing ones."""
    return weights.resolve(options.weights_dir, need_speech=emotion and needs_speech(options),
                           need_bank=emotion and needs_bank(options), bank_dir=options.bank_dir)


def needs_speech(options: EditOptions) -> bool:
    """Whether the options' emotions use speech clips (and so emotion2vec)."""
    return bool(options.emotion_speech or options.neutral_speech
                or any(isinstance(cue.emotion, Speech) for cue in options.at)
                or any(isinstance(f.emotion, Speech) for f in options.face_emotions))


def needs_bank(options: EditOptions) -> bool:
    """Whether they use the preset bank: a preset, or the bank's neutral clips as the reference."""
    return bool(options.preset or not options.neutral_speech or options.at
                or any(not isinstance(f.emotion, Speech) for f in options.face_emotions))


def load_strict(module: nn.Module, state: dict, path: Path) -> None:
    """``module.load_state_dict(state, strict=True)``; a mismatch is a WeightsError naming the file."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise WeightsError(f"{path} does not match the network ({' '.join(first)[:300]})") from None


DETECTOR_FILES = ("fan-detector", "fan-landmarks", "yunet", "yunet-dynamic")


def detector_files(weights_dir: Path | None = None) -> dict[str, Path]:
    """The face detectors' model files (``DETECTOR_FILES``: face-alignment's, YuNet's): from ``--weights-dir``
    when there, else the verified cache; a file found in neither is left out."""
    lock = weights.load_lock()
    out = {}
    for name in DETECTOR_FILES:
        given = weights.find_in_folder(lock[name], weights_dir) if weights_dir else None
        if given is not None:
            out[name] = given
            continue
        status = weights.check(lock[name])
        if status.state in ("verified", "recorded"):
            out[name] = status.path
    return out
