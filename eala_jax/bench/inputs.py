"""Random attention inputs of the ELinFormer spatial layer's shape (4 heads, head dim 38), for the
benchmarks and demos of the ops."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

#: Heads and head dim of the paper-size ELinFormer (model dim 152).
HEADS, DIM = 4, 38
#: Queries of `make_inputs` unless given.
QUERIES = 256


def make_inputs(
    rng: np.random.Generator, *, keys: int, kind: str, sharpness: float, queries: int = QUERIES
) -> tuple[jax.Array, jax.Array]:
    """`q: [1, queries, HEADS, DIM]`, `k: [1, keys, HEADS, DIM]` float32 with rank-8 structure;
    `kind` = "gaussian" (symmetric score distributions) | "skewed" (a squared-Gaussian factor gives
    each query's scores a long tail); `sharpness` scales the queries (larger: sharper softmax)."""
    if kind not in ("gaussian", "skewed"):
        raise ValueError(f"make_inputs: kind must be 'gaussian' or 'skewed', got {kind!r}")
    rank = 8
    basis = rng.normal(size=(HEADS, rank, DIM)) / math.sqrt(rank)
    factors = rng.normal(size=(keys, HEADS, rank))
    if kind == "skewed":
        factors = factors + 0.7 * (rng.normal(size=(keys, HEADS, rank)) ** 2 - 1.0)
    k = np.einsum("shr,hrd->shd", factors, basis) + 0.3 * rng.normal(size=(keys, HEADS, DIM))
    q = np.einsum(
        "thr,hrd->thd", rng.normal(size=(queries, HEADS, rank)), basis
    ) + 0.3 * rng.normal(size=(queries, HEADS, DIM))
    return jnp.asarray(sharpness * q[None], jnp.float32), jnp.asarray(k[None], jnp.float32)
