#!/usr/bin/env bash
# The GPU check in one command, on a CUDA machine without network (nothing is installed here). Rows, in order:
#   1. the CUDA tests (pytest -m cuda: golden networks against the CPU in fp32/TF32/bf16, the bounds' bite, and a
#      `cmet edit --device cuda` through the CLI, its output verified); their measured spreads go to gpu_spread.jsonl;
#   2. the edit on CUDA at 720p, 1080p and 2160p (full-size stand-in): network-only fps, end-to-end fps,
#      gpu_busy_share (the edit's time inside its network calls / its wall time; gpu_util_percent too where
#      torch.cuda.utilization() works), peak device memory;
#   3. the face-tracking pass alone (--track-only) at 720p, 1080p and 2160p;
#   4. the media path alone (--media-only) at 720p, 1080p and 2160p;
#   5. peak memory of a 10 s and a 60 s 720p clip on CUDA, full-size stand-in (--rss-scaling --full-model):
#      host RSS and device peak, and their ratios (goal ≤ 1.1);
#   6. 720p with --compile (cmet's own, mode default) and with --compile reduce-overhead (CUDA graphs), each next to
#      the plain 720p row (last: their compile time is the least certain cost).
# Prints one summary line per row at the end, with the row's wall time. Logs, JSON and the benchmark's cache go to
# CMET_CHECK_DIR, else a temporary folder; where $OUT is set (the device tool's folder, which returns at most 8
# files), three files go there: gpu_check_summary.txt (written row by row, so a run cut short keeps its rows),
# gpu_check_reports.jsonl (each row's JSON report) and gpu_check_logs.tar.gz (every log, the CUDA spreads).
# Usage, from the repository root:
#   bash benchmarks/gpu_check.sh                 # PYTHON=python3 by default (the environment with cmet's packages)
#   CMET_CHECK_DRY=1 bash benchmarks/gpu_check.sh   # the same rows on the CPU, small model, few frames: tries the script
#   CMET_CHECK_ONLY='compile|graphs' bash benchmarks/gpu_check.sh   # only the rows whose name matches (bash regex)
# Time: rows are started while the budget lasts (CMET_CHECK_BUDGET_S, default 450 s on CUDA so that the whole
# script ends within 8 minutes; 1800 s dry) and each runs under `timeout` for the time left: a row cut short or
# not started says so in the summary.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DIR=${CMET_CHECK_DIR:-$(mktemp -d -t cmet-gpu-check-XXXXXX)}
RESULTS=${OUT:-$DIR}  # where the summary and the reports go
mkdir -p "$DIR" "$RESULTS"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CMET_GPU_SPREAD="$DIR/gpu_spread.jsonl" CMET_BENCH_CACHE="${CMET_BENCH_CACHE:-$DIR/bench-cache}"
SUMMARY="$RESULTS/gpu_check_summary.txt" REPORTS="$RESULTS/gpu_check_reports.jsonl"
rm -f "$CMET_GPU_SPREAD" "$SUMMARY" "$REPORTS"
rows=()
started=$SECONDS
ONLY=${CMET_CHECK_ONLY:-}
row() { rows+=("$1"); printf '%s\n' "$1" >> "$SUMMARY"; }  # a summary line, kept at once

# Frame counts. E: 720p/1080p edit rows and the compile rows (240 = 3 batches of 80, the batch an H200's free
# memory gives, runtime.default_batch_size: one batch shape, so a compiled row compiles in its warm-up only);
# E4: 2160p; M, M4: media-only at 720p/1080p and 2160p; RSS: the memory row's clip lengths.
DEVICE=cuda; E=240; E4=100; M=500; M4=200; RSS=(--rss-seconds 10,60); MODEL=(); FULL=(--full-model)
BUDGET=${CMET_CHECK_BUDGET_S:-450}
if [ -n "${CMET_CHECK_DRY:-}" ]; then
  DEVICE=cpu; E=10; E4=5; M=20; M4=5; RSS=(--rss-seconds 0.4,2.4); MODEL=(--small-model); FULL=()
  BUDGET=${CMET_CHECK_BUDGET_S:-1800}
fi
if ! missing=$("$PY" -c 'import importlib.util as u; print(" ".join(m for m in ("torch", "cv2", "av", "numpy", "click") if not u.find_spec(m)))'); then
  echo "gpu_check: cannot run $PY (PYTHON=...)"; exit 2
fi
if [ -n "$missing" ]; then
  echo "gpu_check: $PY cannot import $missing: run it with the environment that has cmet's packages (PYTHON=...)"; exit 2
fi
if ! command -v ffmpeg > /dev/null || ! command -v ffprobe > /dev/null; then
  echo "gpu_check: ffmpeg and ffprobe must be on the PATH (cmet probes with ffprobe; the benchmark makes its clips with ffmpeg)"; exit 2
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False)"; exit 2
fi
"$PY" -c 'import torch, cv2; print("gpu_check:", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU (dry run)",
          "torch", torch.__version__, "OpenCV", cv2.__version__)'

wanted() { [ -z "$ONLY" ] || [[ $1 =~ $ONLY ]]; }

limited() {  # CAP CMD...: CMD under the time left in the budget (at most CAP s); 125: not started, none left
  local cap=$1; shift
  local left=$((BUDGET - (SECONDS - started)))
  [ "$left" -gt "$cap" ] && left=$cap
  [ "$left" -lt 15 ] && return 125
  timeout -k 10 "$left" "$@"
}

