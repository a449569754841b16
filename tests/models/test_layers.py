"""Fused layer norm and dropout: values against NumPy float64, gradients against autodiff of the
direct formula, the dropout mask's rate, scaling, determinism and independence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax.models.layers import dropout, hash_words, layer_norm

EPS = 1e-6


def numpy_layer_norm(x, scale, bias, eps=EPS):
    x = np.asarray(x, np.float64)
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps) * scale + bias


def direct_layer_norm(x, scale, bias, eps=EPS):
    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, -1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * scale + bias


@pytest.fixture(scope="module")
def norm_inputs():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 5, 16)) * 3 + 2).astype(np.float32)
    scale = rng.standard_normal(16).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    cotangent = rng.standard_normal(x.shape).astype(np.float32)
    return x, scale, bias, cotangent


def test_layer_norm_matches_numpy(norm_inputs):
    x, scale, bias, _ = norm_inputs
    y = layer_norm(jnp.asarray(x), jnp.asarray(scale), jnp.asarray(bias), EPS)
    assert y.shape == x.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(y, numpy_layer_norm(x, scale, bias), rtol=1e-5, atol=1e-5)


def test_layer_norm_gradient_matches_autodiff_of_the_formula(norm_inputs):
    x, scale, bias, cotangent = norm_inputs

    def loss(fn):
        return lambda *a: jnp.sum(fn(*a, EPS) * cotangent)

    args = (jnp.asarray(x), jnp.asarray(scale), jnp.asarray(bias))
    fused = jax.jit(jax.grad(loss(layer_norm), argnums=(0, 1, 2)))(*args)
    direct = jax.grad(loss(direct_layer_norm), argnums=(0, 1, 2))(*args)
    for got, want in zip(fused, direct, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_layer_norm_keeps_bfloat16(norm_inputs):
    x, scale, bias, _ = norm_inputs
    y, grad = jax.value_and_grad(lambda v: jnp.sum(layer_norm(v, scale, bias, EPS)))(
        jnp.asarray(x, jnp.bfloat16)
    )
    assert grad.dtype == jnp.bfloat16
    y = layer_norm(jnp.asarray(x, jnp.bfloat16), jnp.asarray(scale), jnp.asarray(bias), EPS)
    assert y.dtype == jnp.bfloat16
    want = numpy_layer_norm(np.asarray(jnp.asarray(x, jnp.bfloat16), np.float32), scale, bias)
    np.testing.assert_allclose(np.asarray(y, np.float32), want, rtol=0.02, atol=0.05)


@pytest.fixture(scope="module")
def dropped():
    x = jnp.asarray(np.random.default_rng(1).uniform(1.0, 2.0, (256, 512)), jnp.float32)
    fn = jax.jit(lambda x, key: dropout(x, 0.25, key))
    return x, fn


def test_dropout_keeps_the_rate_and_scales_kept_entries(dropped):
    x, fn = dropped
    y = np.asarray(fn(x, jax.random.key(3)))
    kept = y != 0
    # 131072 draws: the kept share's standard deviation is 0.0012.
    assert abs(kept.mean() - 0.75) < 0.006
    np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / 0.75, rtol=1e-6)
    # Neighbouring entries and rows are independent: their keep indicators do not correlate.
    for a, b in ((kept[:, :-1], kept[:, 1:]), (kept[:-1], kept[1:])):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.02


def test_dropout_mask_follows_the_key(dropped):
    x, fn = dropped
    first = np.asarray(fn(x, jax.random.key(3))) != 0
    np.testing.assert_array_equal(first, np.asarray(fn(x, jax.random.key(3))) != 0)
    other = np.asarray(fn(x, jax.random.key(4))) != 0
    assert 0.3 < (first != other).mean() < 0.45  # independent masks differ in 2·0.75·0.25
    legacy = np.asarray(dropout(x, 0.25, jax.random.PRNGKey(3))) != 0  # raw uint32 key
    np.testing.assert_array_equal(legacy, first)


def test_dropout_gradient_is_the_scaled_mask():
    x = jnp.linspace(1.0, 2.0, 64)
    key = jax.random.key(0)
    grad = jax.grad(lambda v: jnp.sum(dropout(v, 0.5, key)))(x)
    kept = np.asarray(dropout(x, 0.5, key)) != 0
    np.testing.assert_array_equal(np.asarray(grad), np.where(kept, 2.0, 0.0))


def test_dropout_rate_zero_is_identity_and_bad_rates_are_refused():
    x = jnp.ones(4)
    assert dropout(x, 0.0, jax.random.key(0)) is x
    for rate in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout rate"):
            dropout(x, rate, jax.random.key(0))


def test_hash_words_have_balanced_independent_bits_along_every_axis():
    words = np.asarray(hash_words((16, 24, 3, 40), jax.random.key(5)))
    assert words.dtype == np.uint32 and words.shape == (16, 24, 3, 40)
    bits = (words[..., None] >> np.arange(32, dtype=np.uint32)) & 1  # 46080 draws a bit
    # Each bit's share of ones has a standard deviation of 0.0023 over 46080 words.
    np.testing.assert_array_less(np.abs(bits.mean(axis=(0, 1, 2, 3)) - 0.5), 0.012)
    uniform = words / 2.0**32
    for axis in range(4):  # neighbours along each axis, whose index differs by one stride
        a, b = np.moveaxis(uniform, axis, 0)[:-1], np.moveaxis(uniform, axis, 0)[1:]
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.03
    assert len(np.unique(words)) > 0.999 * words.size  # ~0.25 collisions expected at random
    # A scalar shape works, and another key gives unrelated words.
    assert np.asarray(hash_words((), jax.random.key(5))).shape == ()
    other = np.asarray(hash_words((16, 24, 3, 40), jax.random.key(6))) / 2.0**32
    assert abs(np.corrcoef(uniform.ravel(), other.ravel())[0, 1]) < 0.03
