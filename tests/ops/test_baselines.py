"""Baseline attentions (softmax, elu+1 linear, FAVOR+ performer, uniform) against NumPy float64."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax import linear_attention, performer_attention, softmax_attention, uniform_attention
from tests.ops import reference as ref
from tests.ops.helpers import B, H, S, T, f64, key_mask, projection, qkv

PROJ = projection(70, r=16)
FUNCTIONS = dict(
    softmax=softmax_attention,
    linear=linear_attention,
    performer=performer_attention,
    uniform=uniform_attention,
)


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("dv", [3, 6])  # Dv < D, Dv > D (Dv = D: registry tests)
def test_baseline_matches_reference(name, dv):
    q, k, v = qkv(71, dv=dv, q_scale=1.5)
    mask = key_mask(72)
    kw = dict(projection=PROJ) if name == "performer" else {}
    with jax.enable_x64(True):
        fn = jax.jit(lambda q, k, v, m: FUNCTIONS[name](q, k, v, key_mask=m, **kw))
        got = np.asarray(fn(*f64(q, k, v), mask))
        got_nomask = np.asarray(fn(*f64(q, k, v), np.ones((B, S), bool)))
    chex.assert_shape(got, (B, T, H, dv))
    # jax.nn.dot_product_attention (which softmax_attention wraps) computes the softmax in float32
    # even for float64 inputs, so softmax is only float32-accurate.
    tol = dict(rtol=2e-6, atol=2e-7) if name == "softmax" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, ref.attend(name, q, k, v, mask, projection=PROJ), **tol)
    np.testing.assert_allclose(got_nomask, ref.attend(name, q, k, v, projection=PROJ), **tol)
    # float32 path too
    got32 = FUNCTIONS[name](q, k, v, key_mask=mask, **kw)
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, got, rtol=1e-4, atol=1e-5)


def test_baselines_differ_from_each_other():
    """Guards the reference comparisons against a mix-up: the four maps give different outputs."""
    q, k, v = qkv(73, q_scale=2.0)
    outs = {
        n: np.asarray(f(q, k, v, projection=PROJ) if n == "performer" else f(q, k, v))
        for n, f in FUNCTIONS.items()
    }
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(outs[a] - outs[b]).max() > 1e-2, (a, b)


def test_softmax_wraps_jax_dot_product_attention():
    q, k, v = qkv(74, dv=4)
    mask = key_mask(75)
    want = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None, None, :])
    np.testing.assert_allclose(
        softmax_attention(q, k, v, key_mask=mask), want, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        softmax_attention(q, k, v, scale=0.3),
        jax.nn.dot_product_attention(q, k, v, scale=0.3),
        rtol=1e-5,
        atol=1e-6,
    )


def test_performer_with_rng_is_deterministic_and_uses_num_features():
    q, k, v = qkv(76)
    key = jax.random.key(3)
    a = performer_attention(q, k, v, rng=key, num_features=8)
    b = performer_attention(q, k, v, rng=key, num_features=8)
    c = performer_attention(q, k, v, rng=key, num_features=9)
    chex.assert_trees_all_equal(a, b)
    assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-4
    assert np.all(np.isfinite(np.asarray(a)))


def test_performer_approaches_softmax_with_many_features():
    """FAVOR+ is an unbiased kernel estimate: with many features it is close to softmax (fixed
    seed)."""
    q, k, v = qkv(77, q_scale=0.7)
    many = projection(78, r=8192)
    soft = np.asarray(softmax_attention(q, k, v))
    err = lambda out: np.abs(np.asarray(out) - soft).mean()
    err_few = err(performer_attention(q, k, v, projection=projection(78, r=8)))
    err_many = err(performer_attention(q, k, v, projection=many))
    err_uniform = err(uniform_attention(q, k, v))
    assert err_many < 0.3 * err_uniform and err_many < 0.3 * err_few, (
        err_many,
        err_few,
        err_uniform,
    )


def test_rows_without_a_valid_key_have_zero_finite_gradients():
    """A batch element whose keys are all masked outputs zeros, so its gradient is zero; the
    others are untouched (Performer's was NaN: its key features overflowed in a discarded branch;
    docs/method.md step 9)."""
    q, k, v = qkv(79, t=S)
    mask = key_mask(80)
    mask[0] = False
    cotangent = np.random.default_rng(81).standard_normal((B, S, H, v.shape[-1]))

    def case_loss(fn, causal, **kw):
        return lambda q, k, v: jnp.sum(fn(q, k, v, key_mask=mask, causal=causal, **kw) * cotangent)

    cases = {
        f"{name}-{'causal' if causal else 'full'}": case_loss(
            fn, causal, **(dict(projection=PROJ) if name == "performer" else {})
        )
        for name, fn in FUNCTIONS.items()
        for causal in (False, True)
    }
    # One program, a separate backward pass per case (so a NaN is attributed to its case).
    grads = jax.jit(
        lambda q, k, v: {c: jax.grad(f, argnums=(0, 1, 2))(q, k, v) for c, f in cases.items()}
    )(q, k, v)
    for case, per_input in grads.items():
        for arg, g in zip("qkv", per_input, strict=True):
            g = np.asarray(g)
            assert np.all(np.isfinite(g)), f"{case}: d{arg} not finite"
            np.testing.assert_array_equal(g[0], 0.0, err_msg=f"{case}: d{arg}")
            if arg == "v" or not case.startswith("uniform"):  # uniform ignores q and k
                assert np.abs(g[1]).max() > 1e-3, f"{case}: d{arg}"  # the valid element has one