# 1. CUDA tests (estimate: ~60 s; golden CPU references at 256² and a 25-frame CLI edit; not measured on that host)
if wanted cuda-tests; then
  t=$SECONDS
  limited "$BUDGET" "$PY" -m pytest -q -p no:cacheprovider -m cuda -rs tests ${CMET_CHECK_DRY:+-k summary_plugin} 2>&1 \
    | tee "$DIR/cuda_tests.log"
  row "cuda tests ($((SECONDS - t)) s): $(grep -E '^cmet tests:' "$DIR/cuda_tests.log" | tail -1)"
  if [ -s "$CMET_GPU_SPREAD" ]; then
    while IFS= read -r line; do row "spread: $line"; done < <("$PY" - "$CMET_GPU_SPREAD" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    parts = [f"{k} max {v['max']:.3g}·s mean {v['mean']:.3g}·s" for k, v in r.items() if isinstance(v, dict)]
    print(r["test"], "|", "; ".join(parts))
EOF
)
  fi
fi

# 2-6. benchmarks: one JSON object per run, its main figures in the summary (benchmarks/gpu_rows.py)
bench() {  # NAME [--vs BASE] [--cap S] ARGS...: python -m benchmarks.bench_edit ARGS; BASE: a row to compare fps with
  local name=$1 base=() cap=$BUDGET log t rc; shift
  wanted "$name" || return 0
  if [ "${1:-}" = --vs ]; then base=("$DIR/bench_$2.log"); shift 2; fi
  if [ "${1:-}" = --cap ]; then cap=$2; shift 2; fi
  log="$DIR/bench_$name.log"; t=$SECONDS
  limited "$cap" "$PY" -m benchmarks.bench_edit "$@" > "$log" 2>&1; rc=$?
  case $rc in
    0) row "bench $name ($((SECONDS - t)) s): $("$PY" -m benchmarks.gpu_rows "$log" "${base[@]}")"
       printf '{"row": "%s", "seconds": %d, "report": %s}\n' "$name" $((SECONDS - t)) "$(tail -1 "$log")" >> "$REPORTS" ;;
    125) row "bench $name: NOT RUN (under 15 s left of the script's budget of $BUDGET s; CMET_CHECK_ONLY='^$name\$' runs it)" ;;
    124|137) row "bench $name: STOPPED after $((SECONDS - t)) s (the script's budget; see ${log##*/})" ;;
    *) row "bench $name: FAILED (exit $rc): $("$PY" -m benchmarks.gpu_rows --failed "$log") (see ${log##*/})" ;;
  esac
}
skip() { wanted "$1" && row "bench $1: SKIPPED ($2)"; }

# Estimates for the H200 host (16 cores), from its media-only 720p run (74 fps, issue 21) and the 2-core ratios
# between sizes (media-only 1080p ~2.9x, 2160p ~10x the time of 720p, RESULTS.md): the edit rows are media-bound.
# An edit row = start, CUDA init, loading, warm-up (~15 s) + two untimed tracking/crop passes for the network-only
# runs + the edit + two network-only passes (< 1 s each if the network runs at >= 360 fps). All rows together:
# ~505 s with the CUDA tests, over the 450 s budget by the compiled rows' share: those are the rows at risk, and
# CMET_CHECK_ONLY='^(720p|compile-720p|graphs-720p)$' takes them alone (~4 min; the 720p row is their baseline).
bench 720p --device "$DEVICE" --size 720p --frames "$E" --no-flops "${MODEL[@]}"      # ~30 s
bench 1080p --device "$DEVICE" --size 1080p --frames "$E" --no-flops "${MODEL[@]}"    # ~40 s
bench 2160p --device "$DEVICE" --size 2160p --frames "$E4" --no-flops "${MODEL[@]}"   # ~50 s
# The tracking pass on the edit rows' clips (decode every frame, the auto detector on every 5th at <= 640 px); on an
# OpenCV without the cascade and no detector model installed it stops at once, saying so.
bench track-720p --track-only --size 720p --frames "$E"        # ~8 s
bench track-1080p --track-only --size 1080p --frames "$E"      # ~10 s
bench track-2160p --track-only --size 2160p --frames "$E4"     # ~10 s
bench media-720p --media-only --size 720p --frames "$M"        # ~12 s (7 s at 74 fps + the clip)
bench media-1080p --media-only --size 1080p --frames "$M"      # ~30 s
bench media-2160p --media-only --size 2160p --frames "$M4"     # ~35 s
# 10 s (250 frames) and 60 s (1500 frames): ~24 s of edits at <= 74 fps, two starts (~30 s), the 1500-frame clip
# (~8 s): ~60 s. It fits, so the lengths stay those of the CPU rows (RESULTS.md). No network-only passes here.
bench memory-720p --rss-scaling --device "$DEVICE" --size 720p "${RSS[@]}" "${FULL[@]}"   # ~60 s
if [ "$DEVICE" = cuda ]; then
  # torch.compile of encode and render (one shape, in the warm-up): not measured on that host; ~100 s and ~60 s
  # assumed (the second finds inductor's kernels in its on-disk cache). Each is capped so that one cannot take the other's time.
  bench compile-720p --vs 720p --cap 200 --device cuda --size 720p --frames "$E" --no-flops --compile
  bench graphs-720p --vs 720p --cap 200 --device cuda --size 720p --frames "$E" --no-flops --compile reduce-overhead
else
  why="torch.compile on the CPU took 40-76 s per 10-frame small-model row here (2 shared cores); try it alone:"
  skip compile-720p "$why python -m benchmarks.bench_edit --small-model --frames 10 --compile"
  skip graphs-720p "$why python -m benchmarks.bench_edit --small-model --frames 10 --compile reduce-overhead"
fi

[ -n "${OUT:-}" ] && tar -czf "$OUT/gpu_check_logs.tar.gz" -C "$DIR" --exclude bench-cache .
echo
echo "gpu_check summary ($((SECONDS - started)) s):"
printf '  %s\n' "${rows[@]}"
