"""The emotion plan of an edit: the keyframes of ``--at`` (or the one emotion from 0 s), each with its
semantic vector, intensity applied.

The plan needs speech embeddings and the preset bank, not the generator: ``emotion_plan`` takes them as
functions (``models.EmotionSources.embed``/``bank``), so that a plan is computed once and then handed,
as a plain picklable list of ``timeline.Keyframe``, to whoever renders (``Editor(plan=...)``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import timeline
from .options import EditOptions, Emotion, Preset
from .presets import emotion_vector, preset_vector

Embed = Callable[[Path], np.ndarray]  # a speech clip's emotion2vec embedding
Bank = Callable[[], dict[str, np.ndarray]]  # the preset bank (called only when a preset or its neutral is used)


def emotion_plan(options: EditOptions, embed: Embed, bank: Bank) -> list[timeline.Keyframe]:
    """The keyframes of the edit, each with its semantic vector (intensity applied)."""
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

    keys = [(cue.time, cue.label, vector(cue.emotion)) for cue in options.cues()]
    return [timeline.Keyframe(t, options.intensity * v, label, float(np.linalg.norm(v))) for t, label, v in keys]


def standalone_plan(options: EditOptions) -> list[timeline.Keyframe]:
    """The plan from the bank and (for speech clips) emotion2vec on the CPU, with no generator loaded: a Ray
    driver computes it once and sends it to every worker."""
    from .models import emotion_sources

    sources = emotion_sources(options)
    return emotion_plan(options, sources.embed, sources.bank)
