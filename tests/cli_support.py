"""Helpers for the CLI tests (tests/test_batch.py, tests/test_bad_input.py, tests/test_nothing_lost.py):
`cmet` run in-process or as a subprocess, and checks of what a run printed and left. Plain functions
only: the fixtures are in ``conftest.py``, the clips in ``clips.py``.

In-process runs share the loaded networks between invocations (``cached_models``): loading costs
seconds, and every run still goes through the real CLI, batch runner, pipeline and networks.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from cmet_cli.models import Models, load_models
from cmet_cli.options import EditOptions

from .clips import SAMPLE

ROOT = Path(__file__).resolve().parents[1]
BANK = SAMPLE.parents[1] / "features"
BOX = ("--box", "0,0,96,96")  # the face of `face_clip`, so that runs need no detector


# ---------------------------------------------------------------- runs and what they leave

def leftovers(folder: Path) -> list[str]:
    """Temporary files a run left behind (there must be none)."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part"))


# ---------------------------------------------------------------- models

_MODELS: dict[tuple, Models] = {}
LOADS: list[EditOptions] = []  # every load an in-process run asked for (the ``model_loads`` fixture: a test's own)


def cached_models(options: EditOptions) -> Models:
    """``models.load_models``, memoised on what decides the networks and the emotion sources loaded with them
    (a run without a bank, all speech, must not serve a later run that needs one; failures are not cached)."""
    from cmet_cli.models import needs_bank, needs_speech

    key = (str(options.weights_dir), str(options.bank_dir), options.device, options.precision,
           needs_bank(options), needs_speech(options))
    if key not in _MODELS:
        _MODELS[key] = load_models(options)
    return _MODELS[key]


def shared_models(options: EditOptions) -> Models:
    """The loader ``cmet`` hands to the runner: records the request, then ``cached_models``."""
    LOADS.append(options)
    return cached_models(options)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("warning:")]


def model_args(weights: Path, *extra: str) -> list[str]:
    return ["--weights-dir", str(weights), "--bank", str(BANK), "--device", "cpu", *extra]


def cmet(*args: str, env: dict | None = None) -> Run:
    """``cmet ARGS`` in this process (click's runner), sharing loaded networks (``shared_models``); logging and
    signal handlers are restored after."""
    from click.testing import CliRunner

    from cmet_cli.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sigterm, sighup = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    env = {"CMET_WEIGHTS_DIR": None, "COLUMNS": "200", **(env or {})}
    try:
        result = CliRunner().invoke(main, [str(a) for a in args], env=env, obj={"load_models": shared_models},
                                    catch_exceptions=False)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        signal.signal(signal.SIGTERM, sigterm)
        signal.signal(signal.SIGHUP, sighup)
    return Run(result.exit_code, result.stdout, result.stderr)


def assert_one_line_failure(run, *needles: str, code: int = 1) -> str:
    """Exit status ``code``, exactly one ``error:`` line holding every needle, and no traceback."""
    assert run.code == code, run.stderr
    assert "Traceback" not in run.stderr
    errors = run.errors()
    assert len(errors) == 1, run.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll until ``predicate()`` holds while ``proc`` runs (fails the test if it ends first or time runs out)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"cmet ended early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("cmet did not reach the expected point in time")
        time.sleep(0.05)


TERMINAL_SIGNALS = ("SIGINT", "SIGQUIT", "SIGHUP", "SIGTERM")


def _as_from_a_terminal(ignored: tuple[str, ...] = ()) -> Callable[[], None]:
    """For the child, before it runs: the terminal's signals at their defaults, as for a command typed at a
    prompt, whatever this process inherited (a suite started in the background by a non-interactive shell
    ignores SIGINT and SIGQUIT, and Python then keeps ignoring SIGINT: the Ctrl-C test could not pass there);
    ``ignored``: those set to be ignored instead (``nohup`` ignores SIGHUP)."""
    def reset() -> None:
        for name in TERMINAL_SIGNALS:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_IGN if name in ignored else signal.SIG_DFL)
    return reset


def cmet_process(*args: str, cwd: Path | None = None, env: dict | None = None,
                 ignored: tuple[str, ...] = ()) -> subprocess.Popen:
    """``cmet ARGS`` as a child process (for signals), stdout/stderr piped; its signal dispositions those of a
    command typed at a terminal (``ignored``: signals it starts ignoring, e.g. ``("SIGHUP",)`` as under nohup)."""
    full_env = {k: v for k, v in os.environ.items() if k != "CMET_WEIGHTS_DIR"}
    full_env.update({"PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200", **(env or {})})
    return subprocess.Popen([sys.executable, "-m", "cmet_cli", *map(str, args)], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal(ignored))
