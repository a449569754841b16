"""eala_attention as the attention_fn of Flax's multi-head attention modules, unchanged."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from eala_jax import eala_attention

B, L, S, F, HEADS = 2, 5, 9, 8, 2


def _data(seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal((B, L, F)).astype(np.float32)
    y = g.standard_normal((B, S, F)).astype(np.float32)
    valid = np.ones((B, S), bool)
    valid[0, [1, 4, 7]] = False
    valid[1, [0, 8, 2]] = False  # 6 valid keys in each row
    return x, y, valid


@functools.cache
def _nnx_module(dropout_rate=0.0):
    return nnx.MultiHeadAttention(
        num_heads=HEADS,
        in_features=F,
        qkv_features=F,
        out_features=F,
        decode=False,
        dropout_rate=dropout_rate,
        attention_fn=eala_attention,
        rngs=nnx.Rngs(0),
    )


def test_nnx_multihead_attention_is_eala_on_its_own_projections():
    x, y, valid = _data(120)
    mha = _nnx_module()
    got = mha(x, y)
    assert got.shape == (B, L, F)
    want = mha.out(eala_attention(mha.query(x), mha.key(y), mha.value(y)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # EALA is not softmax: the same projections through softmax give something else.
    soft = mha.out(jax.nn.dot_product_attention(mha.query(x), mha.key(y), mha.value(y)))
    assert np.abs(np.asarray(got - soft)).max() > 1e-3
    # Self-attention (one input) works too.
    assert mha(x).shape == (B, L, F)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bool_], ids=["float_mask", "bool_mask"])
def test_nnx_key_padding_mask_equals_dropping_keys(dtype):
    """nnx.make_attention_mask(ones [B, 1], key_valid) is a key mask broadcast over heads and
    queries.

    Flax builds masks as float32 by default; both that and a boolean mask must work.
    """
    x, y, valid = _data(121)
    mha = _nnx_module()
    mask = nnx.make_attention_mask(jnp.ones((B, 1)), valid, dtype=dtype)
    assert mask.shape == (B, 1, 1, S)
    got = np.asarray(mha(x, y, mask=mask))
    q, k, v = mha.query(x), mha.key(y), mha.value(y)
    np.testing.assert_allclose(
        got, mha.out(eala_attention(q, k, v, key_mask=valid)), rtol=1e-5, atol=1e-6
    )
    for b in range(B):
        dropped = mha(x[b : b + 1], y[b : b + 1, valid[b]])
        np.testing.assert_allclose(got[b : b + 1], dropped, rtol=1e-5, atol=1e-6)
    assert np.abs(got - np.asarray(mha(x, y))).max() > 1e-3  # the mask has an effect


def test_nnx_query_by_key_mask_is_rejected():
    x, y, valid = _data(122)
    mha = _nnx_module()
    full = nnx.make_attention_mask(jnp.ones((B, L)), valid, dtype=jnp.bool_)  # [B, 1, L, S]
    with pytest.raises(
        ValueError,
        match=r"mask must be a key mask broadcast over heads and queries.*"
        r"cannot apply an arbitrary query×key mask",
    ):
        mha(x, y, mask=full)
    with pytest.raises(ValueError, match=r"mask must be a key mask broadcast"):
        mha(x, mask=nnx.make_causal_mask(jnp.ones((B, L)), dtype=jnp.bool_))


def test_nnx_dropout_is_ignored():
    x, y, _ = _data(123)
    mha = _nnx_module(dropout_rate=0.5)
    a = mha(x, y, deterministic=False, rngs=nnx.Rngs(dropout=1))
    b = mha(x, y, deterministic=True)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_nnx_under_jit_and_grad():
    x, y, valid = _data(124)
    mha = _nnx_module()
    mask = nnx.make_attention_mask(jnp.ones((B, 1)), valid)

    @nnx.jit
    def loss(module, x, y, mask):
        return jnp.sum(module(x, y, mask=mask) ** 2)

    grads = nnx.grad(loss)(mha, x, y, mask)
    leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
    assert leaves and all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
    assert max(float(jnp.abs(g).max()) for g in leaves) > 0


def test_linen_multihead_dot_product_attention():
    x, y, valid = _data(125)
    mha = linen.MultiHeadDotProductAttention(
        num_heads=HEADS, qkv_features=F, out_features=F, attention_fn=eala_attention
    )
    params = mha.init(jax.random.key(0), x, y)
    got = np.asarray(mha.apply(params, x, y))
    p = params["params"]
    proj = lambda z, n: jnp.einsum("blf,fhd->blhd", z, p[n]["kernel"]) + p[n]["bias"]
    o = eala_attention(proj(x, "query"), proj(y, "key"), proj(y, "value"))
    want = jnp.einsum("blhd,hdf->blf", o, p["out"]["kernel"]) + p["out"]["bias"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Key-padding mask (float, as linen.make_attention_mask builds by default) = dropping keys.
    mask = linen.make_attention_mask(jnp.ones((B, 1)), valid)
    masked = np.asarray(mha.apply(params, x, y, mask=mask))
    for b in range(B):
        dropped = mha.apply(params, x[b : b + 1], y[b : b + 1, valid[b]])
        np.testing.assert_allclose(masked[b : b + 1], dropped, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"mask must be a key mask broadcast"):
        mha.apply(params, x, y, mask=linen.make_attention_mask(jnp.ones((B, L)), valid))
    # Dropout keywords are passed and ignored.
    mha_dropout = linen.MultiHeadDotProductAttention(
        num_heads=HEADS,
        qkv_features=F,
        out_features=F,
        dropout_rate=0.5,
        attention_fn=eala_attention,
    )
    out = mha_dropout.apply(params, x, y, deterministic=False, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_allclose(out, got, rtol=1e-6, atol=1e-7)
