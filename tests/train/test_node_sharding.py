"""One training step on a 2-D mesh ("data", "nodes") = 2 x 4 equals the same step on one device
(with dropout and 2 micro-batches), and `train.mesh_shape` is checked before any work.

EALA on the sharded (spatial) axis, softmax over the 12 steps (cheaper to compile; EALA on both
axes is checked in tests/models/test_elinformer_sharding.py); some targets missing. Plain SGD, as
in tests/train/test_sharding.py (Adam would blow float32 round-off of gradients that are zero in
exact arithmetic up to full-size steps). The adaptive embedding and its optimiser state must be
sharded over "nodes" (each device holding a quarter of the sensors), every other parameter
replicated.
"""

import dataclasses

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from eala_jax.data import StandardScaler
from eala_jax.ops import EalaOptions
from eala_jax.train import DataParallel, StepOptions, validate_config
from eala_jax.train.sharding import check_mesh_shape
from tests.models.model_helpers import make_inputs
from tests.train.train_helpers import TINY_MODEL, tiny_config

NODES, BATCH = 8, 4
SGD = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.05))
SGD_OPTIONS = StepOptions(optax.constant_schedule(0.05))
# Both steps of the equality test run 2 micro-batches (`train.microbatches`): each "data" device
# splits its own rows, and both draw the same dropout masks part by part.
MICRO_OPTIONS = StepOptions(optax.constant_schedule(0.05), microbatches=2)
EALA = EalaOptions(estimator="gaussian")


def batch_and_state():
    from eala_jax.models import ELinFormer

    x, tod, dow = make_inputs(batch=BATCH, nodes=NODES, seed=4)
    rng = np.random.default_rng(5)
    batch = {
        "x": x,
        "time_of_day": tod,
        "day_of_week": dow,
        "y": rng.normal(50.0, 10.0, (BATCH, 12, NODES)).astype(np.float32),
        "y_mask": rng.random((BATCH, 12, NODES)) > 0.2,
    }
    config = dataclasses.replace(TINY_MODEL, spatial_attention=EALA, dropout=0.1)
    model = ELinFormer(config, num_nodes=NODES, steps_per_day=24, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split((model, nnx.Optimizer(model, SGD, wrt=nnx.Param)))
    return batch, (graphdef, jax.tree.map(np.asarray, state))  # host copy: steps donate theirs


def one_step(dp: DataParallel, batch, state):
    scaler = dp.put_scaler(StandardScaler(mean=np.float32(50.0), std=np.float32(10.0)))
    state, measurements = dp.update(
        dp.put_state(state), dp.put_batch(batch), scaler, jax.random.key(3)
    )
    return state, float(measurements["loss"])


def test_one_step_on_a_node_sharded_mesh_equals_one_device():
    batch, (graphdef, state) = batch_and_state()
    # The reference on one device, under a 1 x 1 mesh: dropout draws its masks the way it does
    # under any mesh (`eala_jax.models.layers.dropout`), so both steps drop the same entries.
    single = DataParallel("jit", 1, graphdef=graphdef, options=MICRO_OPTIONS, mesh_shape=(1, 1))
    expected_state, expected_loss = one_step(single, batch, state)
    sharded = DataParallel("jit", 8, graphdef=graphdef, options=MICRO_OPTIONS, mesh_shape=(2, 4))
    new_state, loss = one_step(sharded, batch, state)
    embedding = new_state[0]["adaptive_embedding"][...]
    assert embedding.sharding.spec == jax.sharding.PartitionSpec(None, "nodes")
    assert embedding.addressable_shards[0].data.shape == (12, NODES // 4, 4)
    output_weights = new_state[0]["output_proj"]["kernel"][...]
    assert output_weights.sharding.is_fully_replicated
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    got, want = sharded.host_state(new_state), single.host_state(expected_state)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The step moved the parameters, so the comparison above is not of two initial states.
    initial = jax.tree.leaves(state[0]["adaptive_embedding"])[0]
    assert not np.allclose(got[0]["adaptive_embedding"][...], np.asarray(initial))


@pytest.mark.parametrize(
    ("shape", "kwargs", "message"),
    [
        ((2, 4, 1), {}, "two positive integers"),
        ((0, 8), {}, "two positive integers"),
        ((2, 2), {}, "must equal the device count 8"),
        ((2, 4), {"num_nodes": 6}, "6 sensors do not split over 4"),
        ((4, 2), {"batch_size": 6}, "batch_size=6 does not split over 4"),
    ],
)
def test_bad_mesh_shapes_are_refused(shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_mesh_shape(shape, 8, **kwargs)


def test_mesh_shape_is_validated_with_the_config():
    config = tiny_config(parallel="jit", mesh_shape=(2, 4))
    validate_config(config)
    with pytest.raises(ValueError, match="needs train.parallel='jit'"):
        validate_config(tiny_config(parallel="pmap", mesh_shape=(2, 4)))
    with pytest.raises(ValueError, match=r"train.mesh_shape \(each axis\) must be >= 1"):
        validate_config(tiny_config(parallel="jit", mesh_shape=(0, 8)))
    with pytest.raises(ValueError, match="mesh_shape"):
        DataParallel("pmap", 8, graphdef=None, options=SGD_OPTIONS, mesh_shape=(2, 4))
