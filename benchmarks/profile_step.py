"""The pieces of the ELinFormer training step, each timed in isolation (forward + backward).

    python -m benchmarks.profile_step [--nodes 170] [--batch 16] [--pieces ...]

At the paper's size (dim 152, feed-forward 256, 4 heads, 12 steps; `B·T·N` rows), each piece is
timed in its former form (flax defaults, transposed layouts) and in the form `AttentionBlock` now
uses, interleaved (one call of each in turn, `--repeats` rounds, median), so their ratio is same-run
on a noisy machine. Forward + backward means the VJP of the piece for a fixed random cotangent.
Pieces: `layer_norm` (nnx.LayerNorm vs `eala_jax.models.layers.layer_norm`), `dropout` (nnx.Dropout
vs `layers.dropout`, forward only), `dropout_generator` (the masks' former source, XLA's ThreeFry
`rng_bit_generator`, vs the counter hash `layers.dropout` uses now), `dense` (a [.., L, D] input vs
[rows, D]), `qkv` (three projections vs one with the kernels side by side), `layout` (the
transposes between temporal and spatial blocks), `attention_temporal`, `attention_spatial_<name>`
(SelfAttention over the nodes of a transposed [B·T, N, D] vs of [B, N, T, D] with time steps as
extra heads), `block_<name>` (a whole AttentionBlock). Writes `benchmarks/results/profile_step.json`
(`--merge` keeps the rows of pieces not measured in this run).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.bench.machine import describe, machine_info
from eala_jax.models import SelfAttention
from eala_jax.models.elinformer import AttentionBlock
from eala_jax.models.layers import dropout, layer_norm
from eala_jax.ops import attention_options

DIM, FEED_FORWARD, HEADS, STEPS = 152, 256, 4, 12


def vjp_of(fn: Callable, *args) -> tuple[Callable, tuple]:
    """`(jitted forward + backward of fn, its arguments)` for a fixed random cotangent, which is
    passed as the first argument (so XLA does not fold it as a constant)."""
    out = jax.eval_shape(fn, *args)
    cotangent = jax.random.normal(jax.random.key(7), out.shape, out.dtype)

    def forward_backward(cotangent, *inputs):
        _, pullback = jax.vjp(fn, *inputs)
        return pullback(cotangent)

    return jax.jit(forward_backward), (cotangent, *args)


def interleaved(variants: dict[str, tuple[Callable, tuple]], repeats: int) -> dict[str, dict]:
    """Compile and warm each variant, then `repeats` rounds of one call each; median seconds."""
    compiled, times = {}, {}
    for name, (fn, args) in variants.items():
        start = time.perf_counter()
        compiled[name] = fn.lower(*args).compile()
        jax.block_until_ready(compiled[name](*args))
        times[name] = {"compile_s": time.perf_counter() - start, "times": []}
    for _ in range(repeats):
        for name, (_, args) in variants.items():
            start = time.perf_counter()
            jax.block_until_ready(compiled[name](*args))
            times[name]["times"].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(t["times"]), "compile_s": t["compile_s"]}
        for name, t in times.items()
    }


def module_fn(module: nnx.Module, call: Callable) -> tuple[Callable, nnx.State]:
    """`(params, *inputs) -> call(module, *inputs)` over the module's split state."""
    graphdef, params = nnx.split(module)
    return (lambda p, *xs: call(nnx.merge(graphdef, p), *xs)), params


