"""ELinFormer: shapes for every attention, flax MultiHeadAttention with EALA, embeddings, dtypes,
errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_helpers import TINY, make_inputs

from eala_jax.models import ATTENTION_NAMES, ELinFormer, SelfAttention
from eala_jax.models.elinformer import AttentionBlock


def build(**kwargs) -> ELinFormer:
    options = dict(TINY, num_nodes=5, steps_per_day=24, rngs=nnx.Rngs(0))
    options.update(kwargs)
    return ELinFormer(**options)


@pytest.mark.parametrize("attention", ATTENTION_NAMES)
def test_forward_shape_every_attention(attention):
    model = build(temporal_attention=attention, spatial_attention=attention, out_steps=6)
    x = jnp.asarray(make_inputs())
    y = model(x)
    assert y.shape == (2, 6, 5) and y.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(y)))
    # Training mode draws dropout masks from the given key: different keys, different outputs.
    a = model(x, deterministic=False, rngs=nnx.Rngs(dropout=1))
    b = model(x, deterministic=False, rngs=nnx.Rngs(dropout=2))
    assert a.shape == y.shape and not np.allclose(a, b)


def test_mixed_attention_per_axis_and_options_pass_through():
    model = build(
        temporal_attention="softmax",
        spatial_attention="eala",
        spatial_attention_options={"estimator": "gaussian", "theta": 0.0},
    )
    assert model.temporal_layers[0].attention.attention == "softmax"
    spatial = model.spatial_layers[0].attention
    assert spatial.attention == "eala" and dict(spatial.options) == {
        "estimator": "gaussian",
        "theta": 0.0,
    }
    # theta=0 (uniform weights) differs from the default theta="optimal": the option reached the op.
    other = build(temporal_attention="softmax", spatial_attention="eala")
    x = jnp.asarray(make_inputs())
    assert not np.allclose(model(x), other(x))


def test_performer_projection_is_a_fixed_buffer():
    model = build(
        temporal_attention="performer",
        spatial_attention="performer",
        spatial_attention_options={"num_features": 16},
    )
    params = nnx.state(model, nnx.Param)
    projection = model.spatial_layers[0].attention.projection
    assert projection[...].shape == (16, 8)  # [num_features, head_dim = 16 / 2]
    flat = jax.tree.leaves(params)
    assert not any(leaf is projection[...] for leaf in flat)
    assert len(jax.tree.leaves(nnx.state(model, nnx.Param))) < len(
        jax.tree.leaves(nnx.state(model))
    )


def test_flax_multihead_attention_with_eala_matches_self_attention():
    """nnx.MultiHeadAttention(attention_fn=eala) inside the block equals our layer with the same
    weights."""
    options = {"estimator": "cumulant3"}
    flax_block = AttentionBlock(
        16,
        num_heads=2,
        feed_forward_dim=8,
        dropout=0.0,
        attention="eala",
        attention_options=options,
        use_flax_mha=True,
        rngs=nnx.Rngs(1),
    )
    own_block = AttentionBlock(
        16,
        num_heads=2,
        feed_forward_dim=8,
        dropout=0.0,
        attention="eala",
        attention_options=options,
        rngs=nnx.Rngs(2),
    )
    assert isinstance(flax_block.attention, nnx.MultiHeadAttention)
    mha, own = flax_block.attention, own_block.attention
    for name in ("query", "key", "value"):
        getattr(own, name).kernel[...] = getattr(mha, name).kernel[...].reshape(16, 16)
        getattr(own, name).bias[...] = getattr(mha, name).bias[...].reshape(16)
    own.out.kernel[...] = mha.out.kernel[...].reshape(16, 16)
    own.out.bias[...] = mha.out.bias[...]
    for name in ("ff_in", "ff_out", "norm1", "norm2"):
        nnx.update(getattr(own_block, name), nnx.state(getattr(flax_block, name)))
    x = jax.random.normal(jax.random.key(0), (3, 7, 16))
    np.testing.assert_allclose(
        flax_block(x, deterministic=True, rngs=None),
        own_block(x, deterministic=True, rngs=None),
        rtol=1e-5,
        atol=1e-5,
    )


def test_model_with_flax_mha_eala_forward_and_grad():
    model = build(use_flax_mha=True)
    assert isinstance(model.spatial_layers[0].attention, nnx.MultiHeadAttention)
    x = jnp.asarray(make_inputs())
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    leaves = jax.tree.leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(
        float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(nnx.state(grads.spatial_layers))
    )


def test_softmax_layer_matches_dot_product_attention():
    layer = SelfAttention(16, num_heads=4, attention="softmax", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 9, 16))
    split = lambda t: t.reshape(2, 9, 4, 4)
    o = jax.nn.dot_product_attention(
        split(layer.query(x)), split(layer.key(x)), split(layer.value(x))
    )
    np.testing.assert_allclose(layer(x), layer.out(o.reshape(2, 9, 16)), rtol=1e-5, atol=1e-5)


def test_embedding_picks_time_of_day_and_weekday_rows():
    model = build()
    x = make_inputs(batch=1)
    h = model.embed(jnp.asarray(x))
    assert h.shape == (1, 12, 5, model.model_dim)
    tod_rows = model.tod_embedding.embedding[...][(np.arange(12) + 5) % 24]  # [12, 4]
    np.testing.assert_allclose(h[0, :, 0, 4:8], tod_rows, rtol=1e-6)
    np.testing.assert_allclose(h[0, 0, 0, 8:12], model.dow_embedding.embedding[...][3], rtol=1e-6)
    np.testing.assert_allclose(h[0, :, :, 12:], model.adaptive_embedding[...], rtol=1e-6)


def test_diagnostics_on_request_only():
    model = build(temporal_attention="softmax", spatial_attention="eala")
    x = jnp.asarray(make_inputs())
    y, diag = model(x, return_diagnostics=True)
    np.testing.assert_allclose(y, model(x), rtol=1e-6)
    assert set(diag) == {"temporal_0", "spatial_0"}
    assert set(diag["temporal_0"]) == {"softmax_entropy"}
    eala = diag["spatial_0"]
    assert {
        "softmax_entropy",
        "eala_entropy",
        "estimated_entropy",
        "theta",
        "negative_fraction",
    } <= set(eala)
    for value in (eala["softmax_entropy"], eala["eala_entropy"], eala["estimated_entropy"]):
        assert 0.0 <= float(value) <= np.log(5) + 1e-5  # spatial attention over 5 nodes
    # Entropy equality: EALA's weights carry (about) the estimated entropy.
    assert abs(float(eala["eala_entropy"]) - float(eala["estimated_entropy"])) < 0.15


def test_bfloat16_compute_keeps_float32_params():
    model = build(dtype=jnp.bfloat16)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    reference = build()
    x = jnp.asarray(make_inputs())
    y = model(x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, reference(x), atol=0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(spatial_attention="flash"), "unknown attention 'flash'"),
        (dict(temporal_attention="Softmax"), "unknown attention 'Softmax'"),
        (dict(num_heads=3), "not divisible by num_heads=3"),
        (dict(num_nodes=0), "num_nodes must be a positive integer"),
    ],
)
def test_construction_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)


def test_input_shape_error_names_expected_shape():
    model = build()
    with pytest.raises(ValueError, match=r"expected x of shape \[B, 12, 5, 3\]"):
        model(jnp.zeros((2, 12, 6, 3)))
