"""Where EALA's time goes: its two matrix products alone against the whole op, and linear attention.

    python -m benchmarks.profile_eala [--batch 4] [--keys 8600]
    python -m benchmarks.profile_eala --compare 192:883 2:8192 [--rounds 7]

EALA's statistics route is two products per head: the key side `kcᵀ [kc | vc]` ([D, S] x [S, 2D])
and the query side `q [Σ | C_kv]` ([T, D] x [D, 2D]). This times each alone (head-major inputs, as
`eala_attention` lays them out), the whole `eala_attention` forward and forward+backward, and elu+1
linear attention, and states each product's achieved FLOP/s as a fraction of the measured float32
matmul throughput (2048² x 2048², same run), with each compiled program's memory (XLA's memory
analysis). Median of repeats after warm-up; compile time apart.

`--compare B:S ...` times forward+backward of EALA (hand-written VJP), of EALA's same forward code
differentiated by JAX's autodiff (the formulation before the VJP) and of elu+1 linear attention
**interleaved**: each round calls the three once, in turn, and the ratios are taken per round, so
load from other jobs on a shared machine hits all three alike. Median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from benchmarks.attention import forward_backward, inputs
from eala_jax import get_attention
from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.bench.inputs import DIM, HEADS
from eala_jax.bench.machine import describe, machine_info
from eala_jax.bench.tables import profile_table
from eala_jax.bench.timing import matmul_flops_per_second, measure, peak_bytes


def profile(batch: int, keys: int, repeats: int) -> dict:
    matmul = matmul_flops_per_second()
    q, k, v, cotangent = inputs(batch, keys, keys)
    k_heads = jnp.swapaxes(k, 1, 2)
    joint = jnp.concatenate([k_heads, jnp.swapaxes(v, 1, 2)], axis=-1)  # [B, H, S, 2D]
    stats = jnp.einsum("bhsd,bhse->bhde", k_heads, joint)  # [B, H, D, 2D]
    product_flops = 2.0 * batch * HEADS * keys * DIM * 2 * DIM  # either product, T = S
    eala = functools.partial(get_attention("eala"), estimator="gaussian")
    parts = {
        "key product kcᵀ·[kc, vc]": (
            lambda a, b: jnp.einsum("bhsd,bhse->bhde", a, b),
            (k_heads, joint),
            product_flops,
        ),
        "query product q·[Σ, C_kv]": (
            lambda a, b: jnp.einsum("bhtd,bhde->bhte", a, b),
            (k_heads, stats),
            product_flops,
        ),
        "eala forward": (eala, (q, k, v), 2 * product_flops),
        "eala forward+backward": (forward_backward(eala), (q, k, v, cotangent), 6 * product_flops),
        "linear forward": (get_attention("linear"), (q, k, v), None),
        "linear forward+backward": (
            forward_backward(get_attention("linear")),
            (q, k, v, cotangent),
            None,
        ),
    }
    rows = []
    for name, (fn, args, flops) in parts.items():
        row = {"part": name, **measure(fn, *args, repeats=repeats)}
        row["matmul_fraction"] = None if flops is None else flops / row["median_s"] / matmul
        rows.append(row)
        print(
            json.dumps({k_: row[k_] for k_ in ("part", "median_s", "matmul_fraction")}),
            file=sys.stderr,
        )
    return {
        "machine": machine_info(),
        "batch": batch,
        "keys": keys,
        "matmul_flops_per_s": matmul,
        "rows": rows,
    }


def _compiled_variants(args: tuple) -> dict:
    """name -> compiled forward+backward: EALA, EALA by autodiff, elu+1 linear attention."""
    import eala_jax.ops.eala as eala_module
    from eala_jax.ops import fused

    eala = functools.partial(get_attention("eala"), estimator="gaussian")
    compile_ = lambda fn: jax.jit(forward_backward(fn)).lower(*args).compile()
    compiled = {"eala": compile_(eala), "linear": compile_(get_attention("linear"))}
    # The same forward code left to autodiff: swap the op's entry for one call of the tracer, and
    # drop JAX's caches so that EALA's inner jit is traced again (compiled programs stay valid).
    hand_written = eala_module.statistics_rows
    eala_module.statistics_rows = functools.partial(fused.statistics_rows, autodiff=True)
    jax.clear_caches()
    try:
        compiled["eala (autodiff)"] = compile_(eala)
    finally:
        eala_module.statistics_rows = hand_written
        jax.clear_caches()
    return compiled


def compare(points: list[tuple[int, int]], rounds: int) -> dict:
    """Interleaved forward+backward times and compiled memory (see the module docstring)."""
    rows = []
    for batch, keys in points:
        args = inputs(batch, keys, keys)
        compiled = _compiled_variants(args)
        times: dict[str, list[float]] = {name: [] for name in compiled}
        for fn in compiled.values():
            jax.block_until_ready(fn(*args))  # warm-up
        for _ in range(rounds):
            for name, fn in compiled.items():
                start = time.perf_counter()
                jax.block_until_ready(fn(*args))
                times[name].append(time.perf_counter() - start)
        for name, fn in compiled.items():
            row = {
                "batch": batch,
                "keys": keys,
                "method": name,
                "median_s": statistics.median(times[name]),
                "times_s": times[name],
                "peak_bytes": peak_bytes(fn),
                "time_over_linear": statistics.median(
                    [a / b for a, b in zip(times[name], times["linear"], strict=True)]
                ),
            }
            rows.append(row)
            print(json.dumps({k: row[k] for k in row if k != "times_s"}), file=sys.stderr)
    return {"machine": machine_info(), "rounds": rounds, "rows": rows}


def compare_table(result: dict) -> str:
    lines = [
        f"Forward+backward, {HEADS} heads, head dim {DIM}, {result['rounds']} interleaved rounds. "
        f"Machine: {describe(result['machine'])}.",
        "",
        "| batch | S | method | median ms | time / elu+1 (median of rounds) | memory MiB | "
        "memory / elu+1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        linear = next(
            r
            for r in result["rows"]
            if r["method"] == "linear" and (r["batch"], r["keys"]) == (row["batch"], row["keys"])
        )
        lines.append(
            f"| {row['batch']} | {row['keys']} | {row['method']} | {row['median_s'] * 1e3:.0f} | "
            f"{row['time_over_linear']:.2f} | {row['peak_bytes'] / 2**20:.0f} | "
            f"{row['peak_bytes'] / linear['peak_bytes']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--keys", type=int, default=8600)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--compare", nargs="+", default=None, help="B:S points for the interleaved comparison"
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.compare:
        points = [tuple(int(x) for x in point.split(":")) for point in args.compare]
        result = compare(points, args.rounds)
        out = pathlib.Path(args.out or "benchmarks/results/eala_vs_linear.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        print(compare_table(result))
        return
    args.out = args.out or "benchmarks/results/profile_eala.json"
    result = profile(args.batch, args.keys, args.repeats)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    print(profile_table(result))


if __name__ == "__main__":
    # CPU timings with the fast allocator where it is installed.
    reexec_with_tcmalloc("benchmarks.profile_eala")
    main()