def pieces(batch: int, nodes: int, names: list[str]) -> dict[str, dict[str, tuple]]:
    """Variants per piece: {piece: {"before": (jitted vjp, args), "after": ...}}."""
    rows = batch * STEPS * nodes
    key = jax.random.key(0)
    x_rows = jax.random.normal(key, (rows, DIM))
    x_btnd = x_rows.reshape(batch, STEPS, nodes, DIM)
    x_bntd = x_rows.reshape(batch, nodes, STEPS, DIM)
    out: dict[str, dict[str, tuple]] = {}
    if "layer_norm" in names:
        norm = nnx.LayerNorm(DIM, rngs=nnx.Rngs(0))
        flax_ln, params = module_fn(norm, lambda m, x: m(x))
        fused = lambda p, x: layer_norm(x, p["scale"][...], p["bias"][...], 1e-6)
        out["layer_norm"] = {
            "before": vjp_of(flax_ln, params, x_rows),
            "after": vjp_of(fused, params, x_rows),
        }
    if "dropout" in names:
        layer = nnx.Dropout(0.1)
        before = lambda x, k: layer(x, deterministic=False, rngs=nnx.Rngs(dropout=k))
        after = lambda x, k: dropout(x, 0.1, k)
        out["dropout"] = {
            "before": (jax.jit(before), (x_rows, key)),
            "after": (jax.jit(after), (x_rows, key)),
        }
    if "dropout_generator" in names:
        out["dropout_generator"] = {
            "before": vjp_of(lambda x, k: _rng_bit_generator_dropout(x, 0.1, k), x_rows, key),
            "after": vjp_of(lambda x, k: dropout(x, 0.1, k), x_rows, key),
        }
    if "dense" in names:
        linear = nnx.Linear(DIM, FEED_FORWARD, rngs=nnx.Rngs(0))
        dense, params = module_fn(linear, lambda m, x: m(x))
        x_3d = x_rows.reshape(batch * nodes, STEPS, DIM)
        out["dense"] = {
            "before": vjp_of(dense, params, x_3d),
            "after": vjp_of(dense, params, x_rows),
        }
    if "qkv" in names:
        attention = SelfAttention(
            DIM, num_heads=HEADS, attention=attention_options("eala"), rngs=nnx.Rngs(0)
        )
        three, params = module_fn(
            attention, lambda m, x: tuple(f(x) for f in (m.query, m.key, m.value))
        )
        fused, _ = module_fn(attention, lambda m, x: m._project_qkv(x))
        out["qkv"] = {
            "before": vjp_of(lambda p, x: jnp.stack(three(p, x)), params, x_rows),
            "after": vjp_of(lambda p, x: jnp.stack(fused(p, x)), params, x_rows),
        }
    if "layout" in names:
        # Former: [B,T,N,D] -> [B,N,T,D] -> (temporal) -> [B,T,N,D] -> (spatial) -> [B,N,T,D].
        def former(x):
            h = jnp.swapaxes(x, 1, 2) * 2.0
            h = jnp.swapaxes(h, 1, 2) * 2.0
            return jnp.swapaxes(h, 1, 2)

        def now(x):
            return jnp.swapaxes(x, 1, 2) * 4.0

        out["layout"] = {
            "before": vjp_of(former, x_btnd),
            "after": vjp_of(now, x_btnd),
        }
    for name in ("softmax", "eala"):
        options = attention_options(name)
        attention = SelfAttention(DIM, num_heads=HEADS, attention=options, rngs=nnx.Rngs(0))
        call, params = module_fn(attention, lambda m, x: m(x))
        if f"attention_temporal_{name}" in names:
            x_temporal = x_rows.reshape(batch * nodes, STEPS, DIM)
            out[f"attention_temporal_{name}"] = {
                "after": vjp_of(call, params, x_temporal),
            }
        if f"attention_spatial_{name}" in names:

            def transposed(p, x, call=call):
                h = jnp.swapaxes(x, 1, 2).reshape(batch * STEPS, nodes, DIM)
                h = call(p, h).reshape(batch, STEPS, nodes, DIM)
                return jnp.swapaxes(h, 1, 2)

            out[f"attention_spatial_{name}"] = {
                "before": vjp_of(transposed, params, x_bntd),
                "after": vjp_of(call, params, x_bntd),
            }
        if f"block_{name}" in names:
            block = AttentionBlock(
                DIM,
                attention=options,
                num_heads=HEADS,
                feed_forward_dim=FEED_FORWARD,
                dropout=0.1,
                rngs=nnx.Rngs(0),
            )
            run, params = module_fn(
                block,
                lambda m, x, k: m(x, deterministic=False, rngs=nnx.Rngs(dropout=k)),
            )
            out[f"block_{name}"] = {"after": vjp_of(run, params, x_bntd, key)}
    return out


def _rng_bit_generator_dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """`layers.dropout` as it was before the counter hash: words from XLA's ThreeFry
    `rng_bit_generator`, written to memory and read back by the masking pass."""
    seed = jax.random.bits(key, (4,), jnp.uint32)
    _, words = jax.lax.rng_bit_generator(
        seed, x.shape, dtype=jnp.uint32, algorithm=jax.lax.RandomAlgorithm.RNG_THREE_FRY
    )
    keep = words >= jnp.uint32(round(rate * 2.0**32))
    return jnp.where(keep, x / (1.0 - rate), 0.0)


ALL_PIECES = (
    "layer_norm",
    "dropout",
    "dropout_generator",
    "dense",
    "qkv",
    "layout",
    "attention_temporal_softmax",
    "attention_temporal_eala",
    "attention_spatial_softmax",
    "attention_spatial_eala",
    "block_softmax",
    "block_eala",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=170)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pieces", nargs="+", default=list(ALL_PIECES), choices=ALL_PIECES)
    parser.add_argument("--out", default="benchmarks/results/profile_step.json")
    parser.add_argument("--merge", action="store_true", help="keep other pieces' rows in --out")
    args = parser.parse_args()
    result = {"machine": machine_info(), "nodes": args.nodes, "batch": args.batch, "rows": []}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and out.is_file():  # keep the other pieces' rows (measured in another run)
        result["rows"] = [
            r for r in json.loads(out.read_text())["rows"] if r["piece"] not in args.pieces
        ]
    for piece, variants in pieces(args.batch, args.nodes, args.pieces).items():
        timed = interleaved(variants, args.repeats)
        row = {"piece": piece, **{f"{v}_ms": t["median_s"] * 1e3 for v, t in timed.items()}}
        if "before" in timed:
            row["before_over_after"] = timed["before"]["median_s"] / timed["after"]["median_s"]
        print(json.dumps(row), file=sys.stderr)
        result["rows"].append(row)
        out.write_text(json.dumps(result, indent=1))
    print(table(result))


def table(result: dict) -> str:
    lines = [
        f"Forward + backward per piece, B={result['batch']}, N={result['nodes']}, T={STEPS},"
        f" D={DIM}:\n",
        "| piece | before ms | now ms | before / now |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        before = f"{row['before_ms']:.0f}" if "before_ms" in row else "-"
        ratio = f"{row['before_over_after']:.2f}" if "before_over_after" in row else "-"
        lines.append(f"| {row['piece']} | {before} | {row['after_ms']:.0f} | {ratio} |")
    lines.append(f"\nMachine: {describe(result['machine'])}.")
    return "\n".join(lines)


if __name__ == "__main__":
    reexec_with_tcmalloc("benchmarks.profile_step")
    main()
