"""Tiny model sizes and inputs shared by the model tests (imported as a plain module)."""

import numpy as np

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


def make_inputs(
    batch: int = 2, steps: int = 12, nodes: int = 5, steps_per_day: int = 24, seed: int = 0
) -> np.ndarray:
    """x [B, T, N, 3]: standard-normal values, consecutive time-of-day slots, weekday 3."""
    rng = np.random.default_rng(seed)
    x = np.zeros((batch, steps, nodes, 3), np.float32)
    x[..., 0] = rng.standard_normal((batch, steps, nodes))
    x[..., 1] = ((np.arange(steps) + 5) % steps_per_day / steps_per_day)[None, :, None]
    x[..., 2] = 3
    return x
