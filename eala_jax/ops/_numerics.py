"""Square roots and norms with finite gradients at zero (docs/method.md step 9).

`jnp.sqrt` has an infinite derivative at 0, so `jnp.linalg.norm` of a zero vector (one valid key,
a zero query, a padded row) gives a NaN gradient, and a `where` that discards it afterwards does
not help: its cotangent 0 times inf is NaN. These functions move the `where` onto the input of the
sqrt, so the discarded branch never holds an infinity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def safe_sqrt(x: Array) -> Array:
    """`√x` for `x > 0`, 0 elsewhere; the gradient is 0 where `x ≤ 0` (a subgradient at 0)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def safe_norm(x: Array, axis: int = -1) -> Array:
    """Euclidean norm over `axis` with gradient 0 at the zero vector (a subgradient of ‖·‖)."""
    return safe_sqrt(jnp.sum(x * x, axis=axis))
