#!/usr/bin/env bash
# The GPU check: bf16 wall-clock and peak memory of the five methods at LLaMA-7B width, 4-bit on CUDA and
# every CUDA-only test, written to benchmarks/gpu_results.md (a few minutes on one H100).
#   bash benchmarks/gpu_check.sh                 # on a machine with a CUDA GPU, after scripts/setup.sh
#   bash benchmarks/gpu_check.sh --dry-run DIR   # on a CPU: every step at tiny sizes, results in DIR
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--dry-run" ]; then
  exec python benchmarks/gpu_check.py --dry-run --out "${2:-${TMPDIR:-/tmp}/ademvl-gpu-dry-run}"
fi
exec python benchmarks/gpu_check.py --out benchmarks
