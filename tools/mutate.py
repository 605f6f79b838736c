"""Mutation check: does the test suite notice when the edit is wrong?

Each mutation is a small textual patch of one source file, a deliberate break a user would notice. For each one,
the script copies ``src`` and ``tests`` into a temporary folder, applies the patch there (the working tree is
never touched), runs the tests that should catch it and prints one line: ``caught`` (they failed) or
``NOT caught`` (they passed: the suite has a hole). It exits 1 if any break is not caught.

    python tools/mutate.py            # every mutation (a few minutes on 2 cores)
    python tools/mutate.py -k compare # those whose name holds "compare"
    python tools/mutate.py --list

Not part of ``make test``. Run from the repository root with the project's Python (``.venv/bin/python``).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions


MUTATIONS = (
    Mutation("bt709 read with bt601 coefficients", "src/cmet_cli/colour.py",
             '"bt709": (0.2126, 0.0722)', '"bt709": (0.299, 0.114)', ("tests/test_colour_reference.py",)),
    Mutation("full range read as limited", "src/cmet_cli/colour.py",
             "Conversion(matrix, colour_range == 2 or rgb, bits, transfer)", "Conversion(matrix, rgb, bits, transfer)",
             ("tests/test_colour_reference.py",)),
    Mutation("PQ reference white off by 3 %", "src/cmet_cli/colour.py",
             "PQ_REFERENCE_WHITE = 0.5807", "PQ_REFERENCE_WHITE = 0.5633", ("tests/test_colour_reference.py",)),
    Mutation("green's Cb term with the wrong sign (the affine colour matrix)", "src/cmet_cli/colour.py",
             "[1.0, -kb * cb_to_b / kg, -kr * cr_to_r / kg]", "[1.0, kb * cb_to_b / kg, -kr * cr_to_r / kg]",
             ("tests/test_colour_reference.py",)),
    Mutation("--compare shows the original twice", "src/cmet_cli/stream.py",
             "side_by_side(original, edited) if self.compare", "side_by_side(original, original) if self.compare",
             ("tests/test_option_effects.py", "-k", "compare")),
    Mutation("--neutral-speech embedded but the bank's neutral used", "src/cmet_cli/emotion.py",
             'cache["neutral"] = np.stack([embed(Path(p)) for p in options.neutral_speech])',
             'cache["neutral"] = np.stack([embed(Path(p)) for p in options.neutral_speech])\n'
             '                cache["neutral"] = bank()["neutral"]',
             ("tests/test_speech_edits.py",)),
    Mutation("several --emotion-speech clips: only the first used", "src/cmet_cli/emotion.py",
             "emotion_vector([embed(clip) for clip in source.clips], neutral())",
             "emotion_vector([embed(clip) for clip in source.clips[:1]], neutral())",
             ("tests/test_speech_edits.py",)),
    Mutation("--colour-match ignored", "src/cmet_cli/stream.py",
             "        if colour_match:\n", "        if False:\n",
             ("tests/test_option_effects.py", "-k", "colour_match")),
    Mutation("--intensity ignored", "src/cmet_cli/emotion.py",
             "timeline.Keyframe(t, options.intensity * v,", "timeline.Keyframe(t, v,",
             ("tests/test_option_effects.py", "-k", "intensity")),
    Mutation("--blend ignored (always the default 0.5 s)", "src/cmet_cli/pipeline.py",
             "CmetEditor(self.models, plan, self.options.blend,", "CmetEditor(self.models, plan, 0.5,",
             ("tests/test_option_effects.py", "-k", "blend")),
    Mutation("--crf ignored", "src/cmet_cli/stream.py",
             "crf=options.crf,", "crf=18,", ("tests/test_option_effects.py", "-k", "crf")),
    Mutation("connector directions 5 % weak (the bf16 test alone)", "src/cmet_cli/transfer.py",
             "edited = neutral + dirs.to(neutral.dtype)", "edited = neutral + 0.95 * dirs.to(neutral.dtype)",
             ("tests/test_transfer.py", "-k", "autocast")),
    Mutation("preview's top row shows one frame three times", "src/cmet_cli/preview.py",
             "top = [_thumb(frame) for frame in frames]", "top = [_thumb(frames[0]) for frame in frames]",
             ("tests/test_controls.py", "-k", "preview_sheet")),
    Mutation("a box partly outside the frame pastes nothing", "src/cmet_cli/faces/cropping.py",
             "    if fx1 <= fx0 or fy1 <= fy0:\n        return\n    sx, sy = sub",
             "    if fx1 <= fx0 or fy1 <= fy0 or box.x0 < 0:\n        return\n    sx, sy = sub",
             ("tests/test_nothing_lost.py", "-k", "partly")),
    Mutation("the edit pass decodes with slice threads whatever the tracking pass did", "src/cmet_cli/stream.py",
             "media.read_planes(info, edits[0].track.decoding), info.frame_count)",
             "media.read_planes(info), info.frame_count)", ("tests/test_decode_threads.py",)),
    Mutation("the tracking pass blind to damage met with frame threads", "src/cmet_cli/stream.py",
             "media.read_planes(info, decoding, health)", "media.read_planes(info, decoding)",
             ("tests/test_decode_threads.py", "-k", "tracking_decodes and detector")),
    Mutation("re-encoded audio restarted at 0 (ahead of the lips)", "src/cmet_cli/media/mux.py",
             "self.samples[index] = round(float(frame.time or 0.0) * rate)", "self.samples[index] = 0",
             ("tests/test_untouched.py", "-k", "stays_in_sync")),
    Mutation("--batch-size not rounded to whole connector windows", "src/cmet_cli/face_editor.py",
             'return whole_windows(batch, max([int(getattr(e, "window", 1)) for e in editors] or [1]))',
             "return batch",
             ("tests/test_option_effects.py", "-k", "batch_size")),
    Mutation("neutral takes the speaker's neutral reference", "src/cmet_cli/presets.py",
             '    if name == "neutral":\n', '    if name == "neutral" and neutral is None:\n',
             ("tests/test_controls.py", "-k", "zero_direction")),
)


def apply(tree: Path, mutation: Mutation) -> None:
    path = tree / mutation.path
    text = path.read_text()
    if text.count(mutation.old) != 1:
        raise SystemExit(f"error: {mutation.name}: the patched text occurs {text.count(mutation.old)} times in "
                         f"{mutation.path} (the source changed: update tools/mutate.py)")
    path.write_text(text.replace(mutation.old, mutation.new))


def run(mutation: Mutation, python: str) -> bool:
    """Whether the mutation's tests fail on a patched copy of the tree."""
    with tempfile.TemporaryDirectory(prefix="cmet-mutant-") as tmp:
        tree = Path(tmp)
        shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__", "data"))
        (tree / "tests" / "data").symlink_to(ROOT / "tests" / "data")
        for name in ("pyproject.toml", "models.lock"):
            if (ROOT / name).exists():
                shutil.copy2(ROOT / name, tree / name)
        apply(tree, mutation)
        env = {"PYTHONPATH": str(tree / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run([python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutation.tests],
                              cwd=tree, env={**_environ(), **env}, capture_output=True, text=True)
        if proc.returncode not in (0, 1):  # 2-5: the run itself broke (collection error, usage): not a catch
            raise SystemExit(f"error: {mutation.name}: pytest exited {proc.returncode}: {proc.stdout[-2000:]}")
        return proc.returncode == 1


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="run only the mutations whose name holds this text")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.k.lower() in m.name.lower()]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.path}; {' '.join(m.tests)}")
        return 0
    missed = 0
    for m in chosen:
        caught = run(m, sys.executable)
        missed += not caught
        print(f"{'caught    ' if caught else 'NOT caught'}  {m.name}", flush=True)
    print(f"{len(chosen) - missed} of {len(chosen)} breaks caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
