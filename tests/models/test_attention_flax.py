"""flax_attention_fn: the ops as the attention_fn of Flax's multi-head attention modules."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from eala_jax import EalaOptions, eala_attention, get_attention
from eala_jax.models import flax_attention_fn

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
        attention_fn=flax_attention_fn(EalaOptions()),
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
        num_heads=HEADS,
        qkv_features=F,
        out_features=F,
        attention_fn=flax_attention_fn(EalaOptions()),
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
        attention_fn=flax_attention_fn(EalaOptions()),
    )
    out = mha_dropout.apply(params, x, y, deterministic=False, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_allclose(out, got, rtol=1e-6, atol=1e-7)


NAMES = ("eala", "softmax", "linear", "performer", "uniform", "lln")


def _qkv(seed, t=L):
    keys = jax.random.split(jax.random.key(seed), 3)
    return tuple(
        jax.random.normal(key, (B, n, HEADS, 4)) for key, n in zip(keys, (t, S, S), strict=True)
    )


@pytest.mark.parametrize("name", NAMES)
def test_adapter_mask_bias_and_keywords(name):
    """Every op: a broadcast key mask is its key_mask (rank 3 too), other masks and a bias are
    refused, dropout keywords are dropped, anything else is a TypeError."""
    q, k, v = _qkv(126)
    extra = {"projection": np.ones((8, 4), np.float32)} if name == "performer" else {}
    fn = flax_attention_fn(name, **extra)
    op = lambda *a, **kw: get_attention(name)(*a, **kw, **extra)
    _, _, valid = _data(127)
    for mask in (valid[:, None, None, :], valid[:, None, None, :].astype(np.float32)):
        np.testing.assert_allclose(
            fn(q, k, v, mask=mask), op(q, k, v, key_mask=valid), rtol=1e-6, atol=1e-7
        )
    np.testing.assert_allclose(
        fn(q[0], k[0], v[0], mask=valid[0, None, None, :]),
        op(q[0], k[0], v[0], key_mask=valid[0]),
        rtol=1e-6,
        atol=1e-7,
    )
    flax_keywords = dict(
        dropout_rng=jax.random.key(0),
        dropout_rate=0.5,
        broadcast_dropout=True,
        deterministic=False,
        precision=None,
        module=None,
    )
    np.testing.assert_allclose(fn(q, k, v, **flax_keywords), op(q, k, v), rtol=1e-6, atol=1e-7)
    assert fn(q, k, v, dtype=jnp.bfloat16).dtype == jnp.bfloat16
    with pytest.raises(
        ValueError,
        match=r"mask must be a key mask broadcast over heads and queries,"
        r" shape \[batch or 1, 1, 1, 9\]",
    ):
        fn(q, k, v, mask=np.ones((B, 1, L, S), bool))
    with pytest.raises(ValueError, match=r"mask must be a key mask broadcast"):
        fn(q, k, v, mask=np.ones((B, 2, 1, S), bool))  # per-head key masks
    with pytest.raises(ValueError, match=r"mask must be a key mask broadcast"):
        fn(q, k, v, mask=valid)  # a key mask belongs in key_mask=
    with pytest.raises(ValueError, match=r"cannot add an attention bias"):
        fn(q, k, v, bias=jnp.zeros((B, HEADS, L, S)))
    with pytest.raises(TypeError, match=r"unexpected keyword.*'colour'"):
        fn(q, k, v, colour="blue")


def test_adapter_options_values_and_is_causal():
    q, k, v = _qkv(128, t=S)
    fn = flax_attention_fn(EalaOptions(estimator="cumulant3"), theta=0.5)
    want = eala_attention(q, k, v, estimator="cumulant3", theta=0.5)
    np.testing.assert_allclose(fn(q, k, v), want, rtol=1e-6, atol=1e-7)
    causal = eala_attention(q, k, v, causal=True)
    np.testing.assert_allclose(
        flax_attention_fn("eala")(q, k, v, is_causal=True), causal, rtol=1e-6, atol=1e-7
    )
    assert np.abs(np.asarray(causal - eala_attention(q, k, v))).max() > 1e-3
    with pytest.raises(ValueError, match=r"eala.estimator='gauss'; expected one of"):
        flax_attention_fn("eala", estimator="gauss")
    with pytest.raises(TypeError, match=r"takes no argument\(s\) \['colour'\]"):
        flax_attention_fn(EalaOptions(), colour=1)
    with pytest.raises(ValueError, match=r"unknown attention 'eal'"):
        flax_attention_fn("eal")


def test_the_options_object_reaches_the_op_as_it_is(monkeypatch):
    """SelfAttention and the adapter hand the op the options object itself (not its fields as
    keywords to check again); is_causal hands it a causal copy."""
    import eala_jax.models.attention as attention_module
    from eala_jax.models.attention import SelfAttention

    seen = []

    def spy(name):
        function = get_attention(name)
        return functools.wraps(function)(lambda *a, **kw: seen.append(kw) or function(*a, **kw))

    monkeypatch.setattr(attention_module, "get_attention", spy)
    options = EalaOptions(estimator="random_features", num_features=4, theta_gradient=False)
    layer = SelfAttention(F, num_heads=HEADS, attention=options, rngs=nnx.Rngs(0))
    layer(jnp.ones((B, L, F)))
    (call,) = seen
    assert call["options"] is options and call["projection"].shape == (4, F // HEADS)
    assert set(call) == {"key_mask", "options", "projection"}
    q, k, v = _qkv(129, t=S)
    flax_attention_fn(options, projection=np.ones((4, 4), np.float32))(q, k, v)
    assert seen[-1]["options"] is options
    flax_attention_fn(EalaOptions(), rng=jax.random.key(0))(q, k, v, is_causal=True)
    assert seen[-1]["options"] == EalaOptions(causal=True) and "rng" in seen[-1]
