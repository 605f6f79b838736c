"""Creator controls: presets, intensity, the emotion timeline, previews and the emotion strength report.

Networks run in the small stand-in configuration (64² generator, weights built once per session);
the clips are fractions of a second with a fixed ``--box``.
"""
from __future__ import annotations

import json
import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cmet_cli import media, pipeline, presets, timeline
from cmet_cli.cli import main
from cmet_cli.errors import UsageError
from cmet_cli.models import EmotionSources, Models, load_models
from cmet_cli.options import EditOptions
from cmet_cli.emotion import emotion_plan, emotion_plans
from cmet_cli.face_editor import CmetEditor
from cmet_cli.presets import PRESETS, emotion_vector, load_bank, preset_vector

from .clips import face_clip
from .media_checks import audio_packets

CANVAS, OFFSET = "384x320", (64, 32)
BOX = (64, 32, 256, 256)
BOX_ARG = "64,32,256,256"


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def bank_dir(data_dir: Path) -> Path:
    path = data_dir / "features"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def bank(bank_dir: Path) -> dict[str, np.ndarray]:
    return load_bank(bank_dir)


@pytest.fixture(scope="session")
def weights_dir(small_weights: Path) -> Path:
    return small_weights


@pytest.fixture(scope="session")
def models(weights_dir: Path, bank_dir: Path) -> Models:
    return load_models(EditOptions(preset="happy", weights_dir=weights_dir, bank_dir=bank_dir, device="cpu"))


@pytest.fixture(scope="session")
def clip(tmp_path_factory, data_dir) -> Path:
    """0.4 s (10 frames at 25 fps) of the MEAD sample in a 384×320 frame, face at BOX, with its audio."""
    return face_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=0.4, canvas=CANVAS, offset=OFFSET, rate=25)


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory, data_dir) -> Path:
    """0.2 s (5 frames: one connector window)."""
    return face_clip(tmp_path_factory.mktemp("short") / "short.mp4", seconds=0.2, canvas=CANVAS, offset=OFFSET, rate=25)


@pytest.fixture
def cached_models(models: Models, bank_dir: Path, weights_dir: Path):
    """A model loader for CLI runs (``_cli(..., load_models=...)``): the session's models instead of reading the
    checkpoints again (same files, same bank)."""
    loads: list[EditOptions] = []

    def load(options: EditOptions) -> Models:
        assert Path(options.bank_dir) == bank_dir and Path(options.weights_dir) == weights_dir
        loads.append(options)
        return models

    yield load
    assert loads, "the edit loaded its models without the loader handed to it"


@pytest.fixture
def calls(monkeypatch, models: Models) -> dict[str, list]:
    """Record what goes through the networks: encode's codes, render's expression codes, connector inputs."""
    return _record(monkeypatch, models, synthesise=True)


@pytest.fixture
def codes(monkeypatch, models: Models) -> dict[str, list]:
    """As ``calls``, but render only records its codes and returns a blank image (what is checked is its input)."""
    return _record(monkeypatch, models, synthesise=False)


def _record(monkeypatch, models: Models, synthesise: bool) -> dict[str, list]:
    import torch

    gen, conn = models.generator, models.connector
    seen: dict[str, list] = {"encode": [], "render": [], "directions": []}
    encode, render, directions = gen.encode, gen.render, conn.directions

    def rec_encode(x):
        codes = encode(x)
        seen["encode"].append(codes.exp.detach().float().clone())
        return codes

    def rec_render(source, lip, pose, exp):
        seen["render"].append(exp.detach().float().clone())
        if not synthesise:
            return torch.zeros(len(exp), 3, models.crop_size, models.crop_size)
        return render(source, lip, pose, exp)

    def rec_directions(exp, e2v, **kw):
        seen["directions"].append(e2v.detach().clone())
        out = directions(exp, e2v, **kw)
        seen["predicted"] = seen.get("predicted", []) + [out[0].detach().float().clone()]
        return out

    monkeypatch.setattr(gen, "encode", rec_encode)
    monkeypatch.setattr(gen, "render", rec_render)
    monkeypatch.setattr(conn, "directions", rec_directions)
    return seen


def _crops(path: Path, size: int, n: int) -> np.ndarray:
    from cmet_cli import faces

    info = media.probe(path)
    box = faces.CropBox.from_row(faces.fixed_track(BOX, 1).boxes[0])
    return np.stack([faces.crop(f, box, size) for f in media.read_frames(info, 0, n)])


