"""What a forecaster needs from a run besides its parameters, kept in the workdir
(``<workdir>/forecast/``): the config resolved for the data (recipe and calendar widths applied),
the training scaler, the calendar (step, steps per day, whether the seasonal profile reads weekday
slots), the training split's seasonal table (with its day-of-year term where the run chose one),
the node ids and the span of the data the run saw.

Written by the training loop when a run finishes (`record.write_record`); for a workdir that
predates it, `recompute_run_info` rebuilds it from the data its ``config.json`` names. O(N·steps
per day) on disk.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from eala_jax.data.scaler import StandardScaler
from eala_jax.models.baselines import HistoricalAverage
from eala_jax.train.config import Config, config_from_dict, config_to_dict

__all__ = [
    "baseline_forecasts",
    "FORECAST_DIR",
    "FORMAT_VERSION",
    "ForecastInputError",
    "RunInfo",
    "WorkdirError",
    "load_run_info",
    "recompute_run_info",
    "run_info_from_data",
    "save_run_info",
]

#: Bumped when the files below change meaning; a workdir written with another one is refused.
FORMAT_VERSION = 1
FORECAST_DIR = "forecast"
RUN_FILE = "run.json"
TABLE_FILE = "seasonal_table.npz"


class ForecastInputError(ValueError):
    """An input to the forecaster does not fit the run (the message says what was expected)."""


class WorkdirError(ValueError):
    """The workdir cannot be forecast from: no best checkpoint, or written by another version."""


@dataclasses.dataclass(frozen=True, eq=False)
class RunInfo:
    """Everything besides the parameters that turns a run's model into a forecaster."""

    config: Config  # resolved for the data: the model is built from it
    scaler: StandardScaler
    num_nodes: int
    steps_per_day: int
    step_minutes: int
    weekly: bool  # the seasonal profile reads weekday slots (`seasonal_profile(weekly=...)`)
    average: HistoricalAverage  # the training split's seasonal table
    node_ids: tuple[str, ...] | None
    data_start: np.datetime64  # step 0 of the data the run was trained on (minute precision)
    data_steps: int
    boundaries: tuple[int, int, int]  # (b1, b2, end): train [0, b1), val [b1, b2), test [b2, end)

    @property
    def in_steps(self) -> int:
        return self.config.data.in_steps

    @property
    def out_steps(self) -> int:
        return self.config.data.out_steps

    def profile_table(self) -> np.ndarray:
        """float32 ``[7, steps_per_day, N]``: the seasonal profile at every (weekday, slot), the
        fallbacks of `HistoricalAverage.predict` resolved (time-of-day means only when not
        `weekly`), so that reading it is one gather. The day-of-year term, where the run has one,
        is apart (``average.year_table()``)."""
        average = self.average
        if not self.weekly:
            average = dataclasses.replace(average, week=np.full_like(average.week, np.nan))
        tod = np.tile(np.arange(self.steps_per_day), (7, 1))
        dow = np.repeat(np.arange(7)[:, None], self.steps_per_day, axis=1)
        return average.slots(tod, dow)


def run_info_from_data(config: Config, series: Any, splits: Any, average: Any) -> RunInfo:
    """The `RunInfo` of a run on ``series`` cut into ``splits`` (``prepare_data``'s parts)."""
    from eala_jax.data.calendar import choose_calendar

    weekly = choose_calendar(series, splits.boundaries[0]).day_of_week
    return RunInfo(
        config=config,
        scaler=splits.scaler,
        num_nodes=splits.num_nodes,
        steps_per_day=splits.steps_per_day,
        step_minutes=splits.step_minutes,
        weekly=bool(weekly and config.model.uses_profile),
        average=average,
        node_ids=None if series.node_ids is None else tuple(str(i) for i in series.node_ids),
        data_start=np.datetime64(series.start_time, "m"),
        data_steps=int(series.num_steps),
        boundaries=tuple(int(b) for b in splits.boundaries),
    )


