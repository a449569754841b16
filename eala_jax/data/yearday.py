"""The time of year of a step as an integer: the day of the year counted from March 1
(``year_day``), with the same integer arithmetic in NumPy and in a traced JAX graph, so that the
host and the forecaster read the same day-of-year table row. O(steps).

Counting from March 1 puts the leap day last (day 365, only in leap years); every other date has
the same number in every year (March 1 = 0, December 31 = 305, February 28 = 364).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["YEAR_DAYS", "epoch_days", "year_day"]

#: Rows of a day-of-year table (`year_day` is in ``[0, YEAR_DAYS)``).
YEAR_DAYS = 366
_DAYS_0000_03_01_TO_1970 = 719468  # days from 0000-03-01 to 1970-01-01 (proleptic Gregorian)


def year_day(days: Any, xp: Any = np) -> Any:
    """Day of the year from March 1, in ``[0, 366)``, of ``days`` since 1970-01-01 (integers,
    any shape; ``xp``: ``numpy`` or ``jax.numpy``). H. Hinnant's ``civil_from_days`` (its era
    and year-of-era steps), integers only: exact for every date from year 0 on."""
    z = days + _DAYS_0000_03_01_TO_1970
    era = xp.floor_divide(z, 146097)
    day_of_era = z - era * 146097  # [0, 146096]
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365  # [0, 399]
    return day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)


def epoch_days(start_time: np.datetime64 | str, step_minutes: int, num_steps: int) -> np.ndarray:
    """int64 ``[num_steps]``: the day (since 1970-01-01) of each step from ``start_time``."""
    start = np.datetime64(start_time, "m")
    times = start + np.arange(num_steps, dtype=np.int64) * np.timedelta64(int(step_minutes), "m")
    return times.astype("datetime64[D]").astype(np.int64)
