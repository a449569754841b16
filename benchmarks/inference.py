"""Inference cost of the jitted forecaster (`eala_jax.forecast`), EALA against softmax: latency of
one window (batch 1) and throughput (windows/s) at a larger batch, at graph sizes.

    python -m benchmarks.inference [--sizes 170 883 8600] [--batch 64] [--memory-budget-gib 14]

The function timed is the forecaster's own (`eala_jax.forecast.graph.forecast_graph`: data units
in, NaN masked, calendar from the timestamps, forecast in data units out) with the full model of
docs/method.md (dim 152, 3 temporal + 3 spatial layers, 4 heads, 12 steps in and out) at fresh
parameters: the cost does not depend on their values. Compile time apart; median of repeated calls
after a warm-up, each `block_until_ready` (the compile time reported is the batch-1 call's: the
batch call's program was compiled already to read its memory); memory from XLA's analysis of the
compiled call. Where a batch needs more than `--memory-budget-gib`, the largest of
`--fallback-batches` that fits is timed instead (throughput is then at that batch, named in the
row). Rows go to `--out` (JSON), with the machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.bench.machine import describe, machine_info
from eala_jax.bench.tables import inference_table
from eala_jax.bench.timing import compiled_peak_bytes, measure
from eala_jax.forecast.graph import GraphSpec, forecast_graph
from eala_jax.train import Config, apply_overrides, build_model

STEPS_PER_DAY = 288
START = np.datetime64("2024-01-01T00:00", "m").astype(np.int64)


def forecast_call(attention: str, num_nodes: int, batch: int) -> tuple:
    """`(fn, args)`: the forecaster's jit-able call for a fresh model of `attention` on both
    axes and a batch of `batch` random windows of `num_nodes` sensors."""
    config = apply_overrides(
        Config(), [f"model.temporal_attention={attention}", f"model.spatial_attention={attention}"]
    )
    model = build_model(config, num_nodes=num_nodes, steps_per_day=STEPS_PER_DAY, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    d = config.data
    spec = GraphSpec(d.in_steps, d.out_steps, 1440 // STEPS_PER_DAY, config.model.uses_profile)
    rng = np.random.default_rng(0)
    history = rng.normal(50, 10, (batch, d.in_steps, num_nodes)).astype(np.float32)
    history[rng.random(history.shape) < 0.05] = np.nan  # some missing readings
    start = (START + 5 * rng.integers(0, 2016, batch)).astype(np.int32)
    table = jnp.zeros((7, STEPS_PER_DAY, num_nodes), jnp.float32)
    fn = functools.partial(forecast_graph, graphdef, spec=spec)
    year = jnp.zeros((1, num_nodes), jnp.float32)  # no day-of-year term (5-minute data)
    args = (params, table, year, jnp.float32(50.0), jnp.float32(10.0), jnp.asarray(history), start)
    return fn, args


def point(attention: str, n: int, batch: int, fallback: list[int], budget: float) -> dict:
    """Latency at batch 1 and throughput at the largest of `batch`, `fallback` that fits."""
    row: dict = {"nodes": n, "attention": attention}
    fn, args = forecast_call(attention, n, 1)
    one = measure(fn, *args, repeats=5, budget_bytes=budget, max_seconds=60)
    row.update(latency_s=one.get("median_s"), latency_compile_s=one["compile_s"])
    row["latency_status"] = one.get("status", "ok")
    for b in [batch, *[f for f in fallback if f < batch]]:
        fn, args = forecast_call(attention, n, b)
        if compiled_peak_bytes(fn, *args) > budget:
            continue
        many = measure(fn, *args, repeats=5, max_seconds=60)
        row.update(
            batch=b,
            batch_s=many["median_s"],
            windows_per_s=b / many["median_s"],
            peak_bytes=many["peak_bytes"],
        )
        break
    else:
        row["batch_status"] = f"no batch in {[batch, *fallback]} fits {budget / 2**30:.0f} GiB"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[170, 883, 8600])
    parser.add_argument("--attentions", nargs="+", default=["eala", "softmax"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--fallback-batches", type=int, nargs="*", default=[16, 4, 1])
    parser.add_argument("--memory-budget-gib", type=float, default=14.0)
    parser.add_argument("--out", default="benchmarks/results/inference.json")
    args = parser.parse_args()
    budget = args.memory_budget_gib * 2**30
    machine = machine_info()
    print(describe(machine), flush=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        for attention in args.attentions:
            rows.append(point(attention, n, args.batch, args.fallback_batches, budget))
            print(json.dumps(rows[-1]), flush=True)
            # Written after every row: a size that exhausts the host later loses nothing measured.
            out.write_text(
                json.dumps(
                    {
                        "machine": machine,
                        "device": str(jax.devices()[0]),
                        "command": " ".join(["python -m benchmarks.inference", *sys.argv[1:]]),
                        "rows": rows,
                    },
                    indent=1,
                )
                + "\n"
            )
    print(inference_table(rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    reexec_with_tcmalloc("benchmarks.inference")
    main()