def _cli(*args: str, load_models=None):
    """``cmet ARGS`` in this process; ``load_models``: the loader the command hands to the runner."""
    return CliRunner().invoke(main, [str(a) for a in args], obj={"load_models": load_models}, catch_exceptions=False)


# ---------------------------------------------------------------- help texts

def test_help_documents_every_control() -> None:
    edit = " ".join(_cli("edit", "--help").output.split())
    for text in ("--preset", "cmet emotions", "--bank", "--intensity", "0 to 2", "0 = expression unchanged",
                 "--at TIME EMOTION", "mm:ss", "before the first TIME the face is unchanged", "--blend", "--compare",
                 "side by side", "code_change and vector_norm", "semantic vector norm"):
        assert text in edit, text
    preview = " ".join(_cli("preview", "--help").output.split())
    for text in ("--preset", "--emotion-speech", "--intensity", "--frames", "original above and edited below",
                 "only these are processed", "--bank", "--box"):
        assert text in preview, text
    emotions = " ".join(_cli("emotions", "--help").output.split())
    for text in ("clip counts", "--bank", "--json", "contempt"):
        assert text in emotions, text


# ---------------------------------------------------------------- presets

def test_emotions_lists_the_bank(bank_dir: Path) -> None:
    result = _cli("emotions", "--bank", bank_dir, "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(rows) == list(PRESETS) and len(rows) == 14
    for name, row in rows.items():
        assert row["clips"] == len(list((bank_dir / name).glob("*.npy"))) > 0, name
    assert rows["contempt"]["weak"] and rows["contempt"]["norm"] < presets.WEAK_NORM
    assert rows["contempt"]["cosine"] > 0.99 and "weak" in rows["contempt"]["note"]
    assert rows["neutral"]["norm"] is None and not rows["neutral"]["weak"]
    strong = [r for n, r in rows.items() if n not in ("contempt", "neutral")]
    assert all(r["norm"] > 5 and not r["weak"] and r["note"] == "" for r in strong)

    table = _cli("emotions", "--bank", bank_dir)
    assert table.exit_code == 0
    lines = {line.split()[1]: line for line in table.stdout.splitlines() if line.startswith("│ ") and line.split()[1] in PRESETS}
    assert set(lines) == set(PRESETS)
    assert f" {rows['sarcastic']['clips']} " in lines["sarcastic"]
    assert "weak" in lines["contempt"] and "weak" not in lines["happy"]


def test_emotions_without_a_bank(tmp_path: Path) -> None:
    result = _cli("emotions", "--bank", tmp_path / "nowhere")
    assert result.exit_code == 1 and "nowhere" in result.stderr


def test_preset_vector_is_mean_of_all_clips_minus_neutral(bank_dir: Path, bank) -> None:
    def mean(name: str) -> np.ndarray:
        files = sorted((bank_dir / name).glob("*.npy"))
        return np.mean([np.load(f).astype(np.float64).reshape(-1) for f in files], axis=0)

    for name in ("happy", "contempt", "sarcastic"):
        np.testing.assert_allclose(preset_vector(bank, name), mean(name) - mean("neutral"), atol=1e-5)


# ---------------------------------------------------------------- options and the plan

def test_time_and_duration_parsing() -> None:
    assert timeline.parse_time("12.5") == 12.5
    assert timeline.parse_time("1:05") == 65.0
    assert timeline.parse_time("0:00.2") == pytest.approx(0.2)
    assert timeline.parse_time("1:02:03.5") == 3723.5
    for bad in ("", "1:5x", "-1", "1::2", "happy"):
        with pytest.raises(UsageError):
            timeline.parse_time(bad)
    assert timeline.parse_duration("0.5s") == 0.5 and timeline.parse_duration("250ms") == 0.25
    assert timeline.parse_duration("1") == 1.0
    with pytest.raises(UsageError):
        timeline.parse_duration("fast")


def test_options_are_validated_before_any_work(tmp_path: Path) -> None:
    for bad in (dict(preset="happy", intensity=2.5), dict(preset="happy", intensity=-0.1),
                dict(preset="happy", at=(("0", "sad"),)), dict(at=(("soon", "sad"),)),
                dict(at=(("0", str(tmp_path / "missing.wav")),)), dict(at=(("0", "happy"),), blend=-1)):
        with pytest.raises(UsageError):
            EditOptions(**bad).validate()
    EditOptions(at=(("0", "happy"), ("0:04", "sad")), intensity=2.0).validate()
    result = _cli("edit", tmp_path / "in.mp4", "-o", tmp_path / "out.mp4", "--preset", "happy", "--intensity", "3")
    assert result.exit_code == 2 and "invalid value for '--intensity': 3.0 is not in the range 0<=x<=2" in result.stderr
    result = _cli("edit", tmp_path / "in.mp4", "-o", tmp_path / "out.mp4", "--at", "1:xx", "happy")
    assert result.exit_code == 2 and "mm:ss" in result.stderr


def test_library_errors_name_the_field_and_the_cli_names_the_flag(tmp_path: Path) -> None:
    from cmet_cli.options import OptionError

    with pytest.raises(OptionError) as info:
        pipeline.edit_video(tmp_path / "in.mp4", tmp_path / "out.mp4", preset="happy", intensity=3)
    assert str(info.value) == "intensity must be between 0 and 2, not 3" and "--" not in str(info.value)
    with pytest.raises(OptionError, match=r"^batch_size must be at least 1$"):
        EditOptions(preset="happy", batch_size=0).validate()
    with pytest.raises(OptionError, match=r"^preset and emotion_speech are exclusive"):
        EditOptions(preset="happy", emotion_speech=(tmp_path / "a.wav",)).validate()
    # the CLI says the same through its flags (the values reach the library: click's types let them pass)
    result = _cli("edit", tmp_path / "in.mp4", "-o", tmp_path / "out.mp4", "--at", "0", tmp_path / "gone.wav")
    assert result.exit_code == 2
    assert result.stderr == f"error: --at 0 {tmp_path / 'gone.wav'}: no such speech file (or a preset name: see `cmet emotions`)\n"
    result = _cli("edit", tmp_path / "in.mp4", "-o", tmp_path / "out.mp4", "--preset", "happy",
                  "--emotion-speech", tmp_path / "a.wav")
    assert result.exit_code == 2 and result.stderr == "error: --preset and --emotion-speech are exclusive: choose one\n"


def test_preset_name_or_speech_file_is_decided_once(tmp_path: Path) -> None:
    from cmet_cli.options import Cue, Preset, Speech, parse_emotion

    (tmp_path / "calm").write_bytes(b"")  # an existing file without a suffix is a speech file, not a preset
    assert parse_emotion("sad") == Preset("sad")
    assert parse_emotion("clips/sad.wav") == Speech((Path("clips/sad.wav"),))
    assert parse_emotion(str(tmp_path / "calm")) == Speech((tmp_path / "calm",))
    options = EditOptions(at=(("0:04", "sad"), ("1", "b.wav")), blend=1.0)
    assert options.at == (Cue(4.0, Preset("sad"), "sad"), Cue(1.0, Speech((Path("b.wav"),)), "b.wav"))
    assert EditOptions(at=options.at).at == options.at  # cues pass through as they are
    assert EditOptions(preset="happy").cues() == (Cue(0.0, Preset("happy"), "happy"),)
    assert EditOptions(emotion_speech=(Path("x/a.wav"), Path("b.wav"))).cues()[0].label == "a.wav, b.wav"
    # the CLI's --at type parses into the same cues
    from cmet_cli.cli import CueType

    assert CueType().convert(("0:04", "sad"), None, None) == options.at[0]


def test_edit_and_preview_declare_their_shared_options_once() -> None:
    from cmet_cli.cli import edit, preview

    def params(command):
        return {p.name: p for p in command.params}

    shared = ("emotion_speech", "preset", "neutral_speech", "intensity", "bank_dir", "weights_dir", "device",
              "detector", "box")
    for name in shared:
        a, b = params(edit)[name], params(preview)[name]
        assert (a.opts, a.help, repr(a.type), a.default, a.multiple) == (b.opts, b.help, repr(b.type), b.default, b.multiple)
    result = _cli("preview", "in.mp4", "-o", "sheet.png", "--preset", "happy", "--intensity", "3")
    assert result.exit_code == 2 and "invalid value for '--intensity': 3.0 is not in the range 0<=x<=2" in result.stderr


class _Speech:
    """emotion2vec stand-in: every clip embeds to the happy bank's mean (the routing is what is tested)."""

    def __init__(self, vector: np.ndarray) -> None:
        self.vector = vector
        self.calls = 0

    def embed(self, wave):
        import torch

        self.calls += 1
        return torch.from_numpy(self.vector)


def test_speech_clips_are_decoded_and_embedded_once_per_run(bank, data_dir: Path, monkeypatch) -> None:
    """``runner.check_speech`` decodes every clip before the models load; the plan reuses that decode, and a
    clip used twice (emotion and neutral reference, or twice in a timeline) goes through emotion2vec once."""
    from cmet_cli import runner, speech

    clip = sorted((data_dir / "speech" / "sad").glob("*.wav"))[0]
    neutral = sorted((data_dir / "speech" / "neutral").glob("*.wav"))[0]
    speech._DECODED.clear()
    decoded: list[Path] = []
    real = speech._decode_speech
    monkeypatch.setattr(speech, "_decode_speech", lambda path: decoded.append(path) or real(path))
    options = EditOptions(at=(("0", str(clip)), ("1", "happy"), ("2", str(clip))), neutral_speech=(neutral,)).validate()
    runner.check_speech(options)
    assert sorted(decoded) == sorted([clip, neutral])
    stub = EmotionSources(bank, _speech=_Speech(bank["happy"].mean(axis=0)))
    keys = emotion_plan(options, stub.embed, stub.bank)
    assert len(decoded) == 2 and stub._speech.calls == 2  # the clip once, the neutral reference once
    np.testing.assert_array_equal(keys[0].vector, keys[2].vector)


def test_plan_of_presets_speech_and_intensity(bank, data_dir: Path) -> None:
    """The plan needs embeddings and the bank, no networks; it is a plain value (a Ray worker can be sent it)."""
    speech = sorted((data_dir / "speech" / "sad").glob("*.wav"))[0]
    embedded: list[Path] = []

    def embed(clip: Path) -> np.ndarray:  # emotion2vec stand-in: every clip embeds to the happy bank's mean
        embedded.append(clip)
        return bank["happy"].mean(axis=0)

    options = EditOptions(at=(("0:01", "contempt"), ("0", "happy"), ("1:30", str(speech))), intensity=0.5).validate()
    keys = emotion_plan(options, embed, lambda: bank)
    assert [k.time for k in keys] == [1.0, 0.0, 90.0]
    np.testing.assert_allclose(keys[0].vector, 0.5 * preset_vector(bank, "contempt"), rtol=1e-6)
    np.testing.assert_allclose(keys[1].vector, 0.5 * preset_vector(bank, "happy"), rtol=1e-6)
    np.testing.assert_allclose(keys[2].vector, 0.5 * preset_vector(bank, "happy"), atol=1e-4)
    assert embedded == [speech]  # the speech file went through emotion2vec; preset names did not
    assert keys[0].norm == pytest.approx(float(np.linalg.norm(preset_vector(bank, "contempt"))))
    warnings = presets.weak_warnings(keys)
    assert len(warnings) == 1 and warnings[0].startswith("contempt is a weak emotion")

    copied = pickle.loads(pickle.dumps(keys))
    assert [(k.time, k.label, k.norm) for k in copied] == [(k.time, k.label, k.norm) for k in keys]
    assert all(np.array_equal(a.vector, b.vector) for a, b in zip(copied, keys))

    zero = emotion_plan(EditOptions(preset="happy", intensity=0.0), embed, lambda: bank)
    assert not zero[0].active and zero[0].norm > 5 and presets.weak_warnings(zero) == []
    assert "unchanged" in presets.weak_warnings(emotion_plan(EditOptions(preset="neutral"), embed, lambda: bank))[0]


def test_neutral_stays_a_zero_direction_with_a_neutral_reference(bank, data_dir: Path) -> None:
    """``neutral`` leaves the face unchanged with ``--neutral-speech`` too (as preset, ``--at`` keyframe and
    ``--face-emotion``): it was the bank's neutral minus the speaker's neutral speech, a direction of norm ~29
    that edited the face. Another preset still takes the speaker's neutral as its reference."""
    neutral_clip = sorted((data_dir / "speech" / "neutral").glob("*.wav"))[0]
    speaker = bank["happy"].mean(axis=0) + 3.0  # a speaker's neutral speech, far from the bank's neutral

    def embed(clip: Path) -> np.ndarray:
        return speaker

    options = EditOptions(at=(("0", "neutral"), ("1", "happy")), neutral_speech=(neutral_clip,)).validate()
    neutral, happy = emotion_plan(options, embed, lambda: bank)
    assert not neutral.active and not np.any(neutral.vector) and neutral.norm == 0.0
    np.testing.assert_allclose(happy.vector, emotion_vector(bank["happy"], [speaker]), rtol=1e-6)
    assert "unchanged" in presets.weak_warnings([neutral])[0]
    plans = emotion_plans(EditOptions(preset="happy", face_emotions=("2=neutral",), neutral_speech=(neutral_clip,)
                                      ).validate(), embed, lambda: bank)
    assert not np.any(plans[2][0].vector)


def test_editor_uses_a_given_plan(models: Models, bank) -> None:
    """A plan computed once (as a caller that ships it to workers does) is used as given, not made again."""
    given = [timeline.Keyframe(0.0, preset_vector(bank, "sad"), "sad")]
    editor = pipeline.Editor(EditOptions(preset="happy", box=BOX), models=models, plan=given)
    editor.load()
    assert [k.label for k in editor.plan] == ["sad"]
    made = pipeline.Editor(EditOptions(preset="happy", box=BOX), models=models)
    made.load()
    assert [k.label for k in made.plan] == ["happy"]


# ---------------------------------------------------------------- timeline, frame exact

def _keys(bank) -> list[timeline.Keyframe]:
    return [timeline.Keyframe(1.001, preset_vector(bank, "happy"), "happy"),
            timeline.Keyframe(2.5, preset_vector(bank, "sad"), "sad")]


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001)])
def test_timeline_is_frame_exact(bank, fps: Fraction) -> None:
    """happy from 1.001 s, sad from 2.5 s, 0.5 s blends: the vector and strength of every frame."""
    keys = _keys(bank)
    n = int(4 * fps)
    w = timeline.weights(keys, n, float(fps), 0.5)
    assert w.shape == (n, 3) and np.allclose(w.sum(axis=1), 1.0)
    vectors, strength = timeline.frame_vectors(keys, w)
    t = [Fraction(i) / fps for i in range(n)]  # exact frame times
    happy, sad = keys[0].vector, keys[1].vector
    k1, k2 = Fraction(1001, 1000), Fraction(5, 2)
    before = [i for i in range(n) if t[i] <= k1]
    assert before and (strength[before] == 0).all()  # unchanged up to the key (the fade starts on it)
    if fps == Fraction(30000, 1001):
        assert before[-1] == 30 and strength[31] > 0  # 1.001 s is frame 30 exactly
    fading = [i for i in range(n) if k1 < t[i] < k1 + Fraction(1, 2)]
    assert fading and (np.diff(strength[[before[-1], *fading]]) > 0).all() and (strength[fading] < 1).all()
    assert all(np.allclose(vectors[i], happy, rtol=1e-6) for i in fading)
    full = [i for i in range(n) if k1 + Fraction(1, 2) <= t[i] <= k2]
    assert full and all(strength[i] == 1.0 and np.array_equal(vectors[i], happy) for i in full)
    after = [i for i in range(n) if t[i] >= k2 + Fraction(1, 2)]
    assert after and all(strength[i] == 1.0 and np.array_equal(vectors[i], sad) for i in after)
    between = [full[-1], *[i for i in range(n) if k2 < t[i] < k2 + Fraction(1, 2)], after[0]]
    assert (strength[between] == 1).all()
    d = (sad - happy).astype(np.float64)
    share = np.array([(vectors[i] - happy) @ d / (d @ d) for i in between])  # how far from happy to sad
    assert share[0] == 0 and share[-1] == 1 and (np.diff(share) > 0).all()
    residual = [vectors[i] - (happy + s * d) for i, s in zip(between, share)]
    assert max(np.abs(r).max() for r in residual) < 1e-4  # on the straight line between the two vectors


