#!/usr/bin/env bash
# Runs the attention cost benchmark on a GPU machine and writes its tables to $OUT (default ./gpu_out).
# Prepared for the device tool of this workplace: one call, under 8 minutes on one H100/H200.
# The machine's own python3 has jax (CUDA), numpy; eala_jax's ops need nothing else.
#   bash benchmarks/gpu.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"
# The full grid; GPU memory is the budget (70 GiB leaves room on an 80 GB H100).
timeout 420 python3 -m benchmarks.attention --preset full --repeats 10 --memory-budget-gib 70 \
    --out "$OUT/attention_gpu.json" > "$OUT/attention_gpu.md" 2> "$OUT/attention_gpu.log" || {
  echo "benchmark stopped (status $?); partial log in $OUT/attention_gpu.log"; }
cat "$OUT/attention_gpu.md"
