"""The emotion vector follows the speech: which clip, which neutral reference, how many clips.

emotion2vec is the small stand-in (``standin.SMALL_SPEECH``, loaded from its checkpoint file like the real
one), whose embeddings tell clips apart; the bank is the published one (``tests/data/features``).
"""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from cmet_cli.emotion import emotion_plan
from cmet_cli.models import emotion_sources
from cmet_cli.options import EditOptions

from .cli_support import BANK, BOX, cmet, model_args

SPEECH = Path(__file__).resolve().parent / "data" / "speech"
SAD, HAPPY, NEUTRAL = (sorted((SPEECH / name).glob("*.wav"))[0] for name in ("sad", "happy", "neutral"))
SARCASTIC = sorted((SPEECH / "sarcastic").glob("*.wav"))


@pytest.fixture(scope="module")
def sources(speech_weights):
    return emotion_sources(EditOptions(emotion_speech=(SAD,), weights_dir=speech_weights, bank_dir=BANK))


def vector(sources, **emotion) -> np.ndarray:
    (key,) = emotion_plan(EditOptions(**emotion), sources.embed, sources.bank)
    return key.vector.astype(np.float64)


def test_stand_in_tells_clips_apart(sources) -> None:
    clips = sorted(SPEECH.glob("*/*.wav"))
    embeddings = {c: sources.embed(c).astype(np.float64) for c in clips}
    distances = [np.linalg.norm(embeddings[a] - embeddings[b]) for a, b in combinations(clips, 2)]
    # measured 2.77 to 7.20 between the six clips (norms ~26); what the tests below rely on is "clearly apart"
    assert min(distances) > 1.0, distances


def test_vector_follows_the_speech_clip(sources) -> None:
    sad, happy = vector(sources, emotion_speech=(SAD,)), vector(sources, emotion_speech=(HAPPY,))
    assert np.linalg.norm(sad - happy) > 1.0
    # with the same neutral reference, the vectors differ exactly by the clips' embeddings
    np.testing.assert_allclose(sad - happy, sources.embed(SAD) - sources.embed(HAPPY), atol=1e-4)


def test_neutral_speech_is_the_reference(sources) -> None:
    bank_neutral = vector(sources, emotion_speech=(SAD,))
    own = vector(sources, emotion_speech=(SAD,), neutral_speech=(NEUTRAL,))
    assert np.linalg.norm(own - bank_neutral) > 1.0
    # a clip measured against itself is no emotion at all
    assert np.abs(vector(sources, emotion_speech=(SAD,), neutral_speech=(SAD,))).max() < 1e-5
    # and a preset measured against the user's neutral speech moves by the neutral references' difference
    preset = vector(sources, preset="happy") - vector(sources, preset="happy", neutral_speech=(NEUTRAL,))
    bank = sources.bank()["neutral"].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(preset, sources.embed(NEUTRAL) - bank, atol=1e-4)


def test_several_clips_are_averaged(sources) -> None:
    a, b = SARCASTIC[:2]
    both = vector(sources, emotion_speech=(a, b))
    np.testing.assert_allclose(both, (vector(sources, emotion_speech=(a,)) + vector(sources, emotion_speech=(b,))) / 2,
                               atol=1e-4)
    assert min(np.linalg.norm(both - vector(sources, emotion_speech=(c,))) for c in (a, b)) > 0.5
    neutrals = vector(sources, emotion_speech=(SAD,), neutral_speech=(NEUTRAL, HAPPY))
    one, other = (vector(sources, emotion_speech=(SAD,), neutral_speech=(n,)) for n in (NEUTRAL, HAPPY))
    np.testing.assert_allclose(neutrals, (one + other) / 2, atol=1e-4)


def _row(run) -> dict:
    assert run.code == 0, run.stderr
    (row,) = [json.loads(line) for line in run.stdout.splitlines()]
    return row


def test_cli_neutral_speech_changes_the_edit(tmp_path, clip, speech_weights, sources, model_loads) -> None:
    """Through the CLI: the emotion clip against itself leaves the face alone; against the bank it does not."""
    args = ("--json", *BOX, *model_args(speech_weights))
    same = _row(cmet("edit", clip, "-o", tmp_path / "same.mp4", "--emotion-speech", SAD, "--neutral-speech", SAD, *args))
    # a zero direction: nothing is rendered, and the result says why
    assert (same["code_change"], same["vector_norm"]) == (None, None)
    assert any("zero direction" in w for w in same["warnings"]), same["warnings"]
    bank = _row(cmet("edit", clip, "-o", tmp_path / "bank.mp4", "--emotion-speech", SAD, *args))
    expected = sources.embed(SAD).astype(np.float64) - sources.bank()["neutral"].astype(np.float64).mean(axis=0)
    assert bank["vector_norm"] == pytest.approx(float(np.linalg.norm(expected)), rel=1e-5)
    assert bank["code_change"] > 0
