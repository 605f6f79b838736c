#!/usr/bin/env bash
# The GPU check in one command, on a CUDA machine without network (nothing is installed here):
#   1. the CUDA tests (pytest -m cuda: golden networks against the CPU in fp32/TF32/bf16, the bounds' bite, and a
#      `cmet edit --device cuda` through the CLI, its output verified); their measured spreads go to gpu_spread.jsonl;
#   2. the benchmark on CUDA at 720p, 1080p and 2160p, and the media path alone (--media-only) at 720p.
# Prints one summary line per row at the end. Logs and JSON go to $OUT (the device tool's folder) or to
# CMET_CHECK_DIR, else a temporary folder. Usage, from the repository root:
#   bash benchmarks/gpu_check.sh                 # PYTHON=python3 by default (the environment with cmet's packages)
#   CMET_CHECK_DRY=1 bash benchmarks/gpu_check.sh   # the same steps on the CPU, small model, few frames: tries the script
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DIR=${CMET_CHECK_DIR:-${OUT:-$(mktemp -d -t cmet-gpu-check-XXXXXX)}}
mkdir -p "$DIR"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CMET_GPU_SPREAD="$DIR/gpu_spread.jsonl" CMET_BENCH_CACHE="${CMET_BENCH_CACHE:-$DIR/bench-cache}"
rm -f "$CMET_GPU_SPREAD"
rows=()
started=$SECONDS

DEVICE=cuda; F1=250; F2=100; F3=500; SMALL=()
if [ -n "${CMET_CHECK_DRY:-}" ]; then DEVICE=cpu; F1=10; F2=5; F3=20; SMALL=(--small-model); fi
if ! "$PY" -c 'import torch, cv2' 2>/dev/null; then
  echo "gpu_check: $PY cannot import torch and cv2: run it with the environment that has cmet's packages (PYTHON=...)"; exit 2
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False)"; exit 2
fi
"$PY" -c 'import torch, cv2; print("gpu_check:", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU (dry run)",
          "torch", torch.__version__, "OpenCV", cv2.__version__)'

# 1. CUDA tests
"$PY" -m pytest -q -p no:cacheprovider -m cuda -rs tests ${CMET_CHECK_DRY:+-k summary_plugin} 2>&1 | tee "$DIR/cuda_tests.log"
rows+=("cuda tests: $(grep -E '^cmet tests:' "$DIR/cuda_tests.log" | tail -1)")
if [ -s "$CMET_GPU_SPREAD" ]; then
  while IFS= read -r line; do rows+=("spread: $line"); done < <("$PY" - "$CMET_GPU_SPREAD" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    parts = [f"{k} max {v['max']:.3g}·s mean {v['mean']:.3g}·s" for k, v in r.items() if isinstance(v, dict)]
    print(r["test"], "|", "; ".join(parts))
EOF
)
fi

# 2. benchmarks: one JSON object per run, its headline in the summary
bench() {  # NAME ARGS...
  local name=$1; shift
  if "$PY" -m benchmarks.bench_edit "$@" > "$DIR/bench_$name.log" 2>&1; then
    rows+=("bench $name: $(tail -1 "$DIR/bench_$name.log" | "$PY" -c '
import json, sys
r = json.loads(sys.stdin.read())
keys = ("size", "frames", "media_only_fps", "media_only_cpu_s") if r.get("mode") == "media-only" else (
    "precision", "frames", "batch_size", "network_fps", "end_to_end_fps", "overhead_ratio", "track_s", "peak_device_mb")
print(", ".join(f"{k} {r.get(k)}" for k in keys))')")
  else
    rows+=("bench $name: FAILED (see $DIR/bench_$name.log)")
  fi
}
bench 720p --device "$DEVICE" --size 720p --frames "$F1" "${SMALL[@]}"
bench 1080p --device "$DEVICE" --size 1080p --frames "$F1" "${SMALL[@]}"
bench 2160p --device "$DEVICE" --size 2160p --frames "$F2" "${SMALL[@]}"
bench media-720p --media-only --size 720p --frames "$F3"

echo
echo "gpu_check summary ($((SECONDS - started)) s):"
printf '  %s\n' "${rows[@]}"
