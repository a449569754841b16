"""Cost of one attention call: EALA (each estimator) against softmax and the linear baselines.

    python -m benchmarks.attention --preset quick   # EALA vs softmax at S = 883 and 8192 (~3 min)
    python -m benchmarks.attention --preset full    # the grid of docs/results.md (~30 min on 2
    cores)
    python -m benchmarks.attention --preset linear  # EALA vs elu+1 over the grid, softmax below
    S = 883 (~20 min)

Shapes are those of ELinFormer's layers: spatial attention folds batch × time steps into the batch
(16 × 12 = 192, 4 heads, head dim 38) over S = N sensors; temporal attention folds batch × sensors
over S = 12 steps. For each point: forward and forward+backward, compile time apart, median of
repeated calls after a warm-up (`block_until_ready`), the compiled program's memory (XLA memory
analysis) and FLOPs (counted from each method's formulas, and XLA's estimate), achieved FLOP/s
against this machine's float32 matmul throughput measured in the same run. A point whose compiled
program needs more than `--memory-budget-gib` is reported as not fitting, not run.

The FLOP/s fraction (`fraction_of_matmul`) is: the method's formula FLOPs (`formula_flops`, three
times the forward's for forward+backward) / its median time / the float32 throughput of a
2048 × 2048 matmul timed in the same run. It says how close an op runs to the machine's dense
matmul rate; memory-bound elementwise passes and layout changes count as FLOP-free time.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from eala_jax import get_attention
from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.bench.inputs import DIM, HEADS
from eala_jax.bench.machine import machine_info
from eala_jax.bench.tables import SOFTMAX_SIZED, attention_table
from eala_jax.bench.timing import (
    compiled_peak_bytes,
    matmul_flops_per_second,
    measure,
    peak_rss_bytes,
)

FEATURES = 64


def methods() -> dict[str, Callable[..., jax.Array]]:
    """Name -> attention(q, k, v) with its options bound (random features drawn once, seeded)."""
    projection = jax.random.normal(jax.random.key(7), (FEATURES, DIM), jnp.float32)
    eala = get_attention("eala")
    return {
        "eala": functools.partial(eala, estimator="gaussian"),
        "eala-cumulant3": functools.partial(eala, estimator="cumulant3"),
        "eala-segments": functools.partial(eala, estimator="segments", num_segments=32),
        "eala-random_features": functools.partial(
            eala, estimator="random_features", projection=projection
        ),
        "softmax": get_attention("softmax"),
        "linear": get_attention("linear"),
        "performer": functools.partial(get_attention("performer"), projection=projection),
        "uniform": get_attention("uniform"),
        "lln": get_attention("lln"),
    }


def formula_flops(
    method: str, batch: int, queries: int, keys: int, dim: int = DIM, heads: int = HEADS
) -> float:
    """Forward FLOPs from each method's formulas (a multiply-add counts 2), all heads and batch."""
    n, m, d, dv = queries, keys, dim, dim
    if method.startswith("eala"):
        per_head = (
            2 * m * d * (d + dv) + 3 * m * (d + dv) + n * (2 * d * d + 2 * d * dv + 4 * d + 2 * dv)
        )
        if method == "eala-cumulant3":
            per_head += 2 * m * d**3 + 2 * n * d**3
        elif method == "eala-segments":
            per_head += 2 * m * d * d + 32 * n * 2 * d * d
        elif method == "eala-random_features":
            per_head += 2 * (n + m) * FEATURES * d + 2 * m * FEATURES * d + 2 * n * FEATURES * d
    elif method == "softmax":
        per_head = 4 * n * m * d + 5 * n * m
    elif method in ("linear", "performer", "lln"):  # LLN: d exponential features, as elu+1
        f = FEATURES if method == "performer" else d
        per_head = (
            2 * m * f * dv
            + 2 * n * f * dv
            + 2 * n * f
            + (2 * (n + m) * f * d if method == "performer" else 0)
        )
    elif method == "uniform":
        per_head = m * dv + n * dv
    else:
        raise ValueError(method)
    return float(per_head * heads * batch)


