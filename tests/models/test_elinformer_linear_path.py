"""ELinFormer's linear look-back path and head dropout (`ModelConfig.linear_path`,
`ModelConfig.head_dropout`): shapes, off = the model as before, the path against a NumPy float64
reference of the map, dropout only in training, bad values refused by name."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eala_jax.models import ELinFormer
from tests.models.model_helpers import make_inputs, tiny_config

NODES = 3


def build(in_steps: int, out_steps: int, seed: int = 0, **changes) -> ELinFormer:
    return ELinFormer(
        tiny_config(patch_len=4, patch_stride=2, **changes),
        num_nodes=NODES,
        steps_per_day=24,
        in_steps=in_steps,
        out_steps=out_steps,
        rngs=nnx.Rngs(seed),
    )


def _inputs(steps: int, seed: int):
    x, tod, dow = make_inputs(batch=2, steps=steps, nodes=NODES, seed=seed)
    return jnp.asarray(x * 4.0 + 10.0), jnp.asarray(tod), jnp.asarray(dow)


def _params(model: ELinFormer) -> dict[str, np.ndarray]:
    return {
        "/".join(map(str, path)): np.asarray(value)
        for path, value in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }


@pytest.mark.parametrize("in_steps, out_steps", [(16, 5), (9, 30), (40, 1)])
def test_linear_path_maps_every_input_length_to_the_horizon(in_steps, out_steps):
    model = build(in_steps, out_steps, linear_path=True, instance_norm="mean_std")
    assert model.linear_path.kernel.shape == (in_steps, out_steps)
    assert model.linear_path.bias.shape == (out_steps,)
    x, tod, dow = _inputs(in_steps, seed=in_steps)
    out = model(x, tod, dow, deterministic=True)
    assert out.shape == (2, out_steps, NODES) and out.dtype == jnp.float32


def test_off_is_the_model_as_before_and_on_starts_at_the_same_forecast():
    """Off (the default): no new parameter, so a checkpoint of an earlier model restores into it.
    On: the same random draws for every other parameter, and the path starts at zero, so a fresh
    model forecasts what the model without it does; a non-zero path changes the forecast."""
    x, tod, dow = _inputs(16, seed=1)
    off = build(16, 5, instance_norm="mean_std")
    assert tiny_config().linear_path is False and tiny_config().head_dropout == 0.0
    assert off.linear_path is None
    on = build(16, 5, instance_norm="mean_std", linear_path=True)
    off_params, on_params = _params(off), _params(on)
    added = sorted(set(on_params) - set(off_params))
    assert added == ["linear_path/bias", "linear_path/kernel"]
    for key, value in off_params.items():
        np.testing.assert_array_equal(on_params[key], value, err_msg=key)
    np.testing.assert_array_equal(on_params["linear_path/kernel"], 0.0)
    expected = off(x, tod, dow, deterministic=True)
    np.testing.assert_array_equal(on(x, tod, dow, deterministic=True), expected)
    on.linear_path.bias.value = jnp.full((5,), 0.5)
    assert not np.allclose(on(x, tod, dow, deterministic=True), expected, atol=1e-3)


@pytest.mark.parametrize("instance_norm", ["none", "mean_std", "last", "last_std"])
def test_linear_path_alone_matches_a_numpy_reference(instance_norm, in_steps=16, out_steps=7):
    """With the transformer head zeroed the forecast is the map alone: normalise each window and
    node, `y[:, n] = x[:, n] @ W + b` with one `W [T_in, T_out]` for every node, map back."""
    model = build(in_steps, out_steps, instance_norm=instance_norm, linear_path=True)
    rng = np.random.default_rng(7)
    kernel = rng.standard_normal((in_steps, out_steps)) / np.sqrt(in_steps)
    bias = rng.standard_normal(out_steps)
    model.linear_path.kernel.value = jnp.asarray(kernel, jnp.float32)
    model.linear_path.bias.value = jnp.asarray(bias, jnp.float32)
    for param in (model.output_proj.kernel, model.output_proj.bias):
        param.value = jnp.zeros_like(param.value)
    x, tod, dow = _inputs(in_steps, seed=2)
    x64 = np.asarray(x, np.float64)  # [B, T_in, N]
    centre = x64[:, -1:] if instance_norm.startswith("last") else x64.mean(axis=1, keepdims=True)
    spread = np.sqrt(x64.var(axis=1, keepdims=True) + 1e-5)
    if instance_norm == "none":
        centre, spread = np.zeros_like(centre), np.ones_like(spread)
    elif instance_norm == "last":
        spread = np.ones_like(spread)
    normalised = (x64 - centre) / spread
    expected = np.einsum("btn,th->bhn", normalised, kernel) + bias[None, :, None]
    expected = expected * spread + centre
    got = np.asarray(model(x, tod, dow, deterministic=True), np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_head_dropout_acts_in_training_only():
    x, tod, dow = _inputs(16, seed=3)
    model = build(16, 5, instance_norm="mean_std", head_dropout=0.5, dropout=0.0)
    plain = build(16, 5, instance_norm="mean_std", dropout=0.0)
    evaluated = model(x, tod, dow, deterministic=True)
    np.testing.assert_array_equal(evaluated, plain(x, tod, dow, deterministic=True))
    trained = model(x, tod, dow, deterministic=False, rngs=nnx.Rngs(dropout=1))
    no_drop = plain(x, tod, dow, deterministic=False, rngs=nnx.Rngs(dropout=1))
    np.testing.assert_array_equal(no_drop, evaluated)  # dropout 0 everywhere: training = eval
    assert not np.allclose(trained, evaluated, atol=1e-3)
    with pytest.raises(ValueError, match="needs rngs with a dropout stream"):
        model(x, tod, dow, deterministic=False)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(linear_path="yes"), r"model.linear_path must be True or False, got str 'yes'"),
        (dict(linear_path=1), r"model.linear_path must be True or False, got int 1"),
        (
            dict(head_dropout=1.0),
            r"model.head_dropout must be in \[0, 1\) \(a finite number\), got 1.0",
        ),
        (
            dict(head_dropout=-0.1),
            r"model.head_dropout must be in \[0, 1\) \(a finite number\), got -0.1",
        ),
        (
            dict(head_dropout="0.2"),
            r"model.head_dropout must be in \[0, 1\) \(a finite number\), got '0.2'",
        ),
    ],
)
def test_bad_head_options_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**changes)


def test_head_options_are_keyword_only():
    from eala_jax.models import ModelConfig

    fields = {f.name: f for f in ModelConfig.__dataclass_fields__.values()}
    assert fields["linear_path"].kw_only and fields["head_dropout"].kw_only
    positional = [f for f in fields.values() if not f.kw_only]
    assert positional[-1].name == "instance_norm"  # the positional fields are those of before