def test_key_at_zero_applies_from_the_first_frame_and_zero_vectors_leave_the_face(bank) -> None:
    happy = preset_vector(bank, "happy")
    w = timeline.weights([timeline.Keyframe(0.0, happy)], 10, 25.0, 0.5)
    vectors, strength = timeline.frame_vectors([timeline.Keyframe(0.0, happy)], w)
    assert (strength == 1).all() and (vectors == happy).all()
    # intensity 0: nothing is applied anywhere
    keys = [timeline.Keyframe(0.0, 0 * happy), timeline.Keyframe(0.2, 0 * preset_vector(bank, "sad"))]
    _, strength = timeline.frame_vectors(keys, timeline.weights(keys, 25, 25.0, 0.1))
    assert (strength == 0).all()
    # back to neutral (a zero vector) fades the strength out, not the vector
    keys = [timeline.Keyframe(0.0, happy), timeline.Keyframe(0.4, np.zeros_like(happy), "neutral")]
    vectors, strength = timeline.frame_vectors(keys, timeline.weights(keys, 25, 25.0, 0.2))
    assert (strength[:11] == 1).all() and (np.diff(strength[10:16]) < 0).all() and (strength[15:] == 0).all()
    np.testing.assert_allclose(vectors[:15], np.broadcast_to(happy, (15, happy.size)), rtol=1e-6)


