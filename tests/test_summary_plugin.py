"""The test run's closing summary (tests/summary_plugin.py): what ran, what was skipped and why."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .summary_plugin import CASCADE, CUDA, RAY, REAL_WEIGHTS, skip_group, skip_reason, summary_line


def test_skips_are_grouped_by_what_they_need():
    assert skip_group("no CUDA device") == CUDA
    assert skip_group("anything", {"cuda"}) == CUDA
    assert skip_group("real EDTalk weights absent (run `cmet download-weights`)") == REAL_WEIGHTS
    # a CUDA test on a machine with a GPU, skipped for want of the real checkpoints, is not "no CUDA device"
    assert skip_group("real EDTalk weights absent (run `cmet download-weights`)", {"cuda", "weights"}) == REAL_WEIGHTS
    assert skip_group("could not import 'ray': No module named 'ray'") == RAY
    assert skip_group("OpenCV 5.1.0 has no Haar cascade: the test finds faces with it", {"cascade"}) == CASCADE
    assert skip_group("a reason of its own") == ("other tests", "a reason of its own")
    assert skip_reason(("x.py", 3, "Skipped: no CUDA device")) == "no CUDA device"


def test_summary_line_counts_each_group():
    line = summary_line(5, 0, [CUDA, REAL_WEIGHTS, CUDA])
    assert line == ("cmet tests: 5 passed, 0 failed; 3 skipped: 2 CUDA tests (no CUDA device), "
                    f"1 real-weights tests ({REAL_WEIGHTS[1]})")
    assert summary_line(2, 1, []) == "cmet tests: 2 passed, 1 failed; nothing skipped"


def test_a_run_ends_with_the_summary(tmp_path):
    (tmp_path / "test_demo.py").write_text(
        "import pytest\n"
        "def test_ok():\n    pass\n"
        "@pytest.mark.cuda\ndef test_gpu():\n    pytest.skip('no CUDA device')\n"
        "def test_real():\n    pytest.skip('real EDTalk weights absent')\n")
    root = Path(__file__).resolve().parents[1]  # where the ``tests`` package is importable from
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.summary_plugin", "-p", "no:cacheprovider",
                          "-o", "markers=cuda", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("cmet tests: 1 passed, 0 failed; 2 skipped:"), run.stdout
    assert "1 CUDA tests (no CUDA device)" in last and "1 real-weights tests" in last
