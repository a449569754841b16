"""Where EALA's time goes: its two matrix products alone against the whole op, and linear attention.

    python -m benchmarks.profile_eala [--batch 4] [--keys 8600]

EALA's statistics route is two products per head: the key side `kcᵀ [kc | vc]` ([D, S] x [S, 2D])
and the query side `q [Σ | C_kv]` ([T, D] x [D, 2D]). This times each alone (head-major inputs, as
`eala_attention` lays them out), the whole `eala_attention` forward and forward+backward, and elu+1
linear attention, and states each product's achieved FLOP/s as a fraction of the measured float32
matmul throughput (2048² x 2048², same run). Median of repeats after warm-up; compile time apart.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys

import jax.numpy as jnp

from benchmarks.attention import DIM, HEADS, forward_backward, inputs
from benchmarks.machine import describe, machine_info
from benchmarks.timing import matmul_flops_per_second, measure
from eala_jax import get_attention
from eala_jax.allocator import reexec_with_tcmalloc


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


def table(result: dict) -> str:
    lines = [
        f"B = {result['batch']}, S = T = {result['keys']}, {HEADS} heads, head dim {DIM}; float32 "
        f"matmul {result['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s. Machine: "
        f"{describe(result['machine'])}.",
        "",
        "| part | median ms | fraction of matmul FLOP/s (formula FLOPs) |",
        "|---|---|---|",
    ]
    for row in result["rows"]:
        fraction = "—" if row["matmul_fraction"] is None else f"{row['matmul_fraction']:.2f}"
        lines.append(f"| {row['part']} | {row['median_s'] * 1e3:.1f} | {fraction} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--keys", type=int, default=8600)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/profile_eala.json")
    args = parser.parse_args()
    result = profile(args.batch, args.keys, args.repeats)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    # CPU timings with the fast allocator where it is installed.
    reexec_with_tcmalloc("benchmarks.profile_eala")
    main()
