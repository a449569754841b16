"""Time of one ELinFormer training step against the softmax backbone (STAEformer) at graph sizes.

    python -m benchmarks.train_step [--sizes 170 307 883 8600] [--batch 16]

N = 170, 307, 883 are the PEMS08, PEMS04 and PEMS07 graph sizes and 8600 the LargeST-CA size. The
signal is synthetic (a step's time does not depend on the values). Full model of EALA.md (dim 152,
3 temporal + 3 spatial layers, 4 heads), Adam update with clipping, batch 16, one CPU device.
Compile time apart; median of repeated steps after a warm-up; memory from XLA's analysis of the
compiled step; a step that needs more than `--memory-budget-gib` is reported, not run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks._machine import describe, machine_info
from benchmarks._timing import measure
from eala_jax.train import Config, build_model, build_optimizer, learning_rate_schedule, make_update_fn
from eala_jax.train.steps import Scale

STEPS_PER_DAY = 288


def step_and_args(attention: str, num_nodes: int, batch: int) -> tuple:
  config = Config()
  config.model.temporal_attention = attention
  config.model.spatial_attention = attention
  model = build_model(config, num_nodes=num_nodes, steps_per_day=STEPS_PER_DAY, rngs=nnx.Rngs(0))
  schedule = learning_rate_schedule(1e-3, milestones=(20, 30), decay=0.1, steps_per_epoch=100)
  optimizer = nnx.Optimizer(model, build_optimizer(schedule, weight_decay=3e-4, max_grad_norm=5.0), wrt=nnx.Param)
  graphdef, state = nnx.split((model, optimizer))
  update = make_update_fn(graphdef, schedule=schedule)
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(size=(batch, 12, num_nodes, 1)),
                      rng.integers(0, STEPS_PER_DAY, (batch, 12, num_nodes, 1)) / STEPS_PER_DAY,
                      rng.integers(0, 7, (batch, 12, num_nodes, 1))], axis=-1).astype(np.float32)
  batch_arrays = {"x": jnp.asarray(x), "y": jnp.asarray(rng.normal(50, 10, (batch, 12, num_nodes)), jnp.float32),
                  "y_mask": jnp.ones((batch, 12, num_nodes), bool)}
  scale = Scale(mean=jnp.float32(50.0), std=jnp.float32(10.0))
  return update, (state, batch_arrays, scale, jax.random.key(0))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[170, 307, 883, 8600])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--memory-budget-gib", type=float, default=14.0)
  parser.add_argument("--out", default="benchmarks/results/train_step.json")
  args = parser.parse_args()
  rows = []
  for n in args.sizes:
    for attention in ("eala", "softmax"):
      update, fn_args = step_and_args(attention, n, args.batch)
      row = {"nodes": n, "batch": args.batch, "attention": attention}
      row.update(measure(update, *fn_args, repeats=args.repeats, budget_bytes=args.memory_budget_gib * 2**30))
      print(json.dumps(row), file=sys.stderr)
      rows.append(row)
  result = {"machine": machine_info(), "rows": rows}
  pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
  print("| N | attention | step ms | compile s | memory MiB | softmax / EALA step time |")
  print("|---|---|---|---|---|---|")
  for row in rows:
    base = next(r for r in rows if r["nodes"] == row["nodes"] and r["attention"] == "softmax")
    ok = row["status"] == "ok"
    ratio = f"{base['median_s'] / row['median_s']:.1f}" if ok and base["status"] == "ok" else "n/a"
    step = f"{row['median_s'] * 1e3:.0f}" if ok else row["status"]
    print(f"| {row['nodes']} | {row['attention']} | {step} | {row['compile_s']:.1f} | {row['peak_bytes'] / 2**20:.0f} | {ratio} |")
  print(f"\nBatch {args.batch}. Machine: {describe(result['machine'])}.")


if __name__ == "__main__":
  main()
