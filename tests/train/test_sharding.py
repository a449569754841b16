"""One step on 8 devices equals the same step on 1 device, for the jit-mesh and the pmap paths.

The steps use plain SGD: the key projections' biases get a gradient that is zero in exact arithmetic
(attention is invariant to a per-query constant shift of the scores), and Adam would blow its
float32 round-off up to full-size steps of random sign, which no two reduction orders share.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from train_helpers import fixed_batch, tiny_config, with_model

from eala_jax.train import DataParallel, Scale, build_model, check_batch_divisible
from eala_jax.train.sharding import resolve_device_count
from eala_jax.train.steps import make_eval_fn, make_update_fn


def run_steps(mode: str, num_devices: int, *, dropout: float, steps: int = 2):
    batch, splits = fixed_batch(size=8)
    cfg = with_model(tiny_config(), dropout=dropout)
    model = build_model(
        cfg, num_nodes=splits.num_nodes, steps_per_day=splits.steps_per_day, rngs=nnx.Rngs(0)
    )
    schedule = lambda _: 0.05
    optimizer = nnx.Optimizer(
        model, optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(schedule)), wrt=nnx.Param
    )
    graphdef, state = nnx.split((model, optimizer))
    dp = DataParallel(
        mode,
        num_devices,
        eval_fn=make_eval_fn(graphdef),
        update_fn_factory=lambda axis: make_update_fn(graphdef, schedule=schedule, axis_name=axis),
    )
    scale = Scale(jnp.float32(splits.scaler.mean), jnp.float32(splits.scaler.std))
    # Missing targets spread unevenly over the devices: the loss must still be the global masked
    # mean.
    batch["y_mask"][:3, :, :2] = False
    state = dp.put_state(state)
    losses = []
    for _ in range(steps):
        state, m = dp.update(state, dp.put_batch(batch), scale, jax.random.PRNGKey(3))
        losses.append(float(m["loss"]))
    sums, pred = dp.evaluate(state, dp.put_batch(batch), scale)
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
    (JAX's partitionable threefry draws the same bits whatever the sharding)."""
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


def test_batch_not_divisible_by_devices():
    with pytest.raises(
        ValueError, match="train.batch_size=12 is not divisible by the device count 8"
    ):
        check_batch_divisible(12, 8)
    check_batch_divisible(16, 8)
    with pytest.raises(ValueError, match="train.num_devices=9 but 8 local device"):
        resolve_device_count(9)
    assert resolve_device_count(None) == 8 and resolve_device_count(None, "none") == 1
