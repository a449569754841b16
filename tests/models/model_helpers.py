"""Tiny model sizes and inputs shared by the model tests (imported as a plain module)."""

import numpy as np

from eala_jax.models import ModelConfig

TINY = dict(
    input_embedding_dim=4,
    tod_embedding_dim=4,
    dow_embedding_dim=4,
    adaptive_embedding_dim=4,
    feed_forward_dim=8,
    num_heads=2,
    num_temporal_layers=1,
    num_spatial_layers=1,
)


def tiny_config(**changes) -> ModelConfig:
    return ModelConfig(**{**TINY, **changes})


def make_inputs(
    batch: int = 2, steps: int = 12, nodes: int = 5, steps_per_day: int = 24, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of the data contract: x `[B, T, N]` standard-normal values, time_of_day `[B, T]`
    consecutive slots from 5 (wrapping at `steps_per_day`), day_of_week `[B, T]` 3 (int32)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, nodes)).astype(np.float32)
    time_of_day = np.broadcast_to((np.arange(steps) + 5) % steps_per_day, (batch, steps))
    day_of_week = np.full((batch, steps), 3)
    return x, time_of_day.astype(np.int32), day_of_week.astype(np.int32)
