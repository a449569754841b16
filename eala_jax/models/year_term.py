"""The smoothed day-of-year term of the historical average: per node, a few Fourier harmonics of
the time of year fitted by least squares to what the weekday (and time-of-day) means leave, kept
as a table over the days of the year (``fit_year_term``). Used for daily data whose training split
spans at least two years (``year_term_applies``), where a weekday-only mean misses the seasons;
whether a run uses it is chosen on validation (``eala_jax.models.baselines.choose_average``).
"""

from __future__ import annotations

import numpy as np

from eala_jax.data.yearday import YEAR_DAYS

__all__ = [
    "MIN_GAIN",
    "MIN_YEARS",
    "YEAR_HARMONICS",
    "fit_year_term",
    "year_features",
    "year_term_applies",
]

#: Harmonics of the year in the term: periods of 12, 6 and 4 months.
YEAR_HARMONICS = 3
#: The training split must span this many years for the term to be tried.
MIN_YEARS = 2
#: The term is kept only where it lowers the historical average's validation MAE by this share:
#: within it, validation cannot tell the two apart, and the weekday means have fewer parameters
#: (exchange_rate, whose dates are nominal: 2.1459 against 2.1464, 0.02 %, and 0.16 % worse on
#: test).
MIN_GAIN = 0.01
#: Days of a year for the harmonics' angle (the leap day, day 365, sits just before day 0).
_YEAR_LENGTH = 365.25
#: A node's term is fitted only where its valid training days fall in every one of these parts of
#: the year (else it is 0: a harmonic fitted to half a year extrapolates wildly).
_YEAR_PARTS = 12


def year_term_applies(*, step_minutes: int, steps_per_day: int, train_steps: int) -> bool:
    """Daily data (one step a day, steps shorter than a week) whose training split spans at least
    `MIN_YEARS` years."""
    return (
        steps_per_day == 1
        and step_minutes < 7 * 1440
        and train_steps * step_minutes >= MIN_YEARS * 365 * 1440
    )


def year_features(day: np.ndarray, harmonics: int) -> np.ndarray:
    """float64 ``[..., 2·harmonics]``: ``cos(k·θ), sin(k·θ)`` for ``k = 1..harmonics``, ``θ = 2π·day
    / 365.25``, of integer days of the year ``day`` (``eala_jax.data.yearday.year_day``)."""
    theta = 2 * np.pi * np.asarray(day, np.float64)[..., None] / _YEAR_LENGTH
    k = np.arange(1, harmonics + 1, dtype=np.float64)
    return np.concatenate([np.cos(k * theta), np.sin(k * theta)], axis=-1)


def fit_year_term(residual: np.ndarray, day: np.ndarray, *, harmonics: int) -> np.ndarray:
    """float64 ``[366, N]``: per node, the least-squares fit of ``residual [T, N]`` (NaN =
    missing) by the harmonics of its days of the year ``day [T]`` (no constant: the weekday means
    keep the level), read at every day of the year. 0 for a node whose valid steps miss a twelfth
    of the year. O(T·N·harmonics²)."""
    residual = np.asarray(residual, np.float64)
    day = np.asarray(day, np.int64)
    if residual.ndim != 2 or day.shape != residual.shape[:1]:
        raise ValueError(
            f"residual must be [T, N] and day [T], got {residual.shape} and {day.shape}"
        )
    if harmonics < 1:
        raise ValueError(f"harmonics must be >= 1, got {harmonics}")
    valid = np.isfinite(residual)
    features = year_features(day, harmonics)  # [T, F]
    w = valid.astype(np.float64)
    gram = np.einsum("tn,tf,tg->nfg", w, features, features)  # [N, F, F]
    rhs = np.einsum("tn,tf->nf", np.where(valid, residual, 0.0), features)  # [N, F]
    parts = np.zeros((_YEAR_PARTS, residual.shape[1]), bool)
    np.logical_or.at(parts, day * _YEAR_PARTS // YEAR_DAYS, valid)
    fitted = parts.all(axis=0)
    coef = np.zeros_like(rhs)
    if fitted.any():
        coef[fitted] = np.linalg.solve(gram[fitted], rhs[fitted][..., None])[..., 0]
    return year_features(np.arange(YEAR_DAYS), harmonics) @ coef.T
