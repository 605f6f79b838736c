"""The emotion plan of an edit: the keyframes of ``--at`` (or the one emotion from 0 s), each with its
semantic vector, intensity applied.

The plan needs speech embeddings and the preset bank, not the generator: ``emotion_plan`` takes them as
functions (``models.EmotionSources.embed``/``bank``), so that a plan is computed once and then handed,
as a plain picklable list of ``timeline.Keyframe``, to whoever renders (``Editor(plan=...)``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import timeline
from .options import Cue, EditOptions, Emotion, Preset
from .presets import emotion_vector, preset_vector

Embed = Callable[[Path], np.ndarray]  # a speech clip's emotion2vec embedding
Bank = Callable[[], dict[str, np.ndarray]]  # the preset bank (called only when a preset or its neutral is used)


Plans = dict[int | None, list[timeline.Keyframe]]  # by face id (``--face-emotion``); None: the global emotion


def emotion_plan(options: EditOptions, embed: Embed, bank: Bank,
                 cues: Sequence[Cue] | None = None) -> list[timeline.Keyframe]:
    """The keyframes of the edit (``cues``, default the options' own), each with its semantic vector
    (intensity applied)."""
    cache: dict[str, np.ndarray] = {}

    def neutral() -> np.ndarray:
        if "neutral" not in cache:
            if options.neutral_speech:
                cache["neutral"] = np.stack([embed(Path(p)) for p in options.neutral_speech])
            else:
                cache["neutral"] = bank()["neutral"]
        return cache["neutral"]

    def vector(source: Emotion) -> np.ndarray:
        if isinstance(source, Preset):
            return preset_vector(bank(), source.name, neutral() if options.neutral_speech else None)
        return emotion_vector([embed(clip) for clip in source.clips], neutral())

    keys = [(cue.time, cue.label, vector(cue.emotion)) for cue in (options.cues() if cues is None else cues)]
    return [timeline.Keyframe(t, options.intensity * v, label, float(np.linalg.norm(v))) for t, label, v in keys]


def emotion_plans(options: EditOptions, embed: Embed, bank: Bank) -> Plans:
    """The global plan (key None; empty without a global emotion) and one per ``--face-emotion`` face, each
    from the first frame with the run's intensity (embeddings and the bank are read once for all)."""
    plans: Plans = {None: emotion_plan(options, embed, bank) if options.global_emotion else []}
    for f in options.face_emotions:
        plans[f.face] = emotion_plan(options, embed, bank, [Cue(0.0, f.emotion, f.label)])
    return plans


def standalone_plan(options: EditOptions) -> Plans:
    """The plans from the bank and (for speech clips) emotion2vec on the CPU, with no generator loaded: a Ray
    driver computes them once and sends them to every worker."""
    from .models import emotion_sources

    sources = emotion_sources(options)
    return emotion_plans(options, sources.embed, sources.bank)