# ---------------------------------------------------------------- the networks: intensity 0 and the timeline

def test_intensity_zero_renders_the_original_codes(models: Models, codes, clip: Path) -> None:
    calls = codes
    keys = emotion_plan(EditOptions(preset="happy", intensity=0.0), models.emotion.embed, models.emotion.bank)
    crops = _crops(clip, models.crop_size, 5)
    editor = CmetEditor(models, keys, 0.5)
    editor.begin(crops[0], 5, 25.0)
    editor(crops, np.arange(5))
    assert len(calls["encode"]) == len(calls["render"]) == 1
    assert torch_equal(calls["render"][0], calls["encode"][0])
    assert calls["directions"] == []  # the connector is not even consulted
    result = pipeline.EditResult("in", "out")
    editor.report(result)
    assert result.code_change == 0.0 and result.vector_norm == 0.0


def test_timeline_frames_before_the_key_keep_their_codes(models: Models, codes, clip: Path, bank) -> None:
    # 5 frames at 25 fps: happy from 0.04 s (frame 1) over 0.08 s, so frame 2 is half way and 3, 4 are full
    calls = codes
    keys = [timeline.Keyframe(0.04, preset_vector(bank, "happy"), "happy")]
    crops = _crops(clip, models.crop_size, 5)
    editor = CmetEditor(models, keys, 0.08)
    editor.begin(crops[0], 5, 25.0)
    editor(crops, np.arange(5))
    assert list(editor.strength) == [0, 0, 0.5, 1, 1]
    original, rendered = calls["encode"][0], calls["render"][0]
    assert torch_equal(rendered[:2], original[:2])
    assert (rendered[2:] - original[2:]).abs().amax(dim=1).min() > 0
    (e2v,) = calls["directions"]
    np.testing.assert_allclose(e2v.numpy(), keys[0].vector[None], rtol=1e-6)  # one vector per 5-frame window
    (predicted,) = calls["predicted"]
    import torch

    strength = torch.tensor([0, 0, 0.5, 1, 1])[:, None]
    assert torch.allclose(rendered, original + strength * predicted, atol=1e-6)


