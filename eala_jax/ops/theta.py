"""θ of EALA's affine weights `a_ij = (1 + θ_i (s_ij − μ_i)) / M` (docs/method.md steps 5 and 7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from eala_jax.ops._numerics import safe_sqrt

Array = jax.Array
_TINY_VARIANCE = 1e-12


def theta_from_deficit(deficit: Array, sigma2: Array) -> Array:
    """Entropy equality `θ* = √(2 d / σ²)` from the entropy deficit `d = log M − Ĥ ≥ 0`.

    Where σ² ≤ 1e-12 every score equals the row's mean, the weights are uniform whatever θ is, and
    θ = 1 is returned: the limit of θ* as σ → 0 for every estimator exact to second order
    (`Ĥ = log M − σ²/2 + O(σ³)`), so the gradient at such a row (a zero query, equal keys) is the
    limit of its neighbours' (docs/method.md step 9). Estimators give `d` directly (the Gaussian
    one as `min(σ²/2, log M)`), which avoids the float32 cancellation of `log M − Ĥ` at small σ.
    Finite gradients everywhere. Shapes broadcast; O(1) per row.
    """
    spread = sigma2 > _TINY_VARIANCE
    ratio = 2.0 * jnp.maximum(deficit, 0.0) / jnp.where(spread, sigma2, 1.0)
    return jnp.where(spread, safe_sqrt(ratio), 1.0)


def theta_from_entropy(entropy: Array, sigma2: Array, log_count: Array) -> Array:
    """Entropy equality `θ* = √(2 (log M − Ĥ)) / σ`, the θ whose weights have entropy Ĥ to second
    order (docs/method.md step 5); 1 where σ² ≈ 0 (see `theta_from_deficit`)."""
    return theta_from_deficit(log_count - entropy, sigma2)


def cap_theta(theta: Array, bound: Array) -> Array:
    """`min(θ, 1 / bound)` with `bound = scale·‖q‖·r`, so that `1 + θ (s − μ) ≥ 0`; no cap where
    bound = 0 (docs/method.md step 7)."""
    positive = bound > 0
    return jnp.where(positive, jnp.minimum(theta, 1.0 / jnp.where(positive, bound, 1.0)), theta)
