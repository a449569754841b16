"""Cheaper forms of two pieces of every attention block: layer norm and dropout (pure functions).

The NNX modules keep their parameters (`nnx.LayerNorm`'s `scale` and `bias`), so checkpoints are
unchanged; `AttentionBlock` calls these functions with them.

- `layer_norm`: the maths of `nnx.LayerNorm` (biased variance, `eps` inside the root) with a
  hand-written backward pass: one fused pass over `[rows, D]` forward and one backward, instead of
  autodiff's chain of reductions and broadcasts (about 3x less time on CPU at 32640 x 152; helps
  any backend, since it is fewer passes over memory).
- `dropout`: the keep mask from 32-bit words compared with an integer threshold (no float
  conversion). The words are a counter-based hash of each entry's index and two words drawn from
  the caller's key (MurmurHash3's 32-bit finaliser, twice), computed inside the fusion that applies
  the mask: no random-bit array is written or read, which made it about 4x faster than XLA's
  ThreeFry `rng_bit_generator` forward + backward on CPU (`benchmarks.profile_step`), and the words
  depend only on the global index, so XLA partitions them under a mesh (each device draws its own
  shard; the masks are the same on any number of devices). Same keep rate (to 2^-32); different
  masks than `nnx.Dropout` draws for the same key. This is a statistical hash, not a
  cryptographic generator: enough for dropout masks (tests/models/test_layers.py checks the rate,
  independence of neighbours and of keys), not for anything an adversary may see.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["as_rows", "dropout", "hash_words", "layer_norm"]


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
    rate)`, else 0; `x` any shape, `key` a PRNG key of any implementation. O(x.size), one fused
    elementwise pass.

    An entry is kept where `hash_words(x.shape, key)` >= rate * 2^32.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    if rate == 0.0:
        return x
    keep = hash_words(x.shape, key) >= np.uint32(min(round(rate * 2.0**32), 2**32 - 1))
    return jnp.where(keep, x * jnp.asarray(1.0 / (1.0 - rate), x.dtype), jnp.zeros((), x.dtype))


def hash_words(shape: tuple[int, ...], key: jax.Array) -> jax.Array:
    """uint32 words of `shape`, each a hash of its entry's index and two words drawn from `key`:
    `fmix32(fmix32(lead ^ s0) ^ (last * 0x9E3779B9 + s1))`, `lead` the entry's flat index over
    the leading axes and `last` its index on the last axis. Elementwise, so XLA fuses it into the
    consumer and partitions it like any iota. O(prod(shape))."""
    if not jnp.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    seed = jax.random.bits(key, (2,), jnp.uint32)
    full = tuple(shape) or (1,)
    last_axis = len(full) - 1
    lead = jnp.zeros(full, jnp.uint32)
    stride = 1
    for axis in range(last_axis - 1, -1, -1):  # a static loop over the axes (at most a few)
        index = jax.lax.broadcasted_iota(jnp.uint32, full, axis)
        lead = lead + index * np.uint32(stride % 2**32)
        stride *= full[axis]
    last = jax.lax.broadcasted_iota(jnp.uint32, full, last_axis)
    words = _fmix32(_fmix32(lead ^ seed[0]) ^ (last * np.uint32(0x9E3779B9) + seed[1]))
    return words.reshape(shape)


def _fmix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 with full avalanche."""
    h = h ^ (h >> 16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> 16)
