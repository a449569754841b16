"""The data of a config, and the model built for it: `prepare_data` loads the data set, applies the
recipe and the automatic calendar widths, cuts the splits and fits the training split's seasonal
table; `build_model` builds the ELinFormer of the resolved config; `data_line` is the log line on
the data. Used by the training loop and by `eala_jax.forecast` (which rebuilds a run's model)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from flax import nnx

from eala_jax.data import ForecastSplits
from eala_jax.models import ELinFormer
from eala_jax.models.baselines import HistoricalAverage, choose_average, seasonal_profile
from eala_jax.train.config import Config
from eala_jax.train.recipes import resolve_for_data

__all__ = ["PreparedData", "build_model", "data_line", "prepare_data"]


class PreparedData(NamedTuple):
    """The data of a config, and the config resolved for it (`prepare_data`)."""

    series: Any
    splits: ForecastSplits  # with the seasonal profile attached when the model reads it
    config: Config  # recipe and automatic calendar widths applied (`resolve_for_data`)
    notes: list[str]  # log lines: which recipe and calendar features, and why
    average: HistoricalAverage  # the training split's seasonal table (baseline and profile)


def prepare_data(config: Config) -> PreparedData:
    """Load the data set of `config.data`, check node count and steps per day, apply the recipe
    and the automatic calendar widths for it, cut the splits, fit the training split's seasonal
    table (`choose_average`: weekday means, and a day-of-year term for daily data spanning two
    years where it lowers the validation MAE; shared by the historical-average baseline and the
    model's seasonal profile) and attach the profile when the model reads it."""
    from eala_jax.data import load_dataset, make_forecast_splits
    from eala_jax.data.calendar import choose_calendar
    from eala_jax.data.windows import split_boundaries

    d = config.data
    series = load_dataset(d.name, data_dir=d.data_dir, **dict(d.options))
    if d.num_nodes is not None and d.num_nodes != series.num_nodes:
        raise ValueError(
            f"data.num_nodes={d.num_nodes} but data set {d.name!r} has {series.num_nodes} nodes"
        )
    if d.steps_per_day is not None and d.steps_per_day != series.steps_per_day:
        raise ValueError(
            f"data.steps_per_day={d.steps_per_day} but data set {d.name!r} has "
            f"{series.steps_per_day} steps per day"
        )
    split = series.default_split if d.split is None else tuple(d.split)
    train_steps = split_boundaries(series.num_steps, split)[0]
    calendar = choose_calendar(series, train_steps)  # the model's widths and the profile's slots
    config, notes = resolve_for_data(config, series, train_steps, calendar=calendar)
    d = config.data
    splits = make_forecast_splits(series, in_steps=d.in_steps, out_steps=d.out_steps, split=split)
    # Weekday means, with a day-of-year term for daily data over two years where validation
    # prefers it (`choose_average`).
    average, line = choose_average(splits)
    notes = [*notes, line] if line else notes
    if config.model.uses_profile:
        # Weekday slots only where day of week is learnable (each weekday on >= 2 training days):
        # with one day a weekday slot is the training window's own target (`seasonal_profile`).
        weekly = calendar.day_of_week
        splits = splits.with_profile(seasonal_profile(average, splits.train, weekly=weekly))
        notes = [
            *notes,
            "Seasonal profile: the training split's "
            + ("time-of-day x weekday means" if weekly else "time-of-day means (no weekday slots)")
            + f": {calendar.reason[calendar.reason.index('day of week') :]}.",
        ]
    return PreparedData(series, splits, config, notes, average)


def build_model(
    config: Config,
    *,
    num_nodes: int,
    steps_per_day: int,
    rngs: nnx.Rngs,
    adjacency: np.ndarray | None = None,
) -> ELinFormer:
    """The ELinFormer of `config.model` for `config.data`'s windows and a data set with
    `num_nodes` and `steps_per_day`; `adjacency [N, N]`: the data set's graph, read only by a
    spatial "eala_local" attention that takes its local keys from it."""
    return ELinFormer(
        config.model,
        num_nodes=num_nodes,
        steps_per_day=steps_per_day,
        in_steps=config.data.in_steps,
        out_steps=config.data.out_steps,
        adjacency=adjacency,
        rngs=rngs,
    )


def data_line(config: Config, series: Any, splits: ForecastSplits) -> str:
    """One log line on the data set: name, nodes, steps, windows per split, what is missing, and
    the sensors a split has no valid target for (they count in none of its metrics)."""
    dead = [
        f"{name} {len(nodes)} of {splits.num_nodes} ({series.describe_nodes(nodes, limit=5)})"
        for name in ("train", "val", "test")
        if len(nodes := splits[name].nodes_without_target())
    ]
    return (
        f"Data {config.data.name}: {splits.num_nodes} nodes x {series.values.shape[0]} steps "
        f"({splits.steps_per_day} per day); windows train {len(splits.train)}, val "
        f"{len(splits.val)}, test {len(splits.test)}. Missing: {series.missing_summary()}"
        + (
            f". Sensors with no valid target in a split (left out of its metrics): "
            f"{'; '.join(dead)}"
            if dead
            else ""
        )
    )
