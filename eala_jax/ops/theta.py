"""θ of EALA's affine weights `a_ij = (1 + θ_i (s_ij − μ_i)) / M` (EALA.md steps 5 and 7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array
_TINY_VARIANCE = 1e-12


def theta_from_entropy(entropy: Array, sigma2: Array, log_count: Array) -> Array:
    """Entropy equality: `θ* = √(2 (log M − Ĥ)) / σ`, the θ whose weights have entropy Ĥ to second
    order.

    Where σ² ≈ 0 every score equals the mean, the weights are uniform whatever θ is, and θ = 0 is
    returned. Finite gradients everywhere (double-`where` guards).
    """
    gap = jnp.maximum(2.0 * (log_count - entropy), 0.0)
    spread = sigma2 > _TINY_VARIANCE
    safe_sigma2 = jnp.where(spread, sigma2, 1.0)
    positive = gap > 0
    root_gap = jnp.where(positive, jnp.sqrt(jnp.where(positive, gap, 1.0)), 0.0)
    return jnp.where(spread, root_gap / jnp.sqrt(safe_sigma2), 0.0)


def cap_theta(theta: Array, bound: Array) -> Array:
    """`min(θ, 1 / bound)` with `bound = scale·‖q‖·r`, so that `1 + θ (s − μ) ≥ 0`; no cap where
    bound = 0."""
    positive = bound > 0
    return jnp.where(positive, jnp.minimum(theta, 1.0 / jnp.where(positive, bound, 1.0)), theta)