def torch_equal(a, b) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.equal(a, b))


# ---------------------------------------------------------------- end to end: warning, report, compare, preview

def test_contempt_warns_and_reports_with_compare(cached_models, short_clip: Path, tmp_path: Path, bank_dir,
                                                weights_dir) -> None:
    clip = short_clip
    out = tmp_path / "contempt.mp4"
    result = _cli("edit", clip, "-o", out, "--preset", "contempt", "--compare", "--json", "--box", BOX_ARG,
                  "--bank", bank_dir, "--weights-dir", weights_dir, "--device", "cpu", load_models=cached_models)
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["status"] == "done" and row["frames"] == 5
    assert row["vector_norm"] == pytest.approx(0.9, abs=0.1) and row["code_change"] > 0
    assert any("contempt is a weak emotion" in w for w in row["warnings"])
    assert "contempt is a weak emotion" in " ".join(result.stderr.split())
    src, dst = media.probe(clip), media.probe(out)
    assert (dst.width, dst.height) == (2 * src.width, src.height) and dst.frame_count == src.frame_count
    assert audio_packets(out) == audio_packets(clip) != []
    # the left half is the original, up to the two encodes (that the right half is the edit: test_option_effects)
    orig, both = next(iter(media.read_frames(src))), next(iter(media.read_frames(dst)))
    assert np.abs(both[:, :src.width].astype(int) - orig).mean() < 3


