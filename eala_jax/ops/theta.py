"""θ of EALA's affine weights `a_ij = (1 + θ_i (s_ij − μ_i)) / M` (docs/method.md steps 5 and 7),
and the output they give (step 6)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from eala_jax.ops._numerics import safe_sqrt
from eala_jax.ops.entropy import variance_deficit

Array = jax.Array
RowMap = Callable[[Array, Array | None, Array | None, Array], tuple[Array, Array]]
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


def floor_deficit(deficit: Array, log_count: Array, min_entropy: float) -> Array:
    """`Ĥ ← max(Ĥ, min_entropy)` as a deficit: `clip(d, 0, log M − min_entropy)` (step 5); the
    default 0.0 returns `d` unchanged, bit for bit."""
    if min_entropy <= 0.0:
        return deficit
    return jnp.maximum(jnp.minimum(deficit, log_count - min_entropy), 0.0)


def choose_theta(
    deficit: Array, sigma2: Array, *, theta: str | float, theta_gradient: bool
) -> Array:
    """θ* from the deficit (`theta="optimal"`) or the fixed float `theta`; without
    `theta_gradient` the result is a constant for autodiff."""
    value = (
        theta_from_deficit(deficit, sigma2) if theta == "optimal" else jnp.full_like(sigma2, theta)
    )
    return value if theta_gradient else jax.lax.stop_gradient(value)


def row_map(
    *,
    theta: str | float,
    theta_gradient: bool,
    min_entropy: float,
    need_entropy: bool,
    estimator: str = "gaussian",
) -> RowMap:
    """The per-row scalar chain of EALA, `(σ², deficit, bound, log M) -> (θ, deficit)`,
    elementwise on arrays of one shape (docs/method.md steps 3, 5 and 7).

    `deficit` None means the estimate of the `variance_only` `estimator` from σ²
    (`variance_deficit`, the Gaussian `clip(σ²/2, 0, log M)`; NaN when θ is fixed and no entropy
    is wanted); it is floored by `min_entropy`; θ comes from `choose_theta` and is capped by
    `cap_theta(θ, bound)` unless `bound` is None.
    """

    def rows(
        sigma2: Array, deficit: Array | None, bound: Array | None, log_count: Array
    ) -> tuple[Array, Array]:
        if deficit is None:
            deficit = (
                jnp.full_like(sigma2, jnp.nan)
                if theta != "optimal" and not need_entropy
                else variance_deficit(estimator, sigma2, log_count)
            )
        deficit = floor_deficit(deficit, log_count, min_entropy)
        value = choose_theta(deficit, sigma2, theta=theta, theta_gradient=theta_gradient)
        return (value if bound is None else cap_theta(value, bound)), deficit

    return rows


def eala_output(mean_v: Array, theta: Array, weighted: Array, count: Array) -> Array:
    """EALA's output `o_i = [M > 0] (v̄ + (θ_i / max(M, 1)) W_i)` (docs/method.md step 6), where
    `W_i = scale · Σ_j w_j (k_j − k̄)ᵀ q_i (v_j − v̄)`: the one formula of every route (statistics,
    explicit scores, causal scan, sharded keys). `weighted: [..., Dv]`, `mean_v` broadcastable to
    it, `theta` and `count` to `weighted.shape[:-1]`; a row without a valid key gives zeros."""
    out = mean_v + (theta / jnp.maximum(count, 1.0))[..., None] * weighted
    return jnp.where((count > 0)[..., None], out, 0.0)
