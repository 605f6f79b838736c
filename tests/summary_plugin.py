"""The last lines of a test run: what ran and what was skipped, grouped by why.

"50 passed, 110 skipped" reads like the whole suite passed; this says which parts did not run and what
they need, e.g.::

    cmet tests: 150 passed, 0 failed; 10 skipped: 6 CUDA tests (no CUDA device), 4 real-weights tests (...)

Loaded by ``pytest_plugins`` in ``conftest.py``.
"""
from __future__ import annotations

from collections import Counter

import pytest

# (what the skipped tests are, why they did not run), matched by marker first, then by the skip reason
CUDA = ("CUDA tests", "no CUDA device")
REAL_WEIGHTS = ("real-weights tests", "no real checkpoints: `cmet download-weights` or CMET_WEIGHTS_DIR")
DATA = ("tests on absent data files", "their golden or media files are not in the checkout")
RAY = ("Ray tests", "ray is not installed: pip install 'cmet-cli[ray]'")
FFMPEG = ("ffmpeg tests", "ffmpeg is not on PATH")
CASCADE = ("face-detection tests", "this OpenCV has no Haar cascade (OpenCV 5)")


def skip_reason(longrepr) -> str:
    """The reason pytest recorded for a skip (its report's ``longrepr`` is ``(path, line, "Skipped: why")``)."""
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def skip_group(reason: str, markers: frozenset[str] | set[str] = frozenset()) -> tuple[str, str]:
    """Which kind of test a skip belongs to, and why that kind did not run."""
    low = reason.lower()
    if "real" in low and "weights" in low:  # the reason first: a CUDA test can skip for want of real weights
        return REAL_WEIGHTS
    if "cuda" in low or "cuda" in markers:
        return CUDA
    if "weights" in markers:
        return REAL_WEIGHTS
    if "haar cascade" in low:
        return CASCADE
    if "'ray'" in low:  # pytest.importorskip("ray")
        return RAY
    if "ffmpeg" in low:
        return FFMPEG
    if "absent" in low and ("shared" in low or "golden" in low or "test media" in low or "tests/data" in low):
        return DATA
    return ("other tests", reason)


def summary_line(passed: int, failed: int, skipped: list[tuple[str, str]]) -> str:
    """``N passed, M failed; K skipped: n1 WHAT (WHY), ...`` — groups largest first."""
    head = f"cmet tests: {passed} passed, {failed} failed"
    if not skipped:
        return head + "; nothing skipped"
    groups = Counter(skipped).most_common()
    parts = [f"{n} {what} ({why})" for (what, why), n in groups]
    return head + f"; {len(skipped)} skipped: " + ", ".join(parts)


SUMMARY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    skipped = [skip_group(skip_reason(rep.longrepr), set(rep.keywords)) for rep in stats.get("skipped", [])]
    config.stash[SUMMARY] = summary_line(passed, failed, skipped)


def pytest_unconfigure(config) -> None:
    """Written last, after pytest's own "N passed, M skipped in T s" line, so that the run ends with it."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = config.stash.get(SUMMARY, None)
    if reporter is not None and line:
        reporter.write_line(line)
