"""ELinFormer at long look-backs: patch tokens against a NumPy reference, no T×T array in the
temporal path with EALA (forward and gradient), instance normalisation's equivariance, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eala_jax.models import ELinFormer
from eala_jax.models.elinformer import num_tokens, patch_ends
from eala_jax.ops import EalaOptions, SoftmaxOptions
from tests.models.model_helpers import make_inputs, tiny_config

NODES = 3


def build(in_steps: int, out_steps: int = 5, **changes) -> ELinFormer:
    return ELinFormer(
        tiny_config(**changes),
        num_nodes=NODES,
        steps_per_day=24,
        in_steps=in_steps,
        out_steps=out_steps,
        rngs=nnx.Rngs(0),
    )


def _inputs(steps: int, seed: int):
    x, tod, dow = make_inputs(batch=2, steps=steps, nodes=NODES, seed=seed)
    dow = np.random.default_rng(seed).integers(0, 7, dow.shape).astype(np.int32)
    return jnp.asarray(x), jnp.asarray(tod), jnp.asarray(dow)


def test_patch_tokens_match_a_numpy_reference(in_steps=23, patch_len=5, patch_stride=3):
    """Token l holds steps (end_l - P, end_l], the last patch ends at the last input step, the
    calendar is that of each patch's last step and the value part is the linear map of the patch."""
    model = build(in_steps, patch_len=patch_len, patch_stride=patch_stride)
    x, tod, dow = _inputs(in_steps, seed=in_steps)
    count = 1 + (in_steps - patch_len) // patch_stride
    ends = np.array([in_steps - 1 - patch_stride * (count - 1 - i) for i in range(count)])
    assert num_tokens(9, patch_len=9, patch_stride=2) == 1 and num_tokens(9) == 9
    assert (
        model.num_tokens
        == count
        == num_tokens(in_steps, patch_len=patch_len, patch_stride=patch_stride)
    )
    np.testing.assert_array_equal(
        patch_ends(in_steps, patch_len=patch_len, patch_stride=patch_stride), ends
    )
    h = np.asarray(model.embed(x, tod, dow))
    assert h.shape == (2, count, NODES, model.model_dim)
    patches = np.stack(
        [np.asarray(x, np.float64)[:, e - patch_len + 1 : e + 1, :] for e in ends], axis=1
    )  # [B, L, P, N]
    kernel = np.asarray(model.input_proj.kernel[...], np.float64)  # [P, E]
    value = np.einsum("blpn,pe->blne", patches, kernel) + np.asarray(model.input_proj.bias[...])
    np.testing.assert_allclose(h[..., :4], value, rtol=1e-5, atol=1e-5)
    tod_rows = np.asarray(model.tod_embedding.embedding[...])[np.asarray(tod)[:, ends]]
    dow_rows = np.asarray(model.dow_embedding.embedding[...])[np.asarray(dow)[:, ends]]
    np.testing.assert_array_equal(
        h[..., 4:8], np.broadcast_to(tod_rows[:, :, None], h[..., 4:8].shape)
    )
    np.testing.assert_array_equal(
        h[..., 8:12], np.broadcast_to(dow_rows[:, :, None], h[..., 8:12].shape)
    )
    assert model.adaptive_embedding.shape == (count, NODES, 4)
    assert model.output_proj.kernel.shape == (count * model.model_dim, 5)


def run_model(model, x, tod, dow):
    return model(x, tod, dow, deterministic=True)


