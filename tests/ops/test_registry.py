"""The registry, and properties every registered attention shares (masks, degenerate rows,
dtypes)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eala_jax
from eala_jax import ATTENTIONS, get_attention
from eala_jax.ops import baselines, eala
from tests.ops.helpers import DV, B, H, S, T, all_valid, projection, qkv

PROJ = projection(80, r=16)
NAMES = ["eala", "softmax", "linear", "performer", "uniform", "lln"]
# Registered too, with the properties below tested in tests/ops/test_local.py (its neighbour
# table indexes the keys, so dropping keys is not masking them there).
OTHERS = ["eala_local"]


def _options(name):
    return dict(projection=PROJ) if name == "performer" else {}


def _jit(name, **static):
    fn = get_attention(name)
    return jax.jit(lambda q, k, v, m: fn(q, k, v, key_mask=m, **_options(name), **static))


def test_get_attention_returns_every_registered_function():
    assert set(ATTENTIONS) == set(NAMES + OTHERS)
    expected = dict(
        eala=eala.eala_attention,
        softmax=baselines.softmax_attention,
        linear=baselines.linear_attention,
        performer=baselines.performer_attention,
        uniform=baselines.uniform_attention,
        lln=baselines.lln_attention,
    )
    for name in NAMES:
        assert get_attention(name) is expected[name]
        assert getattr(eala_jax, f"{name}_attention") is expected[name]  # public API


@pytest.mark.parametrize("bad", ["Softmax", "flash", "", None, 3])
def test_get_attention_unknown_name_lists_the_names(bad):
    with pytest.raises(
        ValueError, match=r"unknown attention .*eala.*softmax.*linear.*performer.*uniform.*lln"
    ):
        get_attention(bad)


@pytest.mark.parametrize("name", NAMES)
def test_key_mask_equals_dropping_keys(name):
    q, k, v = qkv(81, q_scale=1.5)
    g = np.random.default_rng(82)
    mask = np.zeros((B, S), bool)
    for row in mask:
        row[g.choice(S, 7, replace=False)] = (
            True  # same count per row: one shape for the dropped problem
        )
    got = np.asarray(_jit(name)(q, k, v, mask))
    fn = _jit(name)
    for b in range(B):
        dropped = fn(
            q[b : b + 1], k[b : b + 1, mask[b]], v[b : b + 1, mask[b]], np.ones((1, 7), bool)
        )
        np.testing.assert_allclose(got[b : b + 1], dropped, rtol=2e-5, atol=2e-6, err_msg=name)
    full = np.asarray(_jit(name)(q, k, v, all_valid()))
    assert np.abs(full - got).max() > 1e-3  # the mask has an effect


@pytest.mark.parametrize("name", NAMES)
def test_degenerate_inputs(name):
    """No valid key → zeros (documented); one key → its value; all keys equal → mean of the values;
    huge (1e4) query norms and zero vectors → finite."""
    q, k, v = qkv(83)
    fn = _jit(name)
    mask = np.ones((B, S), bool)
    mask[0] = False
    mask[1] = False
    mask[1, 4] = True
    out = np.asarray(fn(q, k, v, mask))
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1], np.broadcast_to(v[1, 4], (T, H, DV)), rtol=1e-5, atol=1e-6)
    out = np.asarray(fn(q, np.broadcast_to(k[:, :1], k.shape), v, all_valid()))
    mean_v = np.broadcast_to(v.mean(1, keepdims=True), out.shape)
    np.testing.assert_allclose(out, mean_v, rtol=1e-5, atol=1e-6)
    for qq, kk in ((1e4 * q, k), (0 * q, k), (q, 0 * k), (0 * q, 0 * k)):
        out = np.asarray(fn(qq, kk, v, all_valid()))
        assert np.all(np.isfinite(out)), name
        assert (
            np.all(np.abs(out) <= np.abs(v).max() * (1 + 1e-5) + 1e-6) or name == "eala"
        )  # convex maps
    # zero queries: every score is 0, so softmax, EALA and uniform average the values (the kernel
    # maps do not: φ(0)·φ(k_j) still depends on k_j)
    if name in ("eala", "softmax", "uniform"):
        np.testing.assert_allclose(fn(0 * q, k, v, all_valid()), mean_v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_dtypes_and_rank3(name):
    q, k, v = qkv(84, dv=5)
    fn = get_attention(name)
    kw = _options(name)
    bf = lambda x: jnp.asarray(x, jnp.bfloat16)
    out = fn(bf(q), bf(k), bf(v), **kw)
    assert out.dtype == jnp.bfloat16
    ref32 = fn(q, k, v, **kw)
    chex.assert_shape(ref32, (B, T, H, 5))
    np.testing.assert_allclose(np.asarray(out, np.float32), ref32, atol=0.06, rtol=0.06)
    assert fn(q, k, v, dtype=jnp.bfloat16, **kw).dtype == jnp.bfloat16
    chex.assert_trees_all_close(fn(q[0], k[0], v[0], **kw), ref32[0], rtol=1e-5, atol=1e-6)
