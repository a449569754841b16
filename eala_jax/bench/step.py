"""A config's training step on a synthetic batch, for timing it."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from eala_jax.data import StandardScaler
from eala_jax.train import (
    Config,
    StepOptions,
    build_model,
    build_optimizer,
    learning_rate_schedule,
    update_step,
)


def config_step_and_args(
    config: Config, num_nodes: int, batch: int, *, steps_per_day: int
) -> tuple:
    """`(update, args)`: the jit-able training step of `config`'s model on a synthetic batch of
    `config.data`'s window lengths, for `eala_jax.bench.timing.measure(update, *args)`."""
    in_steps, out_steps = config.data.in_steps, config.data.out_steps
    model = build_model(config, num_nodes=num_nodes, steps_per_day=steps_per_day, rngs=nnx.Rngs(0))
    schedule = learning_rate_schedule(1e-3, milestones=(20, 30), decay=0.1, steps_per_epoch=100)
    optimizer = nnx.Optimizer(
        model, build_optimizer(schedule, weight_decay=3e-4, max_grad_norm=5.0), wrt=nnx.Param
    )
    graphdef, state = nnx.split((model, optimizer))
    update = functools.partial(update_step, graphdef=graphdef, options=StepOptions(schedule))
    rng = np.random.default_rng(0)
    batch_arrays = {  # the batch contract (docs/data.md)
        "x": jnp.asarray(rng.normal(size=(batch, in_steps, num_nodes)), jnp.float32),
        "time_of_day": jnp.asarray(rng.integers(0, steps_per_day, (batch, in_steps)), jnp.int32),
        "day_of_week": jnp.asarray(rng.integers(0, 7, (batch, in_steps)), jnp.int32),
        "y": jnp.asarray(rng.normal(50, 10, (batch, out_steps, num_nodes)), jnp.float32),
        "y_mask": jnp.ones((batch, out_steps, num_nodes), bool),
    }
    scaler = StandardScaler(mean=np.float32(50.0), std=np.float32(10.0))
    return update, (state, batch_arrays, scaler, jax.random.key(0))
