"""The ELinFormer train step at large graphs with the sensors sharded over devices (2-D mesh).

    python -m benchmarks.scale [--devices 8] [--mesh 1 8] [--sizes 8600 100000] [--batch 16]
        [--budget-gib 20] [--search eala-remat softmax-remat] [--time-nodes 883] [--quick]
        [--variants eala-remat eala-remat/16] [--large-step-nodes 8600]
        [--large-step-variants eala-remat/16 eala/16]

Full model of docs/method.md (dim 152, 3 temporal + 3 spatial layers, 4 heads), Adam with clipping,
`train.mesh_shape=(data, nodes)` (docs/training.md, "Sharding the sensors"). On a CPU the devices
are `--devices` virtual ones (`jax_num_cpu_devices`, set before JAX starts); elsewhere all the
accelerators. A variant is the attention (`eala`, `softmax`), `-remat` for `model.remat`, and
`/M` for `train.microbatches=M` (gradient accumulation over M micro-batches of `--batch / M`
rows): `eala-remat/16`. Five parts, each a list of rows in the JSON:

- `memory`: compiled memory per device of the update step (XLA's memory analysis of the
  partitioned program: arguments + outputs + temporaries − aliased) at `--batch` for each of
  `--sizes`, EALA and the softmax backbone, with and without `model.remat`; nothing runs, the
  state and batch are abstract. With `--baseline`, the same on one device (no sharding).
- `largest`: the largest N that fits `--budget-gib` per device at `--batch`, found by compiling
  only (regula falsi from the compiled sizes, to 4 %), per variant of `--search`.
- `spatial_op`: one spatial EALA call (forward + backward) with the keys sharded over "nodes",
  XLA's partitioning of `eala_attention` against the shard_map route (`eala_jax.ops.sharded`):
  memory per device, time, and their largest difference.
- `timing`: step time at `--time-nodes` (real arrays from a lazy window source), node-sharded
  against one device and bfloat16 against float32 compute, with the bfloat16 forward's error.
- `large_step`: the whole training step at `--large-step-nodes` and `--batch`, node-sharded over
  the mesh, each of `--large-step-variants`: compile time, memory, and the time of
  `--large-step-repeats` steps after one warm-up step (minutes a step on a 2-core CPU).

Results: `--out` (default benchmarks/results/scale.json), a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import pathlib
import sys
import time

STEPS_PER_DAY = 288
PARTS = ("memory", "largest", "spatial_op", "timing", "large_step")
IN_STEPS = OUT_STEPS = 12


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=8, help="virtual CPU devices (CPU only)")
    parser.add_argument(
        "--mesh", type=int, nargs=2, default=None, help="data nodes (default 1 x all)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[8600, 100000])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--budget-gib", type=float, default=20.0)
    parser.add_argument(
        "--search",
        nargs="*",
        default=["eala-remat", "softmax-remat"],
        help="variants whose largest N within the budget is searched: eala, eala-remat, softmax,"
        " softmax-remat",
    )
    parser.add_argument("--baseline", action="store_true", help="also compile on one device")
    parser.add_argument("--op-sizes", type=int, nargs="*", default=[8600, 100000])
    parser.add_argument(
        "--op-rows", type=int, default=IN_STEPS, help="spatial rows B*T of the op (12: batch 1)"
    )
    parser.add_argument("--time-nodes", type=int, nargs="*", default=[880])
    parser.add_argument("--time-batch", type=int, default=2)
    parser.add_argument("--large-step-nodes", type=int, nargs="*", default=[8600])
    parser.add_argument("--large-step-variants", nargs="+", default=["eala-remat/16", "eala/16"])
    parser.add_argument("--large-step-repeats", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="parts to run; the others are kept from an existing --out",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["eala", "eala-remat", "softmax", "softmax-remat"],
        help="variants compiled at every size",
    )
    parser.add_argument(
        "--softmax-sizes",
        type=int,
        nargs="*",
        default=None,
        help="sizes at which softmax variants are compiled (default: all of --sizes)",
    )
    parser.add_argument(
        "--concurrency-scheduler",
        action="store_true",
        help="keep XLA's default CPU scheduler (remat then saves no memory on a CPU)",
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.search, args.op_sizes, args.time_nodes = [64], ["eala-remat"], [64], [16]
        args.large_step_nodes = [64]
        args.batch = args.time_batch = 2
        args.budget_gib = 0.01
    return args


ARGS = parse_args() if __name__ == "__main__" else None

# XLA's CPU compiler schedules for concurrency by default, which runs the rematerialised forward
# passes early and keeps their values alive: jax.checkpoint then saves no memory (reproduced with a
# 12-layer toy: 452 MiB with or without it; 260 MiB with it under the memory-minimising scheduler;
# jax issue #19822). CPU runs use the memory scheduler unless `--concurrency-scheduler`; the flag
# is a no-op on other backends.
CPU_MEMORY_SCHEDULER = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
if ARGS is not None and not ARGS.concurrency_scheduler:
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {CPU_MEMORY_SCHEDULER}".strip()

import jax  # noqa: E402  (after the device count is known: set before the backend starts)

if ARGS is not None and ARGS.devices > 1:
    jax.config.update("jax_num_cpu_devices", ARGS.devices)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from eala_jax.allocator import reexec_with_tcmalloc  # noqa: E402
from eala_jax.bench.machine import describe, machine_info  # noqa: E402
from eala_jax.bench.timing import measure  # noqa: E402
from eala_jax.data import StandardScaler  # noqa: E402
from eala_jax.ops import eala_attention  # noqa: E402
from eala_jax.ops.sharded import sharded_eala_attention  # noqa: E402
from eala_jax.train import (  # noqa: E402
    Config,
    DataParallel,
    StepOptions,
    apply_overrides,
    build_model,
    build_optimizer,
    learning_rate_schedule,
    update_step,
)

GIB = 2**30
SCHEDULE = learning_rate_schedule(1e-3, milestones=(20, 30), decay=0.1, steps_per_epoch=100)
SCALER = StandardScaler(mean=np.float32(50.0), std=np.float32(10.0))


def microbatches_of(variant: str) -> int:
    """M of a variant `<attention>[-remat][/M]` (1 without `/M`)."""
    _, _, parts = variant.partition("/")
    return int(parts) if parts else 1


def variant_config(variant: str, dtype: str = "float32") -> Config:
    """`eala`, `softmax`, `eala-remat`, `softmax-remat` (any `/M` ignored): the paper-size model of
    that attention."""
    attention, _, remat = variant.partition("/")[0].partition("-")
    return apply_overrides(
        Config(),
        [
            f"model.temporal_attention={attention}",
            f"model.spatial_attention={attention}",
            f"model.remat={str(remat == 'remat').lower()}",
            f"model.dtype={dtype}",
        ],
    )


def split_model(config: Config, num_nodes: int, *, abstract: bool):
    """(graphdef, state) of the model and its Adam optimiser; abstract = shapes only."""

    def make():
        model = build_model(
            config, num_nodes=num_nodes, steps_per_day=STEPS_PER_DAY, rngs=nnx.Rngs(0)
        )
        tx = build_optimizer(SCHEDULE, weight_decay=3e-4, max_grad_norm=5.0)
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    pair = nnx.eval_shape(make) if abstract else make()
    return nnx.split(pair)


def batch_shapes(batch: int, num_nodes: int) -> dict[str, tuple[tuple[int, ...], object]]:
    """The batch contract's arrays (docs/data.md): name -> (shape, dtype)."""
    grid = (batch, IN_STEPS, num_nodes)
    return {
        "x": (grid, jnp.float32),
        "time_of_day": ((batch, IN_STEPS), jnp.int32),
        "day_of_week": ((batch, IN_STEPS), jnp.int32),
        "y": ((batch, OUT_STEPS, num_nodes), jnp.float32),
        "y_mask": ((batch, OUT_STEPS, num_nodes), jnp.bool_),
    }


