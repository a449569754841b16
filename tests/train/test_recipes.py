"""Recipes per kind of data and the calendar choice, applied to a config once the data is known
(`resolve_for_data`, `prepare_data`): what is picked, what explicit settings keep, the seasonal
profile the windows then carry."""

import dataclasses

import numpy as np
import pytest

from eala_jax.data import SpatioTemporalSeries
from eala_jax.data.calendar import CalendarChoice
from eala_jax.data.synthetic import make_synthetic_counts, write_series_csv
from eala_jax.models import HistoricalAverage
from eala_jax.train import Config, DataConfig, ModelConfig, prepare_data
from eala_jax.train.recipes import RECIPES, pick_recipe, resolve_for_data


def _series(step_minutes, num_steps=400, zeros=0.0, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.uniform(1, 5, (num_steps, 3)).astype(np.float32)
    values[rng.random(values.shape) < zeros] = 0.0
    return SpatioTemporalSeries(
        name="t",
        values=values,
        steps_per_day=max(1, 1440 // step_minutes),
        start_time=np.datetime64("2024-01-01T00:00"),
        step_minutes=step_minutes,
    )


@pytest.mark.parametrize(
    ("step_minutes", "zeros", "expected"),
    [
        (5, 0.9, "sub_hourly"),
        (15, 0.0, "sub_hourly"),
        (60, 0.8, "hourly_counts"),
        (60, 0.05, "hourly"),
        (1440, 0.0, "daily"),
        (10080, 0.0, "weekly"),
    ],
)
def test_pick_recipe_by_step_and_zero_share(step_minutes, zeros, expected):
    recipe, why = pick_recipe(_series(step_minutes, zeros=zeros), 280)
    assert recipe.name == expected and f"{step_minutes // 1440 or step_minutes}" in why


def test_resolve_applies_the_recipe_and_keeps_explicit_calendar_widths():
    series = _series(60, num_steps=24 * 28, zeros=0.8)  # four weeks hourly: both calendars on
    config = Config(
        data=DataConfig(recipe="auto"),
        model=ModelConfig(input_embedding_dim=8, tod_embedding_dim=None, dow_embedding_dim=0),
    )
    resolved, notes = resolve_for_data(config, series, 24 * 20)
    recipe = RECIPES["hourly_counts"]
    assert (resolved.data.in_steps, resolved.data.out_steps) == (recipe.in_steps, recipe.out_steps)
    assert resolved.train.loss == recipe.loss
    assert resolved.model.seasonal_residual == recipe.seasonal_residual
    assert resolved.model.tod_embedding_dim == 8  # auto: on, at the input width
    assert resolved.model.dow_embedding_dim == 0  # explicit: kept although the data allows it
    assert notes[0].startswith("Recipe hourly_counts") and "set in the config" in notes[1]
    # No recipe: the config's own windows and loss stay; a daily step turns time of day off.
    plain = dataclasses.replace(config, data=DataConfig(in_steps=5, out_steps=3))
    resolved, notes = resolve_for_data(plain, _series(1440, num_steps=60), 40)
    assert (resolved.data.in_steps, resolved.data.out_steps) == (5, 3)
    assert resolved.model.tod_embedding_dim == 0 and len(notes) == 1


def test_resolve_takes_the_callers_calendar_choice():
    # prepare_data chooses the calendar once and passes it; the widths and the log follow it, not
    # a second look at the data (which would turn day of week on for these four weeks).
    series = _series(60, num_steps=24 * 28)
    config = Config(
        model=ModelConfig(input_embedding_dim=8, tod_embedding_dim=None, dow_embedding_dim=None)
    )
    given = CalendarChoice(time_of_day=True, day_of_week=False, reason="given by the caller")
    resolved, notes = resolve_for_data(config, series, 24 * 20, calendar=given)
    assert resolved.model.dow_embedding_dim == 0 and resolved.model.tod_embedding_dim == 8
    assert "given by the caller" in notes[-1]
    resolved, _ = resolve_for_data(config, series, 24 * 20)
    assert resolved.model.dow_embedding_dim == 8


def _counts_config(tmp_path, *, num_days: int) -> Config:
    """A generic-set config with the automatic recipe and calendar over synthetic hourly counts
    (4 sensors, `num_days` days) written to a CSV in `tmp_path`."""
    write_series_csv(make_synthetic_counts(num_nodes=4, num_days=num_days), tmp_path / "c.csv")
    return Config(
        data=DataConfig(
            name="generic",
            recipe="auto",
            options=(("path", str(tmp_path / "c.csv")), ("time_column", "time")),
        ),
        model=ModelConfig(tod_embedding_dim=None, dow_embedding_dim=None),
    )


def test_prepare_data_attaches_the_training_profile(tmp_path):
    config = _counts_config(tmp_path, num_days=21)
    series, splits, resolved, notes, average = prepare_data(config)
    assert resolved.data.in_steps == 24 and resolved.model.uses_profile
    # The profile is the historical average of the training steps at each step's slot, computed
    # here by hand from the raw training values (every slot occurs in 3 weeks x 0.7).
    b1 = splits.boundaries[0]
    tod, dow = series.time_of_day(), series.day_of_week()
    direct = HistoricalAverage.fit(series.values[:b1], tod[:b1], dow[:b1], 24)
    np.testing.assert_allclose(average.week, direct.week, rtol=1e-6, atol=1e-7)
    window = splits.test[5]
    s = splits.test.target_start(5)
    want = np.stack([direct.week[dow[t], tod[t]] for t in range(s, s + 12)])
    np.testing.assert_allclose(window["y_profile"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        window["x_profile"] * splits.scaler.std + splits.scaler.mean,
        np.stack([direct.week[dow[t], tod[t]] for t in range(s - 24, s)]),
        rtol=1e-4,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="profile must be finite"):
        splits.with_profile(np.zeros((3, 4)))


def test_profile_drops_weekday_slots_that_training_holds_once(tmp_path):
    # 12 days, 8.4 of them training: most weekdays occur on one training day, so day of week is
    # off and a weekday slot would be the training window's own target (Los-loop's case). The
    # profile must then be the time-of-day means, at training windows as at test windows.
    config = _counts_config(tmp_path, num_days=12)
    series, splits, resolved, notes, average = prepare_data(config)
    assert resolved.model.uses_profile and resolved.model.dow_embedding_dim == 0
    assert any("time-of-day means (no weekday slots)" in n for n in notes)
    b1 = splits.boundaries[0]
    tod, dow = series.time_of_day(), series.day_of_week()
    direct = HistoricalAverage.fit(series.values[:b1], tod[:b1], dow[:b1], 24)
    for source in (splits.train, splits.test):
        window, s = source[3], source.target_start(3)
        want = np.stack([direct.day[tod[t]] for t in range(s, s + 12)])
        np.testing.assert_allclose(window["y_profile"], want, rtol=1e-5, atol=1e-6)
    # The weekday slot of a training target is that target itself (what the model must not see).
    s = splits.train.target_start(3)
    slot_days = [((dow[:b1] == dow[t]) & (tod[:b1] == tod[t])).sum() for t in range(s, s + 12)]
    once = [t for t, days in zip(range(s, s + 12), slot_days, strict=True) if days == 1]
    assert once
    np.testing.assert_allclose(
        np.stack([direct.week[dow[t], tod[t]] for t in once]), series.values[once], rtol=1e-6
    )


def test_every_recipe_names_a_known_seasonal_residual_and_loss():
    # The residual field became a string; a recipe left with the old boolean stopped every
    # 5-minute generic run after loading ("config.seasonal_residual=False; choose one of ...").
    from eala_jax.models.config import SEASONAL_RESIDUALS
    from eala_jax.train.steps import LOSSES

    for recipe in RECIPES.values():
        assert recipe.seasonal_residual in SEASONAL_RESIDUALS, recipe.name
        assert recipe.loss in LOSSES, recipe.name
    with pytest.raises(ValueError, match="seasonal_residual"):
        dataclasses.replace(RECIPES["hourly"], seasonal_residual=False)
