"""The summary lines of ``benchmarks/gpu_check.sh``: one line per row, from the log of one benchmark run.

    python -m benchmarks.gpu_rows LOG [BASE_LOG]   # the row's line; with BASE_LOG, its fps next to that row's
    python -m benchmarks.gpu_rows --failed LOG     # the line that says why a run failed

A log is the output of ``python -m benchmarks.bench_edit``; its last line is the run's JSON report.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROW_KEYS = {
    "edit": ("precision", "compile", "frames", "batch_size", "network_fps", "end_to_end_fps", "overhead_ratio",
             "gpu_busy_share", "gpu_util_percent", "track_s", "peak_device_mb"),
    "media-only": ("size", "frames", "media_only_fps", "media_only_cpu_s"),
    "track-only": ("size", "detector", "frames", "face_frames", "track_fps", "track_cpu_s"),
    "rss-scaling": ("precision", "rss_seconds", "batch_size", "rss_ratio", "run_rss_ratio", "device_ratio"),
}
PER_CLIP_PEAK = re.compile(r"(run_)?peak_(rss|device)_[0-9.]+s_mb")  # rss-scaling's per-clip peaks: peak_device_60s_mb


def report_of(log: str) -> dict:
    """The JSON report on the log's last line (ValueError if there is none)."""
    lines = [line for line in log.splitlines() if line.strip()]
    if not lines:
        raise ValueError("empty log")
    report = json.loads(lines[-1])
    if not isinstance(report, dict):
        raise ValueError("the last line is not a JSON object")
    return report


def _value(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "/".join(_value(v) for v in value)
    return str(value)


def row_line(report: dict) -> str:
    """``key value, …`` of the row's main figures: the keys of its mode (``ROW_KEYS``) that the report has (an
    absent key, e.g. ``gpu_util_percent`` where NVML cannot be read, is left out; a null one reads ``n/a``)."""
    mode = report.get("mode", "edit")
    keys = list(ROW_KEYS.get(mode, ROW_KEYS["edit"]))
    if mode == "rss-scaling":
        keys += [k for k in report if PER_CLIP_PEAK.fullmatch(k)]
    return ", ".join(f"{k} {_value(report[k])}" for k in keys if k in report)


def compare_line(report: dict, base: dict) -> str:
    """The row's network and end-to-end fps next to the base row's, with their ratios (row / base)."""
    parts = []
    for key in ("network_fps", "end_to_end_fps"):
        ours, theirs = report.get(key), base.get(key)
        ratio = f" (x{ours / theirs:.3g})" if ours and theirs else ""
        parts.append(f"{key} {_value(ours)} vs {_value(theirs)}{ratio}")
    return "; ".join(parts)


EXCEPTION_LINE = re.compile(r"error:|[A-Za-z_][\w.]*(Error|Exception|Failed|Interrupt)\b")
TRAILER = "benchmark run failed"  # bench_edit's own last line when its child fails: says nothing of why


def failure_line(log: str) -> str:
    """Why a run failed: the log's last ``error: …`` line or exception line (``RuntimeError: …``,
    ``torch._dynamo.exc.BackendCompilerFailed: …``), else its last line naming an error, else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip() and not line.startswith(TRAILER)]
    for pick in (EXCEPTION_LINE.match, lambda line: "error" in line.lower()):
        for line in reversed(lines):
            if pick(line):
                return line[:300]
    return lines[-1][:300] if lines else "no output"


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--failed":
        print(failure_line(Path(argv[1]).read_text(errors="replace")))
        return 0
    if len(argv) not in (1, 2):
        print("usage: python -m benchmarks.gpu_rows LOG [BASE_LOG] | --failed LOG", file=sys.stderr)
        return 2
    log = Path(argv[0]).read_text(errors="replace")
    try:
        report = report_of(log)
    except ValueError:
        print(f"no JSON report: {failure_line(log)}")
        return 0
    line = row_line(report)
    if len(argv) == 2:
        base = Path(argv[1])
        try:
            against = compare_line(report, report_of(base.read_text(errors="replace")))
        except (OSError, ValueError):
            against = "no report to compare with"
        line += f" | vs {base.stem.removeprefix('bench_')}: {against}"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