def test_happy_is_much_stronger_and_verbose_prints_a_line(cached_models, short_clip: Path, tmp_path: Path,
                                                          bank_dir, bank, weights_dir) -> None:
    out = tmp_path / "happy.mp4"
    result = _cli("edit", short_clip, "-o", out, "--preset", "happy", "--json", "-v", "--box", BOX_ARG,
                  "--bank", bank_dir, "--weights-dir", weights_dir, "--device", "cpu", load_models=cached_models)
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    contempt = float(np.linalg.norm(preset_vector(bank, "contempt")))
    assert row["vector_norm"] == pytest.approx(float(np.linalg.norm(preset_vector(bank, "happy"))), rel=1e-5)
    assert row["vector_norm"] > 10 * contempt
    assert row["warnings"] == [] and row["code_change"] > 0
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(out))]
    assert len(lines) == 1 and "expression change" in lines[0] and f"{row['vector_norm']:.2f}" in lines[0]


# Preview thumbnails against ffmpeg's whole-frame RGB scaled the same way: measured mean |difference| 0.24 levels
# (this test's clip; scaling before conversion, rounding). The same frames read as bt709 instead of bt601 differ by
# 1.65, as full range by 5.0, and a neighbouring pick (frame 1 for frame 8) by 2.15: all caught.
PREVIEW_BOUND = 0.8


