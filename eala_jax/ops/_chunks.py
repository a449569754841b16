"""The one chunk helper of the ops: axis 1 in zero-padded chunks for `lax.scan`, and back."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def chunked(x: Array, chunk: int) -> Array:
    """`[B, L, ...] -> [ceil(L/chunk), B, chunk, ...]`, zero-padding L up to a multiple of `chunk`
    (scan over the leading axis). O(B·L·...) copy."""
    pad = (-x.shape[1]) % chunk
    x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
    return jnp.moveaxis(x.reshape(x.shape[0], -1, chunk, *x.shape[2:]), 1, 0)


def unchunked(x: Array, length: int) -> Array:
    """Inverse of `chunked`: `[n, B, chunk, ...] -> [B, length, ...]` (the padding dropped)."""
    x = jnp.moveaxis(x, 0, 1)
    return x.reshape(x.shape[0], -1, *x.shape[3:])[:, :length]
