"""The forecaster's traced computation: history in data units (NaN = missing) and the minute of
its first step -> the next ``out_steps`` in data units. Shared by `Forecaster` (jitted, parameters
as arguments) and `export` (parameters closed over, symbolic batch), so both compute the same.

The calendar comes from the timestamps inside the graph: ``time_of_day = (minute of the day) //
step_minutes`` and ``day_of_week = (days since 1970-01-01 + 3) % 7``, as
`eala_jax.data.series.time_features`. Inputs are z-scored with the training scaler (bit for bit
as the training windows' ``x``, `zscore`) and 0 where missing; the seasonal profile is a gather
from the training split's table ``[7, steps_per_day, N]`` (plus its day-of-year term ``[366, N]``
where the run chose one). The model output goes through
`eala_jax.train.steps._predict`, the function the training loop's evaluation uses. Cost: one model
forward, O(B·(T_in + T_out)·N) besides.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from eala_jax.data.scaler import StandardScaler
from eala_jax.data.yearday import year_day
from eala_jax.train.steps import _predict

__all__ = ["GraphSpec", "calendar", "forecast_graph", "zscore"]

MINUTES_PER_DAY = 24 * 60


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    """Static settings of the graph (hashable)."""

    in_steps: int
    out_steps: int
    step_minutes: int
    uses_profile: bool
    year_term: bool = False  # the profile adds the day-of-year table's row of each step


def calendar(
    start_minutes: jax.Array, num_steps: int, step_minutes: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(time_of_day, day_of_week, day_of_year)`` int32 ``[B, num_steps]`` of the steps from
    ``start_minutes [B]`` (int32 minutes since 1970-01-01T00:00); the day of the year counts from
    March 1 (`eala_jax.data.yearday.year_day`)."""
    minutes = start_minutes[:, None] + jnp.arange(num_steps, dtype=jnp.int32) * step_minutes
    days = jnp.floor_divide(minutes, MINUTES_PER_DAY)
    time_of_day = (minutes - days * MINUTES_PER_DAY) // step_minutes
    day_of_year = year_day(days, jnp)
    return (
        time_of_day.astype(jnp.int32),
        ((days + 3) % 7).astype(jnp.int32),
        day_of_year.astype(jnp.int32),
    )


def zscore(x: jax.Array, scaler: StandardScaler) -> jax.Array:
    """``(x - mean) / std`` rounded as NumPy rounds it (the training windows' z-scores are NumPy's):
    XLA turns a division by a broadcast scalar into a product with its reciprocal, which differs
    in the last bit for some values; an optimisation barrier on the divisor keeps the division."""
    divisor = jax.lax.optimization_barrier(jnp.broadcast_to(scaler.std, x.shape).astype(x.dtype))
    return (x - scaler.mean) / divisor


def forecast_graph(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    table: jax.Array,
    year: jax.Array,
    mean: jax.Array,
    std: jax.Array,
    history: jax.Array,
    start_minutes: jax.Array,
    *,
    spec: GraphSpec,
) -> jax.Array:
    """history: float32 ``[B, in_steps, N]`` in data units, NaN = missing; start_minutes: int32
    ``[B]``, the minute of ``history[:, 0]``. Returns float32 ``[B, out_steps, N]`` in data units.
    ``table``: float32 ``[7, steps_per_day, N]`` (unused without a profile); ``year``: float32
    ``[366, N]``, the day-of-year term added to it (unused unless ``spec.year_term``); ``mean``,
    ``std``: float32 scalars of the training scaler."""
    model = nnx.merge(graphdef, params)
    scaler = StandardScaler(mean=mean, std=std)
    time_of_day, day_of_week, day_of_year = calendar(
        start_minutes, spec.in_steps + spec.out_steps, spec.step_minutes
    )
    valid = ~jnp.isnan(history)
    batch = {
        "x": jnp.where(valid, zscore(jnp.where(valid, history, 0.0), scaler), 0.0),
        "time_of_day": time_of_day[:, : spec.in_steps],
        "day_of_week": day_of_week[:, : spec.in_steps],
    }
    if spec.uses_profile:
        profile = jnp.asarray(table)[day_of_week, time_of_day]  # [B, T_in + T_out, N]
        if spec.year_term:  # the float32 sum HistoricalAverage.predict computes
            profile = profile + jnp.asarray(year)[day_of_year]
        batch["x_profile"] = zscore(profile[:, : spec.in_steps], scaler)
        batch["y_profile"] = profile[:, spec.in_steps :]
    return _predict(model, batch, scaler, deterministic=True)