def save_run_info(info: RunInfo, workdir: str | Path) -> Path:
    """Writes ``<workdir>/forecast/run.json`` and the seasonal table beside it; returns the
    folder."""
    folder = Path(workdir) / FORECAST_DIR
    folder.mkdir(parents=True, exist_ok=True)
    a = info.average
    year = {} if a.year is None else {"year": a.year}
    np.savez(
        folder / TABLE_FILE, week=a.week, day=a.day, sensor=a.sensor, overall=a.overall, **year
    )
    record = {
        "format_version": FORMAT_VERSION,
        "config": config_to_dict(info.config),
        "scaler": {"mean": float(info.scaler.mean), "std": float(info.scaler.std)},
        "num_nodes": info.num_nodes,
        "steps_per_day": info.steps_per_day,
        "step_minutes": info.step_minutes,
        "weekly": info.weekly,
        "node_ids": None if info.node_ids is None else list(info.node_ids),
        "data_start": str(info.data_start),
        "data_steps": info.data_steps,
        "boundaries": list(info.boundaries),
    }
    (folder / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def load_run_info(workdir: str | Path) -> RunInfo | None:
    """The saved `RunInfo` of ``workdir``, or None when it has none (an older workdir). Raises
    `WorkdirError` when it was written with another `FORMAT_VERSION` or cannot be read."""
    folder = Path(workdir) / FORECAST_DIR
    path = folder / RUN_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        version = record.get("format_version")
    except (ValueError, AttributeError) as err:
        raise WorkdirError(f"{path} is not a forecast record ({err})") from None
    if version != FORMAT_VERSION:
        raise WorkdirError(
            f"{path} was written with forecast format version {version!r}; this eala_jax reads "
            f"version {FORMAT_VERSION}: forecast it with the eala_jax that trained it, or train "
            "again"
        )
    try:
        config = config_from_dict(record["config"])
        table = np.load(folder / TABLE_FILE)
        average = HistoricalAverage(
            week=table["week"],
            day=table["day"],
            sensor=table["sensor"],
            overall=float(table["overall"]),
            year=table["year"] if "year" in table.files else None,
        )
        return RunInfo(
            config=config,
            scaler=StandardScaler(**record["scaler"]),
            num_nodes=int(record["num_nodes"]),
            steps_per_day=int(record["steps_per_day"]),
            step_minutes=int(record["step_minutes"]),
            weekly=bool(record["weekly"]),
            average=average,
            node_ids=None if record["node_ids"] is None else tuple(record["node_ids"]),
            data_start=np.datetime64(record["data_start"], "m"),
            data_steps=int(record["data_steps"]),
            boundaries=tuple(record["boundaries"]),
        )
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise WorkdirError(
            f"{folder} holds an unreadable or incomplete forecast record ({err}); written by "
            "another version of eala_jax?"
        ) from None


def read_config(workdir: str | Path) -> Config:
    """The config a run wrote to its workdir (``config.json``); `WorkdirError` when there is none
    or it names keys this version does not know."""
    from eala_jax.train.checkpoint import CONFIG_FILE

    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise WorkdirError(
            f"{workdir} holds no {CONFIG_FILE}: not the workdir of an experiments.train run"
        )
    try:
        return config_from_dict(json.loads(path.read_text()))
    except (KeyError, TypeError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise WorkdirError(
            f"{path} does not fit this version of eala_jax ({message}): the run was written by "
            "another version"
        ) from None


def recompute_run_info(workdir: str | Path) -> tuple[RunInfo, Any]:
    """The `RunInfo` of an older workdir, rebuilt from the data its ``config.json`` names (which
    must be present), and ``prepare_data``'s result (series and splits) for further use."""
    from eala_jax.train.prepare import prepare_data

    prepared = prepare_data(read_config(workdir))
    info = run_info_from_data(prepared.config, prepared.series, prepared.splits, prepared.average)
    return info, prepared


def baseline_forecasts(
    info: RunInfo, values: np.ndarray, first: np.ndarray, *, seasonal_period: int | None
) -> dict[str, np.ndarray]:
    """Host-side baseline forecasts of the run after ``values [B, T, N]`` (data units, NaN =
    missing; first rows at the times ``first [B]``), as ``evaluate_baselines`` computes them: the
    last value of the last ``in_steps`` rows, the historical average (with its day-of-year term
    where the run has one), the seasonal naive of ``seasonal_period`` steps (from the rows given;
    the historical average where it is missing; left out when None).
    ``{name: float32 [B, out_steps, N]}``. O(B·out_steps·N)."""
    from eala_jax.data.series import time_features
    from eala_jax.data.yearday import epoch_days, year_day
    from eala_jax.models.baselines import fill_missing, last_value_forecast

    b, t, _ = values.shape
    out_steps = info.out_steps
    step = np.timedelta64(info.step_minutes, "m")
    after = [f + step * t for f in first]
    tod, dow = np.stack([time_features(f, info.step_minutes, out_steps) for f in after], axis=1)
    day = np.stack([year_day(epoch_days(f, info.step_minutes, out_steps)) for f in after])
    average = info.average.predict(tod, dow, day)
    out = {
        "historical_average": average,
        "last_value": fill_missing(
            last_value_forecast(values[:, -info.in_steps :], out_steps), average
        ),
    }
    if seasonal_period:
        leads = np.arange(out_steps)
        rows = t + leads - (leads // seasonal_period + 1) * seasonal_period
        seasonal = np.full((b, out_steps, values.shape[2]), np.nan, np.float32)
        inside = rows >= 0
        seasonal[:, inside] = values[:, rows[inside]]
        out["seasonal_naive"] = fill_missing(seasonal, average)
    return out