class LazyWindows:
    """Synthetic traffic-like windows of `num_nodes` sensors, made one batch at a time: a daily
    cycle with a per-sensor phase plus noise. Holds O(N) numbers, never the `[T, N]` series (the
    embedded synthetic generator builds an N x N graph, out of reach at N = 100,000)."""

    def __init__(self, num_nodes: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.num_nodes = num_nodes
        self.phase = rng.uniform(0, 1, num_nodes).astype(np.float32)
        self.level = rng.uniform(40, 70, num_nodes).astype(np.float32)
        self.seed = seed

    def batch(self, index: int, size: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng((self.seed, index))
        start = rng.integers(0, 7 * STEPS_PER_DAY, size)[:, None]
        steps = start + np.arange(IN_STEPS + OUT_STEPS)[None]  # [B, T_in + T_out]
        cycle = np.sin(2 * np.pi * (steps[..., None] / STEPS_PER_DAY + self.phase))
        values = self.level + 10 * cycle + rng.normal(0, 2, cycle.shape)  # [B, T, N]
        values = values.astype(np.float32)
        x, y = values[:, :IN_STEPS], values[:, IN_STEPS:]
        return {
            "x": (x - 50.0) / 10.0,
            "time_of_day": (steps[:, :IN_STEPS] % STEPS_PER_DAY).astype(np.int32),
            "day_of_week": (steps[:, :IN_STEPS] // STEPS_PER_DAY % 7).astype(np.int32),
            "y": y,
            "y_mask": np.ones(y.shape, bool),
        }


def data_parallel(graphdef, mesh_shape, microbatches: int = 1) -> DataParallel:
    options = StepOptions(SCHEDULE, microbatches=microbatches)
    if mesh_shape is None:
        return DataParallel("none", 1, graphdef=graphdef, options=options)
    count = mesh_shape[0] * mesh_shape[1]
    return DataParallel("jit", count, graphdef=graphdef, options=options, mesh_shape=mesh_shape)


def compiled_memory(variant: str, num_nodes: int, batch: int, mesh_shape) -> dict:
    """Memory per device of the compiled update step (abstract state and batch)."""
    graphdef, state = split_model(variant_config(variant), num_nodes, abstract=True)
    dp = data_parallel(graphdef, mesh_shape, microbatches_of(variant))
    abstract_batch = {
        name: jax.ShapeDtypeStruct(shape, dtype, sharding=dp.batch_sharding(len(shape)))
        for name, (shape, dtype) in batch_shapes(batch, num_nodes).items()
    }
    scaler = jax.tree.map(lambda x: jax.ShapeDtypeStruct((), jnp.float32), SCALER)
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
    start = time.perf_counter()
    compiled = dp.lower_update(state, abstract_batch, scaler, key).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    parts = {
        "argument_bytes": memory.argument_size_in_bytes,
        "output_bytes": memory.output_size_in_bytes,
        "temp_bytes": memory.temp_size_in_bytes,
        "alias_bytes": memory.alias_size_in_bytes,
    }
    total = parts["argument_bytes"] + parts["output_bytes"] + parts["temp_bytes"]
    return {
        "variant": variant,
        "nodes": num_nodes,
        "batch": batch,
        "microbatches": microbatches_of(variant),
        "mesh": list(mesh_shape) if mesh_shape else [1, 1],
        "compile_s": compile_s,
        "per_device_bytes": total - parts["alias_bytes"],
        **parts,
    }


def largest_nodes(variant: str, batch: int, mesh_shape, budget: float, rows: list) -> dict:
    """Largest N (a multiple of the "nodes" size) whose step fits `budget` bytes per device, by
    compiling only: from the rows already compiled, regula falsi on memory(N) (linear for EALA,
    close to it for softmax at these sizes) until the bracket is within 4 %, at most 8 compiles."""
    step = mesh_shape[1]

    def memory(n: int) -> float:
        row = next((r for r in rows if (r["variant"], r["nodes"]) == (variant, n)), None)
        if row is None:
            row = compiled_memory(variant, n, batch, mesh_shape)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
        return row["per_device_bytes"]

    points = sorted((r["nodes"], r["per_device_bytes"]) for r in rows if r["variant"] == variant)
    below = [p for p in points if p[1] <= budget] or [(step, memory(step))]
    above = [p for p in points if p[1] > budget]
    low = max(below)
    high = min(above) if above else None
    for _ in range(8):
        if high is not None and high[0] - low[0] <= max(step, 0.04 * low[0]):
            break
        if high is None:  # extrapolate from the two largest fitting points (or double)
            base = below[-2] if len(below) > 1 else (0, 0.0)
            slope = (low[1] - base[1]) / max(low[0] - base[0], 1)
            guess = low[0] + (budget - low[1]) / slope if slope > 0 else 2 * low[0]
            guess = int(min(guess * 1.02, 8 * low[0]))
        else:
            fraction = (budget - low[1]) / (high[1] - low[1])
            guess = int(low[0] + fraction * (high[0] - low[0]))
            guess = min(max(guess, low[0] + step), high[0] - step)
        n = max(guess // step * step, step)
        point = (n, memory(n))
        if point[1] <= budget:
            below.append(point)
            low = max(below)
        else:
            high = point if high is None else min(high, point)
    return {
        "variant": variant,
        "batch": batch,
        "budget_gib": budget / GIB,
        "largest_nodes": low[0],
        "largest_nodes_gib": low[1] / GIB,
        "smallest_failing_nodes": None if high is None else high[0],
    }


def spatial_op(num_nodes: int, mesh, repeats: int) -> dict:
    """One spatial EALA call (forward + backward) at the ELinFormer's spatial shape [B·T, N, H, d]
    with the sensors sharded: XLA's partitioning of `eala_attention` and the shard_map route."""
    rows, heads, head_dim = ARGS.op_rows if ARGS else IN_STEPS, 4, 38
    keys = jax.random.split(jax.random.key(1), 3)
    sharding = NamedSharding(mesh, P("data", "nodes"))
    q, k, v = (
        jax.device_put(jax.random.normal(kk, (rows, num_nodes, heads, head_dim)), sharding)
        for kk in keys
    )

    def loss(attention):
        return lambda q, k, v: jnp.sum(attention(q, k, v) ** 2)

    routes = {
        "partitioned": lambda q, k, v: eala_attention(q, k, v, estimator="gaussian"),
        "shard_map": lambda q, k, v: sharded_eala_attention(q, k, v, mesh=mesh),
    }
    result: dict = {"nodes": num_nodes, "rows": rows, "heads": heads, "head_dim": head_dim}
    outputs = {}
    with jax.set_mesh(mesh):
        for name, attention in routes.items():
            fn = jax.value_and_grad(loss(attention), argnums=(0, 1, 2))
            result[name] = measure(fn, q, k, v, repeats=repeats)
            outputs[name] = jax.jit(attention)(q, k, v)
    result["max_abs_difference"] = float(
        jnp.max(jnp.abs(outputs["partitioned"] - outputs["shard_map"]))
    )
    result["max_abs_output"] = float(jnp.max(jnp.abs(outputs["partitioned"])))
    return result


def step_timing(num_nodes: int, batch: int, mesh_shape, repeats: int) -> list[dict]:
    """Step time of EALA (remat off) on one device and node-sharded, float32 and bfloat16, on the
    same lazily made batch; and the bfloat16 forward's relative error against float32."""
    windows = LazyWindows(num_nodes)
    host_batch = windows.batch(0, batch)
    rows, predictions = [], {}
    for dtype in ("float32", "bfloat16"):
        config = variant_config("eala", dtype)
        for layout in (None, mesh_shape):
            graphdef, state = split_model(config, num_nodes, abstract=False)
            dp = data_parallel(graphdef, layout)
            state = dp.put_state(jax.tree.map(np.asarray, state))
            arrays = dp.put_batch(host_batch)
            scaler = dp.put_scaler(SCALER)
            fn = functools.partial(update_step, graphdef=graphdef, options=dp.options)
            with jax.set_mesh(dp.mesh) if layout is not None else contextlib.nullcontext():
                row = measure(fn, state, arrays, scaler, jax.random.key(0), repeats=repeats)
                if layout is None:
                    predictions[dtype] = np.asarray(
                        jax.jit(_forward, static_argnums=0)(graphdef, state, arrays)
                    )
            row.update(
                nodes=num_nodes, batch=batch, dtype=dtype, mesh=list(layout) if layout else [1, 1]
            )
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    error = np.abs(predictions["bfloat16"] - predictions["float32"])
    scale = np.abs(predictions["float32"])
    rows.append(
        {
            "nodes": num_nodes,
            "batch": batch,
            "bfloat16_max_abs_error": float(error.max()),
            "bfloat16_relative_rms_error": float(np.sqrt(np.mean(error**2) / np.mean(scale**2))),
        }
    )
    return rows


def large_step(num_nodes: int, batch: int, variant: str, mesh_shape, repeats: int) -> dict:
    """The whole training step of `variant` at `num_nodes` sensors and `batch`, node-sharded over
    `mesh_shape`, on a lazily made batch: compile time, memory, steps after one warm-up."""
    graphdef, state = split_model(variant_config(variant), num_nodes, abstract=False)
    dp = data_parallel(graphdef, mesh_shape, microbatches_of(variant))
    state = dp.put_state(jax.tree.map(np.asarray, state))
    arrays = dp.put_batch(LazyWindows(num_nodes).batch(0, batch))
    fn = functools.partial(update_step, graphdef=graphdef, options=dp.options)
    with jax.set_mesh(dp.mesh):
        row = measure(
            fn,
            state,
            arrays,
            dp.put_scaler(SCALER),
            jax.random.key(0),
            repeats=repeats,
            max_seconds=float("inf"),
        )
    row.update(variant=variant, nodes=num_nodes, batch=batch, mesh=list(mesh_shape))
    return row


def _forward(graphdef, state, batch):
    model, _ = nnx.merge(graphdef, state)
    return model(batch["x"], batch["time_of_day"], batch["day_of_week"], deterministic=True)


def main(args: argparse.Namespace) -> None:
    count = jax.device_count()
    mesh_shape = tuple(args.mesh) if args.mesh else (1, count)
    budget = args.budget_gib * GIB
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": machine_info(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "mesh": list(mesh_shape),
        "batch": args.batch,
        "budget_gib": args.budget_gib,
        "memory": [],
        "largest": [],
        "spatial_op": [],
        "timing": [],
        "large_step": [],
    }

    previous = json.loads(out.read_text()) if out.is_file() else {}
    # Keep the parts not rerun, and the whole-step rows not measured again.
    result.update({part: previous.get(part, []) for part in PARTS if part not in args.parts})
    if "large_step" in args.parts:
        again = {(v, n) for v in args.large_step_variants for n in args.large_step_nodes}
        result["large_step"] = [
            r for r in previous.get("large_step", []) if (r["variant"], r["nodes"]) not in again
        ]

    def save():
        out.write_text(json.dumps(result, indent=1))

    if "memory" not in args.parts:
        args.sizes = []
    if "largest" not in args.parts:
        args.search = []
    if "spatial_op" not in args.parts:
        args.op_sizes = []
    if "timing" not in args.parts:
        args.time_nodes = []
    if "large_step" not in args.parts:
        args.large_step_nodes = []

    for n in args.sizes:
        for variant in args.variants:
            if variant.startswith("softmax") and n not in (args.softmax_sizes or args.sizes):
                continue
            baseline = args.baseline and n <= 8600 and variant.startswith("eala")
            layouts = [mesh_shape] + ([None] if baseline else [])
            for layout in layouts:
                row = compiled_memory(variant, n, args.batch, layout)
                print(json.dumps(row), file=sys.stderr)
                result["memory"].append(row)
                save()
    sharded_rows = [r for r in result["memory"] if r["mesh"] == list(mesh_shape)]
    for variant in args.search:
        result["largest"].append(
            largest_nodes(variant, args.batch, mesh_shape, budget, sharded_rows)
        )
        result["memory"] = [r for r in result["memory"] if r["mesh"] != list(mesh_shape)]
        result["memory"] += sharded_rows
        save()
    mesh = jax.make_mesh(
        mesh_shape, ("data", "nodes"), axis_types=(jax.sharding.AxisType.Auto,) * 2
    )
    for n in args.op_sizes:
        row = spatial_op(n, mesh, args.repeats)
        print(json.dumps(row), file=sys.stderr)
        result["spatial_op"].append(row)
        save()
    for n in args.time_nodes:
        result["timing"] += step_timing(n, args.time_batch, mesh_shape, args.repeats)
        save()
    for n in args.large_step_nodes:
        for variant in args.large_step_variants:
            row = large_step(n, args.batch, variant, mesh_shape, args.large_step_repeats)
            print(json.dumps(row), file=sys.stderr)
            result["large_step"].append(row)
            save()
    print(table(result))


def table(result: dict) -> str:
    """Markdown: memory per device per (variant, N), largest N within the budget, the spatial op's
    two routes, step times."""
    lines = [
        f"Mesh (data, nodes) = {tuple(result['mesh'])}, batch {result['batch']}.",
        "",
        "| variant | N | micro-batches | mesh | GiB per device | compile s |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(result["memory"], key=lambda r: (r["variant"], r["nodes"], r["mesh"])):
        lines.append(
            f"| {r['variant']} | {r['nodes']} | {r.get('microbatches', 1)} | "
            f"{r['mesh'][0]}x{r['mesh'][1]} | "
            f"{r['per_device_bytes'] / GIB:.2f} | {r['compile_s']:.0f} |"
        )
    lines += [
        "",
        f"| variant | largest N within {result['budget_gib']:g} GiB | fails at |",
        "|---|---|---|",
    ]
    for r in result["largest"]:
        lines.append(f"| {r['variant']} | {r['largest_nodes']} | {r['smallest_failing_nodes']} |")
    lines += [
        "",
        "| spatial EALA N | route | fwd+bwd ms | GiB per device | max abs diff |",
        "|---|---|---|---|---|",
    ]
    for r in result["spatial_op"]:
        for route in ("partitioned", "shard_map"):
            m = r[route]
            lines.append(
                f"| {r['nodes']} | {route} | {m.get('median_s', float('nan')) * 1e3:.0f} | "
                f"{m['peak_bytes'] / GIB:.3f} | {r['max_abs_difference']:.2e} |"
            )
    lines += ["", "| N | batch | dtype | mesh | step ms |", "|---|---|---|---|---|"]
    for r in result["timing"]:
        if "median_s" in r:
            lines.append(
                f"| {r['nodes']} | {r['batch']} | {r['dtype']} | {r['mesh'][0]}x{r['mesh'][1]} | "
                f"{r['median_s'] * 1e3:.0f} |"
            )
        elif "bfloat16_relative_rms_error" in r:
            lines.append(
                f"\nbfloat16 forward at N = {r['nodes']}: relative RMS error "
                f"{r['bfloat16_relative_rms_error']:.2e} against float32."
            )
    lines += ["", "| whole step: variant | N | batch | mesh | GiB per device | step s |"]
    lines.append("|---|---|---|---|---|---|")
    for r in result.get("large_step", []):
        lines.append(
            f"| {r['variant']} | {r['nodes']} | {r['batch']} | {r['mesh'][0]}x{r['mesh'][1]} | "
            f"{r['peak_bytes'] / GIB:.2f} | {r.get('median_s', float('nan')):.1f} |"
        )
    lines.append(f"\nMachine: {describe(result['machine'])}.")
    return "\n".join(lines)


if __name__ == "__main__":
    # CPU timings with the fast allocator where it is installed.
    reexec_with_tcmalloc("benchmarks.scale")
    main(ARGS)
