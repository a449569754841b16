"""How sure validation is that the model beats each baseline over the horizon: a one-sided paired
test on the validation windows' losses (`guard_evidence`), which the baseline guard requires before
it serves the model (`BaselineGuard.served`).

Consecutive windows overlap: windows less than ``T`` steps apart share target steps (and, on a
random walk, most of their errors), so the validation split holds far fewer independent
comparisons than windows. The test averages the loss difference (model minus baseline, per window:
mean absolute or squared error over the valid nodes and the horizon's steps) over consecutive
blocks of ``T`` windows and applies Student's t to the block means (Diebold and Mariano's
comparison, with blocks for the overlap): ``p = P(T_{n-1} <= t)``, ``n`` blocks, 1 with fewer
than 2. `block_p_values` gives the same per step (blocks of ``h + 1``). Cost: one pass over the
validation windows (model and baselines), O(W·T·N).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc

from eala_jax.train.guard import METRICS
from eala_jax.train.runinfo import baseline_forecasts

__all__ = ["block_p_values", "guard_evidence", "horizon_p_value", "window_losses"]


def window_losses(
    info: Any,
    series: Any,
    source: Any,
    model_pred: np.ndarray,
    *,
    seasonal_period: int | None,
    batch_size: int = 256,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-window losses on the windows of ``source`` (a split of ``series``; ``info`` the run's
    `RunInfo`) of the model, whose forecasts of those windows are ``model_pred [W, T, N]`` (data
    units, window order), and of each baseline the guard can serve (`baseline_forecasts`):
    ``{name: {"mae": [W, T], "rmse": [W, T]}}``, the mean absolute and the mean squared error over
    each window's valid nodes at each step (NaN where none is valid). History before each window
    reaches back far enough for the seasonal naive. O(W·T·N) on the host."""
    starts = source.first_target + np.arange(len(source))
    out_steps = info.out_steps
    period = seasonal_period
    reach = ((out_steps - 1) // period + 1) * period if period else 0
    length = min(max(info.in_steps, reach), int(starts.min()))
    step = np.timedelta64(series.step_minutes, "m")
    origin = np.datetime64(series.start_time, "m")
    model_pred = np.asarray(model_pred)
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        history = np.stack([series.values[s - length : s] for s in chunk])
        first = origin + (chunk - length) * step
        preds = {"model": model_pred[i : i + batch_size]}
        preds.update(baseline_forecasts(info, history, first, seasonal_period=period))
        target = np.stack([series.values[s : s + out_steps] for s in chunk])
        mask = ~np.isnan(target)
        count = mask.sum(2)
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, pred in preds.items():
                err = np.where(mask, pred.astype(np.float64) - np.nan_to_num(target), 0.0)
                losses = out.setdefault(name, {"mae": [], "rmse": []})
                losses["mae"].append(np.where(count > 0, np.abs(err).sum(2) / count, np.nan))
                losses["rmse"].append(np.where(count > 0, np.square(err).sum(2) / count, np.nan))
    return {k: {m: np.concatenate(v[m]) for m in v} for k, v in out.items()}


def _block_p_value(values: np.ndarray, size: int) -> float:
    """One-sided p-value that the mean of ``values [W]`` (NaN = none) is below 0: Student's t on
    the means of consecutive blocks of ``size``; 1 with fewer than two blocks or no spread."""
    n = len(values) // size
    if n < 2:
        return 1.0
    blocks = values[: n * size].reshape(n, size)
    valid = np.isfinite(blocks)
    count = valid.sum(1)
    means = np.where(valid, blocks, 0.0).sum(1)[count > 0] / count[count > 0]
    if len(means) < 2 or means.std(ddof=1) == 0:
        return 1.0
    dof = len(means) - 1
    t = means.mean() / (means.std(ddof=1) / np.sqrt(len(means)))
    tail = 0.5 * float(betainc(jnp.float32(dof / 2), 0.5, jnp.float32(dof / (dof + t * t))))
    return float(np.clip(tail if t < 0 else 1.0 - tail, 0.0, 1.0))  # P(T <= t)


def block_p_values(difference: np.ndarray) -> np.ndarray:
    """float64 ``[T]``: per step ``h``, the one-sided p-value that the mean of ``difference[:, h]``
    (``[W, T]``, per-window loss of the model minus a baseline's, NaN = no valid target) is below
    0, from Student's t on the means of consecutive blocks of ``h + 1`` windows; 1 where fewer than
    two blocks fit or they do not vary."""
    difference = np.asarray(difference, np.float64)
    return np.array([_block_p_value(difference[:, h], h + 1) for h in range(difference.shape[1])])


def horizon_p_value(difference: np.ndarray) -> float:
    """The one-sided p-value that ``difference [W, T]`` (as `block_p_values`) is below 0 over the
    whole horizon: each window's mean over its steps, blocks of ``T`` windows (windows ``T`` apart
    share no target step)."""
    difference = np.asarray(difference, np.float64)
    valid = np.isfinite(difference)
    count = valid.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_window = np.where(count > 0, np.where(valid, difference, 0.0).sum(1) / count, np.nan)
    return _block_p_value(per_window, difference.shape[1])


def guard_evidence(losses: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """``{metric: {baseline: p}}``: `horizon_p_value` of the model's losses minus each baseline's
    (``window_losses``), for MAE (absolute errors) and RMSE (squared errors)."""
    return {
        metric: {
            name: horizon_p_value(losses["model"][metric] - loss[metric])
            for name, loss in losses.items()
            if name != "model"
        }
        for metric in METRICS
    }
