"""Cheaper forms of two pieces of every attention block: layer norm and dropout (pure functions).

The NNX modules keep their parameters (`nnx.LayerNorm`'s `scale` and `bias`), so checkpoints are
unchanged; `AttentionBlock` calls these functions with them.

- `layer_norm`: the maths of `nnx.LayerNorm` (biased variance, `eps` inside the root) with a
  hand-written backward pass: one fused pass over `[rows, D]` forward and one backward, instead of
  autodiff's chain of reductions and broadcasts (about 3x less time on CPU at 32640 x 152; helps
  any backend, since it is fewer passes over memory).
- `dropout`: the keep mask from raw 32-bit words compared with an integer threshold (no float
  conversion), drawn by XLA's own ThreeFry generator (`lax.rng_bit_generator`, `RNG_THREE_FRY`)
  seeded from the caller's key: about 3x less time than `jax.random`'s threefry on CPU (measured
  by `benchmarks.profile_step`; XLA's Philox and default generators were slower there). Same keep
  rate (to 2^-32); different masks than `nnx.Dropout` draws for the same key. Under a mesh set
  with `jax.set_mesh` (node sharding) the words come from `jax.random.bits` instead: XLA does not
  partition `rng_bit_generator`, so every device would hold the whole mask (23.8 against 14.5 GiB
  a device at N = 8,600 over 8 devices), while partitionable threefry draws each shard in place.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["as_rows", "dropout", "layer_norm"]


def as_rows(x: jax.Array) -> jax.Array:
    """`x [..., D]` as `[rows, D]`, so that a dense layer's weight gradient is one 2-D product
    (faster than a batched contraction on a CPU); `x` unchanged under a mesh set with
    `jax.set_mesh` (node sharding), where flattening the sharded leading axes makes XLA gather
    the activations."""
    if not jax.sharding.get_abstract_mesh().empty:
        return x
    return x.reshape(-1, x.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """`(x - mean) / sqrt(var + eps) * scale + bias` over the last axis; `x [..., D]`, `scale,
    bias [D]` -> `[..., D]` in `x`'s dtype (statistics in float32). O(x.size) forward and backward.
    """
    return _layer_norm_forward(x, scale, bias, eps)[0]


def _layer_norm_forward(
    x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float
) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    centred = xf - jnp.mean(xf, axis=-1, keepdims=True)
    inv_std = jax.lax.rsqrt(jnp.mean(jnp.square(centred), axis=-1, keepdims=True) + eps)
    normalised = centred * inv_std
    y = normalised * scale.astype(xf.dtype) + bias.astype(xf.dtype)
    return y.astype(x.dtype), (normalised.astype(x.dtype), inv_std, scale)


def _layer_norm_fwd(x, scale, bias, eps):
    y, residuals = _layer_norm_forward(x, scale, bias, eps)
    return y, (*residuals, bias)


def _layer_norm_bwd(eps, residuals, dy):
    del eps
    normalised, inv_std, scale, bias = residuals
    x_dtype, dtype = normalised.dtype, inv_std.dtype
    dy = dy.astype(dtype)
    normalised = normalised.astype(dtype)
    rows = tuple(range(dy.ndim - 1))
    d_scale = jnp.sum(dy * normalised, axis=rows).astype(scale.dtype)
    d_bias = jnp.sum(dy, axis=rows).astype(bias.dtype)
    g = dy * scale.astype(dtype)
    dx = inv_std * (
        g
        - jnp.mean(g, axis=-1, keepdims=True)
        - normalised * jnp.mean(g * normalised, axis=-1, keepdims=True)
    )
    return dx.astype(x_dtype), d_scale, d_bias


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


def dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Inverted dropout: each entry kept with probability `1 - rate` and scaled by `1 / (1 -
    rate)`, else 0; `x` any shape, `key` a PRNG key of any implementation. O(x.size).

    The 32-bit words come from `lax.rng_bit_generator(algorithm=RNG_THREE_FRY)` seeded by four
    words drawn from `key` (from `jax.random.bits(key)` under a set mesh, which XLA partitions);
    an entry is kept where its word >= rate * 2^32.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    if rate == 0.0:
        return x
    if not jnp.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    if jax.sharding.get_abstract_mesh().empty:
        seed = jax.random.bits(key, (4,), jnp.uint32)
        _, words = jax.lax.rng_bit_generator(
            seed, x.shape, dtype=jnp.uint32, algorithm=jax.lax.RandomAlgorithm.RNG_THREE_FRY
        )
    else:
        words = jax.random.bits(key, x.shape, jnp.uint32)
    keep = words >= np.uint32(min(round(rate * 2.0**32), 2**32 - 1))
    return jnp.where(keep, x * jnp.asarray(1.0 / (1.0 - rate), x.dtype), jnp.zeros((), x.dtype))
