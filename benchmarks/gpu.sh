#!/usr/bin/env bash
# Runs the attention cost benchmark and the training-step benchmark on a GPU machine and writes their
# tables to $OUT (default ./gpu_out). Prepared for the device tool of this workplace: one call,
# bounded to 9.5 minutes on one H100/H200 (attention grid 240 s, training step 170 s, node-sharding
# scale 150 s).
# The machine's own python3 has jax (CUDA) and numpy: eala_jax's ops need nothing else. The training
# step also needs flax, optax, orbax-checkpoint and grain; where they do not import it is skipped with
# a message (put them on PYTHONPATH, e.g. a carried folder of their pure-Python packages).
#   bash benchmarks/gpu.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"
# The full attention grid; GPU memory is the budget (70 GiB leaves room on an 80 GB H100).
timeout 240 python3 -m benchmarks.attention --preset full --repeats 10 --memory-budget-gib 70 \
    --out "$OUT/attention_gpu.json" > "$OUT/attention_gpu.md" 2> "$OUT/attention_gpu.log" || {
  echo "attention benchmark stopped (status $?); partial log in $OUT/attention_gpu.log"; }
cat "$OUT/attention_gpu.md"
# The training step (ELinFormer vs the softmax backbone) at the PEMS08/04/07 graph sizes, batch 16.
if python3 -c "import flax, optax, orbax.checkpoint, grain" 2> "$OUT/train_step_imports.log"; then
  timeout 170 python3 -m benchmarks.train_step --sizes 170 307 883 --batch 16 --repeats 10 \
      --memory-budget-gib 70 --out "$OUT/train_step_gpu.json" > "$OUT/train_step_gpu.md" \
      2> "$OUT/train_step_gpu.log" || {
    echo "train-step benchmark stopped (status $?); partial log in $OUT/train_step_gpu.log"; }
  cat "$OUT/train_step_gpu.md"
  # Memory per device at 8,600 and 100,000 sensors (batch 16, remat, 16 micro-batches) on this one
  # device, the largest N within 130 GiB, and the whole step's time at N = 8,600.
  timeout 150 python3 -m benchmarks.scale --mesh 1 1 --sizes 8600 100000 --batch 16 \
      --variants eala-remat eala-remat/16 --search eala-remat/16 --budget-gib 130 \
      --parts memory largest large_step --large-step-nodes 8600 \
      --large-step-variants eala-remat/16 eala-remat --out "$OUT/scale_gpu.json" \
      > "$OUT/scale_gpu.md" 2> "$OUT/scale_gpu.log" || {
    echo "scale benchmark stopped (status $?); partial log in $OUT/scale_gpu.log"; }
  cat "$OUT/scale_gpu.md"
else
  echo "train step skipped: flax/optax/orbax/grain do not import (see $OUT/train_step_imports.log)"
fi
