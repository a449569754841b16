"""Time of one ELinFormer training step against the softmax backbone (STAEformer) at graph sizes.

    python -m benchmarks.train_step [--sizes 170 307 883 8600] [--batch 16]

N = 170, 307, 883 are the PEMS08, PEMS04 and PEMS07 graph sizes and 8600 the LargeST-CA size. The
signal is synthetic (a step's time does not depend on the values). Full model of docs/method.md (dim
152, 3 temporal + 3 spatial layers, 4 heads), Adam update with clipping, batch 16, one CPU device.
Compile time apart; median of repeated steps after a warm-up; memory from XLA's analysis of the
compiled step; a step that needs more than `--memory-budget-gib` is reported, not run. Where softmax
does not fit at `--batch`, both are timed again at the largest of `--fallback-batches` softmax fits
(or EALA alone at the largest it fits, when softmax fits none), so a ratio exists.
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

from benchmarks.machine import describe, machine_info
from benchmarks.timing import measure
from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.data import StandardScaler
from eala_jax.ops import attention_options
from eala_jax.train import (
    Config,
    StepOptions,
    apply_overrides,
    build_model,
    build_optimizer,
    learning_rate_schedule,
    update_step,
)

STEPS_PER_DAY = 288


def step_and_args(attention: str, num_nodes: int, batch: int) -> tuple:
    config = apply_overrides(
        Config(), [f"model.temporal_attention={attention}", f"model.spatial_attention={attention}"]
    )
    assert config.model.spatial_attention == attention_options(attention)
    return config_step_and_args(config, num_nodes, batch, steps_per_day=STEPS_PER_DAY)


def config_step_and_args(
    config: Config, num_nodes: int, batch: int, *, steps_per_day: int
) -> tuple:
    """`(update, args)`: the jit-able training step of `config`'s model on a synthetic batch of
    `config.data`'s window lengths, for `benchmarks.timing.measure(update, *args)`."""
    in_steps, out_steps = config.data.in_steps, config.data.out_steps
    model = build_model(config, num_nodes=num_nodes, steps_per_day=steps_per_day, rngs=nnx.Rngs(0))
    schedule = learning_rate_schedule(1e-3, milestones=(20, 30), decay=0.1, steps_per_epoch=100)
    optimizer = nnx.Optimizer(
        model, build_optimizer(schedule, weight_decay=3e-4, max_grad_norm=5.0), wrt=nnx.Param
    )
    graphdef, state = nnx.split((model, optimizer))
    update = functools.partial(update_step, graphdef=graphdef, options=StepOptions(schedule))
    rng = np.random.default_rng(0)
    batch_arrays = {  # the batch contract (docs/data.md)
        "x": jnp.asarray(rng.normal(size=(batch, in_steps, num_nodes)), jnp.float32),
        "time_of_day": jnp.asarray(rng.integers(0, steps_per_day, (batch, in_steps)), jnp.int32),
        "day_of_week": jnp.asarray(rng.integers(0, 7, (batch, in_steps)), jnp.int32),
        "y": jnp.asarray(rng.normal(50, 10, (batch, out_steps, num_nodes)), jnp.float32),
        "y_mask": jnp.ones((batch, out_steps, num_nodes), bool),
    }
    scaler = StandardScaler(mean=np.float32(50.0), std=np.float32(10.0))
    return update, (state, batch_arrays, scaler, jax.random.key(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[170, 307, 883, 8600])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-budget-gib", type=float, default=14.0)
    parser.add_argument("--out", default="benchmarks/results/train_step.json")
    parser.add_argument(
        "--fallback-batches",
        type=int,
        nargs="*",
        default=[4, 2, 1],
        help="where softmax does not fit at --batch, also time both at the largest of these it"
        " fits",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in --out, measure the rest"
    )
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    rows = json.loads(out.read_text())["rows"] if args.resume and out.is_file() else []
    result = {"machine": machine_info(), "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)

    def timed(attention: str, n: int, batch: int) -> dict:
        row = next(
            (r for r in rows if (r["nodes"], r["batch"], r["attention"]) == (n, batch, attention)),
            None,
        )
        if row is None:
            update, fn_args = step_and_args(attention, n, batch)
            row = {"nodes": n, "batch": batch, "attention": attention}
            row.update(
                measure(
                    update,
                    *fn_args,
                    repeats=args.repeats,
                    budget_bytes=args.memory_budget_gib * 2**30,
                )
            )
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
            out.write_text(json.dumps(result, indent=1))
        return row

    for n in args.sizes:
        timed("eala", n, args.batch)
        if timed("softmax", n, args.batch)["status"] == "ok":
            continue
        # Softmax does not fit at --batch: both again at the largest fallback batch softmax fits, or
        # EALA alone at the largest it fits when softmax fits none.
        smaller = [b for b in args.fallback_batches if b < args.batch]
        fits = next((b for b in smaller if timed("softmax", n, b)["status"] == "ok"), None)
        if fits is not None:
            timed("eala", n, fits)
            continue
        for batch in smaller:
            if timed("eala", n, batch)["status"] == "ok":
                break
    print(table(result))


def table(result: dict) -> str:
    """Markdown: step time, compile time and memory per (N, batch, attention), softmax / EALA
    time."""
    lines = [
        "| N | batch | attention | step ms | compile s | memory MiB | softmax / EALA step time |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = result["rows"]
    for row in sorted(rows, key=lambda r: (r["nodes"], -r["batch"], r["attention"])):
        base = next(
            (
                r
                for r in rows
                if (r["nodes"], r["batch"], r["attention"])
                == (row["nodes"], row["batch"], "softmax")
            ),
            None,
        )
        ok = row["status"] == "ok"
        ratio = (
            f"{base['median_s'] / row['median_s']:.2f}"
            if ok and base and base["status"] == "ok"
            else "n/a"
        )
        step = f"{row['median_s'] * 1e3:.0f}" if ok else row["status"]
        lines.append(
            f"| {row['nodes']} | {row['batch']} | {row['attention']} | {step} | "
            f"{row['compile_s']:.1f} | {row['peak_bytes'] / 2**20:.0f} | {ratio} |"
        )
    lines.append(f"\nMachine: {describe(result['machine'])}.")
    return "\n".join(lines)


if __name__ == "__main__":
    # CPU timings with the fast allocator where it is installed.
    reexec_with_tcmalloc("benchmarks.train_step")
    main()
