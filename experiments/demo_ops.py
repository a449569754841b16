"""A short demo of the ops: EALA against softmax attention at N = 170, 883 and 4096 keys.

    python -m experiments.demo_ops

For random low-rank queries and keys (batch 4, 4 heads, head dim 38, as many queries as keys),
prints EALA's and uniform attention's mean absolute output difference from softmax attention, the
mean |Ĥ − H| of EALA's entropy estimate against the exact entropy, and the median time of one jitted
call of each (after compilation and a warm-up).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from eala_jax import (
    DEFAULT_ESTIMATOR,
    eala_attention,
    estimate_entropy,
    softmax_attention,
    softmax_entropy,
    uniform_attention,
)
from eala_jax.bench.inputs import make_inputs
from eala_jax.bench.machine import describe, machine_info
from eala_jax.bench.timing import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[170, 883, 4096])
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"EALA (estimator={DEFAULT_ESTIMATOR}) vs softmax attention; {describe(machine_info())}")
    print(
        "| N | EALA − softmax (mean abs) | uniform − softmax (mean abs) | Ĥ − H (mean abs, nats) |"
        " mean H / log N | EALA ms | softmax ms | softmax / EALA time |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        q, k = make_inputs(rng, keys=n, kind="skewed", sharpness=0.3, queries=n)
        q = jax.numpy.broadcast_to(q, (args.batch,) + q.shape[1:])
        k = jax.numpy.broadcast_to(k, (args.batch,) + k.shape[1:])
        v = jax.random.normal(jax.random.key(n), k.shape, k.dtype)
        reference = softmax_attention(q, k, v)
        eala_diff = float(np.abs(eala_attention(q, k, v) - reference).mean())
        uniform_diff = float(np.abs(uniform_attention(q, k, v) - reference).mean())
        exact = softmax_entropy(q, k)
        entropy_error = float(np.abs(estimate_entropy(q, k) - exact).mean())
        eala_time = measure(eala_attention, q, k, v, repeats=5)["median_s"]
        softmax_time = measure(softmax_attention, q, k, v, repeats=3)["median_s"]
        print(
            f"| {n} | {eala_diff:.4f} | {uniform_diff:.4f} | {entropy_error:.3f} | "
            f"{float(exact.mean()) / np.log(n):.2f} | {eala_time * 1e3:.2f} | "
            f"{softmax_time * 1e3:.2f} | {softmax_time / eala_time:.1f} |"
        )


if __name__ == "__main__":
    main()
