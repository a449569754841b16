"""Gradient accumulation (`train.microbatches`): the step over micro-batches equals the step over
the whole batch and needs less memory, and bad values are refused before any work. (On a
node-sharded 2 x 4 mesh: tests/train/test_node_sharding.py.)

Dropout off (micro-batches draw their own masks); plain SGD, as in tests/train/test_sharding.py.
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
from eala_jax.train.sharding import check_microbatches
from eala_jax.train.steps import microbatch_split
from tests.models.model_helpers import make_inputs
from tests.train.train_helpers import TINY_MODEL, tiny_config

SGD = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.05))
SCALER = StandardScaler(mean=np.float32(50.0), std=np.float32(10.0))


def make_batch(batch: int, nodes: int) -> dict[str, np.ndarray]:
    x, tod, dow = make_inputs(batch=batch, nodes=nodes, seed=6)
    rng = np.random.default_rng(7)
    return {
        "x": x,
        "time_of_day": tod,
        "day_of_week": dow,
        "y": rng.normal(50.0, 10.0, (batch, 12, nodes)).astype(np.float32),
        "y_mask": rng.random((batch, 12, nodes)) > 0.3,  # unequal valid counts per micro-batch
    }


def split_state(nodes: int, **model: object):
    from eala_jax.models import ELinFormer

    config = dataclasses.replace(
        TINY_MODEL, spatial_attention=EalaOptions(estimator="gaussian"), dropout=0.0, **model
    )
    model = ELinFormer(config, num_nodes=nodes, steps_per_day=24, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split((model, nnx.Optimizer(model, SGD, wrt=nnx.Param)))
    return graphdef, jax.tree.map(np.asarray, state)


def options(parts: int) -> StepOptions:
    return StepOptions(optax.constant_schedule(0.05), microbatches=parts)


def assert_same_step(got, want):
    (got_state, got_loss), (want_state, want_loss) = got, want
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(got_state), jax.tree.leaves(want_state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_microbatch_split_takes_every_parts_th_row():
    batch = {"a": np.arange(12).reshape(6, 2), "b": np.arange(6)}
    parts = microbatch_split(batch, 3)
    np.testing.assert_array_equal(parts["b"], [[0, 3], [1, 4], [2, 5]])
    np.testing.assert_array_equal(parts["a"][1], batch["a"][[1, 4]])
    with pytest.raises(ValueError, match="microbatches=4 does not divide the batch's 6 rows"):
        microbatch_split(batch, 4)


def test_accumulated_step_equals_the_whole_batch_step_in_less_memory():
    batch = make_batch(batch=16, nodes=64)
    graphdef, state = split_state(nodes=64)
    key = jax.random.key(3)
    results, temp = {}, {}
    for parts in (1, 4):
        dp = DataParallel("none", 1, graphdef=graphdef, options=options(parts))
        args = (dp.put_state(state), dp.put_batch(batch), dp.put_scaler(SCALER), key)
        compiled = dp.lower_update(*args).compile()
        temp[parts] = compiled.memory_analysis().temp_size_in_bytes
        new_state, measurements = compiled(*args)
        results[parts] = (dp.host_state(new_state), float(measurements["loss"]))
    assert_same_step(results[4], results[1])
    moved = results[1][0][0]["output_proj"]["kernel"][...]
    assert not np.allclose(moved, state[0]["output_proj"]["kernel"][...])
    assert temp[4] < 0.5 * temp[1], temp


def test_bad_microbatches_are_refused_before_any_work():
    with pytest.raises(ValueError, match="train.microbatches must be a positive integer"):
        options(0)
    with pytest.raises(ValueError, match="microbatches=3 does not divide train.batch_size=8"):
        validate_config(tiny_config(microbatches=3))
    with pytest.raises(ValueError, match=r"train.microbatches must be >= 1"):
        validate_config(tiny_config(microbatches=0))
    validate_config(tiny_config(microbatches=4))
    config = tiny_config(parallel="jit", batch_size=16, microbatches=4).train
    with pytest.raises(ValueError, match="does not divide the 2 rows each device holds"):
        check_microbatches(config, 8)
    check_microbatches(dataclasses.replace(config, mesh_shape=(2, 4)), 8)  # 8 rows a device
