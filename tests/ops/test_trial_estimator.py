"""A trial estimator added by its name and its table entry only (eala_jax/ops/entropy.py)."""

import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax.ops import EalaOptions, eala_attention, estimate_entropy
from tests.ops.helpers import qkv


@pytest.mark.parametrize(
    "options",
    [{}, {"causal": True}, {"implementation": "scores"}, {"nonnegative": True}],
    ids=["statistics", "causal", "scores", "cap"],
)
def test_half_variance_runs_on_every_route_as_theta_one_over_root_two(options):
    """δ = σ²/4 below log M gives θ* = √(2δ/σ²) = 1/√2 on every row: EALA with that fixed θ."""
    q, k, v = qkv(40, s=7)  # T == S, for the causal route
    q = 0.05 * q  # σ²/4 far below log M: no clip
    got, stats = eala_attention(
        q, k, v, options=EalaOptions(estimator="half_variance", **options), return_stats=True
    )
    want = eala_attention(q, k, v, theta=0.5**0.5, **options)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        stats["entropy"], jnp.log(stats["count"]) - stats["sigma2"] / 4, rtol=1e-6, atol=1e-6
    )
    _, full = eala_attention(q, k, v, return_stats=True)  # σ² over all 7 keys
    entropy = estimate_entropy(q, k, estimator="half_variance")
    np.testing.assert_allclose(entropy, jnp.log(7.0) - full["sigma2"] / 4, rtol=1e-5, atol=1e-6)