def _shapes(jaxpr) -> list[tuple[int, ...]]:
    """Shapes of every value a jaxpr (and the jaxprs nested in it) creates."""
    shapes = []
    for eqn in jaxpr.eqns:
        shapes += [tuple(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape")]
        for param in eqn.params.values():
            for inner in param if isinstance(param, (list, tuple)) else (param,):
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    shapes += _shapes(inner)
    return shapes


@pytest.mark.parametrize("temporal, quadratic", [(EalaOptions(), False), (SoftmaxOptions(), True)])
def test_no_steps_by_steps_array_with_eala_in_time(temporal, quadratic):
    """At T = 40 > head dim (8), EALA's temporal layers take the linear route: no array of the
    forward or the gradient has two axes of length T (softmax's T×T scores are found, so the check
    can fail). N = 3 nodes keep the spatial arrays apart."""
    steps = 40
    model = build(steps, temporal_attention=temporal, spatial_attention=EalaOptions())
    graphdef, params = nnx.split(model)
    x, tod, dow = _inputs(steps, seed=1)

    def loss(params):
        return jnp.sum(nnx.merge(graphdef, params)(x, tod, dow, deterministic=True) ** 2)

    jaxpr = jax.make_jaxpr(jax.value_and_grad(loss))(params).jaxpr
    square = [s for s in _shapes(jaxpr) if sum(d == steps for d in s) >= 2]
    assert bool(square) == quadratic, square[:5]


def test_instance_norm_makes_the_forecast_equivariant_to_each_nodes_scale_and_shift():
    """With instance normalisation f(a·x + b) = a·f(x) + b for a per-node a > 0 and b (up to the
    normaliser's epsilon); without it the forecast is not."""
    x, tod, dow = _inputs(16, seed=3)
    scale = jnp.asarray([3.0, 0.5, 7.0])
    shift = jnp.asarray([-20.0, 4.0, 100.0])
    model = build(16, instance_norm="mean_std", patch_len=4, patch_stride=2)
    for instance_norm in ("mean_std", "last_std", "none"):
        model.instance_norm = instance_norm  # same parameters, same compiled ops
        y = run_model(model, x, tod, dow)
        y_moved = run_model(model, x * scale + shift, tod, dow)
        close = np.allclose(y_moved, y * scale + shift, rtol=1e-3, atol=1e-3)
        assert close == (instance_norm != "none"), instance_norm


def test_last_value_norm_makes_the_forecast_equivariant_to_a_constant_per_node():
    """With "last" f(x + b) = f(x) + b for a per-node b (not a scale: no std); the head is the
    random one of a RevIN model, so the check sees the network, not a zero head."""
    x, tod, dow = _inputs(16, seed=4)
    shift = jnp.asarray([-20.0, 4.0, 100.0])
    model = build(16, instance_norm="mean_std", patch_len=4, patch_stride=2)
    assert float(jnp.abs(model.output_proj.kernel[...]).max()) > 0
    for instance_norm in ("last", "none"):
        model.instance_norm = instance_norm
        y = run_model(model, x, tod, dow)
        moved = run_model(model, x + shift, tod, dow)
        close = np.allclose(moved, y + shift, rtol=1e-4, atol=1e-3)
        assert close == (instance_norm == "last"), instance_norm
    model.instance_norm = "last"
    scaled = run_model(model, x * 3.0, tod, dow)
    assert not np.allclose(scaled, run_model(model, x, tod, dow) * 3.0, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("instance_norm", ["last", "last_std"])
def test_a_zero_head_forecasts_the_last_input_value(instance_norm):
    """A fresh "last" / "last_std" model has a zero head (kernel and bias) and forecasts each
    node's last input value at every horizon step (NumPy reference); "mean_std" does not start at
    zero, and with its head zeroed it forecasts the input mean instead."""
    x, tod, dow = _inputs(16, seed=5)
    x = x * 5.0 + 30.0  # far from the zero a head of random weights would add
    model = build(16, instance_norm=instance_norm, patch_len=4, patch_stride=2)
    for param in (model.output_proj.kernel, model.output_proj.bias):
        np.testing.assert_array_equal(np.asarray(param[...]), 0.0)
    last = np.broadcast_to(np.asarray(x)[:, -1:, :], (2, 5, NODES))
    np.testing.assert_allclose(np.asarray(run_model(model, x, tod, dow)), last, atol=1e-5)
    revin = build(16, instance_norm="mean_std", patch_len=4, patch_stride=2)
    assert float(jnp.abs(revin.output_proj.kernel[...]).max()) > 0
    revin.output_proj.kernel.value = jnp.zeros_like(revin.output_proj.kernel.value)
    mean = np.broadcast_to(np.asarray(x).mean(axis=1, keepdims=True), (2, 5, NODES))
    np.testing.assert_allclose(np.asarray(run_model(revin, x, tod, dow)), mean, atol=1e-4)


@pytest.mark.parametrize("value", ["median", "revin", 1, None])
def test_a_bad_instance_norm_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"model.instance_norm=.*choose one of none, mean_std"):
        tiny_config(instance_norm=value)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(patch_len=13), r"model.patch_len=13 is longer than the input window in_steps=12"),
        (dict(patch_len=0), r"model.patch_len must be >= 1 \(an integer\), got 0"),
        (dict(patch_len=2, patch_stride=0), r"model.patch_stride must be >= 1 \(an integer\)"),
    ],
)
def test_patch_settings_that_do_not_fit_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        build(12, **changes)
