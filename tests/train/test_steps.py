"""Loss, schedule, optimiser and the functional train step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from eala_jax.data import StandardScaler
from eala_jax.ops import EalaOptions
from eala_jax.train import (
    StepOptions,
    build_model,
    build_optimizer,
    learning_rate_schedule,
    loss_fn,
    train_step,
)
from tests.train.train_helpers import fixed_batch, tiny_config, with_model


class FixedModel:
    """Stands in for the model: returns a fixed z-scored prediction, checks the contract."""

    def __init__(self, scaled: np.ndarray):
        self.scaled = jnp.asarray(scaled, jnp.float32)

    def __call__(self, x, time_of_day, day_of_week, *, deterministic, rngs=None):
        assert time_of_day.dtype == day_of_week.dtype == jnp.int32 and x.ndim == 3
        return self.scaled


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_loss_is_the_masked_metric_of_the_inverse_scaled_prediction(loss):
    """loss_fn against NumPy float64: the prediction is put back in the data's units, missing
    targets are left out, and the sum is divided by the count it is given (the global batch's)."""
    rng = np.random.default_rng(0)
    scaled = rng.normal(size=(3, 4, 5))
    y = rng.normal(40.0, 8.0, size=(3, 4, 5))
    mask = rng.random((3, 4, 5)) > 0.3
    y_stored = np.where(mask, y, 0.0)  # 0 where missing, as the windows store it
    scaler = StandardScaler(mean=40.0, std=8.0)
    batch = {
        "x": jnp.zeros((3, 12, 5)),
        "time_of_day": jnp.zeros((3, 12), jnp.int32),
        "day_of_week": jnp.zeros((3, 12), jnp.int32),
        "y": jnp.asarray(y_stored, jnp.float32),
        "y_mask": jnp.asarray(mask),
    }
    err = np.abs(scaled * 8.0 + 40.0 - y_stored)
    per_entry = err if loss == "mae" else np.where(err <= 1.5, 0.5 * err**2, 1.5 * (err - 0.75))
    total = per_entry[mask].sum()
    for count in (mask.sum(), 2.5 * mask.sum()):  # its own count, or a larger global one
        value, pred = loss_fn(
            FixedModel(scaled), batch, scaler, count=jnp.float32(count), loss=loss, huber_delta=1.5
        )
        np.testing.assert_allclose(float(value), total / count, rtol=1e-5)
    np.testing.assert_allclose(pred, scaled * 8.0 + 40.0, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        loss_fn(FixedModel(scaled), batch, scaler, count=jnp.float32(1), loss="mse")
    with pytest.raises(ValueError, match="unknown loss 'mse'; choose one of mae, huber"):
        StepOptions(lambda _: 1e-3, loss="mse")


def test_multistep_schedule():
    schedule = learning_rate_schedule(1e-3, milestones=(2, 3), decay=0.1, steps_per_epoch=10)
    values = [float(schedule(s)) for s in (0, 19, 20, 29, 30, 100)]
    np.testing.assert_allclose(values, [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rtol=1e-6)


def test_schedule_and_optimizer_compare_by_value():
    """Equal settings give equal, equally hashed objects (so jax.jit's cache can match them);
    different settings do not."""
    make = lambda **kw: learning_rate_schedule(
        1e-3, **{"milestones": (2, 3), "decay": 0.1, "steps_per_epoch": 10, **kw}
    )
    assert make() == make() and hash(make()) == hash(make())
    assert make() != make(steps_per_epoch=11)
    tx = lambda **kw: build_optimizer(make(), **{"weight_decay": 3e-4, "max_grad_norm": 5.0, **kw})
    assert tx() == tx() and hash(tx()) == hash(tx())
    assert tx() != tx(optimizer="adamw")


def test_adam_l2_differs_from_adamw_and_clipping_bounds_the_step():
    params = {"w": jnp.array([1.0, -2.0])}
    updates = {}
    for name in ("adam", "adamw"):
        tx = build_optimizer(lambda _: 1e-1, optimizer=name, weight_decay=0.5, max_grad_norm=1.0)
        updates[name], _ = tx.update({"w": jnp.array([0.0, 0.0])}, tx.init(params), params)
    assert not np.allclose(updates["adam"]["w"], updates["adamw"]["w"])
    # Clipping (before the optimiser): a huge gradient and a unit-norm one give the same step.
    sgd_like = build_optimizer(lambda _: 1.0, optimizer="adamw", max_grad_norm=1.0)
    state = sgd_like.init(params)
    big, _ = sgd_like.update({"w": jnp.array([3e6, 4e6])}, state, params)
    unit, _ = sgd_like.update({"w": jnp.array([0.6, 0.8])}, state, params)
    np.testing.assert_allclose(big["w"], unit["w"], rtol=1e-5)
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'; choose one of adam, adamw"):
        build_optimizer(lambda _: 1.0, optimizer="sgd")


@pytest.mark.parametrize("variant", ["eala", "eala_flax_mha"])
def test_one_step_lowers_the_loss_on_a_fixed_batch(variant):
    batch, splits = fixed_batch()
    # EALA on both axes with the default estimator.
    cfg = with_model(
        tiny_config(),
        dropout=0.0,
        temporal_attention=EalaOptions(),
        spatial_attention=EalaOptions(),
        use_flax_mha=variant == "eala_flax_mha",
    )
    model = build_model(
        cfg, num_nodes=splits.num_nodes, steps_per_day=splits.steps_per_day, rngs=nnx.Rngs(0)
    )
    optimizer = nnx.Optimizer(model, build_optimizer(lambda _: 1e-3), wrt=nnx.Param)
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    count = jnp.sum(batch["y_mask"])

    @nnx.jit
    def loss_of(m):
        return loss_fn(m, batch, splits.scaler, count=count)[0]

    @nnx.jit
    def step(m, opt):
        options = StepOptions(lambda _: 1e-3)
        return train_step(m, opt, batch, splits.scaler, jax.random.PRNGKey(0), options=options)

    before = float(loss_of(model))
    measurements = step(model, optimizer)
    after = float(loss_of(model))
    assert float(measurements["loss"]) == pytest.approx(before, rel=1e-5)  # dropout 0: same loss
    assert after < before
    assert int(optimizer.step[...]) == 1
    assert np.isfinite(float(measurements["grad_norm"])) and float(measurements["grad_norm"]) > 0
    assert float(measurements["lr"]) == pytest.approx(1e-3)
    assert optax.global_norm(nnx.state(model, nnx.Param)) == pytest.approx(
        float(measurements["param_norm"]), rel=1e-6
    )


@pytest.mark.parametrize("residual", ["none", "additive", "multiplicative"])
def test_prediction_puts_the_seasonal_profile_back(residual):
    """A residual model's output is a deviation from the target-step profile: added in units of the
    scaler's std, or a log factor; without one it is z-scored values. The model sees the profile at
    the input steps and, z-scored, at the target steps."""
    from eala_jax.train.steps import _predict

    rng = np.random.default_rng(0)
    out = rng.standard_normal((2, 3, 4)).astype(np.float32)
    batch = {
        "x": rng.standard_normal((2, 5, 4)).astype(np.float32),
        "time_of_day": np.zeros((2, 5), np.int32),
        "day_of_week": np.zeros((2, 5), np.int32),
        "x_profile": rng.standard_normal((2, 5, 4)).astype(np.float32),
        "y_profile": rng.uniform(0, 3, (2, 3, 4)).astype(np.float32),
    }
    scaler = StandardScaler(mean=1.5, std=2.0)
    seen = {}

    class Fake:
        seasonal_residual = residual

        def __call__(self, x, tod, dow, *, deterministic, rngs, seasonal):
            seen["seasonal"] = seasonal
            return jnp.asarray(out)

    pred = np.asarray(_predict(Fake(), batch, scaler, deterministic=True), np.float64)
    profile, o = batch["y_profile"].astype(np.float64), out.astype(np.float64)
    want = {
        "none": o * 2.0 + 1.5,
        "additive": profile + o * 2.0,
        "multiplicative": profile * np.exp(o),
    }[residual]
    np.testing.assert_allclose(pred, want, rtol=1e-5)
    np.testing.assert_array_equal(seen["seasonal"][0], batch["x_profile"])
    np.testing.assert_allclose(seen["seasonal"][1], (profile - 1.5) / 2.0, rtol=1e-6)
