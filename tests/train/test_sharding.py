"""One step on 8 devices equals the same step on 1 device, for the jit-mesh and the pmap paths;
equal runs share their compiled steps through jax.jit's own cache.

The steps use plain SGD: the key projections' biases get a gradient that is zero in exact arithmetic
(attention is invariant to a per-query constant shift of the scores), and Adam would blow its
float32 round-off up to full-size steps of random sign, which no two reduction orders share.
"""

import logging

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from eala_jax.train import (
    DataParallel,
    StepOptions,
    build_model,
    build_optimizer,
    check_batch_divisible,
    learning_rate_schedule,
)
from eala_jax.train.sharding import resolve_device_count
from tests.train.train_helpers import fixed_batch, tiny_config, with_model

SGD = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.05))
SGD_OPTIONS = StepOptions(optax.constant_schedule(0.05))


def run_steps(mode: str, num_devices: int, *, dropout: float, steps: int = 2):
    batch, splits = fixed_batch(size=8)
    cfg = with_model(tiny_config(), dropout=dropout)
    model = build_model(
        cfg, num_nodes=splits.num_nodes, steps_per_day=splits.steps_per_day, rngs=nnx.Rngs(0)
    )
    graphdef, state = nnx.split((model, nnx.Optimizer(model, SGD, wrt=nnx.Param)))
    dp = DataParallel(mode, num_devices, graphdef=graphdef, options=SGD_OPTIONS)
    scaler = dp.put_scaler(splits.scaler)
    # Missing targets spread unevenly over the devices: the loss must still be the global masked
    # mean.
    batch["y_mask"][:3, :, :2] = False
    state = dp.put_state(state)
    losses = []
    for _ in range(steps):
        state, m = dp.update(state, dp.put_batch(batch), scaler, jax.random.PRNGKey(3))
        losses.append(float(m["loss"]))
    sums, pred = dp.evaluate(state, dp.put_batch(batch), scaler)
    return dp.host_state(state), losses, sums, pred


@pytest.fixture(scope="module")
def single_device():
    return {dropout: run_steps("none", 1, dropout=dropout) for dropout in (0.0, 0.1)}


def assert_same(a, b):
    state_a, losses_a, sums_a, pred_a = a
    state_b, losses_b, sums_b, pred_b = b
    np.testing.assert_allclose(losses_a, losses_b, rtol=1e-5)
    for x, y in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred_a, pred_b, rtol=1e-5, atol=1e-5)
    for key in sums_a:
        np.testing.assert_allclose(sums_a[key], sums_b[key], rtol=1e-5)


def test_eight_devices_are_available():
    assert jax.local_device_count() == 8


def test_jit_mesh_eight_devices_equal_one(single_device):
    """Batch sharded on the "data" axis, params replicated; with dropout, whose masks match too
    (the mask is a hash of each entry's global index, whatever the sharding)."""
    assert_same(run_steps("jit", 8, dropout=0.1), single_device[0.1])


def test_pmap_eight_devices_equal_one(single_device):
    """pmap with psum of gradients and counts; dropout 0 (pmap draws per-device masks)."""
    assert_same(run_steps("pmap", 8, dropout=0.0), single_device[0.0])


def test_steps_actually_change_the_parameters(single_device):
    before = run_steps("none", 1, dropout=0.0, steps=0)[0]
    after = single_device[0.0][0]
    assert any(
        not np.allclose(x, y)
        for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=False)
    )


def test_an_equal_run_reuses_the_compiled_step(caplog):
    """Two runs built apart from equal configs (new model, optimiser and DataParallel objects, as
    a resume in the same process builds them) compile the update step once: the reuse comes from
    jax.jit's own cache, since every static argument compares by value."""
    batch, splits = fixed_batch(size=8)

    def one_step():
        cfg = with_model(tiny_config(), feed_forward_dim=12)  # a shape no other test compiles
        model = build_model(
            cfg, num_nodes=splits.num_nodes, steps_per_day=splits.steps_per_day, rngs=nnx.Rngs(0)
        )
        schedule = learning_rate_schedule(1e-3, milestones=(1,), decay=0.1, steps_per_epoch=4)
        tx = build_optimizer(schedule, weight_decay=3e-4, max_grad_norm=5.0)
        graphdef, state = nnx.split((model, nnx.Optimizer(model, tx, wrt=nnx.Param)))
        dp = DataParallel("jit", 8, graphdef=graphdef, options=StepOptions(schedule))
        state, m = dp.update(
            dp.put_state(state),
            dp.put_batch(batch),
            dp.put_scaler(splits.scaler),
            jax.random.key(0),
        )
        return float(m["loss"])

    def compilations() -> list[str]:  # jax.log_compiles() logs "Compiling <name> ..." for each
        return [r.getMessage()[:40] for r in caplog.records if "Compiling" in r.getMessage()]

    caplog.set_level(logging.WARNING)
    with jax.log_compiles():
        first = one_step()
        compiled_first = compilations()
        caplog.clear()
        second = one_step()
        compiled_second = compilations()
    assert any("update_step" in line for line in compiled_first), compiled_first
    assert compiled_second == [], compiled_second
    assert first == second


def test_batch_not_divisible_by_devices():
    with pytest.raises(
        ValueError, match="train.batch_size=12 is not divisible by the device count 8"
    ):
        check_batch_divisible(12, 8)
    check_batch_divisible(16, 8)
    with pytest.raises(ValueError, match="train.num_devices=9 but 8 local device"):
        resolve_device_count(9)
    assert resolve_device_count(None) == 8 and resolve_device_count(None, "none") == 1
