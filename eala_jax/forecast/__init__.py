"""Forecast with a trained run: `Forecaster.load(workdir)`, `predict`, `backtest`, split-conformal
intervals, the baseline guard, and `export` for serving without eala_jax (docs/forecast.md)."""

from eala_jax.forecast.forecaster import Backtest, BaselineWarning, Forecast, Forecaster
from eala_jax.train.guard import BaselineGuard
from eala_jax.train.intervals import DEFAULT_LEVELS, ConformalIntervals, conformal_intervals
from eala_jax.train.runinfo import ForecastInputError, RunInfo, WorkdirError

__all__ = [
    "DEFAULT_LEVELS",
    "Backtest",
    "BaselineGuard",
    "BaselineWarning",
    "ConformalIntervals",
    "Forecast",
    "ForecastInputError",
    "Forecaster",
    "RunInfo",
    "WorkdirError",
    "conformal_intervals",
]
