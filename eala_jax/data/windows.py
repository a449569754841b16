"""Forecast windows and chronological splits.

A window is identified by its first target step ``s``: inputs are steps ``[s - in_steps, s)``,
targets ``[s, s + out_steps)``. The time axis is cut at ``b1 = round(T * train)`` and
``b2 = b1 + round(T * val)``; a window belongs to the split that holds **all of its target steps**:

- train: ``in_steps <= s`` and ``s + out_steps <= b1``,
- val:   ``b1 <= s`` and ``s + out_steps <= b2``,
- test:  ``b2 <= s`` and ``s + out_steps <= b2 + round(T * test)`` (``T`` when the fractions sum to
  1).

Inputs of the first val/test windows reach back across the cut: that is history known at forecast
time, not leakage. No train window sees a val or test step, and the scaler is fitted on steps
``[0, b1)`` only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eala_jax.data.scaler import StandardScaler
from eala_jax.data.series import SpatioTemporalSeries, Split, check_split
from eala_jax.data.yearday import epoch_days, year_day

SPLIT_NAMES = ("train", "val", "test")


class WindowSource:
    """Random-access source of forecast windows (grain ``RandomAccessDataSource`` protocol).

    ``source[i]`` is one window, a dict of fresh numpy arrays (the batch contract; batches stack
    them on a leading batch axis):

    - ``"x"``: float32 ``[in_steps, N]``, the z-scored input values, 0 where missing;
    - ``"x_mask"``: bool ``[in_steps, N]``, True where the input value was observed;
    - ``"time_of_day"``: int32 ``[in_steps]``, step of the day in ``[0, steps_per_day)``;
    - ``"day_of_week"``: int32 ``[in_steps]``, 0 = Monday .. 6;
    - ``"y"``: float32 ``[out_steps, N]``, the target in the data's own units, 0 where missing;
    - ``"y_mask"``: bool ``[out_steps, N]``, True where the target is valid;
    - ``"y_time_of_day"``, ``"y_day_of_week"``: int32 ``[out_steps]``, the targets' calendar;
    - with a seasonal profile attached (``ForecastSplits.with_profile``) also ``"x_profile"``
      float32 ``[in_steps, N]``, the profile at the input steps z-scored like ``x``, and
      ``"y_profile"`` float32 ``[out_steps, N]``, the profile at the target steps in the data's
      units.

    O((in_steps + out_steps)·N) per window (slices of the series' arrays, copied).
    """

    def __init__(
        self,
        *,
        name: str,
        series_name: str,
        scaled: np.ndarray,
        target: np.ndarray,
        valid: np.ndarray,
        time_of_day: np.ndarray,
        day_of_week: np.ndarray,
        first_target: int,
        num_windows: int,
        in_steps: int,
        out_steps: int,
        profile: np.ndarray | None = None,
        scaled_profile: np.ndarray | None = None,
        day_of_year: np.ndarray | None = None,
    ) -> None:
        self.name = name
        self.series_name = series_name
        self._scaled = scaled
        self._target = target
        self._valid = valid
        self._time_of_day = time_of_day
        self._day_of_week = day_of_week
        self.first_target = first_target
        self.num_windows = num_windows
        self.in_steps = in_steps
        self.out_steps = out_steps
        self._profile = profile
        self._scaled_profile = scaled_profile
        self._day_of_year = day_of_year

    @property
    def calendar(self) -> tuple[np.ndarray, np.ndarray]:
        """``(time_of_day, day_of_week)`` of every step of the series, int32 ``[T]`` each."""
        return self._time_of_day, self._day_of_week

    @property
    def day_of_year(self) -> np.ndarray:
        """Day of the year from March 1 (`eala_jax.data.yearday.year_day`) of every step of the
        series, int64 ``[T]`` (for the historical average's day-of-year term)."""
        if self._day_of_year is None:
            raise ValueError(
                f"{self!r} was built without day_of_year= (make_forecast_splits sets it)"
            )
        return self._day_of_year

    def history(self, starts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Values known before each forecast: float64 ``[B, K, N]``, the series at steps
        ``starts[b] + offsets[k]`` in the data's units, NaN where missing or before step 0.

        ``starts`` are first target steps (``target_start``), ``offsets`` negative integers: only
        steps before the targets are read (ValueError otherwise). O(B·K·N).
        """
        offsets = np.asarray(offsets, np.int64)
        if offsets.size and offsets.max() >= 0:
            raise ValueError(
                f"history offsets must be negative (before the targets), got {offsets}"
            )
        steps = np.asarray(starts, np.int64)[:, None] + offsets[None, :]
        inside = steps >= 0
        safe = np.where(inside, steps, 0)
        values = np.where(self._valid[safe], self._target[safe], np.nan).astype(np.float64)
        return np.where(inside[..., None], values, np.nan)

    def __len__(self) -> int:
        return self.num_windows

    def target_start(self, index: int) -> int:
        """Series step of the first target of window ``index``."""
        if not 0 <= index < self.num_windows:
            raise IndexError(
                f"window index {index} out of range for {self.num_windows} {self.name} windows"
            )
        return self.first_target + int(index)

    def nodes_without_target(self) -> np.ndarray:
        """Indices of the nodes with no valid target step in any window of this split (they count
        in none of its metrics), int ``[K]``. O(steps · N)."""
        last = self.first_target + self.num_windows - 1 + self.out_steps
        return np.flatnonzero(~self._valid[self.first_target : last].any(axis=0))

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        s = self.target_start(int(index))
        inputs = slice(s - self.in_steps, s)
        targets = slice(s, s + self.out_steps)
        window = {
            "x": self._scaled[inputs].copy(),
            "x_mask": self._valid[inputs].copy(),
            "time_of_day": self._time_of_day[inputs].copy(),
            "day_of_week": self._day_of_week[inputs].copy(),
            "y": self._target[targets].copy(),
            "y_mask": self._valid[targets].copy(),
            "y_time_of_day": self._time_of_day[targets].copy(),
            "y_day_of_week": self._day_of_week[targets].copy(),
        }
        if self._profile is not None:
            window["x_profile"] = self._scaled_profile[inputs].copy()
            window["y_profile"] = self._profile[targets].copy()
        return window

    def __repr__(self) -> str:
        return (
            f"WindowSource({self.series_name}/{self.name}, {self.num_windows} windows, first "
            f"target step {self.first_target}, in_steps={self.in_steps}, "
            f"out_steps={self.out_steps})"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class ForecastSplits:
    """Train / val / test window sources over one series, with the training-split scaler."""

    train: WindowSource
    val: WindowSource
    test: WindowSource
    scaler: StandardScaler
    num_nodes: int
    steps_per_day: int
    in_steps: int
    out_steps: int
    boundaries: tuple[
        int, int, int
    ]  # (b1, b2, end): train steps [0, b1), val [b1, b2), test [b2, end)
    series_name: str = ""
    step_minutes: int = 0  # length of a step; 0 = a day over steps_per_day (sub-daily steps)

    def __post_init__(self) -> None:
        if not self.step_minutes:
            object.__setattr__(self, "step_minutes", 24 * 60 // self.steps_per_day)

    def __getitem__(self, split: str) -> WindowSource:
        if split not in SPLIT_NAMES:
            raise KeyError(f"unknown split {split!r}; expected one of {SPLIT_NAMES}")
        return getattr(self, split)

    def with_profile(self, profile: np.ndarray) -> ForecastSplits:
        """The same splits whose windows also carry a seasonal profile (``x_profile``,
        ``y_profile``, see ``WindowSource``).

        ``profile``: float ``[T, N]``, finite, in the data's units, one row per series step (e.g.
        the training split's historical average at each step's calendar slot,
        ``eala_jax.models.baselines.seasonal_profile``). It must come from training data only.
        """
        profile = np.asarray(profile, np.float32)
        expected = (len(self.train.calendar[0]), self.num_nodes)
        if profile.shape != expected or not np.isfinite(profile).all():
            raise ValueError(
                f"profile must be finite float [T, N] = {expected}, got shape {profile.shape}"
            )
        scaled = self.scaler.transform(profile).astype(np.float32)

        def attach(source: WindowSource) -> WindowSource:
            copy = WindowSource.__new__(WindowSource)
            copy.__dict__.update(source.__dict__, _profile=profile, _scaled_profile=scaled)
            return copy

        return dataclasses.replace(self, **{name: attach(self[name]) for name in SPLIT_NAMES})


def split_boundaries(num_steps: int, split: Split) -> tuple[int, int, int]:
    """Step indices ``(b1, b2, end)`` of the chronological cut for fractions ``split``."""
    train, val, test = check_split(split)
    b1 = int(round(num_steps * train))
    b2 = b1 + int(round(num_steps * val))
    end = (
        num_steps
        if abs(train + val + test - 1.0) < 1e-9
        else min(num_steps, b2 + int(round(num_steps * test)))
    )
    return b1, b2, end


def make_forecast_splits(
    series: SpatioTemporalSeries,
    *,
    in_steps: int = 12,
    out_steps: int = 12,
    split: Split | None = None,
) -> ForecastSplits:
    """Cuts ``series`` chronologically, fits the scaler on the training steps, builds the window
    sources.

    Args:
      series: the data, values ``[T, N]`` with NaN where missing.
      in_steps, out_steps: input and target window lengths (>= 1 each).
      split: (train, val, test) fractions; ``None`` uses ``series.default_split``.

    Raises:
      ValueError: a non-positive window length, a split with no window (window longer than its part
        of the series) or with no valid target, or training values that are all missing.
    """
    if not isinstance(series, SpatioTemporalSeries):
        raise TypeError(f"series must be a SpatioTemporalSeries, got {type(series).__name__}")
    for option, value in (("in_steps", in_steps), ("out_steps", out_steps)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{option} must be a positive integer, got {value!r}")
    in_steps, out_steps = int(in_steps), int(out_steps)
    fractions = check_split(series.default_split if split is None else split, "split")
    num_steps = series.num_steps
    if in_steps + out_steps > num_steps:
        raise ValueError(
            f"in_steps + out_steps = {in_steps + out_steps} is longer than the series "
            f"{series.name!r} ({num_steps} steps)"
        )
    b1, b2, end = split_boundaries(num_steps, fractions)
    ranges = {  # first and one-past-last target start s of each split
        "train": (in_steps, b1 - out_steps + 1),
        "val": (max(b1, in_steps), b2 - out_steps + 1),
        "test": (max(b2, in_steps), end - out_steps + 1),
    }
    values = series.values
    valid = ~np.isnan(values)
    for name, (lo, hi) in ranges.items():
        if hi <= lo:
            raise ValueError(
                f"split {name!r} of {series.name!r} has no window: it spans steps "
                f"[{dict(train=0, val=b1, test=b2)[name]}, "
                f"{dict(train=b1, val=b2, test=end)[name]}) of {num_steps}, too short for "
                f"in_steps={in_steps}, out_steps={out_steps} with split={fractions}"
            )
        if not valid[lo : hi - 1 + out_steps].any():
            raise ValueError(
                f"split {name!r} of {series.name!r} has no valid target in steps [{lo}, "
                f"{hi - 1 + out_steps}) (all missing after null_value handling"
                + (f": {series.missing.summary()})" if series.missing is not None else ")")
            )
    try:
        scaler = StandardScaler.fit(values[:b1])
    except ValueError as err:
        raise ValueError(f"{series.name!r}, training steps [0, {b1}): {err}") from None
    scaled = scaler.transform(values)
    scaled = np.where(valid, scaled, np.float32(0.0)).astype(np.float32)
    target = np.where(valid, values, np.float32(0.0)).astype(np.float32)
    time_of_day, day_of_week = series.time_of_day(), series.day_of_week()
    day_of_year = year_day(epoch_days(series.start_time, series.step_minutes, num_steps))
    common = dict(
        day_of_year=day_of_year,
        scaled=scaled,
        target=target,
        valid=valid,
        time_of_day=time_of_day,
        day_of_week=day_of_week,
        in_steps=in_steps,
        out_steps=out_steps,
    )
    sources = {
        name: WindowSource(
            name=name, series_name=series.name, first_target=lo, num_windows=hi - lo, **common
        )
        for name, (lo, hi) in ranges.items()
    }
    return ForecastSplits(
        **sources,
        scaler=scaler,
        num_nodes=series.num_nodes,
        steps_per_day=series.steps_per_day,
        in_steps=in_steps,
        out_steps=out_steps,
        boundaries=(b1, b2, end),
        series_name=series.name,
        step_minutes=series.step_minutes,
    )