def forward(attention: Callable) -> Callable:
    return lambda q, k, v: attention(q, k, v)


def forward_backward(attention: Callable) -> Callable:
    def loss(q, k, v, cotangent):
        return jnp.sum(attention(q, k, v) * cotangent)

    grad = jax.grad(loss, argnums=(0, 1, 2))
    return grad


def inputs(batch: int, queries: int, keys: int, seed: int = 0) -> tuple[jax.Array, ...]:
    rng = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(rng[0], (batch, queries, HEADS, DIM), jnp.float32)
    k = jax.random.normal(rng[1], (batch, keys, HEADS, DIM), jnp.float32)
    v = jax.random.normal(rng[2], (batch, keys, HEADS, DIM), jnp.float32)
    cotangent = jax.random.normal(rng[3], (batch, queries, HEADS, DIM), jnp.float32)
    return q, k, v, cotangent


# XLA's memory analysis of softmax fwd+bwd on the CPU undercounts what the process holds: at S =
# 8600, batch 4, it said 13.4 GiB and the process reached 22.8 GB resident (killed). The
# softmax-sized batch therefore keeps its estimate under budget / SOFTMAX_MEMORY_MARGIN.
SOFTMAX_MEMORY_MARGIN = 1.8


def largest_softmax_batch(
    queries: int,
    keys: int,
    budget_bytes: float,
    candidates: tuple[int, ...] = (192, 96, 48, 24, 16, 12, 8, 6, 4, 3, 2, 1),
) -> int:
    """Largest folded batch at which softmax forward+backward compiles within the budget (1 if
    none)."""
    fn = forward_backward(methods()["softmax"])
    for batch in candidates:
        shapes = [
            jax.ShapeDtypeStruct((batch, n, HEADS, DIM), jnp.float32)
            for n in (queries, keys, keys, queries)
        ]
        if compiled_peak_bytes(fn, *shapes) * SOFTMAX_MEMORY_MARGIN <= budget_bytes:
            return batch
    return 1


def points(preset: str) -> list[dict[str, Any]]:
    """(shape name, batch, queries, keys, methods) grid of a preset."""
    all_methods = list(methods())
    if preset == "quick":
        core = ["eala", "softmax", "linear"]
        return [
            dict(shape="spatial", batch=192, queries=883, keys=883, methods=core),
            dict(shape="spatial", batch=2, queries=8192, keys=8192, methods=core),
        ]
    if preset == "linear":
        # EALA against elu+1 over the grid of "full"; softmax below S = 883 (883: preset "quick").
        # S = 8600 at batch 96: elu+1's fwd+bwd at batch 192 needs 11.6 GiB, more than a shared
        # machine can hold safely; both are memory-bound there, so the ratio is the one that counts.
        grid = [
            dict(
                shape="spatial",
                batch=96 if s == 8600 else 192,
                queries=s,
                keys=s,
                methods=["eala", "linear"] + (["softmax"] if s < 883 else []),
            )
            for s in (170, 307, 883, 2048, 8600)
        ]
        grid.append(
            dict(shape="spatial", batch=24, queries=32768, keys=32768, methods=["eala", "linear"])
        )
        return grid
    if preset == "full":
        # The O(d³)-per-query estimators (cumulant3, segments) take minutes a call on a CPU at large
        # S: they are timed up to S = 883; the other methods over the whole range.
        cheap = [m for m in all_methods if m not in ("eala-cumulant3", "eala-segments")]
        grid = [
            dict(
                shape="spatial",
                batch=192,
                queries=s,
                keys=s,
                methods=all_methods if s <= 883 else cheap,
            )
            for s in (170, 307, 883, 2048, 8600)
        ]
        grid.append(dict(shape="spatial", batch=24, queries=32768, keys=32768, methods=cheap))
        # Softmax does not fit at 8600 keys with batch 192: every method again at the largest batch
        # at which softmax's forward+backward fits the memory budget (found at run time by compiling
        # only).
        grid.append(dict(shape=SOFTMAX_SIZED, batch=None, queries=8600, keys=8600, methods=cheap))
        grid.append(
            dict(shape="temporal", batch=16 * 883, queries=12, keys=12, methods=all_methods)
        )
        return grid
    raise ValueError(f"unknown preset {preset!r}; expected 'quick', 'linear' or 'full'")


