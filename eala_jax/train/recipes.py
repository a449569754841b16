"""Recipes per kind of data: look-back, horizon, loss and the seasonal profile chosen from what the
data is (its step and, for hourly data, its share of zeros), and the calendar features chosen from
its step and training span. `resolve_for_data` applies both to a config once the series is loaded.

A config opts in with `data.recipe="auto"` (pick by the data) or a recipe's name; `""` (the
default) leaves the config's own fields. Calendar widths of None ("auto") follow
`eala_jax.data.calendar.choose_calendar`; explicit widths (0 = off) are kept. See
docs/training.md, "Recipes per kind of data".
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eala_jax.data.calendar import CalendarChoice, choose_calendar
from eala_jax.data.series import SpatioTemporalSeries
from eala_jax.models.config import SEASONAL_RESIDUALS
from eala_jax.train.config import Config
from eala_jax.train.steps import LOSSES

__all__ = ["RECIPES", "Recipe", "pick_recipe", "resolve_for_data"]

#: Share of zeros among the valid training values above which hourly data counts as sparse counts.
SPARSE_ZEROS = 0.3


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The data-dependent part of a config (the fields a recipe sets)."""

    name: str
    kind: str  # what data it is meant for, for the log and docs
    in_steps: int
    out_steps: int
    loss: str
    huber_delta: float
    seasonal_embedding_dim: int
    seasonal_residual: str  # "none", "additive" or "multiplicative"

    def __post_init__(self) -> None:
        # Checked when the table is built, so a stale value fails at import, not after loading.
        if self.seasonal_residual not in SEASONAL_RESIDUALS:
            raise ValueError(
                f"recipe {self.name!r}: seasonal_residual={self.seasonal_residual!r}; choose one "
                f"of {', '.join(SEASONAL_RESIDUALS)}"
            )
        if self.loss not in LOSSES:
            raise ValueError(
                f"recipe {self.name!r}: loss={self.loss!r}; choose one of {', '.join(LOSSES)}"
            )


RECIPES = {
    r.name: r
    for r in (
        # The Los-loop / SZ-taxi reference recipe: an hour of 5-minute steps in, an hour out, no
        # seasonal profile. A week of 5-minute data (the usual length) trains on its first five
        # days, so a time-of-day profile is a mean over those weekdays that holds each training
        # target itself: on a synthetic week the model with it lost to the last value on test
        # (MAE 4.09 against 1.65; 1.60 without the profile).
        Recipe(
            "sub_hourly", "speeds or flows at steps under an hour", 12, 12, "mae", 1.0, 0, "none"
        ),
        # A day in, half a day out; the model predicts a factor on the training split's seasonal
        # profile (it starts from the historical average; a slot with no traffic stays 0), with a
        # Huber loss whose quadratic core keeps the mean (MAE alone pulls sparse counts to 0, the
        # median, and loses in RMSE).
        Recipe(
            "hourly_counts", "hourly counts, many zeros", 24, 12, "huber", 1.0, 8, "multiplicative"
        ),
        Recipe("hourly", "hourly (to sub-daily) measurements", 24, 12, "mae", 1.0, 8, "additive"),
        # Four weeks in, a week out; gaps are NaN steps (missing), the profile is per weekday.
        Recipe("daily", "daily values, possibly with gaps", 28, 7, "mae", 1.0, 8, "additive"),
        Recipe("weekly", "weekly values", 26, 4, "mae", 1.0, 8, "additive"),
    )
}


def pick_recipe(series: SpatioTemporalSeries, train_steps: int) -> tuple[Recipe, str]:
    """The recipe for ``series`` by its step (and, hourly, the zero share of its training steps
    ``[0, train_steps)``), and why."""
    step = series.step_minutes
    if step < 60:
        return RECIPES["sub_hourly"], f"{step}-min steps"
    if step < 1440:
        train = series.values[:train_steps]
        valid = train[np.isfinite(train)]
        zeros = float((valid == 0).mean()) if valid.size else 0.0
        name = "hourly_counts" if zeros >= SPARSE_ZEROS else "hourly"
        return RECIPES[name], (
            f"{step}-min steps, {100 * zeros:.0f} % zeros in training "
            f"({'>=' if zeros >= SPARSE_ZEROS else '<'} {100 * SPARSE_ZEROS:.0f} %)"
        )
    if step < 10080:
        return RECIPES["daily"], f"{step // 1440}-day steps"
    return RECIPES["weekly"], f"{step // 1440}-day steps"


def resolve_for_data(
    config: Config,
    series: SpatioTemporalSeries,
    train_steps: int,
    *,
    calendar: CalendarChoice | None = None,
) -> tuple[Config, list[str]]:
    """``config`` with its recipe (``data.recipe``) and automatic calendar widths applied for
    ``series`` (training steps ``[0, train_steps)``), and log lines saying what was picked and why.
    ``calendar``: ``choose_calendar(series, train_steps)`` where the caller has it already.
    """
    d, m = config.data, config.model
    notes = []
    if d.recipe:
        if d.recipe == "auto":
            recipe, why = pick_recipe(series, train_steps)
            why = f"picked for {series.name!r}: {why}"
        else:
            recipe, why = RECIPES[d.recipe], "set in the config"
        config = dataclasses.replace(
            config,
            data=dataclasses.replace(d, in_steps=recipe.in_steps, out_steps=recipe.out_steps),
            model=dataclasses.replace(
                m,
                seasonal_embedding_dim=recipe.seasonal_embedding_dim,
                seasonal_residual=recipe.seasonal_residual,
            ),
            train=dataclasses.replace(
                config.train,
                loss=recipe.loss,
                huber_delta=recipe.huber_delta,
                plot_horizon=min(config.train.plot_horizon, recipe.out_steps),
            ),
        )
        notes.append(
            f"Recipe {recipe.name} ({recipe.kind}; {why}): in_steps {recipe.in_steps}, out_steps "
            f"{recipe.out_steps}, loss {recipe.loss}"
            + (f" (delta {recipe.huber_delta:g})" if recipe.loss == "huber" else "")
            + f", seasonal profile input width {recipe.seasonal_embedding_dim}, residual target "
            f"{recipe.seasonal_residual}."
        )
    m = config.model
    choice = choose_calendar(series, train_steps) if calendar is None else calendar
    widths = {}
    parts = []
    for key, label, use in (
        ("tod_embedding_dim", "time of day", choice.time_of_day),
        ("dow_embedding_dim", "day of week", choice.day_of_week),
    ):
        width = getattr(m, key)
        if width is None:
            widths[key] = m.input_embedding_dim if use else 0
            parts.append(f"{label} width {widths[key]} (auto)")
        else:
            parts.append(f"{label} width {width} (set in the config)")
    if widths:
        config = dataclasses.replace(config, model=dataclasses.replace(m, **widths))
    notes.append(f"Calendar: {', '.join(parts)}; from the data: {choice.reason}.")
    spatial = config.model.spatial_attention
    if spatial.name == "eala_local" and spatial.spatial_keys == "auto":
        # Resolved here, so the run's saved config says which table its model holds.
        source = "graph" if series.adjacency is not None else "embedding"
        config = dataclasses.replace(
            config,
            model=dataclasses.replace(
                config.model, spatial_attention=spatial.replace(spatial_keys=source)
            ),
        )
        notes.append(
            f"Spatial eala_local: each node's {spatial.num_local} local keys from the "
            + ("data set's graph." if source == "graph" else "adaptive embedding (no graph).")
        )
    return config, notes