def test_preview_sheet_processes_only_its_frames(cached_models, calls, monkeypatch, clip: Path, tmp_path: Path,
                                                 bank_dir, weights_dir) -> None:
    def no_full_decode(*a, **k):
        raise AssertionError("the preview must not decode every frame into memory")

    # both names a full decode can come through: the package's (what preview.py would call) and the decoder
    # module's (what read_frames_at falls back to)
    import cv2

    from cmet_cli.preview import sample_indices

    info = media.probe(clip)
    whole = media.read_frames_at(info, sample_indices(info.frame_count, 3))  # ffmpeg's RGB, before it is barred
    monkeypatch.setattr(media, "read_frames", no_full_decode)
    monkeypatch.setattr(media.decode, "read_frames", no_full_decode)
    monkeypatch.setattr(media, "read_frames_at", no_full_decode)  # nor whole RGB frames: planes (issue 22)
    sheet = tmp_path / "sheet.png"
    result = _cli("preview", clip, "--preset", "happy", "--frames", "3", "-o", sheet, "--box", BOX_ARG,
                  "--bank", bank_dir, "--weights-dir", weights_dir, "--device", "cpu", load_models=cached_models)
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(sheet))
    thumb_w = round(384 * 256 / 320)
    assert image.shape == (2 * 256, 3 * thumb_w, 3)
    assert sum(len(c) for c in calls["encode"]) == 3 and sum(len(c) for c in calls["render"]) == 3
    # top row: the original frames 1, 5, 8 of 10; bottom row: the edit, inside the face box only
    top, bottom = image[:256].astype(int), image[256:].astype(int)
    # the top row, scaled in the planes before conversion, shows the frames as ffmpeg's whole-frame RGB does
    expected = np.concatenate([cv2.resize(whole[i], (thumb_w, 256), interpolation=cv2.INTER_AREA)
                               for i in sorted(whole)], axis=1)[..., ::-1].astype(int)
    assert np.abs(top - expected).mean() < PREVIEW_BOUND
    scale = 256 / 320
    face = np.zeros(top.shape[:2], bool)
    for k in range(3):  # the face box (64, 32, 256, 256) in each thumbnail
        face[round(32 * scale):round(288 * scale), k * thumb_w + round(64 * scale):k * thumb_w + round(320 * scale)] = True
    near = face | np.roll(face, 2, axis=0) | np.roll(face, -2, axis=0)  # grown by 2 px: the thumbnail's area
    near |= np.roll(near, 2, axis=1) | np.roll(near, -2, axis=1)  # filter mixes the box's border
    assert np.abs(top - bottom)[face].mean() > 5 and np.abs(top - bottom)[~near].max() <= 1
    again = _cli("preview", clip, "--preset", "happy", "-o", sheet, "--box", BOX_ARG, "--bank", bank_dir,
                 "--weights-dir", weights_dir)
    assert again.exit_code == 2 and "--overwrite" in again.stderr


def test_preview_frames_match_the_decoder(short_clip: Path) -> None:
    from cmet_cli.preview import sample_indices

    info = media.probe(short_clip)
    picks = sample_indices(info.frame_count, 3)
    assert picks == [0, 2, 4]
    selected = media.read_frames_at(info, picks)
    everything = list(media.read_frames(info))
    assert sorted(selected) == picks and all(np.array_equal(selected[i], everything[i]) for i in picks)