def run(
    preset: str, *, repeats: int, budget_gib: float, out: pathlib.Path, resume: bool = False
) -> dict[str, Any]:
    """Measures every point of the preset, rewriting `out` after each row (a killed run keeps its
    rows).

    With `resume`, rows already in `out` (same preset) are kept and not measured again.
    """
    previous = json.loads(out.read_text()) if resume and out.is_file() else None
    if previous is not None and previous.get("preset") != preset:
        raise SystemExit(f"--resume: {out} holds preset {previous.get('preset')!r}, not {preset!r}")
    matmul = previous["matmul_flops_per_s"] if previous else matmul_flops_per_second()
    print(f"float32 matmul throughput: {matmul / 1e9:.1f} GFLOP/s", file=sys.stderr)
    table = methods()
    rows: list[dict[str, Any]] = previous["rows"] if previous else []
    done = {(r["shape"], r["batch"], r["keys"], r["method"], r["mode"]) for r in rows}
    result = {
        "machine": machine_info(),
        "matmul_flops_per_s": matmul,
        "preset": preset,
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    for point in points(preset):
        if point["batch"] is None:
            sized = next((r["batch"] for r in rows if r["shape"] == point["shape"]), None)
            point["batch"] = sized or largest_softmax_batch(
                point["queries"], point["keys"], budget_gib * 2**30
            )
            print(
                f"softmax fwd+bwd fits at S = {point['keys']} up to batch {point['batch']}",
                file=sys.stderr,
            )
        todo = [
            (name, mode, make)
            for name in point["methods"]
            for mode, make in (("forward", forward), ("forward+backward", forward_backward))
            if (point["shape"], point["batch"], point["keys"], name, mode) not in done
        ]
        if not todo:
            continue
        args = inputs(point["batch"], point["queries"], point["keys"])
        for name, mode, make in todo:
            fn = make(table[name])
            fn_args = args[:3] if mode == "forward" else args
            row = dict(
                shape=point["shape"],
                batch=point["batch"],
                queries=point["queries"],
                keys=point["keys"],
                method=name,
                mode=mode,
            )
            flops = formula_flops(name, point["batch"], point["queries"], point["keys"])
            row["formula_flops"] = flops * (3.0 if mode == "forward+backward" else 1.0)
            row.update(measure(fn, *fn_args, repeats=repeats, budget_bytes=budget_gib * 2**30))
            if row["status"] == "ok":
                row["achieved_flops_per_s"] = row["formula_flops"] / row["median_s"]
                row["fraction_of_matmul"] = row["achieved_flops_per_s"] / matmul
                row["peak_rss_bytes"] = peak_rss_bytes()
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
            out.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick", choices=("quick", "linear", "full"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-budget-gib", type=float, default=14.0)
    parser.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/attention_<preset>.json)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in --out, measure the rest"
    )
    args = parser.parse_args()
    out = pathlib.Path(args.out or f"benchmarks/results/attention_{args.preset}.json")
    result = run(
        args.preset,
        repeats=args.repeats,
        budget_gib=args.memory_budget_gib,
        out=out,
        resume=args.resume,
    )
    print(attention_table(result))
    print()
    print(attention_table(result, baseline="linear"))


if __name__ == "__main__":
    # CPU timings with the fast allocator where it is installed.
    reexec_with_tcmalloc("benchmarks.attention")
    main()
