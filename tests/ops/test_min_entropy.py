"""EALA's `min_entropy` floor (docs/method.md step 5) against a NumPy float64 reference."""

import math

import jax
import numpy as np
import pytest
from jax.test_util import check_grads

from eala_jax import eala_attention
from tests.ops import reference as ref
from tests.ops.helpers import key_mask, qkv


def _floored_reference(q, k, v, mask, *, estimator, floor, causal):
    """EALA with `Ĥ ← min(max(Ĥ, floor), log M)`, one (causal: one per query) head at a time."""
    b_, t, h_, d = q.shape
    scale = 1 / math.sqrt(d)
    out, entropy = np.zeros((b_, t, h_, v.shape[-1])), np.zeros((b_, t, h_))
    entropy_fn = {"gaussian": ref.gaussian_entropy, "exact": ref.exact_entropy}[estimator]
    for b in range(b_):
        for h in range(h_):
            for i in range(t):
                valid = mask[b] & (np.arange(k.shape[1]) <= i if causal else True)
                kv, vv = k[b, valid, h], v[b, valid, h]
                m = kv.shape[0]
                if m == 0:  # no visible key (causal prefix of masked keys): zeros
                    continue
                s = ref.scores(q[b, i : i + 1, h], kv, scale)
                mu, sigma2 = ref.score_mean_var(s)
                est = np.minimum(np.maximum(entropy_fn(s), floor), math.log(m))
                theta = ref.theta_star(est, sigma2, m)
                out[b, i, h] = ((1.0 + theta[:, None] * (s - mu[:, None])) / m @ vv)[0]
                entropy[b, i, h] = est[0]
    return out, entropy


@pytest.mark.parametrize(
    ("estimator", "causal"), [("gaussian", False), ("exact", False), ("gaussian", True)]
)
def test_min_entropy_floors_the_estimate_and_theta_follows(estimator, causal):
    q, k, v = qkv(71, t=12, s=12, q_scale=3.0)  # wide scores: low entropies to floor
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    mask = key_mask(72, s=12)
    with jax.enable_x64(True):
        kw = dict(key_mask=mask, estimator=estimator, causal=causal, return_stats=True)
        _, plain = eala_attention(q, k, v, **kw)
        floor = float(np.median(plain["entropy"]))  # binds on about half of the rows
        out, stats = eala_attention(q, k, v, min_entropy=floor, chunk_size=5, **kw)
    want_out, want_entropy = _floored_reference(
        q, k, v, mask, estimator=estimator, floor=floor, causal=causal
    )
    np.testing.assert_allclose(stats["entropy"], want_entropy, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(out, want_out, rtol=1e-9, atol=1e-9)
    # Rows whose estimate was below the floor (σ > 0: where σ = 0, θ = 1 whatever Ĥ is).
    floored = (np.asarray(plain["entropy"]) < floor - 1e-6) & (np.asarray(plain["sigma2"]) > 1e-9)
    assert 0 < floored.mean() < 1  # not vacuous: some rows change, some do not
    assert np.all(np.asarray(stats["theta"])[floored] < np.asarray(plain["theta"])[floored])


def test_min_entropy_zero_is_the_default_and_gradients_are_finite():
    q, k, v = qkv(73, q_scale=2.0)
    mask = key_mask(74)
    np.testing.assert_array_equal(
        eala_attention(q, k, v, key_mask=mask, min_entropy=0.0),
        eala_attention(q, k, v, key_mask=mask),
    )
    with jax.enable_x64(True):
        q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
        f = lambda q, k, v: eala_attention(q, k, v, key_mask=mask, min_entropy=1.2)
        check_grads(f, (q, k, v), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)
