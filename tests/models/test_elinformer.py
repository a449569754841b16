"""ELinFormer: built from one ModelConfig, fed the typed batch contract; shapes for every
attention, options reaching the op, flax MultiHeadAttention with EALA, embeddings, dtypes,
errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eala_jax.models import ATTENTION_NAMES, ELinFormer, ModelConfig, SelfAttention
from eala_jax.models.elinformer import AttentionBlock
from eala_jax.ops import EalaOptions, SoftmaxOptions, attention_options
from tests.models.model_helpers import make_inputs, tiny_config


def build(num_nodes: int = 5, **changes) -> ELinFormer:
    return ELinFormer(
        tiny_config(**changes), num_nodes=num_nodes, steps_per_day=24, rngs=nnx.Rngs(0)
    )


def run(model: ELinFormer, inputs=None, **kwargs):
    x, tod, dow = make_inputs() if inputs is None else inputs
    kwargs.setdefault("deterministic", True)
    return model(jnp.asarray(x), jnp.asarray(tod), jnp.asarray(dow), **kwargs)


@pytest.mark.parametrize("attention", ATTENTION_NAMES)
def test_forward_shape_every_attention(attention):
    options = attention_options(attention)
    model = ELinFormer(
        tiny_config(temporal_attention=options, spatial_attention=options),
        num_nodes=5,
        steps_per_day=24,
        out_steps=6,
        rngs=nnx.Rngs(0),
    )
    y = run(model)
    assert y.shape == (2, 6, 5) and y.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(y)))
    # Training mode draws dropout masks from the given key: different keys, different outputs.
    a = run(model, deterministic=False, rngs=nnx.Rngs(dropout=1))
    b = run(model, deterministic=False, rngs=nnx.Rngs(dropout=2))
    assert a.shape == y.shape and not np.allclose(a, b)


def test_options_reach_the_op():
    """theta=0 (uniform weights) differs from theta="optimal", and equals uniform attention."""
    base = dict(temporal_attention=SoftmaxOptions())
    optimal = build(**base, spatial_attention=EalaOptions(estimator="gaussian"))
    theta_zero = build(**base, spatial_attention=EalaOptions(estimator="gaussian", theta=0.0))
    uniform = build(**base, spatial_attention=attention_options("uniform"))
    assert not np.allclose(run(optimal), run(theta_zero))
    np.testing.assert_allclose(run(theta_zero), run(uniform), rtol=1e-5, atol=1e-5)


def test_performer_projection_is_a_fixed_buffer():
    performer = attention_options("performer", {"num_features": 16})
    model = build(temporal_attention=performer, spatial_attention=performer)
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
    options = EalaOptions(estimator="cumulant3")
    common = dict(num_heads=2, feed_forward_dim=8, dropout=0.0, attention=options)
    flax_block = AttentionBlock(16, **common, use_flax_mha=True, rngs=nnx.Rngs(1))
    own_block = AttentionBlock(16, **common, rngs=nnx.Rngs(2))
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
    grads = nnx.grad(lambda m: jnp.mean(run(m) ** 2))(model)
    leaves = jax.tree.leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(
        float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(nnx.state(grads.spatial_layers))
    )


def test_softmax_layer_matches_dot_product_attention():
    layer = SelfAttention(16, num_heads=4, attention=SoftmaxOptions(), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 9, 16))
    split = lambda t: t.reshape(2, 9, 4, 4)
    o = jax.nn.dot_product_attention(
        split(layer.query(x)), split(layer.key(x)), split(layer.value(x))
    )
    np.testing.assert_allclose(layer(x), layer.out(o.reshape(2, 9, 16)), rtol=1e-5, atol=1e-5)


def test_embedding_picks_the_integer_calendar_rows():
    """Time-of-day and weekday rows come from the integer fields (up to the last slot of the
    day), the same for every node; the value and adaptive parts from x and the parameter."""
    model = build()
    x, _, _ = make_inputs(batch=2)
    time_of_day = np.array([np.arange(12) + 12, np.arange(12)[::-1] * 2 + 1], np.int32)  # to 23
    day_of_week = np.array([[6] * 12, [0] * 6 + [5] * 6], np.int32)
    h = model.embed(jnp.asarray(x), jnp.asarray(time_of_day), jnp.asarray(day_of_week))
    assert h.shape == (2, 12, 5, model.model_dim)
    tod_table = np.asarray(model.tod_embedding.embedding[...])
    dow_table = np.asarray(model.dow_embedding.embedding[...])
    for node in range(5):
        np.testing.assert_array_equal(h[:, :, node, 4:8], tod_table[time_of_day])
        np.testing.assert_array_equal(h[:, :, node, 8:12], dow_table[day_of_week])
    kernel = np.asarray(model.input_proj.kernel[...])[0]
    bias = np.asarray(model.input_proj.bias[...])
    np.testing.assert_allclose(h[..., :4], x[..., None] * kernel + bias, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(h[0, ..., 12:], model.adaptive_embedding[...])


def test_diagnostics_on_request_only():
    model = build(temporal_attention=SoftmaxOptions(), spatial_attention=EalaOptions())
    y, diag = run(model, return_diagnostics=True)
    np.testing.assert_allclose(y, run(model), rtol=1e-6)
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
    model = build(dtype="bfloat16")
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    y = run(model)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, run(build()), atol=0.1)


@pytest.mark.parametrize(
    "changes, error, message",
    [
        (dict(spatial_attention="softmax"), TypeError, "model.spatial_attention must be an"),
        (dict(temporal_attention={"name": "eala"}), TypeError, "model.temporal_attention must"),
        (dict(num_heads=3), ValueError, "not divisible by num_heads=3"),
        (dict(dtype="float16"), ValueError, "model.dtype='float16'; choose one of float32"),
    ],
)
def test_construction_errors(changes, error, message):
    with pytest.raises(error, match=message):
        build(**changes)


def test_construction_errors_outside_the_config():
    with pytest.raises(ValueError, match="num_nodes must be a positive integer"):
        build(num_nodes=0)
    with pytest.raises(TypeError, match="config must be a ModelConfig"):
        ELinFormer(dict(num_heads=2), num_nodes=5, steps_per_day=24, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "inputs, message",
    [
        # The former packing of value, time of day and weekday as floats in x[..., 0:3].
        (
            (np.zeros((2, 12, 5, 3)), np.zeros((2, 12)), np.zeros((2, 12))),
            r"x must be \[B, 12, 5\]",
        ),
        ((np.zeros((2, 12, 6)), np.zeros((2, 12)), np.zeros((2, 12))), r"x must be \[B, 12, 5\]"),
        (
            (np.zeros((2, 12, 5)), np.linspace(0, 1, 24).reshape(2, 12), np.zeros((2, 12), int)),
            "time_of_day must be integers of shape",
        ),
        (
            (np.zeros((2, 12, 5)), np.zeros((2, 12), int), np.zeros((2, 11), int)),
            r"day_of_week must be integers of shape \[B, 12\] = \(2, 12\)",
        ),
    ],
)
def test_inputs_outside_the_batch_contract_are_refused_by_name(inputs, message):
    with pytest.raises(ValueError, match=message):
        run(build(), tuple(np.asarray(a) for a in inputs))


def test_model_config_is_hashable_and_compares_by_value():
    a = tiny_config(spatial_attention=EalaOptions(estimator="cumulant3"))
    b = tiny_config(spatial_attention=EalaOptions(estimator="cumulant3"))
    assert a == b and hash(a) == hash(b)
    assert a != tiny_config() and a.model_dim == 16
    assert ModelConfig().model_dim == 152


def test_seasonal_embedding_projects_the_profile_and_auto_calendar_widths():
    """The profile channel (input steps per step, target steps per node) is its own projection,
    after the adaptive part; an auto (None) calendar width builds the input embedding's width; a
    missing profile is refused by name."""
    model = build(seasonal_embedding_dim=4, tod_embedding_dim=None, dow_embedding_dim=0)
    assert model.model_dim == 4 + 4 + 0 + 4 + 4 and model.dow_embedding is None
    x, tod, dow = make_inputs(batch=2)
    rng = np.random.default_rng(1)
    profile = rng.standard_normal(x.shape).astype(np.float32)
    target = rng.standard_normal(x.shape).astype(np.float32)  # out_steps = in_steps = 12
    h = model.embed(
        jnp.asarray(x), jnp.asarray(tod), jnp.asarray(dow), (jnp.asarray(profile), target)
    )
    kernel = np.asarray(model.seasonal_proj.kernel[...])[0]
    bias = np.asarray(model.seasonal_proj.bias[...])
    k2 = np.asarray(model.seasonal_target_proj.kernel[...], np.float64)
    b2 = np.asarray(model.seasonal_target_proj.bias[...])
    per_node = np.einsum("bhn,hs->bns", target, k2) + b2  # [B, N, S]
    want = profile[..., None] * kernel + bias + per_node[:, None]
    np.testing.assert_allclose(h[..., 12:], want, atol=1e-5)
    with pytest.raises(ValueError, match="pass seasonal="):
        model.embed(jnp.asarray(x), jnp.asarray(tod), jnp.asarray(dow))


def test_residual_head_starts_at_zero_and_is_trained():
    model = build(seasonal_residual="multiplicative")
    y = run(model)
    np.testing.assert_array_equal(y, np.zeros_like(y))  # a fresh model predicts the profile
    x, tod, dow = (jnp.asarray(a) for a in make_inputs())

    def loss(m):
        return jnp.sum(m(x, tod, dow, deterministic=True) - 1.0) ** 2

    grads = nnx.grad(loss)(model)
    assert float(jnp.abs(grads.output_proj.kernel[...]).max()) > 0


@pytest.mark.parametrize("use_flax_mha", [False, True])
@pytest.mark.parametrize("options", [SoftmaxOptions(), EalaOptions()], ids=["softmax", "eala"])
def test_block_attends_over_axis_1_for_every_group_index(options, use_flax_mha):
    # [B, L, G, D] (the spatial blocks' [B, N, T, D]) against each group as its own [B, L, D].
    block = AttentionBlock(
        8,
        attention=options,
        num_heads=2,
        feed_forward_dim=8,
        dropout=0.1,
        use_flax_mha=use_flax_mha,
        rngs=nnx.Rngs(0),
    )
    x = jax.random.normal(jax.random.key(1), (2, 5, 3, 8))
    grouped = block(x, deterministic=True, rngs=None)
    flat = jnp.swapaxes(x, 1, 2).reshape(6, 5, 8)
    per_group = block(flat, deterministic=True, rngs=None).reshape(2, 3, 5, 8)
    np.testing.assert_allclose(grouped, jnp.swapaxes(per_group, 1, 2), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="dropout stream"):
        block(x, deterministic=False, rngs=None)


def test_a_zero_adaptive_width_leaves_the_embedding_out():
    """`adaptive_embedding_dim=0` builds (it divided by zero in xavier's fan before) with no
    adaptive parameter and no zero-size one (the checkpoint writer refuses those); the model dim is
    the other widths and the forecast has the usual shape."""
    model = build(adaptive_embedding_dim=0)
    assert model.model_dim == 4 + 4 + 4 and model.adaptive_embedding is None
    sizes = [np.size(v) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param))]
    assert sizes and min(sizes) > 0
    x, tod, dow = make_inputs(batch=2)
    out = model(jnp.asarray(x), jnp.asarray(tod), jnp.asarray(dow), deterministic=True)
    assert out.shape == (2, 12, 5) and bool(jnp.all(jnp.isfinite(out)))
